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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import cel

from . import _cost
from ._cost import MAX_CONDITION_CHARS, check_cost
from ._leaves import VAR_PREFIX, Leaf, resolve

ROOTS = ("execution", "lifetime", "tenant")
_ROOT_SET = frozenset(ROOTS)
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
_HAS_OPEN = re.compile(r"\bhas\s*\(\s*$")


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
    #: ``source`` with every leaf path replaced by its Leaf.var (``program`` if none).
    flat_program: Any = None
    #: (Leaf.var, Leaf) for every leaf path written, rewritten or not.
    leaves: tuple[tuple[str, Leaf], ...] = ()
    #: The roots ``flat_program`` still reads as whole maps.
    nested: frozenset[str] = frozenset()
    #: Per probe: the leaf variable holding its value, else None (evaluate the probe).
    probe_vars: tuple[str | None, ...] = ()

    @property
    def flattened(self) -> bool:
        return self.flat_program is not None

    def evaluate(self, context: Any) -> bool:
        """Evaluate against a ``cel.Context``; any failure is a ConditionError."""
        return self._run(self.program, context)

    def evaluate_flat(self, context: Any) -> bool:
        """Evaluate against a context holding ``leaves`` and the ``nested`` roots."""
        return self._run(self.flat_program or self.program, context)

    @staticmethod
    def _run(program: Any, context: Any) -> bool:
        started = time.perf_counter()
        try:
            result = program.execute(context)
        except Exception as exc:  # every CEL failure becomes one error type
            raise ConditionError(describe_cel_error(exc)) from exc
        # The engine cannot be interrupted; the static bound keeps evaluations short,
        # and one that still ran long (a map far larger than assumed) is refused.
        elapsed = time.perf_counter() - started
        if elapsed > _cost.EVALUATION_TIME_LIMIT_S:
            raise ConditionError(
                f"evaluation took {elapsed:.2f} s, over the {_cost.EVALUATION_TIME_LIMIT_S} s limit"
            )
        if not isinstance(result, bool):
            raise ConditionError(
                f"must be a boolean expression, got {type(result).__name__} {result!r}"
            )
        return result

    def observe(self, context: Any) -> dict[str, Any]:
        """The leaf values of the paths the condition reads (numbers and strings)."""
        observed: dict[str, Any] = {}
        for key, probe in self.probes:
            value = _probe(probe, context)
            if isinstance(value, bool | int | float | str):
                observed[key] = value
        return observed

    def observe_flat(
        self, variables: Mapping[str, Any], context: Any, full: Callable[[], Any]
    ) -> dict[str, Any]:
        """``observe`` for ``evaluate_flat``: leaves come from ``variables``; other
        probes run on ``context`` if it has their roots, else on ``full()``."""
        observed: dict[str, Any] = {}
        probe_vars = self.probe_vars or (None,) * len(self.probes)
        for (key, probe), var in zip(self.probes, probe_vars, strict=True):
            if var is not None:  # always a number or a string
                observed[key] = variables[var]
                continue
            if self.nested.issuperset(_ROOT_SET.intersection(probe.variables())):
                value = _probe(probe, context)
            else:  # a root path the rewrite left out (written after a '.')
                value = _probe(probe, full())
            if isinstance(value, bool | int | float | str):
                observed[key] = value
        return observed

    def written_only(self) -> Condition:
        """This condition without the leaf rewrite: it reads the written roots whole."""
        return replace(
            self,
            flat_program=None,
            leaves=(),
            nested=self.roots,
            probe_vars=(None,) * len(self.probes),
        )


def _probe(probe: Any, context: Any) -> Any:
    try:
        return probe.execute(context)
    except Exception:  # a path under has() or a comprehension variable
        return None


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
    if len(source) > MAX_CONDITION_CHARS:  # before compiling: bounded work on any input
        raise ConditionError(check_cost(source))
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
    too_costly = check_cost(source)
    if too_costly:
        raise ConditionError(too_costly)
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
    probe_leaves: dict[str, Leaf | None] = {}
    spans = _path_spans(source)
    for _, _, path in spans:
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
            probe_leaves[key] = resolve(parts)
    condition = Condition(
        source=source,
        program=program,
        roots=roots,
        metrics=frozenset(metrics),
        nodes=frozenset(nodes),
        dynamic_nodes=dynamic_nodes,
        probes=tuple(probes.items()),
    )
    flat = _flatten(source, spans, bound, program)
    if flat is None:
        return condition.written_only()
    flat_program, leaves, nested = flat
    return replace(
        condition,
        flat_program=flat_program,
        leaves=tuple(leaves.items()),
        nested=nested,
        probe_vars=tuple(
            leaf.var if leaf is not None and leaf.var in leaves else None
            for leaf in (probe_leaves[key] for key in probes)
        ),
    )


def _flatten(
    source: str, spans: list[tuple[int, int, str]], bound: set[str], program: Any
) -> tuple[Any, dict[str, Leaf], frozenset[str]] | None:
    """Rewrite each leaf path of ``source`` into its Leaf.var (see _leaves.py).

    Returns the rewritten program, its leaves by variable and the roots it still
    reads whole; None if the condition must be evaluated as written.
    """
    strings = [m.span() for m in _STRING.finditer(source)]
    comment = any(
        not any(start <= m.start() < end for start, end in strings)
        for m in re.finditer("//", source)
    )
    if comment or VAR_PREFIX in source or bound & set(ROOTS):
        return None  # a root shadowed by a comprehension variable is not the root
    leaves: dict[str, Leaf] = {}
    substituted: set[str] = set()
    rewritten: list[str] = []
    done = 0
    for start, end, path in spans:
        leaf = resolve(_parts(path))
        if leaf is None:
            continue
        leaves[leaf.var] = leaf
        before = source[:start].rstrip()
        if before.endswith((".", "?")) or _HAS_OPEN.search(before):
            continue  # a field name, not a root; or has(), which needs a field selection
        rewritten += [source[done:start], leaf.var]
        substituted.add(leaf.var)
        done = end
    if not substituted:
        return None
    rewritten.append(source[done:])
    try:
        flat = cel.compile("".join(rewritten))
    except Exception:  # never expected: keep the written condition
        return None
    variables = set(flat.variables())
    # Every substitution must read as a variable, and the rewrite can only drop
    # operators (the index operator of nodes["x"]), never add a function.
    if not substituted <= variables or not set(flat.functions()) <= set(program.functions()):
        return None
    return flat, leaves, frozenset(variables & set(ROOTS))


def _syntax_error(exc: Exception) -> ConditionError:
    match = _CEL_POSITION.search(str(exc))
    if match is None:
        return ConditionError(f"invalid expression: {describe_cel_error(exc)}")
    line, column, detail = int(match[1]), int(match[2]), match[3]
    return ConditionError(f"invalid expression (column {column}): {detail}", expr_line=line)


def _paths(source: str) -> list[str]:
    """Activation paths written in ``source``, ignoring string literals."""
    return [path for _, _, path in _path_spans(source)]


def _path_spans(source: str) -> list[tuple[int, int, str]]:
    """(start, end, path) of every activation path outside string literals."""
    strings = [m.span() for m in _STRING.finditer(source)]
    found = []
    for match in _PATH.finditer(source):
        if not any(start <= match.start() < end for start, end in strings):
            found.append((match.start(), match.end(), match.group(0)))
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
