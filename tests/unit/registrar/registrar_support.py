"""Test UA for registrar tests: builds REGISTERs as wire bytes and answers Digest challenges."""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field

from pbx_runtime.events import EventLog
from pbx_runtime.policy import AbuseConfig, AbusePolicy
from pbx_runtime.registrar import (
    Authenticator,
    InMemoryCredentialStore,
    LocationLimits,
    LocationService,
    Registrar,
    compute_ha1,
)
from pbx_runtime.sip import Request, Response, parse_datagram, serialize

DOMAIN = "acme.example.com"
PASSWORDS = {"1001": "correct horse", "1002": "battery staple"}
SOURCE = "192.0.2.10:5060"
T0 = 1_700_000_000.0

_CHALLENGE_PARAM_RE = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]+))')


def credentials_config(passwords: dict[str, str] = PASSWORDS, realm: str = DOMAIN) -> dict:
    return {
        "realm": realm,
        "users": {
            user: {alg: compute_ha1(user, realm, pw, alg) for alg in ("MD5", "SHA-256")}
            for user, pw in passwords.items()
        },
    }


@dataclass
class Stack:
    events: EventLog
    policy: AbusePolicy
    store: InMemoryCredentialStore
    auth: Authenticator
    registrar: Registrar


def make_stack(
    *,
    abuse: AbuseConfig | None = None,
    limits: LocationLimits | None = None,
    secret: bytes = b"s" * 32,
    nonce_ttl: float = 300.0,
    max_tracked_nonces: int = 65536,
    algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
) -> Stack:
    events = EventLog("acme")
    policy = AbusePolicy(events, abuse)
    store = InMemoryCredentialStore.from_config(credentials_config())
    auth = Authenticator(
        store,
        policy=policy,
        secret=secret,
        nonce_ttl=nonce_ttl,
        max_tracked_nonces=max_tracked_nonces,
        algorithms=algorithms,
    )
    registrar = Registrar(DOMAIN, auth, LocationService(limits), events=events)
    return Stack(events, policy, store, auth, registrar)


def parse_challenge(value: str) -> dict[str, str]:
    assert value.startswith("Digest ")
    return {m[0].lower(): m[1] or m[2] for m in _CHALLENGE_PARAM_RE.findall(value[7:])}


def digest_response(
    algorithm: str,
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
) -> str:
    """Computed independently of pbx_runtime with hashlib, from the password."""
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    ha1 = h(f"{user}:{realm}:{password}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{h(f'{method}:{uri}')}")


_branches = itertools.count(1)


@dataclass
class Phone:
    user: str = "1001"
    password: str = "correct horse"
    contact: str = "sip:1001@192.0.2.10:5060"
    call_id: str = "reg-call-1@192.0.2.10"
    cseq: int = 0
    auth_user: str | None = None  # digest username, when it differs from the AOR user
    algorithm: str = "SHA-256"
    nonce: str | None = None
    realm: str = DOMAIN
    nc: int = 0
    extra_headers: list[tuple[str, str]] = field(default_factory=list)

    def register(
        self,
        *,
        expires: int | None = 3600,
        contacts: list[str] | None = None,
        authorize: bool = True,
        headers: list[tuple[str, str]] | None = None,
    ) -> Request:
        self.cseq += 1
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{next(_branches)}",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{DOMAIN}>;tag=ft{self.user}",
            f"To: <sip:{self.user}@{DOMAIN}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
        ]
        for contact in [f"<{self.contact}>"] if contacts is None else contacts:
            lines.append(f"Contact: {contact}")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        for name, value in self.extra_headers + (headers or []):
            lines.append(f"{name}: {value}")
        if authorize and self.nonce is not None:
            lines.append(f"Authorization: {self.authorization('REGISTER', f'sip:{DOMAIN}')}")
        raw = ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()
        message = parse_datagram(raw)
        assert isinstance(message, Request)
        return message

    def authorization(self, method: str, uri: str) -> str:
        assert self.nonce is not None
        self.nc += 1
        nc = f"{self.nc:08x}"
        cnonce = f"cn{self.nc}"
        user = self.auth_user or self.user
        response = digest_response(
            self.algorithm, user, self.realm, self.password, method, uri, self.nonce, nc, cnonce
        )
        return (
            f'Digest username="{user}", realm="{self.realm}", nonce="{self.nonce}", '
            f'uri="{uri}", response="{response}", algorithm={self.algorithm}, '
            f'cnonce="{cnonce}", qop=auth, nc={nc}'
        )

    def take_challenge(self, response: Response | None, header: str = "WWW-Authenticate") -> dict:
        """Adopt the nonce of the challenge for our algorithm; returns its parameters."""
        assert response is not None and response.status in (401, 407), response
        for value in response.get_all(header):
            params = parse_challenge(value)
            if params["algorithm"] == self.algorithm:
                self.nonce = params["nonce"]
                self.nc = 0
                return params
        raise AssertionError(f"no {self.algorithm} challenge")


def login(stack: Stack, phone: Phone, now: float = T0, source: str = SOURCE) -> Response:
    """Challenge + authenticated REGISTER; returns the final response."""
    phone.take_challenge(stack.registrar.handle(phone.register(authorize=False), source, now))
    response = stack.registrar.handle(phone.register(), source, now)
    assert response is not None
    return response


def wire(response: Response | None) -> bytes:
    assert response is not None
    return serialize(response)
