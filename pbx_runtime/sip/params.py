"""Ordered ``;name[=value]`` parameters of URIs and header values.

A module of its own so that it stays interpreted while everything else is compiled: mypyc
compiles a subclass of ``tuple`` only with a run-time dependency on ``mypy_extensions``, and
the runtime has none.
"""

from __future__ import annotations

__all__ = ["EMPTY_PARAMS", "Params"]


class Params(tuple[tuple[str, str | None], ...]):
    """Ordered ``;name[=value]`` parameters; names compare case-insensitively.

    Values are stored as written (quoted-strings keep their quotes, escapes stay escaped). A
    parameter without ``=value`` has the value ``None``; use :meth:`has` to tell it from absence.
    """

    __slots__ = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first parameter called *name*, or *default*."""
        lname = name.lower()
        for key, value in self:
            if key == lname or key.lower() == lname:
                return value
        return default

    def has(self, name: str) -> bool:
        """``True`` if a parameter called *name* is present (with or without a value)."""
        lname = name.lower()
        return any(key.lower() == lname for key, _ in self)

    def with_param(self, name: str, value: str | None = None) -> Params:
        """A copy with *name* set to *value*, replacing an existing one in place."""
        lname = name.lower()
        items = list(self)
        for i, (key, _) in enumerate(items):
            if key.lower() == lname:
                items[i] = (key, value)
                return Params(items)
        items.append((name, value))
        return Params(items)

    def without(self, name: str) -> Params:
        """A copy without any parameter called *name*."""
        lname = name.lower()
        return Params(item for item in self if item[0].lower() != lname)

    def render(self) -> str:
        """``;a=b;c`` form (empty string when there are no parameters)."""
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self)


EMPTY_PARAMS = Params()
