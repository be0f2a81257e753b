"""A static upper bound on how much work a CEL condition can do.

The ``cel`` engine has no cost limit, and CEL's only loops are the
comprehension macros (``all``, ``exists``, ``exists_one``, ``map``,
``filter``): nest four over 100-element lists and one evaluation takes 10^8
steps (about a minute here, on every execution). So every condition is
bounded when it is loaded, from its source:

- a macro over a list literal iterates at most that literal's length;
- over anything else (an activation map such as ``execution.metrics`` or
  ``lifetime.nodes``, a comprehension variable, a computed list) at most
  ``MAX_RANGE`` times the number of list concatenations (``+``) plus one,
  where ``MAX_RANGE`` is the larger of ``ASSUMED_MAP_SIZE`` and the longest
  list literal in the condition;
- a macro nested in another's arguments runs once per outer iteration.

The bound (``cost``) is the sum over macros of their ranges multiplied along
each nesting chain. Conditions over ``MAX_COST`` are refused at load. The
engine measures about 0.5-1 µs per step on the development machine, so the
limit keeps one evaluation well under 0.1 s; an evaluation that still runs
past ``EVALUATION_TIME_LIMIT_S`` (a map far larger than assumed) is a policy
error, which pauses the lifetime (see ``_expressions.Condition``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_COST = 100_000
ASSUMED_MAP_SIZE = 100
MAX_CONDITION_CHARS = 8192
EVALUATION_TIME_LIMIT_S = 0.5

_MACRO = re.compile(r"\.\s*(all|exists_one|exists|map|filter)\s*\(")
_PAIRS = {")": "(", "]": "[", "}": "{"}


@dataclass
class _Macro:
    dot: int
    open: int
    close: int
    size: int
    children: list[_Macro] = field(default_factory=list)

    def cost(self) -> int:
        return self.size * (1 + sum(child.cost() for child in self.children))


def _mask_strings(source: str) -> str:
    """The source with every string literal's content blanked (brackets in strings)."""
    out = list(source)
    i = 0
    while i < len(source):
        quote = source[i]
        if quote not in "'\"":
            i += 1
            continue
        triple = source.startswith(quote * 3, i)
        end_mark = quote * 3 if triple else quote
        j = i + len(end_mark)
        while j < len(source) and not source.startswith(end_mark, j):
            j += 2 if source[j] == "\\" else 1
        for k in range(i + len(end_mark), min(j, len(source))):
            out[k] = " "
        i = j + len(end_mark)
    return "".join(out)


def _matching(masked: str) -> dict[int, int]:
    """Open bracket index -> its close (unbalanced input was refused by the parser)."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for i, char in enumerate(masked):
        if char in "([{":
            stack.append(i)
        elif char in _PAIRS and stack:
            pairs[stack.pop()] = i
    return pairs


def _literal_length(masked: str, start: int, end: int) -> int:
    """How many top-level elements the list literal ``masked[start..end]`` holds."""
    inner = masked[start + 1 : end]
    if not inner.strip():
        return 0
    depth = 0
    count = 1
    for char in inner:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            count += 1
    return count - (1 if inner.rstrip().endswith(",") else 0)


def _list_literals(masked: str, pairs: dict[int, int]) -> dict[int, int]:
    """Close index -> length, for every ``[...]`` that is a list literal (not an index)."""
    out: dict[int, int] = {}
    for start, end in pairs.items():
        if masked[start] != "[":
            continue
        before = masked[:start].rstrip()
        if before and (before[-1].isalnum() or before[-1] in "_)]."):
            continue  # a[0], f(x)[0], m["k"]: an index, not a literal
        out[end] = _literal_length(masked, start, end)
    return out


def cost(source: str) -> int:
    """An upper bound on the comprehension steps one evaluation of ``source`` takes."""
    masked = _mask_strings(source)
    pairs = _matching(masked)
    literals = _list_literals(masked, pairs)
    widest = max([ASSUMED_MAP_SIZE, *literals.values()])
    any_list = widest * (masked.count("+") + 1)
    macros: list[_Macro] = []
    for found in _MACRO.finditer(masked):
        open_at = found.end() - 1
        receiver_end = len(masked[: found.start()].rstrip()) - 1
        size = literals.get(receiver_end, any_list) if receiver_end >= 0 else any_list
        macros.append(_Macro(found.start(), open_at, pairs.get(open_at, len(masked)), size))
    roots: list[_Macro] = []
    for macro in macros:
        # The innermost macro whose arguments contain this one runs it per iteration.
        outer = [m for m in macros if m.open < macro.dot < m.close]
        if outer:
            max(outer, key=lambda m: m.open).children.append(macro)
        else:
            roots.append(macro)
    return 1 + sum(m.cost() for m in roots)


def check_cost(source: str) -> str:
    """Why the condition is too costly to load ('' when it is within bounds)."""
    if len(source) > MAX_CONDITION_CHARS:
        return f"condition is {len(source):,} characters long; the limit is {MAX_CONDITION_CHARS:,}"
    bound = cost(source)
    if bound > MAX_COST:
        return (
            f"condition may take up to {bound:,} comprehension steps per evaluation; "
            f"the limit is {MAX_COST:,} (nest fewer all/exists/map/filter macros, or "
            "iterate shorter lists)"
        )
    return ""
