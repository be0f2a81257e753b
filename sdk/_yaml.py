"""Bounded YAML: the one way tickrail reads graph, policy and config files.

PyYAML's safe loader still lets a small file stand for a huge value (aliases
of aliases: the "billion laughs"), nests until the composer's recursion gives
out, and accepts tags it then cannot construct. Every reader goes through
``compose`` here, which refuses, with the line:

- more than ``MAX_ALIASES`` aliases, or a document whose expanded size (every
  alias counted as the node it names) exceeds ``MAX_EXPANDED_NODES``, or a
  recursive alias;
- nesting deeper than ``MAX_DEPTH``;
- any tag other than YAML's plain types (``!!python/...`` or ``!custom``);
- bytes that are not UTF-8.

The checks walk the composed node graph once, sharing the work for a node an
alias names, so a bomb is refused in well under a second. Error messages show
values through ``excerpt``, never expanded.
"""

from __future__ import annotations

import reprlib
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent

MAX_ALIASES = 100
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 64

_STANDARD = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(
    _STANDARD + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
) | {_STANDARD + "merge"}


class YAMLProblem(ValueError):
    """The text is not YAML tickrail reads; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _Loader(yaml.SafeLoader):
    """The safe loader, counting aliases as they are composed."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YAMLProblem(
                    f"more than {MAX_ALIASES} aliases: refused (an alias expansion bomb?)",
                    mark.line + 1,
                )
        return super().compose_node(parent, index)


def decode(data: bytes) -> str:
    """UTF-8 text, or a YAMLProblem naming the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise YAMLProblem(f"not UTF-8 (byte {exc.start})", line) from None


def compose(text: str) -> yaml.Node | None:
    """The document's node graph, after the bounds above (YAMLProblem if not)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except YAMLProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise YAMLProblem(f"invalid YAML: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(f"invalid YAML: {excerpt(str(exc))}") from None
    except RecursionError:
        raise YAMLProblem(f"nested more than {MAX_DEPTH} levels deep: refused") from None
    finally:
        loader.dispose()
    if node is not None:
        _check(node)
    return node


def _check(root: yaml.Node) -> None:
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        line = node.start_mark.line + 1
        if key in active:
            raise YAMLProblem("a recursive alias: refused", line)
        if depth > MAX_DEPTH:
            raise YAMLProblem(f"nested more than {MAX_DEPTH} levels deep: refused", line)
        if node.tag not in ALLOWED_TAGS:
            raise YAMLProblem(f"unknown tag {excerpt(node.tag)}: refused", line)
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        active.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise YAMLProblem(
                f"expands to more than {MAX_EXPANDED_NODES} values: refused "
                "(an alias expansion bomb?)",
                line,
            )
        sizes[key] = total
        return total

    size(root, 0)


def construct(node: yaml.Node) -> Any:
    """The Python value of a node from ``compose`` (plain types only)."""
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid value"
        raise YAMLProblem(f"invalid value: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(f"invalid value: {excerpt(str(exc))}") from None


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 5
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 40


def excerpt(value: Any, limit: int = 120) -> str:
    """A short repr for error messages: bounded however large the value is."""
    shown = _REPR.repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
