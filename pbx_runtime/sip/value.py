"""Immutable value objects that the compiled build constructs natively.

The hot path makes many small immutable objects: a call makes about 150 (transaction keys,
Vias, CSeqs, transaction outputs …). A frozen dataclass sets each field through
``object.__setattr__`` in a generated ``__init__`` that mypyc leaves interpreted: about 0.8 µs
per object, compiled or not. A class with its own ``__init__`` compiles to a native
constructor (about 0.09 µs). Its attributes are ``Final``: mypy refuses to reassign them in
both builds, and the compiled build refuses it at run time too.

A subclass declares ``__slots__``, assigns its ``Final`` attributes in ``__init__`` and lists
in :meth:`Value._fields` what equality, hashing and ``repr`` are about.
"""

from __future__ import annotations

__all__ = ["Value"]


class Value:
    __slots__ = ()

    def _fields(self) -> tuple[object, ...]:
        """The attributes that make the value, in constructor order."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return type(self).__name__ + repr(self._fields())
