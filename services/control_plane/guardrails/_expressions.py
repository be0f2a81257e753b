"""Rule conditions: CEL compiled once, statically checked, evaluated safely.

CEL (the Rust ``cel`` package) has no I/O, imports or host callbacks unless
functions are registered, and we register none: a condition can only read the
plain values of its activation. On top of that, every function a condition
calls must be on an allow-list and every variable must be an activation root
(or a comprehension variable), so a typo or an escape attempt is refused at
load time instead of surfacing on some later execution.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

ROOTS = ("execution", "lifetime", "tenant")
#: The activation roots a rule of each scope may read: a scope is the widest
#: aggregate its condition looks at.
SCOPE_ROOTS: Mapping[str, frozenset[str]] = {
    "execution": frozenset({"execution"}),
    "lifetime": frozenset({"execution", "lifetime"}),
    "tenant": frozenset(ROOTS),
}

_OPERATORS = frozenset(
    [
        "_==_",
        "_!=_",
        "_<_",
        "_<=_",
        "_>_",
        "_>=_",
        "_+_",
        "_-_",
        "_*_",
        "_/_",
        "_%_",
        "_&&_",
        "_||_",
        "_?_:_",
        "_[_]",
        "!_",
        "-_",
        "@in",
        "@not_strictly_false",
    ]
)
#: The native cel-rust standard library; the macros (has, all, exists,
#: exists_one, map, filter) are expanded by the parser and never listed.
ALLOWED_FUNCTIONS = _OPERATORS | frozenset(
    [
        "size",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "timestamp",
        "duration",
        "dyn",
        "type",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    ]
)
# Identifiers CEL reports as variables although they name types (type(x) == int).
_TYPE_NAMES = frozenset(
    ["int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"]
)

_STRING = re.compile(
    r"""[rRbB]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")"""
)
# A field path from an activation root: root, then .field (not a method call)
# or [literal] / [identifier.path] segments. Possessive matching stops a method
# name being shortened until the "not followed by (" test passes.
_SEGMENT = (
    r"(?:\s*\.\s*(?>[A-Za-z_]\w*)(?!\s*\()"
    r"""|\s*\[\s*(?:"[^"\n]*"|'[^'\n]*'|[A-Za-z_][\w.]*)\s*\])"""
)
_PATH = re.compile(rf"(?<![\w.])(?:execution|lifetime|tenant)(?:{_SEGMENT})*")
_PART = re.compile(r"""\.\s*(\w+)|\[\s*(?:"([^"]*)"|'([^']*)'|([\w.]+))\s*\]""")
_BOUND = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")


class ConditionError(Exception):
    """A condition is invalid or failed; the caller adds file, line and rule."""

    def __init__(self, message: str, *, expr_line: int | None = None) -> None:
        super().__init__(message)
        self.expr_line = expr_line


@dataclass(frozen=True)
class Condition:
    """A compiled CEL condition and what static analysis learned about it."""

    source: str
    program: Any
    roots: frozenset[str]
    #: Metric and node names written literally; the activation pre-fills them with 0.
    metrics: frozenset[str]
    nodes: frozenset[str]
    #: Reads some ``nodes`` map other than by a literal name or ``[execution.name]``.
    dynamic_nodes: bool
    #: (path as written, compiled path) pairs, evaluated to report observed values.
    probes: tuple[tuple[str, Any], ...]

    def evaluate(self, context: Any) -> bool:
        """Evaluate against a ``cel.Context``; any failure is a ConditionError."""
        try:
            result = self.program.execute(context)
        except Exception as exc:  # every CEL failure becomes one error type
            raise ConditionError(describe_cel_error(exc)) from exc
        if not isinstance(result, bool):
            raise ConditionError(
                f"must be a boolean expression, got {type(result).__name__} {result!r}"
            )
        return result

    def observe(self, context: Any) -> dict[str, Any]:
        """The leaf values of the paths the condition reads (numbers and strings)."""
        observed: dict[str, Any] = {}
        for key, probe in self.probes:
            try:
                value = probe.execute(context)
            except Exception:  # a path under has() or a comprehension variable
                continue
            if isinstance(value, bool | int | float | str):
                observed[key] = value
        return observed


