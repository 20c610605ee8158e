"""What call control asks the core to do (commands, immutable values)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final

from pbx_runtime.sip import Request, Response, TransactionKey
from pbx_runtime.sip.value import Value

__all__ = ["Abandon", "CallAction", "Reply", "SendAck", "StartRequest"]


class Reply(Value):
    """Send *response* on the server transaction it answers."""

    __slots__ = ("response",)

    def __init__(self, response: Response) -> None:
        self.response: Final = response

    def _fields(self) -> tuple[object, ...]:
        return (self.response,)


class StartRequest(Value):
    """Start a client transaction for *request* towards *destination*."""

    __slots__ = ("destination", "reliable", "request")

    def __init__(self, request: Request, destination: Hashable, reliable: bool) -> None:
        self.request: Final = request
        self.destination: Final = destination
        self.reliable: Final = reliable

    def _fields(self) -> tuple[object, ...]:
        return (self.request, self.destination, self.reliable)


class SendAck(Value):
    """Send the ACK for a 2xx; it is no transaction (RFC 3261 §13.2.2.4, §17.1.1.3)."""

    __slots__ = ("destination", "request")

    def __init__(self, request: Request, destination: Hashable) -> None:
        self.request: Final = request
        self.destination: Final = destination

    def _fields(self) -> tuple[object, ...]:
        return (self.request, self.destination)


class Abandon(Value):
    """Drop server transaction *key* without an answer (a locked user: silence, like the
    registrar's drop)."""

    __slots__ = ("key",)

    def __init__(self, key: TransactionKey) -> None:
        self.key: Final = key

    def _fields(self) -> tuple[object, ...]:
        return (self.key,)


CallAction = Reply | StartRequest | SendAck | Abandon
