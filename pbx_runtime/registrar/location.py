"""Location service: contact bindings per address-of-record (RFC 3261 §10.3 steps 6-8).

:func:`plan_update` turns a REGISTER's Contact/Expires into a list of changes (or the ``*``
wildcard) and rejects what RFC 3261 says to reject; :meth:`LocationService.apply` commits the
changes for one AOR all-or-nothing. Memory is bounded by named limits: contacts per AOR and
bindings in total. Sans-I/O: every method takes ``now`` (POSIX seconds).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from pbx_runtime.sip import STAR, Params, Request, SipUri
from pbx_runtime.sip.params import EMPTY_PARAMS
from pbx_runtime.sip.value import Value

__all__ = [
    "Applied",
    "Binding",
    "ContactChange",
    "ContactKey",
    "LocationError",
    "LocationLimits",
    "LocationService",
    "Update",
    "contact_key",
    "plan_update",
]


@dataclass(frozen=True, slots=True)
class LocationLimits:
    """Expiry policy and memory caps (all seconds or counts)."""

    min_expires: int = 60  # shorter non-zero requests get 423 + Min-Expires
    max_expires: int = 3600  # longer requests are shortened to this
    default_expires: int = 3600  # neither Expires nor ;expires given
    max_contacts_per_aor: int = 10  # growth beyond → 403
    max_bindings: int = 100_000  # growth beyond (after purging) → 503

    def __post_init__(self) -> None:
        if not 0 < self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        if self.max_contacts_per_aor < 1 or self.max_bindings < 1:
            raise ValueError("contact and binding caps must be positive")


class LocationError(Exception):
    """A REGISTER the location service refuses: answer with *status* and *headers*."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = headers


#: Contact identity for RFC 3261 §19.1.4 URI comparison: scheme, user, password, host (case-
#: insensitive), port, and the parameters that must match when present in either URI.
ContactKey = tuple[object, ...]
_SIGNIFICANT_PARAMS = ("transport", "user", "ttl", "method", "maddr")


def contact_key(uri: SipUri) -> ContactKey:
    significant: tuple[tuple[str, str], ...] = ()
    if uri.params:
        found = {name.lower(): (value or "").lower() for name, value in uri.params}
        significant = tuple((n, found[n]) for n in _SIGNIFICANT_PARAMS if n in found)
    return (
        uri.scheme,
        uri.user_unescaped,
        uri.password,
        uri.host_address,
        uri.port,
        significant,
        uri.headers,
    )


class ContactChange(Value):
    """One Contact of a REGISTER with its effective expiry (0 = remove)."""

    __slots__ = ("expires", "params", "q", "uri")

    def __init__(
        self, *, uri: SipUri, expires: int, q: str | None = None, params: Params = EMPTY_PARAMS
    ) -> None:
        self.uri: Final = uri
        self.expires: Final = expires
        self.q: Final = q
        self.params: Final = params  # other Contact parameters (+sip.instance, reg-id…), echoed

    def _fields(self) -> tuple[object, ...]:
        return (self.uri, self.expires, self.q, self.params)

    @property
    def key(self) -> ContactKey:
        return contact_key(self.uri)


Update = tuple[ContactChange, ...] | Literal["*"]

_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_DELTA_RE = re.compile(r"[0-9]{1,10}")


def plan_update(request: Request, limits: LocationLimits) -> Update:
    """The binding changes a REGISTER asks for (RFC 3261 §10.3 step 6).

    * ``;expires`` on a Contact wins over the ``Expires`` header, which wins over
      ``limits.default_expires``; longer than ``max_expires`` is shortened; non-zero below
      ``min_expires`` is 423 with ``Min-Expires`` (for the whole request).
    * ``Contact: *`` is only valid alone and with ``Expires: 0`` (else 400).
    * A Contact that is not a SIP/SIPS URI, or a malformed ``expires``/``q``, is 400.

    :raises LocationError: the request is refused.
    :raises SIPProtocolError: a malformed Contact or Expires header (400).
    """
    contacts = request.contact
    header_expires = request.expires
    if not contacts:
        return ()
    if contacts[0] == STAR:
        if len(contacts) != 1 or header_expires != 0:
            raise LocationError(400, "Contact '*' is only allowed alone with Expires: 0")
        return STAR
    changes: list[ContactChange] = []
    too_brief = False
    for contact in contacts:
        if contact == STAR or not isinstance(contact.uri, SipUri):
            raise LocationError(400, "Contact must be a SIP or SIPS URI")
        expires = header_expires
        q: str | None = None
        extra: list[tuple[str, str | None]] = []
        for name, value in contact.params:  # one pass: expires, q, and the rest kept
            lname = name.lower()
            if lname == "expires":
                if value is None or _DELTA_RE.fullmatch(value) is None:
                    raise LocationError(400, "malformed Contact expires")
                expires = int(value)
            elif lname == "q":
                if value is None or _QVALUE_RE.fullmatch(value) is None:
                    raise LocationError(400, "malformed Contact q")
                q = value
            else:
                extra.append((name, value))
        if expires is None:
            expires = limits.default_expires
        if 0 < expires < limits.min_expires:
            too_brief = True
        changes.append(
            ContactChange(
                uri=contact.uri,
                expires=min(expires, limits.max_expires),
                q=q,
                params=Params(extra) if extra else EMPTY_PARAMS,
            )
        )
    if too_brief:
        raise LocationError(423, "Interval Too Brief", (("Min-Expires", str(limits.min_expires)),))
    return tuple(changes)


