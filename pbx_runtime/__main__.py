"""``python -m pbx_runtime --config FILE`` runs one tenant;
``python -m pbx_runtime check-config FILE`` validates a configuration and exits non-zero with
the offending field named."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pbx_runtime.config import ConfigError, RuntimeConfig, load_config
from pbx_runtime.transport import TlsSetupError, serve, server_context

EXIT_CONFIG = 2


def _load(path: str) -> RuntimeConfig:
    config = load_config(path)
    if config.tls is not None:
        server_context(config.tls)  # the files must load, not only exist
    return config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pbx_runtime", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("run", "check-config"), default="run")
    parser.add_argument("file", nargs="?", help="configuration file (check-config)")
    parser.add_argument("--config", help="configuration file (TOML)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = args.config or args.file
    if not path:
        print("error: give a configuration file (--config FILE)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = _load(path)
    except (ConfigError, TlsSetupError) as err:
        print(f"config error in {path}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        print(
            f"ok: tenant {config.tenant}, domain {config.domain}, "
            f"{len(config.listeners)} listeners, {len(config.users)} users"
        )
        return 0
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(levelname)s %(message)s"
    )
    if config.event_loop == "uvloop":
        try:
            import uvloop  # type: ignore[import-not-found]  # optional dependency
        except ImportError:
            print("config error: runtime.event_loop: uvloop is not installed", file=sys.stderr)
            return EXIT_CONFIG
        uvloop.install()
    try:
        asyncio.run(serve(config))
    except OSError as err:
        print(f"cannot start: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
