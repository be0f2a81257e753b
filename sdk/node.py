"""Task and Plan: the base classes users subclass.

Subclasses are checked when they are defined; every problem is collected and
raised once as a DefinitionError, so a typo in a class fails at import time
rather than in the middle of a lifetime.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from tickrail.sdk.errors import DefinitionError

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Retry:
    """How often to try a node and how long to wait between attempts.

    The wait before attempt ``n+1`` is ``backoff * multiplier**(n-1)``, capped
    at ``max_backoff`` seconds. A timeout counts as a failed attempt.
    """

    max_attempts: int = 1
    backoff: float = 0.2
    multiplier: float = 2.0
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"Retry.max_attempts must be >= 1, got {self.max_attempts}")
        if self.backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("Retry backoff values must be >= 0 and multiplier >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return float(min(self.max_backoff, self.backoff * self.multiplier ** (attempt - 1)))


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


class _Node:
    """Shared definition-time checks for Task and Plan."""

    name: ClassVar[str] = ""
    #: Seconds one attempt may take; None means no limit.
    timeout: ClassVar[float | None] = None
    retry: ClassVar[Retry] = Retry()

    _method: ClassVar[str]
    _is_async: ClassVar[bool]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_abstract", False):
            return
        problems: list[str] = []
        if not cls.__dict__.get("name"):
            cls.name = _snake(cls.__name__)
        if not NAME_PATTERN.match(cls.name):
            problems.append(
                f"name {cls.name!r} is invalid: use letters, digits, '_' or '-', "
                "starting with a letter, at most 64 characters"
            )
        method = getattr(cls, cls._method, None)
        base_method = getattr(_base_for(cls), cls._method)
        if method is None or method is base_method:
            problems.append(f"must define {cls._method}(self, ctx)")
        elif not callable(method) or not inspect.isfunction(method):
            problems.append(f"{cls._method} must be a plain method, not {type(method).__name__}")
        else:
            params = list(inspect.signature(method).parameters.values())
            positional = [
                p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            if len(positional) != 2:
                problems.append(
                    f"{cls._method} must take exactly (self, ctx), got "
                    f"({', '.join(p.name for p in params)})"
                )
            cls._is_async = inspect.iscoroutinefunction(method)
            if inspect.isasyncgenfunction(method) or inspect.isgeneratorfunction(method):
                problems.append(f"{cls._method} must return a value, not be a generator")
        if cls.timeout is not None and (
            not isinstance(cls.timeout, int | float) or cls.timeout <= 0
        ):
            problems.append(f"timeout must be a positive number of seconds, got {cls.timeout!r}")
        if not isinstance(cls.retry, Retry):
            problems.append(f"retry must be a Retry(...), got {type(cls.retry).__name__}")
        problems.extend(cls._extra_checks())
        if problems:
            raise DefinitionError(f"{_base_for(cls).__name__} {cls.__qualname__}", problems)

    @classmethod
    def _extra_checks(cls) -> list[str]:
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _base_for(cls: type) -> type:
    return Task if issubclass(cls, Task) else Plan


class Task(_Node):
    """A unit of work: a model call, an API call, a query.

    Subclass and define ``async def run(self, ctx) -> value``. A plain ``def``
    runs on the executor's thread pool (``blocking_pool_size`` threads, so
    blocking I/O runs as parallel as async code); set ``pool = "process"`` to
    run a CPU-bound ``def`` in a worker process instead (the Task instance,
    its input and its result must pickle). Return bytes, str or
    JSON-serialisable data, or ``Finish(output)`` to take the Task's FINAL
    edge; raise to fail the attempt (it is retried per ``retry``). Record
    model usage with ``ctx.record_usage(...)`` so guardrails can see it.

    Class attributes: ``name`` (default: the class name in snake_case),
    ``timeout``, ``retry``, ``pool``, and ``continue_on_failure`` (route a
    final failure to the downstream Plan instead of failing the lifetime).
    """

    _abstract = True
    _method = "run"
    continue_on_failure: ClassVar[bool] = False
    #: where a plain ``def run`` runs: "thread" (I/O-bound) or "process" (CPU-bound)
    pool: ClassVar[str] = "thread"

    def run(self, ctx: Any) -> Any:  # replaced by subclasses
        raise NotImplementedError

    @classmethod
    def _extra_checks(cls) -> list[str]:
        if cls.pool not in ("thread", "process"):
            return [f"pool must be 'thread' or 'process', got {cls.pool!r}"]
        if cls.pool == "process" and getattr(cls, "_is_async", False):
            return [
                "pool = 'process' needs a plain 'def run': async code already runs concurrently"
            ]
        return []


class Plan(_Node):
    """Decides which Tasks run next from the results of the Tasks before it.

    Subclass and define ``async def plan(self, ctx) -> Next | Finish``; the
    graph's edges say which choices are legal. Keep plans deterministic:
    replay re-runs them against the recorded Task results.
    """

    _abstract = True
    _method = "plan"

    def plan(self, ctx: Any) -> Any:  # replaced by subclasses
        raise NotImplementedError

    @classmethod
    def _extra_checks(cls) -> list[str]:
        if cls.__dict__.get("continue_on_failure"):
            return ["continue_on_failure applies to Tasks only; a failed Plan fails the lifetime"]
        return []


Node = Task | Plan