class Binding(Value):
    """One registered contact of an AOR."""

    __slots__ = ("aor", "call_id", "cseq", "expires_at", "params", "q", "registered_at",
                 "source", "uri")  # fmt: skip

    def __init__(
        self,
        *,
        aor: str,
        uri: SipUri,
        expires_at: float,
        call_id: str,
        cseq: int,
        q: str | None = None,
        params: Params = EMPTY_PARAMS,
        source: str | None = None,
        registered_at: float = 0.0,
    ) -> None:
        self.aor: Final = aor
        self.uri: Final = uri
        self.expires_at: Final = expires_at
        self.call_id: Final = call_id
        self.cseq: Final = cseq
        self.q: Final = q
        self.params: Final = params
        self.source: Final = source  # where the REGISTER came from ("ip:port"), for NAT traversal
        self.registered_at: Final = registered_at  # first registration (refreshes keep it)

    def _fields(self) -> tuple[object, ...]:
        return (self.aor, self.uri, self.expires_at, self.call_id, self.cseq, self.q,
                self.params, self.source, self.registered_at)  # fmt: skip

    @property
    def key(self) -> ContactKey:
        return contact_key(self.uri)

    def expires_in(self, now: float) -> int:
        return max(0, math.ceil(self.expires_at - now))

    def contact_value(self, now: float) -> str:
        """``<uri>;params;expires=N[;q=…]`` for a 200 OK Contact."""
        q = "" if self.q is None else f";q={self.q}"
        return f"<{self.uri}>{self.params.render()};expires={self.expires_in(now)}{q}"


def _order(binding: Binding) -> tuple[float, float]:
    # Highest q first (no q counts as 1.0), then the most recently registered.
    return (-float(binding.q) if binding.q is not None else -1.0, -binding.registered_at)


class Applied(Value):
    """Outcome of :meth:`LocationService.apply`."""

    __slots__ = ("added", "bindings", "expired", "removed")

    def __init__(
        self,
        bindings: tuple[Binding, ...],
        added: tuple[Binding, ...] = (),
        removed: tuple[Binding, ...] = (),
        expired: tuple[Binding, ...] = (),
    ) -> None:
        self.bindings: Final = bindings  # the AOR's live bindings afterwards, best first
        self.added: Final = added
        self.removed: Final = removed  # removed on request (expires=0 or *)
        self.expired: Final = expired  # found expired and dropped meanwhile

    def _fields(self) -> tuple[object, ...]:
        return (self.bindings, self.added, self.removed, self.expired)


