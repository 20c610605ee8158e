"""In-tenant call control: a B2BUA between registered extensions (sans-I/O).

>>> control = CallControl(domain, authenticator, registrar.location, known_user=...,
...                       hop_for_source=..., hop_for_binding=...)
>>> actions = control.on_request(request_received, now)    # Reply / StartRequest / SendAck / ...
"""

from .actions import Abandon, CallAction, Reply, SendAck, StartRequest
from .calls import ALLOW, Call, CallControl, CallSettings, caller_status
from .legs import Hop, Leg, Side
from .table import CALL_TABLE, CallInput, CallState, render_table

__all__ = [
    "ALLOW",
    "CALL_TABLE",
    "Abandon",
    "Call",
    "CallAction",
    "CallControl",
    "CallInput",
    "CallSettings",
    "CallState",
    "Hop",
    "Leg",
    "Reply",
    "SendAck",
    "Side",
    "StartRequest",
    "caller_status",
    "render_table",
]
