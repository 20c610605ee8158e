"""What call control asks the core to do (commands, frozen dataclasses)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from pbx_runtime.sip import Request, Response, TransactionKey

__all__ = ["Abandon", "CallAction", "Reply", "SendAck", "StartRequest"]


@dataclass(frozen=True, slots=True)
class Reply:
    """Send *response* on the server transaction it answers."""

    response: Response


@dataclass(frozen=True, slots=True)
class StartRequest:
    """Start a client transaction for *request* towards *destination*."""

    request: Request
    destination: Hashable
    reliable: bool


@dataclass(frozen=True, slots=True)
class SendAck:
    """Send the ACK for a 2xx; it is no transaction (RFC 3261 §13.2.2.4, §17.1.1.3)."""

    request: Request
    destination: Hashable


@dataclass(frozen=True, slots=True)
class Abandon:
    """Drop server transaction *key* without an answer (a locked user: silence, like the
    registrar's drop)."""

    key: TransactionKey


CallAction = Reply | StartRequest | SendAck | Abandon