class LocationService:
    """Bindings per AOR, with expiry purging through a heap (O(log n) per change)."""

    __slots__ = ("_aors", "_count", "_heap", "_serial", "limits")

    def __init__(self, limits: LocationLimits | None = None) -> None:
        self.limits = limits if limits is not None else LocationLimits()
        self._aors: dict[str, dict[ContactKey, Binding]] = {}
        self._count = 0
        # (expires_at, serial, aor, key); stale entries are skipped when popped.
        self._heap: list[tuple[float, int, str, ContactKey]] = []
        self._serial = 0

    def __len__(self) -> int:
        return self._count

    def lookup(self, aor: str, now: float) -> tuple[Binding, ...]:
        """Live bindings of *aor*, best first (q, then most recent)."""
        current = self._aors.get(aor)
        if not current:
            return ()
        return tuple(sorted((b for b in current.values() if b.expires_at > now), key=_order))

    def apply(
        self,
        aor: str,
        update: Update,
        *,
        call_id: str,
        cseq: int,
        now: float,
        source: str | None = None,
    ) -> Applied:
        """Commit *update* for *aor* entirely, or raise and change nothing (§10.3 step 7).

        :raises LocationError: 500 for an out-of-order request (same Call-ID, CSeq not
            higher than a binding's), 403 when the AOR would exceed its contact cap, 503 when
            the service would exceed its total binding cap.
        """
        current = self._aors.get(aor, {})
        live = {k: b for k, b in current.items() if b.expires_at > now}
        expired = [b for b in current.values() if b.expires_at <= now]
        if update == STAR:
            for binding in live.values():
                _check_order(binding, call_id, cseq)
            result: dict[ContactKey, Binding] = {}
        else:
            result = dict(live)
            touched: set[ContactKey] = set()
            for change in update:
                key = change.key
                old = result.get(key)
                if old is not None and key not in touched:
                    _check_order(old, call_id, cseq)
                touched.add(key)  # a repeated Contact in one request: the last one wins
                if change.expires == 0:
                    result.pop(key, None)
                    continue
                first = live.get(key)
                result[key] = Binding(
                    aor=aor,
                    uri=change.uri,
                    expires_at=now + change.expires,
                    call_id=call_id,
                    cseq=cseq,
                    q=change.q,
                    params=change.params,
                    source=source,
                    registered_at=now if first is None else first.registered_at,
                )
            self._check_caps(aor, len(result), len(live), len(current), now, expired)
        added = [b for k, b in result.items() if k not in live]
        removed = [b for k, b in live.items() if k not in result]
        self._commit(aor, current, result)
        return Applied(
            bindings=tuple(sorted(result.values(), key=_order)),
            added=tuple(added),
            removed=tuple(removed),
            expired=tuple(expired),
        )

    def _check_caps(
        self, aor: str, size: int, live: int, before: int, now: float, expired: list[Binding]
    ) -> None:
        if size <= live:
            return  # shrinking or refreshing is always allowed
        if size > self.limits.max_contacts_per_aor:
            raise LocationError(403, "Too Many Contacts")
        if self._count - before + size > self.limits.max_bindings:
            expired.extend(b for b in self.purge(now) if b.aor != aor)
            if self._count - before + size > self.limits.max_bindings:
                raise LocationError(503, "Registrar Full", (("Retry-After", "60"),))

    def _commit(
        self, aor: str, before: dict[ContactKey, Binding], after: dict[ContactKey, Binding]
    ) -> None:
        current = self._aors.get(aor, {})  # purge() may have trimmed it meanwhile
        self._count += len(after) - len(current)
        if after:
            self._aors[aor] = after
        else:
            self._aors.pop(aor, None)
        for key, binding in after.items():
            old = before.get(key)
            if old is None or old.expires_at != binding.expires_at:
                self._serial += 1
                heapq.heappush(self._heap, (binding.expires_at, self._serial, aor, key))
        if len(self._heap) > 2 * self._count + 1024:
            self._rebuild_heap()

    def purge(self, now: float) -> list[Binding]:
        """Remove and return every binding expired at *now*."""
        heap, aors = self._heap, self._aors
        out: list[Binding] = []
        while heap and heap[0][0] <= now:
            expires_at, _, aor, key = heapq.heappop(heap)
            bindings = aors.get(aor)
            binding = None if bindings is None else bindings.get(key)
            if bindings is None or binding is None or binding.expires_at != expires_at:
                continue  # refreshed or removed since this entry was pushed
            del bindings[key]
            self._count -= 1
            if not bindings:
                del aors[aor]
            out.append(binding)
        return out

    def remove_aor(self, aor: str) -> tuple[Binding, ...]:
        """Drop every binding of *aor* (admin action); returns them."""
        bindings = self._aors.pop(aor, {})
        self._count -= len(bindings)
        return tuple(bindings.values())

    def _rebuild_heap(self) -> None:
        self._heap = []
        for aor, bindings in self._aors.items():
            for key, binding in bindings.items():
                self._serial += 1
                self._heap.append((binding.expires_at, self._serial, aor, key))
        heapq.heapify(self._heap)

    def all_bindings(self) -> Iterable[Binding]:
        for bindings in self._aors.values():
            yield from bindings.values()


def _check_order(binding: Binding, call_id: str, cseq: int) -> None:
    if binding.call_id == call_id and cseq <= binding.cseq:
        raise LocationError(500, "Out Of Order", (("Retry-After", "1"),))
