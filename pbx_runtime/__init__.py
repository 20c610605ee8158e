"""Bulkhead's per-tenant SIP/RTP runtime: sans-I/O protocol cores under a thin asyncio shell."""

__version__ = "0.1.0"
