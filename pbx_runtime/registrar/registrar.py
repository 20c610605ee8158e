"""The REGISTER handler (RFC 3261 §10.3), behind the transaction layer.

Order of checks — cheap and public first, secrets last:

1. ``Require`` with any option tag → 420 + ``Unsupported`` (§10.3 step 2; none are supported).
2. To must be a SIP/SIPS AOR with a user part in the tenant's domain → else **404** (§10.3
   step 5 says 404 for an AOR not valid for the domain); From must be a SIP/SIPS URI in the
   tenant's domain → else **403** (no registrations on behalf of other domains). Both before
   authentication: the domain is public, and refusing early costs no digest work.
3. Digest authentication (:class:`~pbx_runtime.registrar.auth.Authenticator`): challenge,
   400 for malformed credentials, or *drop* (``None``) when the claimed user is locked.
4. The authenticated user must be the To user → else 403 and a ``forbidden`` event.
5. Contact/Expires processing and the binding update (:mod:`.location`): 400, 423, 500, 403,
   503 as documented there; 200 OK lists every current binding with its remaining expiry.

The Request-URI host is not checked: each tenant has its own process, so anything that
reaches it is for the tenant (phones often put the PBX's IP address there).
"""

from __future__ import annotations

from collections.abc import Iterable

from pbx_runtime.events import EventKind, EventLog
from pbx_runtime.sip import Request, Response, SIPProtocolError, SipUri, build_response, unescape

from .auth import Authenticator, AuthOutcome
from .location import Applied, Binding, LocationError, LocationService, plan_update

__all__ = ["Registrar"]


class Registrar:
    """REGISTER handling for one tenant domain.

    :param domain: the tenant's SIP domain (also the digest realm, normally).
    :param aliases: other host names accepted in To/From (e.g. an old domain).
    :param events: outbox for ``registered``/``unregistered``/``forbidden`` events.
    """

    def __init__(
        self,
        domain: str,
        authenticator: Authenticator,
        location: LocationService | None = None,
        *,
        events: EventLog | None = None,
        aliases: Iterable[str] = (),
    ) -> None:
        self.domain = domain.lower()
        self.domains = frozenset({self.domain, *(a.lower() for a in aliases)})
        self.authenticator = authenticator
        self.location = location if location is not None else LocationService()
        self.events = events

    def aor(self, user: str) -> str:
        """The location key of *user* (unescaped user part) in this domain."""
        return f"sip:{user}@{self.domain}"

    def handle(self, request: Request, source: str, now: float) -> Response | None:
        """Answer a REGISTER from *source* (``"ip:port"``); ``None`` means drop silently."""
        if request.method != "REGISTER":
            return self._reply(request, 405, headers=(("Allow", "REGISTER"),))
        try:
            unsupported = request.tokens("require")
            if unsupported:
                return self._reply(request, 420, headers=(("Unsupported", ", ".join(unsupported)),))
            to_user = self._check_addresses(request)
        except LocationError as err:
            return self._reply(request, err.status, err.reason, err.headers)
        except SIPProtocolError as err:
            return self._reply(request, err.status or 400)

        auth = self.authenticator.authenticate(request, source, now)
        if auth.outcome is AuthOutcome.LOCKED:
            return None
        if auth.outcome is not AuthOutcome.OK:
            return auth.response
        if auth.user != to_user:
            self._emit(EventKind.FORBIDDEN, source, auth.user, f"registering AOR {to_user}", now)
            return self._reply(request, 403)

        try:
            update = plan_update(request, self.location.limits)
            applied = self.location.apply(
                self.aor(to_user),
                update,
                call_id=request.call_id,
                cseq=request.cseq.number,
                now=now,
                source=source,
            )
        except LocationError as err:
            return self._reply(request, err.status, err.reason, err.headers)
        except SIPProtocolError as err:
            return self._reply(request, err.status or 400)
        self._report(applied, now)
        contacts = tuple(("Contact", b.contact_value(now)) for b in applied.bindings)
        return self._reply(request, 200, headers=contacts)

    def purge(self, now: float) -> list[Binding]:
        """Drop expired bindings (call every few seconds); emits ``unregistered`` events."""
        expired = self.location.purge(now)
        for binding in expired:
            self._emit_binding(EventKind.UNREGISTERED, binding, "expired", now)
        return expired

    # -- helpers -------------------------------------------------------------------------------

    def _check_addresses(self, request: Request) -> str:
        """The To user (unescaped) after the domain checks of step 2."""
        to_uri = request.to.uri
        if (
            not isinstance(to_uri, SipUri)
            or not to_uri.user
            or to_uri.host_address not in self.domains
        ):
            raise LocationError(404, "Not Found")
        from_uri = request.from_.uri
        if not isinstance(from_uri, SipUri) or from_uri.host_address not in self.domains:
            raise LocationError(403, "Forbidden")
        return unescape(to_uri.user)

    def _reply(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        return build_response(
            request, status, reason, headers=headers, to_tag=self.authenticator.to_tag
        )

    def _report(self, applied: Applied, now: float) -> None:
        if self.events is None:
            return
        for binding in applied.added:
            self._emit_binding(
                EventKind.REGISTERED, binding, f"expires {binding.expires_in(now)}", now
            )
        for binding in applied.removed:
            self._emit_binding(EventKind.UNREGISTERED, binding, "by request", now)
        for binding in applied.expired:
            self._emit_binding(EventKind.UNREGISTERED, binding, "expired", now)

    def _emit_binding(self, kind: EventKind, binding: Binding, why: str, now: float) -> None:
        user = binding.aor[4:].rpartition("@")[0]
        self._emit(kind, binding.source, user, f"{why} contact {binding.uri}", now)

    def _emit(
        self, kind: EventKind, source: str | None, user: str | None, reason: str, now: float
    ) -> None:
        if self.events is not None:
            self.events.emit(kind, source=source, user=user, reason=reason, at=now)
