"""The call state machine as a table (house rule 8), in the style of ``sip/transaction.py``.

A call joins two dialogs: the *caller* leg (the phone that sent INVITE to us) and the *callee*
leg (our INVITE to the registered contact). Every transition that changes the call's life is a
row here: ``(state, input) → (next state, steps)``. :class:`~pbx_runtime.b2bua.calls.CallControl`
only interprets steps. Inputs without a row are absorbed (nothing happens).

Re-INVITEs and other in-dialog requests of a confirmed call do not change its state: they are
relayed one-for-one to the other leg (see ``docs/runtime/calls.md``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["CALL_TABLE", "CallInput", "CallState", "Step", "Transition", "render_table"]


class CallState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    CALLING = "Calling"  # INVITE sent to the callee, nothing heard yet
    RINGING = "Ringing"  # a provisional from the callee was relayed (early dialog)
    ANSWERED = "Answered"  # 2xx relayed to the caller, waiting for its ACK
    CONFIRMED = "Confirmed"  # both legs confirmed: the call is up
    CANCELLING = "Cancelling"  # the caller has its final (487/480); the callee is being CANCELled
    ENDING = "Ending"  # BYE sent on a leg, waiting for its answer
    ENDED = "Ended"  # forgotten


class CallInput(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    CALLEE_1XX = "callee 1xx"
    CALLEE_2XX = "callee 2xx"
    CALLEE_FAILED = "callee final 3xx-6xx / timeout"
    CALLER_CANCEL = "caller CANCEL"
    CALLER_ACK = "caller ACK for the 2xx"
    CALLER_BYE = "caller BYE"
    CALLEE_BYE = "callee BYE"
    NO_ACK = "no ACK within 64*T1"
    NO_ANSWER = "ring timeout"
    BYE_DONE = "our BYEs answered or timed out"


class Step(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    RELAY_1XX = "relay 1xx to caller"
    RELAY_2XX = "relay 2xx to caller, retransmit until ACK"
    RELAY_FINAL = "relay final to caller"
    ANSWER_487 = "487 to caller's INVITE"
    ANSWER_480 = "480 to caller's INVITE"
    CANCEL_CALLEE = "CANCEL callee (once it sent a 1xx)"
    ACK_CALLEE = "ACK callee's 2xx"
    STOP_2XX = "stop 2xx retransmission"
    ANSWER_BYE = "200 to the BYE"
    BYE_CALLER = "BYE to caller"
    BYE_CALLEE = "BYE to callee"


@dataclass(frozen=True, slots=True)
class Transition:
    target: CallState
    steps: tuple[Step, ...] = ()


S, I, P = CallState, CallInput, Step  # noqa: E741  # short aliases for the table only


def _go(target: CallState, *steps: Step) -> Transition:
    return Transition(target, steps)


CALL_TABLE: Mapping[tuple[CallState, CallInput], Transition] = MappingProxyType({
    (S.CALLING, I.CALLEE_1XX): _go(S.RINGING, P.RELAY_1XX),
    (S.CALLING, I.CALLEE_2XX): _go(S.ANSWERED, P.RELAY_2XX),
    (S.CALLING, I.CALLEE_FAILED): _go(S.ENDED, P.RELAY_FINAL),
    (S.CALLING, I.CALLER_CANCEL): _go(S.CANCELLING, P.ANSWER_487, P.CANCEL_CALLEE),
    (S.CALLING, I.NO_ANSWER): _go(S.CANCELLING, P.ANSWER_480, P.CANCEL_CALLEE),

    (S.RINGING, I.CALLEE_1XX): _go(S.RINGING, P.RELAY_1XX),
    (S.RINGING, I.CALLEE_2XX): _go(S.ANSWERED, P.RELAY_2XX),
    (S.RINGING, I.CALLEE_FAILED): _go(S.ENDED, P.RELAY_FINAL),
    (S.RINGING, I.CALLER_CANCEL): _go(S.CANCELLING, P.ANSWER_487, P.CANCEL_CALLEE),
    # RFC 3261 §15: a caller may BYE an early dialog; it ends the attempt like a CANCEL.
    (S.RINGING, I.CALLER_BYE): _go(S.CANCELLING, P.ANSWER_BYE, P.ANSWER_487, P.CANCEL_CALLEE),
    (S.RINGING, I.NO_ANSWER): _go(S.CANCELLING, P.ANSWER_480, P.CANCEL_CALLEE),

    # The CANCEL may be deferred until the callee's first 1xx (RFC 3261 §9.1).
    (S.CANCELLING, I.CALLEE_1XX): _go(S.CANCELLING, P.CANCEL_CALLEE),
    # The callee answered as the CANCEL crossed it: confirm and hang up at once.
    (S.CANCELLING, I.CALLEE_2XX): _go(S.ENDING, P.ACK_CALLEE, P.BYE_CALLEE),
    (S.CANCELLING, I.CALLEE_FAILED): _go(S.ENDED),

    (S.ANSWERED, I.CALLER_ACK): _go(S.CONFIRMED, P.STOP_2XX, P.ACK_CALLEE),
    (S.ANSWERED, I.NO_ACK): _go(S.ENDING, P.STOP_2XX, P.ACK_CALLEE, P.BYE_CALLEE, P.BYE_CALLER),
    # A BYE before the ACK implies the 2xx arrived (RFC 3261 §15).
    (S.ANSWERED, I.CALLER_BYE): _go(S.ENDING, P.STOP_2XX, P.ANSWER_BYE, P.ACK_CALLEE,
                                    P.BYE_CALLEE),
    (S.ANSWERED, I.CALLEE_BYE): _go(S.ENDING, P.STOP_2XX, P.ANSWER_BYE, P.ACK_CALLEE,
                                    P.BYE_CALLER),

    # A retransmitted 2xx means our ACK was lost: send it again.
    (S.CONFIRMED, I.CALLEE_2XX): _go(S.CONFIRMED, P.ACK_CALLEE),
    (S.CONFIRMED, I.CALLER_BYE): _go(S.ENDING, P.ANSWER_BYE, P.BYE_CALLEE),
    (S.CONFIRMED, I.CALLEE_BYE): _go(S.ENDING, P.ANSWER_BYE, P.BYE_CALLER),

    (S.ENDING, I.CALLEE_2XX): _go(S.ENDING, P.ACK_CALLEE),
    (S.ENDING, I.CALLER_BYE): _go(S.ENDING, P.ANSWER_BYE),  # crossing BYEs
    (S.ENDING, I.CALLEE_BYE): _go(S.ENDING, P.ANSWER_BYE),
    (S.ENDING, I.BYE_DONE): _go(S.ENDED),
})  # fmt: skip


def render_table() -> str:
    """The table as Markdown (``docs/runtime/calls.md`` embeds it; a test keeps them equal)."""
    lines = ["| state | input | next state | steps |", "|---|---|---|---|"]
    for (state, event), row in CALL_TABLE.items():
        steps = ", ".join(step.value for step in row.steps) or "—"
        lines.append(f"| {state.value} | {event.value} | {row.target.value} | {steps} |")
    return "\n".join(lines)
