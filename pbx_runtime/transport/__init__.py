"""The asyncio shell: sockets (UDP, TCP, TLS), the clock, timers and signals. The only I/O code
of the runtime (DESIGN §5 rule 7); everything it receives goes to :class:`pbx_runtime.core.Core`.
"""

from .runtime import Runtime, serve
from .tls import TlsSetupError, server_context

__all__ = ["Runtime", "TlsSetupError", "serve", "server_context"]
