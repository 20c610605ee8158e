"""Registration and authentication for one tenant: digest (HA1 only), credentials, location.

>>> store = InMemoryCredentialStore.from_config(config)       # realm + HA1 per algorithm
>>> policy = AbusePolicy(events)                                # pbx_runtime.policy
>>> registrar = Registrar(domain, Authenticator(store, policy=policy), events=events)
>>> response = registrar.handle(request, "192.0.2.10:5060", now)   # None: drop silently
"""

from .auth import Authenticator, AuthOutcome, AuthResult
from .credentials import (
    CredentialConfigError,
    CredentialStore,
    InMemoryCredentialStore,
    UserCredential,
)
from .digest import (
    ALGORITHMS,
    DEFAULT_ALGORITHMS,
    DigestCheck,
    DigestCredentials,
    DigestError,
    DigestOutcome,
    DigestVerifier,
    compute_ha1,
    compute_response,
    parse_authorization,
)
from .location import (
    Applied,
    Binding,
    LocationError,
    LocationLimits,
    LocationService,
    plan_update,
)
from .registrar import Registrar

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "Applied",
    "AuthOutcome",
    "AuthResult",
    "Authenticator",
    "Binding",
    "CredentialConfigError",
    "CredentialStore",
    "DigestCheck",
    "DigestCredentials",
    "DigestError",
    "DigestOutcome",
    "DigestVerifier",
    "InMemoryCredentialStore",
    "LocationError",
    "LocationLimits",
    "LocationService",
    "Registrar",
    "UserCredential",
    "compute_ha1",
    "compute_response",
    "parse_authorization",
    "plan_update",
]
