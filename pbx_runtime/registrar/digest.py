"""HTTP Digest for SIP (RFC 3261 §22, RFC 7616, RFC 8760), verified against stored HA1 only.

* Algorithms: ``SHA-256`` and ``MD5``, plus their ``-sess`` variants (derivable from the stored
  HA1, so they cost no extra provisioning). Challenges are offered one per algorithm, most
  preferred first (RFC 8760 §2.4); a response must use one of the offered algorithms.
* ``qop=auth`` is required. ``auth-int`` and RFC 2069-style responses without ``qop`` can never
  succeed: they get a fresh challenge (the client may answer it correctly next time).
* Nonces are stateless: ``<ts:8 hex><counter:8 hex><mac:32 hex>`` where the MAC is keyed
  BLAKE2s-128(key = secret, ts‖counter‖source host‖realm) (RFC 7693 keyed mode, a PRF: two
  compressions where HMAC-SHA256 needs four, and every REGISTER computes two MACs). A nonce is
  only valid for the IP address it was issued to (ports change across TCP/TLS reconnects and
  NAT rebinding, so they are not bound) and for ``nonce_ttl`` seconds; a correct answer to an
  expired nonce gets ``stale=true``. The counter keeps two phones behind one NAT from sharing a
  nonce (and with it nonce-count state) within the same second.
* Nonce-count replay protection: the highest ``nc`` accepted per nonce is kept in a bounded LRU.
  A nonce evicted from it is answered as stale, never accepted again (an "eviction floor"), so
  memory pressure cannot reopen a replay window.
* Every secret comparison is constant-time (:func:`hmac.compare_digest`).

The module is sans-I/O: callers pass ``now`` (POSIX seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from itertools import count
from typing import Final, Protocol

from pbx_runtime.sip import SIPProtocolError
from pbx_runtime.sip.abnf import quote
from pbx_runtime.sip.value import Value

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "Algorithm",
    "DigestCheck",
    "DigestCredentials",
    "DigestError",
    "DigestOutcome",
    "DigestVerifier",
    "NcOutcome",
    "NonceCounter",
    "canonical_algorithm",
    "compute_ha1",
    "compute_response",
    "parse_authorization",
    "raw_nonce",
]


class DigestError(SIPProtocolError):
    """A malformed Digest ``Authorization``/``Proxy-Authorization`` value (always 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)


# ---------------------------------------------------------------------------------------------
# Algorithms


class _HashObject(Protocol):
    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str  # as written in challenges (RFC 7616 §6.1 registry spelling)
    hash: Callable[[bytes], _HashObject]
    hex_length: int
    sess: bool  # HA1 is re-keyed per nonce/cnonce (RFC 7616 §3.4.2)
    base: str  # the algorithm whose stored HA1 this one uses


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("SHA-256", hashlib.sha256, 64, False, "SHA-256"),
        Algorithm("SHA-256-sess", hashlib.sha256, 64, True, "SHA-256"),
        Algorithm("MD5", hashlib.md5, 32, False, "MD5"),
        Algorithm("MD5-sess", hashlib.md5, 32, True, "MD5"),
    )
}
_BY_UPPER = {name.upper(): name for name in ALGORITHMS}

#: Offered by default, in this order (RFC 8760: strongest first; MD5 for older phones and SIPp).
DEFAULT_ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5")


def canonical_algorithm(name: str) -> str:
    """``"sha-256"`` → ``"SHA-256"``; unknown names come back unchanged."""
    return _BY_UPPER.get(name.upper(), name)


def _h(algorithm: Algorithm, text: str) -> str:
    return algorithm.hash(text.encode("utf-8", "surrogatepass")).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """``H(username:realm:password)`` — for provisioning and tests; the runtime never sees a
    password (DESIGN §3)."""
    return _h(ALGORITHMS[canonical_algorithm(algorithm)], f"{username}:{realm}:{password}")


