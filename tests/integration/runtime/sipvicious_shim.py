"""Run Debian's SIPVicious (``svwar``/``svcrack``, 0.3.3) unchanged apart from two knobs:

* ``--sv-bind IP``: the tools accept ``-b/--bindingip`` but never pass it to the scanner (still
  so in 0.3.8), so every probe leaves from the address the kernel picks; the shim hands it over,
  which lets one test speak from several loopback addresses (127.0.0.0/8).
* ``--sv-user-agent UA``: the tools hard-code ``User-Agent: friendly-scanner``; a real attacker
  changes it, and a test of the enumeration and lockout defences must not stop at the
  User-Agent filter.

Run it with the tools' own interpreter (``/usr/bin/python3``, which has scapy)::

    python3 sipvicious_shim.py svwar --sv-bind 127.0.0.21 --sv-user-agent Foo -- -e1000-1010 …
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import sys


def main() -> None:
    tool, *argv = sys.argv[1:]
    bind = user_agent = None
    while argv and argv[0] != "--":
        option, value, *argv = argv
        if option == "--sv-bind":
            bind = value
        elif option == "--sv-user-agent":
            user_agent = value
        else:
            raise SystemExit(f"unknown shim option {option}")
    entry = shutil.which(tool)
    if tool not in ("svwar", "svcrack") or entry is None:
        raise SystemExit(f"{tool}: not a SIPVicious tool on PATH")
    # /usr/bin/svwar -> /usr/share/sipvicious/sipvicious_svwar, next to the package
    sys.path.insert(0, os.path.dirname(os.path.realpath(entry)))
    module = importlib.import_module(f"sipvicious.{tool}")
    scanner = "TakeASip" if tool == "svwar" else "ASipOfRedWine"
    if bind is not None:
        setattr(module, scanner, functools.partial(getattr(module, scanner), bindingip=bind))
    if user_agent is not None:
        module.makeRequest = functools.partial(module.makeRequest, useragent=user_agent)
    sys.argv = [tool, *argv[1:]]
    module.main()


if __name__ == "__main__":
    main()
