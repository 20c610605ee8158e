"""Server TLS contexts from the configuration: TLS 1.2+, optional client-certificate checks."""

from __future__ import annotations

import ssl

from pbx_runtime.config import TlsConfig

__all__ = ["TlsSetupError", "server_context"]

_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


class TlsSetupError(ValueError):
    """A certificate, key, CA or CRL file that OpenSSL refuses; names the config field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """A fresh server context (SIGHUP builds a new one; live connections keep theirs)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except ssl.SSLError as err:
        raise TlsSetupError("tls.cert", f"certificate and key do not load: {err.reason}") from None
    except OSError as err:
        raise TlsSetupError("tls.cert", f"cannot read certificate or key: {err}") from None
    context.verify_mode = _VERIFY[tls.verify_client]
    if tls.ca is not None:
        try:
            context.load_verify_locations(cafile=tls.ca)
        except (ssl.SSLError, OSError) as err:
            raise TlsSetupError("tls.ca", f"CA file does not load: {err}") from None
    if tls.crl is not None:
        try:
            context.load_verify_locations(cafile=tls.crl)
        except (ssl.SSLError, OSError) as err:
            raise TlsSetupError("tls.crl", f"CRL does not load: {err}") from None
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context