def compute_response(
    algorithm: str,
    ha1: str,
    *,
    nonce: str,
    nc: str,
    cnonce: str,
    method: str,
    uri: str,
    qop: str = "auth",
) -> str:
    """The ``response`` value for ``qop=auth`` (RFC 7616 §3.4.1), from a stored HA1."""
    alg = ALGORITHMS[canonical_algorithm(algorithm)]
    if alg.sess:
        ha1 = _h(alg, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _h(alg, f"{method}:{uri}")
    return _h(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# ---------------------------------------------------------------------------------------------
# Parsing Authorization / Proxy-Authorization

MAX_CREDENTIALS_CHARS = 4096
MAX_AUTH_PARAMS = 32

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]"
# auth-param = token BWS "=" BWS ( token / quoted-string ), in a comma-separated list. Each
# item is matched where the previous one ended (anchored, possessive quantifiers only: nothing
# is ever given back), so the whole value is read once, in linear time, whatever the input.
_PARAM_RE = re.compile(
    rf"[ \t]*+({_TOKEN}+)[ \t]*+=[ \t]*+"
    rf'(?:"([^"\\]*+(?:\\.[^"\\]*+)*+)"|([^\s,"]++))[ \t]*+(?:,|\Z)',
    re.S,
)
_SCHEME_RE = re.compile(r"[ \t]*([^ \t]*)[ \t]*(.*)\Z", re.S)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")
_REQUIRED = ("username", "realm", "nonce", "uri", "response")


class DigestCredentials(Value):
    """The parameters of one Digest credentials value, unquoted. ``algorithm`` is canonical
    (``MD5`` when absent, RFC 7616 §3.4)."""

    __slots__ = (
        "algorithm",
        "cnonce",
        "nc",
        "nonce",
        "opaque",
        "qop",
        "realm",
        "response",
        "uri",
        "userhash",
        "username",
    )  # fmt: skip

    def __init__(
        self,
        *,
        username: str,
        realm: str,
        nonce: str,
        uri: str,
        response: str,
        algorithm: str = "MD5",
        qop: str | None = None,
        nc: str | None = None,
        cnonce: str | None = None,
        opaque: str | None = None,
        userhash: bool = False,
    ) -> None:
        self.username: Final = username
        self.realm: Final = realm
        self.nonce: Final = nonce
        self.uri: Final = uri
        self.response: Final = response
        self.algorithm: Final = algorithm
        self.qop: Final = qop
        self.nc: Final = nc
        self.cnonce: Final = cnonce
        self.opaque: Final = opaque
        self.userhash: Final = userhash

    def _fields(self) -> tuple[object, ...]:
        return (self.username, self.realm, self.nonce, self.uri, self.response, self.algorithm,
                self.qop, self.nc, self.cnonce, self.opaque, self.userhash)  # fmt: skip


def parse_authorization(value: str) -> DigestCredentials | None:
    """Parse an ``Authorization``/``Proxy-Authorization`` value.

    :returns: ``None`` when the scheme is not Digest (Basic, Bearer… are not ours to judge).
    :raises DigestError: a malformed Digest value — and nothing else, whatever the input.
    """
    if len(value) > MAX_CREDENTIALS_CHARS:
        raise DigestError("credentials too long")
    head = _SCHEME_RE.match(value)
    if head is None or head.group(1).lower() != "digest":
        return None
    rest = head.group(2)
    params: dict[str, str] = {}
    count, position, end = 0, 0, len(rest)
    while True:  # each item where the previous one ended
        found = _PARAM_RE.match(rest, position)
        if found is None:
            raise DigestError("malformed Digest credentials")
        name, quoted, bare = found.groups("")  # "" for the alternative not taken
        if quoted or not bare:  # a quoted-string (possibly empty)
            params[name.lower()] = _QUOTED_PAIR_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        else:
            params[name.lower()] = bare
        count += 1
        position = found.end()
        if position >= end:
            break
    if rest.endswith(","):
        raise DigestError("malformed Digest credentials")
    if count > MAX_AUTH_PARAMS:
        raise DigestError("too many Digest parameters")
    if len(params) != count:
        raise DigestError("repeated Digest parameter")
    for key in _REQUIRED:
        if key not in params:
            raise DigestError(f"Digest credentials without {key}")
    userhash = params.get("userhash", "false").lower()
    if userhash not in ("true", "false"):
        raise DigestError("invalid userhash")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=canonical_algorithm(params.get("algorithm", "MD5")),
        qop=params.get("qop"),
        nc=params.get("nc"),
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
        userhash=userhash == "true",
    )


# A nonce of ours in the first credentials line of a raw message, read without parsing it.
_RAW_NONCE_RE = re.compile(
    rb'\n(?:Proxy-)?Authorization[ \t]*:[^\r\n]*?[ \t,]nonce="([0-9a-f]{48})"', re.IGNORECASE
)


def raw_nonce(data: bytes) -> str | None:
    """The nonce of the first ``Authorization``/``Proxy-Authorization`` line of an unparsed
    message when it has the shape this module issues, else ``None`` (folded or unusual
    credentials included: callers use it only to decide what to spare under overload)."""
    match = _RAW_NONCE_RE.search(data)
    return None if match is None else match.group(1).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Nonce-count tracking


