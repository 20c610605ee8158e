"""SIP message layer, sans-I/O: bytes in, frozen messages out, bytes back.

Nothing in this package touches sockets, the event loop, TLS or a clock.

>>> msg = parse_datagram(data)             # one UDP datagram   → Request | Response
>>> framer = StreamFramer()                # TCP/TLS byte stream → events
>>> events = framer.feed(chunk)
>>> reply = build_response(msg, 200)       # copies Via/From/To/Call-ID/CSeq, adds To tag
>>> wire = serialize(reply)                # Content-Length always correct

Malformed input raises :class:`SIPProtocolError` with the status to answer (``None``: drop).
"""

from .abnf import canonical_name, header_key, split_list
from .errors import SIPProtocolError
from .framer import KeepAlive, StreamEvent, StreamFramer
from .headers import (
    STAR,
    ContactValue,
    CSeq,
    NameAddr,
    Via,
    parse_call_id,
    parse_contact_list,
    parse_cseq,
    parse_header_params,
    parse_max_forwards,
    parse_name_addr,
    parse_via,
    parse_via_list,
)
from .limits import DEFAULT_LIMITS, Limits
from .message import Message, Request, Response, build_response, new_tag, serialize
from .parser import parse_datagram, stateless_error_response
from .timers import DEFAULT_TIMERS, Timer, TimerSettings
from .transaction import (
    AckReceived,
    PassToTU,
    RequestReceived,
    RequestRejected,
    SendMessage,
    TerminationReason,
    TimedOut,
    Transaction,
    TransactionKey,
    TransactionManager,
    TransactionTerminated,
    TransportFailed,
    build_ack,
    build_cancel,
    new_branch,
)
from .uri import (
    URI,
    AbsoluteUri,
    Params,
    SipUri,
    TelUri,
    parse_request_uri,
    parse_uri,
    unescape,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMERS",
    "STAR",
    "URI",
    "AbsoluteUri",
    "AckReceived",
    "CSeq",
    "ContactValue",
    "KeepAlive",
    "Limits",
    "Message",
    "NameAddr",
    "Params",
    "PassToTU",
    "Request",
    "RequestReceived",
    "RequestRejected",
    "Response",
    "SIPProtocolError",
    "SendMessage",
    "SipUri",
    "StreamEvent",
    "StreamFramer",
    "TelUri",
    "TerminationReason",
    "TimedOut",
    "Timer",
    "TimerSettings",
    "Transaction",
    "TransactionKey",
    "TransactionManager",
    "TransactionTerminated",
    "TransportFailed",
    "Via",
    "build_ack",
    "build_cancel",
    "build_response",
    "canonical_name",
    "header_key",
    "new_branch",
    "new_tag",
    "parse_call_id",
    "parse_contact_list",
    "parse_cseq",
    "parse_datagram",
    "parse_header_params",
    "parse_max_forwards",
    "parse_name_addr",
    "parse_request_uri",
    "parse_uri",
    "parse_via",
    "parse_via_list",
    "serialize",
    "split_list",
    "stateless_error_response",
    "unescape",
]
