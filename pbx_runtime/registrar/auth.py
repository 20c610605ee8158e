"""Digest authentication of requests, shared by the registrar (REGISTER, 401) and call control
(INVITE and friends, 401 as a UAS or 407 as a proxy).

Enumeration resistance (performance-security.md §5.3): no credentials, an unknown user, a
wrong password, a forged or foreign nonce, a replayed nonce-count — every one of them gets the
same answer, a fresh challenge built by the same code with the same headers; only the nonce
differs. The To tag of challenges is fixed per :class:`Authenticator`, so two failures are
byte-identical apart from the nonce. No ``Server`` header is added (svmap fingerprints it).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from enum import Enum
from typing import Final

from pbx_runtime.policy import AbusePolicy, Verdict, source_host
from pbx_runtime.sip import Request, Response, SIPProtocolError, SipUri, build_response, parse_uri
from pbx_runtime.sip.value import Value

from .credentials import CredentialStore
from .digest import (
    ALGORITHMS,
    DEFAULT_ALGORITHMS,
    DigestCredentials,
    DigestError,
    DigestOutcome,
    DigestVerifier,
    parse_authorization,
    raw_nonce,
)

__all__ = ["AuthOutcome", "AuthResult", "Authenticator"]

#: challenge status → (challenge header, credentials header)
_SCOPES: dict[int, tuple[str, str]] = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}
#: At most this many credentials headers are looked at (one per realm is the normal case).
MAX_CREDENTIALS_HEADERS = 4


class AuthOutcome(Enum):
    OK = "ok"  # authenticated as AuthResult.user
    CHALLENGE = "challenge"  # send AuthResult.response (401/407 with a fresh challenge)
    BAD_REQUEST = "bad_request"  # send AuthResult.response (400): malformed credentials
    LOCKED = "locked"  # the claimed user is locked: drop silently


class AuthResult(Value):
    __slots__ = ("outcome", "reason", "response", "user")

    def __init__(
        self,
        outcome: AuthOutcome,
        user: str | None = None,
        response: Response | None = None,
        reason: str = "",
    ) -> None:
        self.outcome: Final = outcome
        self.user: Final = user  # the authenticated user (OK), or the claimed one (failures)
        self.response: Final = response
        self.reason: Final = reason  # internal cause (never put on the wire)

    def _fields(self) -> tuple[object, ...]:
        return (self.outcome, self.user, self.response, self.reason)


class Authenticator:
    """Challenge and verify Digest credentials against a :class:`CredentialStore`.

    :param policy: receives failed/successful authentications and decides user locks; without
        one, nothing is counted and no security events are emitted.
    :param secret: nonce MAC key (random per process by default, see
        :class:`~pbx_runtime.registrar.digest.DigestVerifier`).
    """

    def __init__(
        self,
        credentials: CredentialStore,
        *,
        policy: AbusePolicy | None = None,
        secret: bytes | None = None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        nonce_ttl: float = 300.0,
        max_tracked_nonces: int = 65536,
    ) -> None:
        self.credentials = credentials
        self.policy = policy
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._options = (tuple(algorithms), nonce_ttl, max_tracked_nonces)
        self.verifier = self._new_verifier(credentials.realm)
        #: To tag of every challenge this authenticator builds (see the module docstring).
        self.to_tag = secrets.token_hex(8)

    def _new_verifier(self, realm: str) -> DigestVerifier:
        algorithms, nonce_ttl, max_tracked = self._options
        return DigestVerifier(
            realm,
            secret=self._secret,
            algorithms=algorithms,
            nonce_ttl=nonce_ttl,
            max_tracked_nonces=max_tracked,
        )

    def _current_verifier(self) -> DigestVerifier:
        realm = self.credentials.realm
        if self.verifier.realm != realm:  # the store was reloaded with another realm
            self.verifier = self._new_verifier(realm)
        return self.verifier

    # -- challenges ----------------------------------------------------------------------------

    @staticmethod
    def has_credentials(request: Request, status: int = 401) -> bool:
        """Whether *request* carries any credentials for a *status* (401/407) challenge."""
        return request.has(_SCOPES[status][1])

    def challenge(
        self,
        request: Request,
        source: str,
        now: float,
        *,
        status: int = 401,
        stale: bool = False,
        to_tag: str | None = None,
    ) -> Response:
        """A 401 (``WWW-Authenticate``) or 407 (``Proxy-Authenticate``) response with one
        challenge per offered algorithm, bound to the source's address."""
        header = _SCOPES[status][0]
        values = self._current_verifier().challenges(source_host(source), now, stale=stale)
        return build_response(
            request,
            status,
            headers=[(header, value) for value in values],
            to_tag=self.to_tag if to_tag is None else to_tag,
        )

    def answers_a_challenge(self, data: bytes, source: str, now: float) -> bool:
        """Whether an unparsed message carries credentials for a nonce issued to *source* and
        still fresh: the second half of work whose first half was admitted and challenged.
        A forged, foreign or expired nonce does not count (its response is not checked)."""
        nonce = raw_nonce(data)
        return nonce is not None and self._current_verifier().is_fresh(
            nonce, source_host(source), now
        )

    # -- verification --------------------------------------------------------------------------

    def authenticate(
        self,
        request: Request,
        source: str,
        now: float,
        *,
        status: int = 401,
        to_tag: str | None = None,
    ) -> AuthResult:
        """Authenticate *request*; on anything but success the result carries the response."""
        verifier = self._current_verifier()
        try:
            credentials = self._credentials(request, status, verifier.realm)
        except DigestError as err:
            return AuthResult(
                AuthOutcome.BAD_REQUEST,
                response=build_response(request, 400, to_tag=to_tag or self.to_tag),
                reason=err.reason,
            )
        if credentials is None:
            return self._challenge_result(request, source, now, status, to_tag, "no_credentials")
        user = credentials.username
        if not _same_uri(credentials.uri, request.uri):
            return AuthResult(
                AuthOutcome.BAD_REQUEST,
                user=user,
                response=build_response(request, 400, to_tag=to_tag or self.to_tag),
                reason="digest_uri_mismatch",
            )
        policy = self.policy
        if policy is not None and policy.check_user(source, user, now) is Verdict.LOCKED:
            return AuthResult(AuthOutcome.LOCKED, user=user, reason="user_locked")
        algorithm = ALGORITHMS.get(credentials.algorithm)
        ha1 = None if algorithm is None else self.credentials.ha1(user, algorithm.base)
        check = verifier.verify(credentials, request.method, ha1, source_host(source), now)
        outcome = check.outcome
        if outcome is DigestOutcome.OK:
            if policy is not None:
                policy.auth_succeeded(source, user, now)
            return AuthResult(AuthOutcome.OK, user=user, reason="ok")
        if outcome is DigestOutcome.FAILED and policy is not None:
            policy.auth_failed(source, user, check.reason, now)
        result = self._challenge_result(
            request, source, now, status, to_tag, check.reason, stale=outcome is DigestOutcome.STALE
        )
        return AuthResult(result.outcome, user=user, response=result.response, reason=check.reason)

    def _challenge_result(
        self,
        request: Request,
        source: str,
        now: float,
        status: int,
        to_tag: str | None,
        reason: str,
        *,
        stale: bool = False,
    ) -> AuthResult:
        response = self.challenge(request, source, now, status=status, stale=stale, to_tag=to_tag)
        return AuthResult(AuthOutcome.CHALLENGE, response=response, reason=reason)

    @staticmethod
    def _credentials(request: Request, status: int, realm: str) -> DigestCredentials | None:
        """The first Digest credentials for *realm*; others (other realms, schemes) are not ours.

        :raises DigestError: a malformed Digest value among the headers looked at.
        """
        values = request.get_all(_SCOPES[status][1])
        for value in values[:MAX_CREDENTIALS_HEADERS]:
            credentials = parse_authorization(value)
            if credentials is not None and credentials.realm == realm:
                return credentials
        return None


def _same_uri(digest_uri: str, request_uri: object) -> bool:
    """RFC 7616 §3.4.6: the digest ``uri`` must name the Request-URI (scheme, user, host, port;
    parameters and escaping may differ)."""
    try:
        parsed = parse_uri(digest_uri)  # LRU-cached: usually the very object of the Request-URI
    except SIPProtocolError:
        return False
    if parsed is request_uri:
        return True
    if isinstance(parsed, SipUri) and isinstance(request_uri, SipUri):
        return (
            parsed.scheme == request_uri.scheme
            and parsed.user_unescaped == request_uri.user_unescaped
            and parsed.host_address == request_uri.host_address
            and parsed.port == request_uri.port
        )
    return str(parsed) == str(request_uri)