class NcOutcome(Enum):
    FRESH = "fresh"  # first use of the nonce, or a higher nc: accepted and recorded
    REPLAY = "replay"  # nc not above the highest seen
    EVICTED = "evicted"  # unknown nonce at or before the eviction floor: answer stale


class NonceCounter:
    """Highest nonce-count per nonce, in an LRU of at most *capacity* nonces.

    On eviction the evicted nonce's timestamp becomes the *floor*: an unknown nonce issued at or
    before the floor may have been evicted, so it is refused (as stale) rather than trusted.
    """

    __slots__ = ("_counts", "capacity", "floor")

    def __init__(self, capacity: int = 65536) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.floor = -1
        self._counts: OrderedDict[str, int] = OrderedDict()

    def observe(self, nonce: str, issued: int, nc: int) -> NcOutcome:
        counts = self._counts
        last = counts.get(nonce)
        if last is None:
            if issued <= self.floor:
                return NcOutcome.EVICTED
            counts[nonce] = nc
            if len(counts) > self.capacity:
                old, _ = counts.popitem(last=False)
                self.floor = max(self.floor, int(old[:8], 16))
            return NcOutcome.FRESH
        if nc <= last:
            return NcOutcome.REPLAY
        counts[nonce] = nc
        counts.move_to_end(nonce)
        return NcOutcome.FRESH

    def __len__(self) -> int:
        return len(self._counts)


# ---------------------------------------------------------------------------------------------
# Verification


class DigestOutcome(Enum):
    OK = "ok"
    #: Correct digest, but the nonce expired (or was evicted): re-challenge with ``stale=true``.
    STALE = "stale"
    #: Could have succeeded (valid nonce for this source, acceptable parameters) but did not:
    #: a wrong password, an unknown user, a replayed nc. Counts towards lockout.
    FAILED = "failed"
    #: Could never succeed (foreign/forged nonce, algorithm or qop not offered…): re-challenge,
    #: not counted — the nonce was not proven to come from this source (spoofable over UDP).
    REJECTED = "rejected"


class DigestCheck(Value):
    __slots__ = ("outcome", "reason")

    def __init__(self, outcome: DigestOutcome, reason: str) -> None:
        self.outcome: Final = outcome
        self.reason: Final = reason  # stable snake_case token, for security events and logs

    def _fields(self) -> tuple[object, ...]:
        return (self.outcome, self.reason)


_NONCE_RE = re.compile(r"[0-9a-f]{48}")
_NONCE_FUTURE_SLACK = 2  # seconds a nonce may be "from the future" (wall-clock steps)


