"""Does an adapter offer an optional capability? Answered once per class.

The optional capabilities (``UnitOfWork``, ``ReportsLag``, ``Wakeable``, ...)
are runtime-checkable Protocols that adapters declare by subclassing. On
Python 3.11 ``isinstance`` against such a Protocol walks the Protocol's
members on every call, several microseconds, and some of these checks sit on
the path of every step; the answer depends only on the adapter's class.
"""

from __future__ import annotations

from typing import TypeGuard, TypeVar

T = TypeVar("T")
_answers: dict[tuple[type, type], bool] = {}


def offers(adapter: object, capability: type[T]) -> TypeGuard[T]:
    """``isinstance(adapter, capability)``, remembered per (class, capability)."""
    key = (type(adapter), capability)
    answer = _answers.get(key)
    if answer is None:
        answer = _answers[key] = isinstance(adapter, capability)
    return answer