def describe_cel_error(exc: Exception) -> str:
    """One readable line for a CEL exception."""
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else "?"
        return f"no such key {key!s} (guard keys computed at run time with has())"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {first}"


def compile_condition(source: str, scope: str) -> Condition:
    """Compile and statically check ``source`` for a rule of ``scope``."""
    if not source.strip():
        raise ConditionError("condition is empty")
    try:
        program = cel.compile(source)
    except Exception as exc:  # ValueError for syntax errors
        raise _syntax_error(exc) from exc

    unknown_functions = sorted(set(program.functions()) - ALLOWED_FUNCTIONS)
    if unknown_functions:
        raise ConditionError(
            "unknown function(s) "
            + ", ".join(repr(f) for f in unknown_functions)
            + " (only the CEL standard library is available)"
        )
    variables = set(program.variables())
    bound = set(_BOUND.findall(source))
    unknown = sorted(variables - set(ROOTS) - bound - _TYPE_NAMES)
    if unknown:
        raise ConditionError(
            "unknown variable(s) "
            + ", ".join(repr(v) for v in unknown)
            + " (the activation has execution, lifetime and tenant)"
        )
    roots = frozenset(variables & set(ROOTS))
    beyond = sorted(roots - SCOPE_ROOTS[scope])
    if beyond:
        raise ConditionError(
            f"a rule with scope {scope!r} cannot read {', '.join(beyond)}; "
            "widen the scope (execution < lifetime < tenant)"
        )

    metrics: set[str] = set()
    nodes: set[str] = set()
    dynamic_nodes = False
    probes: dict[str, Any] = {}
    for path in _paths(source):
        parts = _parts(path)
        for previous, part in itertools.pairwise(parts):
            if previous in ("sum", "max", "metrics") and isinstance(part, str):
                metrics.add(part)
        for i, part in enumerate(parts):
            if part != "nodes":
                continue
            following = parts[i + 1] if i + 1 < len(parts) else None
            if isinstance(following, str):
                nodes.add(following)
            elif following != ("dynamic", "execution.name"):
                dynamic_nodes = True
        key = re.sub(r"\s+", "", path)
        if key not in probes and key not in ROOTS:
            try:
                probes[key] = cel.compile(path)
            except Exception:  # never expected, and only costs an observed value
                continue
    return Condition(
        source=source,
        program=program,
        roots=roots,
        metrics=frozenset(metrics),
        nodes=frozenset(nodes),
        dynamic_nodes=dynamic_nodes,
        probes=tuple(probes.items()),
    )


def _syntax_error(exc: Exception) -> ConditionError:
    match = _CEL_POSITION.search(str(exc))
    if match is None:
        return ConditionError(f"invalid expression: {describe_cel_error(exc)}")
    line, column, detail = int(match[1]), int(match[2]), match[3]
    return ConditionError(f"invalid expression (column {column}): {detail}", expr_line=line)


def _paths(source: str) -> list[str]:
    """Activation paths written in ``source``, ignoring string literals."""
    strings = [m.span() for m in _STRING.finditer(source)]
    found = []
    for match in _PATH.finditer(source):
        if not any(start <= match.start() < end for start, end in strings):
            found.append(match.group(0))
    return found


def _parts(path: str) -> list[str | tuple[str, str]]:
    """``lifetime.nodes["a"].sum`` -> ["lifetime", "nodes", "a", "sum"].

    An index by an identifier path (``nodes[execution.name]``) becomes
    ``("dynamic", "execution.name")``.
    """
    head = re.match(r"\w+", path)
    if head is None:
        return []
    parts: list[str | tuple[str, str]] = [head.group(0)]
    for match in _PART.finditer(path, head.end()):
        if match[4] is not None:
            parts.append(("dynamic", match[4]))
        else:
            parts.append(next(g for g in (match[1], match[2], match[3]) if g is not None))
    return parts