class DigestVerifier:
    """Issues challenges and verifies Digest responses for one realm.

    :param secret: MAC key for nonces; a fresh random key per process by default, so a
        restart invalidates every outstanding nonce (phones simply re-authenticate) and a
        restart cannot reopen a replay window for nonces whose nc history was lost.
    """

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes | None = None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        nonce_ttl: float = 300.0,
        max_tracked_nonces: int = 65536,
    ) -> None:
        offered = tuple(canonical_algorithm(a) for a in algorithms)
        unknown = [a for a in offered if a not in ALGORITHMS]
        if unknown or not offered or len(set(offered)) != len(offered):
            raise ValueError(f"algorithms must be distinct names from {sorted(ALGORITHMS)}")
        if secret is None:
            secret = secrets.token_bytes(32)
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if nonce_ttl <= 0:
            raise ValueError("nonce_ttl must be positive")
        self.realm = realm
        self.algorithms = offered
        self.nonce_ttl = nonce_ttl
        self.counter = NonceCounter(max_tracked_nonces)
        self._secret = secret
        # BLAKE2s takes keys of up to 32 bytes: a longer secret is hashed down to one.
        self._mac_key = secret if len(secret) <= 32 else hashlib.sha256(secret).digest()
        self._serial = count()
        quoted = quote(realm)
        self._prefixes = tuple((f"Digest realm={quoted}, nonce=", a) for a in offered)
        # Unknown users are verified against this so both paths cost the same hashing.
        self._dummy_ha1 = {
            a.name: a.hash(secrets.token_bytes(16)).hexdigest() for a in ALGORITHMS.values()
        }

    # -- nonces --------------------------------------------------------------------------------

    def _sign(self, stamp: str, host: str) -> str:
        message = f"{stamp}\0{host}\0{self.realm}".encode("utf-8", "surrogatepass")
        return hashlib.blake2s(message, digest_size=16, key=self._mac_key).hexdigest()

    def new_nonce(self, host: str, now: float) -> str:
        stamp = f"{int(now) & 0xFFFFFFFF:08x}{next(self._serial) & 0xFFFFFFFF:08x}"
        return stamp + self._sign(stamp, host)

    def nonce_issued(self, nonce: str, host: str) -> int | None:
        """Issue time of *nonce* if this verifier issued it to *host*, else ``None``."""
        if _NONCE_RE.fullmatch(nonce) is None:
            return None
        if not hmac.compare_digest(self._sign(nonce[:16], host), nonce[16:]):
            return None
        return int(nonce[:8], 16)

    def is_fresh(self, nonce: str, host: str, now: float) -> bool:
        """Whether this verifier issued *nonce* to *host* less than ``nonce_ttl`` ago (its
        nonce-count and the response are not looked at)."""
        issued = self.nonce_issued(nonce, host)
        return issued is not None and -_NONCE_FUTURE_SLACK <= now - issued <= self.nonce_ttl

    # -- challenges ----------------------------------------------------------------------------

    def challenges(self, host: str, now: float, *, stale: bool = False) -> list[str]:
        """``WWW-Authenticate``/``Proxy-Authenticate`` values, one per offered algorithm,
        sharing one fresh nonce bound to *host*."""
        nonce = self.new_nonce(host, now)
        tail = ', qop="auth", stale=true' if stale else ', qop="auth"'
        return [f'{prefix}"{nonce}", algorithm={alg}{tail}' for prefix, alg in self._prefixes]

    # -- verification --------------------------------------------------------------------------

    def verify(
        self,
        credentials: DigestCredentials,
        method: str,
        ha1: str | None,
        host: str,
        now: float,
    ) -> DigestCheck:
        """Check *credentials* for a request of *method* from *host*.

        *ha1* is the stored ``H(user:realm:password)`` for ``credentials.username`` under the
        base algorithm of ``credentials.algorithm``, or ``None`` if there is none — an unknown
        user is verified against a random HA1 so that it fails in the same time.
        """
        algorithm = ALGORITHMS.get(credentials.algorithm)
        if algorithm is None or algorithm.name not in self.algorithms:
            return DigestCheck(DigestOutcome.REJECTED, "algorithm_not_offered")
        if credentials.userhash:
            return DigestCheck(DigestOutcome.REJECTED, "userhash_not_offered")
        if credentials.qop is None or credentials.qop.lower() != "auth":
            return DigestCheck(DigestOutcome.REJECTED, "qop_auth_required")
        nc_text, cnonce = credentials.nc, credentials.cnonce
        if nc_text is None or _NC_RE.fullmatch(nc_text) is None or not cnonce:
            return DigestCheck(DigestOutcome.REJECTED, "bad_nc_or_cnonce")
        nc = int(nc_text, 16)
        if nc == 0:
            return DigestCheck(DigestOutcome.REJECTED, "bad_nc_or_cnonce")
        if credentials.realm != self.realm:
            return DigestCheck(DigestOutcome.REJECTED, "realm_mismatch")
        nonce = credentials.nonce
        issued = self.nonce_issued(nonce, host)
        if issued is None or issued > now + _NONCE_FUTURE_SLACK:
            return DigestCheck(DigestOutcome.REJECTED, "invalid_nonce")

        known = ha1 is not None
        key = ha1 if ha1 is not None else self._dummy_ha1[algorithm.base]
        if algorithm.sess:
            key = _h(algorithm, f"{key}:{nonce}:{cnonce}")
        ha2 = _h(algorithm, f"{method}:{credentials.uri}")
        expected = _h(algorithm, f"{key}:{nonce}:{nc_text}:{cnonce}:{credentials.qop}:{ha2}")
        given = credentials.response.lower().encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(expected.encode("ascii"), given) or not known:
            return DigestCheck(DigestOutcome.FAILED, "bad_response" if known else "unknown_user")

        if now - issued > self.nonce_ttl:
            return DigestCheck(DigestOutcome.STALE, "nonce_expired")
        seen = self.counter.observe(nonce, issued, nc)
        if seen is NcOutcome.REPLAY:
            return DigestCheck(DigestOutcome.FAILED, "nc_replay")
        if seen is NcOutcome.EVICTED:
            return DigestCheck(DigestOutcome.STALE, "nonce_evicted")
        return DigestCheck(DigestOutcome.OK, "ok")
