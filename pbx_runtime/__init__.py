"""Bulkhead's per-tenant SIP/RTP runtime: sans-I/O protocol cores under a thin asyncio shell."""

__version__ = "0.1.0"

#: ``True`` when the package runs as mypyc-compiled extension modules (setup.py,
#: docs/runtime/build.md), ``False`` when it runs from its Python sources.
COMPILED = not __file__.endswith(".py")
