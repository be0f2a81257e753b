"""What a Plan returns: the next Tasks, or the end of the lifetime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Next:
    """Run these Tasks next.

    ``Next("search")`` runs one Task; ``Next(["a", "b"])`` fans out over
    PARALLEL edges; ``Next({"a": x, "b": y})`` gives each Task its own input.
    Tasks without an explicit input receive the Plan's own input.
    """

    tasks: tuple[str, ...]
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, tasks: str | Sequence[str] | Mapping[str, Any]) -> None:
        if isinstance(tasks, str):
            names: tuple[str, ...] = (tasks,)
            inputs: Mapping[str, Any] = {}
        elif isinstance(tasks, Mapping):
            names, inputs = tuple(tasks), dict(tasks)
        else:
            names, inputs = tuple(tasks), {}
        object.__setattr__(self, "tasks", names)
        object.__setattr__(self, "inputs", inputs)


@dataclass(frozen=True, slots=True)
class Finish:
    """Take the Plan's FINAL edge: the lifetime completes with ``output``."""

    output: Any = None


Decision = Next | Finish


def as_decision(value: Any) -> Decision:
    """Accept a Next/Finish, a task name, or a sequence of task names."""
    if isinstance(value, Next | Finish):
        return value
    if isinstance(value, str):
        return Next(value)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return Next(list(value))
    raise TypeError(
        "a Plan must return Next(...), Finish(...), a task name or a list of task names; "
        f"got {type(value).__name__}"
    )
