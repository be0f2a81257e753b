"""What a Plan returns: the next Task runs, or the end of the lifetime.

A Plan's choice is an ordered list of *sends*: one run of one Task with one
input. ``Next("a")``, ``Next(["a", "b"])`` and ``Next({"a": x})`` name Tasks
once each; ``Next.map("search", [q1, q2, q3])`` runs one Task once per input
(a run-time fan-out); ``Send`` builds one send by hand, optionally with an
``id`` and the ids it must wait for (``after``), so a Plan can hand the control
plane a whole DAG of tool calls (the LLMCompiler pattern). Nexts concatenate
with ``+``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Send:
    """One run of ``task``.

    ``input`` is the Task's ``ctx.input`` (default: the Plan's own input).
    ``id`` names this run within the Plan's choice; ``after`` lists the ids of
    other sends in the same choice that must finish first. The control plane
    starts this run as soon as they have, and the Task sees their results in
    ``ctx.upstream`` (in ``after`` order) and by id in ``ctx.deps``. A failed
    dependency fails the lifetime, unless its Task has ``continue_on_failure``:
    then this run still starts and sees it with ``ok=False``.
    """

    task: str
    input: Any = _UNSET
    id: str = ""
    after: tuple[str, ...] = ()

    def __init__(
        self, task: str, input: Any = _UNSET, *, id: str = "", after: Iterable[str] = ()
    ) -> None:
        if not isinstance(task, str) or not task:
            raise TypeError(f"Send needs a task name, got {task!r}")
        if not isinstance(id, str):
            raise TypeError(f"Send id must be a string, got {id!r}")
        deps = (after,) if isinstance(after, str) else tuple(after)
        if any(not isinstance(d, str) or not d for d in deps):
            raise TypeError(f"Send after= must be send ids (strings), got {deps!r}")
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "input", input)
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "after", deps)

    @property
    def has_input(self) -> bool:
        return self.input is not _UNSET


@dataclass(frozen=True, slots=True)
class Next:
    """Run these Tasks next.

    ``Next("search")`` runs one Task; ``Next(["a", "b"])`` fans out over
    PARALLEL edges; ``Next({"a": x, "b": y})`` gives each Task its own input;
    ``Next.map("search", [q1, q2])`` runs ``search`` once per input; a list may
    mix names and ``Send(...)``. Runs without an explicit input receive the
    Plan's own input. Naming one Task twice without inputs is refused: it
    would run the same thing twice (use ``Next.map`` or ``Send``).
    """

    sends: tuple[Send, ...]

    def __init__(self, tasks: str | Send | Sequence[str | Send] | Mapping[str, Any]) -> None:
        sends: list[Send]
        if isinstance(tasks, str | Send):
            sends = [_as_send(tasks)]
        elif type(tasks) is dict or isinstance(tasks, Mapping):  # a dict skips the ABC check
            sends = [Send(str(name), value) for name, value in tasks.items()]
        elif isinstance(tasks, Sequence):
            sends = [_as_send(item) for item in tasks]
        else:
            raise TypeError(
                "Next takes a task name, a Send, a list of names and Sends, or a "
                f"mapping of task name to input; got {type(tasks).__name__}"
            )
        object.__setattr__(self, "sends", tuple(sends))
        problems = check_sends(self.sends)
        if problems:
            raise ValueError(f"{self!r} is not a valid choice: " + "; ".join(problems))

    @classmethod
    def map(cls, task: str, inputs: Iterable[Any]) -> Next:
        """Run ``task`` once per item of ``inputs``, in parallel, in this order.

        The Plan's edge to ``task`` must be PARALLEL; a JOIN after it receives
        every result in this order.
        """
        items = list(inputs)
        if not items:
            raise ValueError(f"Next.map({task!r}, ...) needs at least one input")
        return cls([Send(task, item) for item in items])

    @property
    def tasks(self) -> tuple[str, ...]:
        """The task name of every send, in dispatch order (a mapped Task repeats)."""
        return tuple(s.task for s in self.sends)

    @property
    def inputs(self) -> Mapping[str, Any]:
        """Explicit inputs by task name, for choices that name each Task once."""
        return {s.task: s.input for s in self.sends if s.has_input}

    def __add__(self, other: Next) -> Next:
        if not isinstance(other, Next):
            return NotImplemented
        return Next([*self.sends, *other.sends])

    def __repr__(self) -> str:
        parts = []
        for s in self.sends:
            text = s.task if not s.has_input else f"{s.task}({s.input!r:.40})"
            if s.id:
                text += f"#{s.id}"
            if s.after:
                text += f" after {list(s.after)}"
            parts.append(text)
        return f"Next([{', '.join(parts)}])"


def _as_send(item: Any) -> Send:
    if isinstance(item, Send):
        return item
    if isinstance(item, str):
        return Send(item)
    raise TypeError(f"a Next entry must be a task name or a Send, got {type(item).__name__}")


def check_sends(sends: Sequence[Send]) -> list[str]:
    """What is wrong with this list of sends on its own (no graph needed)."""
    if len(sends) == 1 and not sends[0].id and not sends[0].after:
        return []  # one run, nothing to wait for: the common choice is fine on its own
    problems: list[str] = []
    if not sends:
        problems.append("it chooses no Task (return Finish(...) to end the lifetime)")
    bare: dict[str, int] = {}
    for s in sends:
        if not s.has_input and not s.after:
            bare[s.task] = bare.get(s.task, 0) + 1
    for task, count in bare.items():
        if count > 1:
            problems.append(
                f"it names {task!r} {count} times without inputs, which would run the same "
                f"thing {count} times; to run one Task several times give each run its "
                f"input: Next.map({task!r}, [input1, input2]) or Send({task!r}, input)"
            )
    ids = [s.id for s in sends if s.id]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"send ids must be unique, but {', '.join(map(repr, dupes))} repeat")
    known = set(ids)
    for s in sends:
        missing = [d for d in s.after if d not in known]
        if missing:
            problems.append(
                f"send {s.id or s.task!r} waits for {', '.join(map(repr, missing))}, "
                "which no send of this choice has as its id"
            )
        if s.id and s.id in s.after:
            problems.append(f"send {s.id!r} waits for itself")
    cycle = _cycle(sends)
    if cycle:
        problems.append(f"the sends' dependencies form a cycle: {' -> '.join(cycle)}")
    return problems


def _cycle(sends: Sequence[Send]) -> list[str]:
    after = {s.id: [d for d in s.after if d != s.id] for s in sends if s.id}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in after.get(node, []):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep in after and dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in after:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


@dataclass(frozen=True, slots=True)
class Finish:
    """Take the FINAL edge: the lifetime completes with ``output``.

    A Plan returns it to end the lifetime; so may a Task that has a FINAL edge
    beside its other edge (any other value takes the other edge).
    """

    output: Any = None


Decision = Next | Finish


def as_decision(value: Any) -> Decision:
    """Accept a Next/Finish, a task name, a Send, or a sequence of names and Sends."""
    if isinstance(value, Next | Finish):
        return value
    if isinstance(value, str | Send):
        return Next(value)
    if isinstance(value, Sequence) and all(isinstance(v, str | Send) for v in value):
        return Next(list(value))
    raise TypeError(
        "a Plan must return Next(...), Finish(...), a task name or a list of task names; "
        f"got {type(value).__name__}"
    )
