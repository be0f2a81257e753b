"""Load an AgentGraph from a Python file, a ``module:attr`` reference or a YAML file."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import yaml

from tickrail.sdk import _yaml
from tickrail.sdk.choice import DEFAULT_MAX_FANOUT
from tickrail.sdk.errors import ConfigurationError, DefinitionError, GraphValidationError
from tickrail.sdk.graph import INT32_MAX, AgentGraph, Edge, EdgeKind
from tickrail.sdk.node import NAME_PATTERN, Plan, Task

_GRAPH_FIELDS = {
    "apiVersion",
    "kind",
    "name",
    "version",
    "entry",
    "nodes",
    "edges",
    "max_iterations",
    "max_steps",
    "max_fanout",
}
_NODE_FIELDS = {"name", "impl", "with"}
_EDGE_FIELDS = {"from", "to", "kind"}


def load_graph(target: str) -> AgentGraph:
    """Resolve ``target``: ``path/to/file.py`` (its ``graph`` attribute, or the only
    AgentGraph it defines), ``package.module:attr``, or ``path/to/graph.yaml``."""
    if target.endswith((".yaml", ".yml")):
        return load_yaml_graph(Path(target))
    if target.endswith(".py"):
        return _from_module(_import_file(Path(target)), None, target)
    module_name, _, attr = target.partition(":")
    # A console script's sys.path lacks the working directory; `pkg.mod:attr`
    # means the user's package here, as `python -m` would find it.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import graph module {module_name!r}: {exc}") from exc
    return _from_module(module, attr or None, target)


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise ConfigurationError(f"graph file {path} does not exist")
    name = f"tickrail_graph_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Executors import the same file; registering it keeps the classes unique.
    sys.modules[name] = module
    # The file's folder stays importable: its Tasks may import the user's own
    # packages (a `services/` or `sdk/` of theirs) lazily, inside run().
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec.loader.exec_module(module)
    return module


def _from_module(module: Any, attr: str | None, target: str) -> AgentGraph:
    if attr:
        value = getattr(module, attr, None)
        if value is None:
            raise ConfigurationError(f"{target}: module has no attribute {attr!r}")
        if callable(value) and not isinstance(value, AgentGraph):
            value = value()
        if not isinstance(value, AgentGraph):
            raise ConfigurationError(f"{target} is a {type(value).__name__}, not an AgentGraph")
        return value
    if isinstance(getattr(module, "graph", None), AgentGraph):
        return module.graph  # type: ignore[no-any-return]
    graphs = [v for v in vars(module).values() if isinstance(v, AgentGraph)]
    if len(graphs) != 1:
        raise ConfigurationError(
            f"{target} defines {len(graphs)} AgentGraphs; name one as 'graph' or use file.py:attr"
        )
    return graphs[0]


def load_yaml_graph(path: Path) -> AgentGraph:
    """Build a graph from YAML; every problem is reported with its file and line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read graph file {path}: {exc}") from exc
    try:
        root = _yaml.compose(_yaml.decode(data))
    except _yaml.YAMLProblem as exc:
        line = f":{exc.line}" if exc.line is not None else ""
        raise GraphValidationError(f"graph file {path}{line}", [exc.message]) from None
    if not isinstance(root, yaml.MappingNode):
        raise GraphValidationError(str(path), ["the file must be a mapping (name, nodes, edges)"])
    problems: list[str] = []

    def where(node: yaml.Node) -> str:
        return f"{path}:{node.start_mark.line + 1}"

    fields = _mapping(root, _GRAPH_FIELDS, "graph", where, problems)
    value = {k: _value(v, where, problems) for k, (v, _) in fields.items()}
    if value.get("kind", "AgentGraph") != "AgentGraph":
        problems.append(f"{where(root)}: kind must be AgentGraph")
    for text_field in ("name", "version", "entry"):
        if text_field in value and not isinstance(value[text_field], str):
            problems.append(
                f"{where(fields[text_field][0])}: {text_field} must be a string, "
                f"got {_yaml.excerpt(value[text_field])}"
            )
    caps: dict[str, int] = {}
    for cap, default, top in (
        ("max_iterations", 100, INT32_MAX),
        ("max_steps", 10_000, INT32_MAX),
        ("max_fanout", DEFAULT_MAX_FANOUT, 100_000),
    ):
        raw = value.get(cap, default)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= top:
            problems.append(
                f"{where(fields[cap][0])}: {cap} must be a whole number from 1 to {top}, "
                f"got {_yaml.excerpt(raw)}"
            )
            raw = default
        caps[cap] = raw
    for required in ("name", "entry", "nodes", "edges"):
        if required not in fields:
            problems.append(f"{where(root)}: missing required field {required!r}")

    nodes: list[Task | Plan] = []
    locations: dict[str, str] = {}
    node_list = fields.get("nodes", (None, None))[0]
    for item in node_list.value if isinstance(node_list, yaml.SequenceNode) else []:
        node = _load_node(
            item, where, _mapping(item, _NODE_FIELDS, "node", where, problems), problems
        )
        if node is not None:
            nodes.append(node)
            locations[node.name] = where(item)

    edges: list[Edge] = []
    edge_list = fields.get("edges", (None, None))[0]
    for item in edge_list.value if isinstance(edge_list, yaml.SequenceNode) else []:
        edges.extend(
            _load_edges(
                item, where, _mapping(item, _EDGE_FIELDS, "edge", where, problems), problems
            )
        )

    graph_problems: list[str] = []
    graph: AgentGraph | None = None
    try:
        graph = AgentGraph(
            str(value.get("name", "")),
            version=str(value.get("version", "0.1.0")),
            entry=str(value.get("entry", "")),
            nodes=nodes,
            edges=edges,
            max_iterations=caps["max_iterations"],
            max_steps=caps["max_steps"],
            max_fanout=caps["max_fanout"],
            source=str(path),
            locations=locations,
        )
    except GraphValidationError as exc:
        graph_problems = exc.problems
    if problems or graph_problems:
        raise GraphValidationError(f"graph file {path}", problems + graph_problems)
    assert graph is not None
    return graph


def _value(node: yaml.Node, where: Any, problems: list[str]) -> Any:
    try:
        return _yaml.construct(node)
    except _yaml.YAMLProblem as exc:
        problems.append(f"{where(node)}: {exc.message}")
        return None


def _mapping(
    node: yaml.Node, allowed: set[str], what: str, where: Any, problems: list[str]
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        problems.append(f"{where(node)}: each {what} must be a mapping")
        return {}
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, val in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.value not in allowed:
            shown = key.value if isinstance(key, yaml.ScalarNode) else "(not a name)"
            problems.append(
                f"{where(key)}: unknown {what} field {_yaml.excerpt(shown)} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
            continue
        out[key.value] = (val, key)
    return out


def _load_node(
    item: yaml.Node,
    where: Any,
    fields: dict[str, tuple[yaml.Node, yaml.Node]],
    problems: list[str],
) -> Task | Plan | None:
    if "impl" not in fields:
        if fields:
            problems.append(f"{where(item)}: node needs 'impl: module:Class'")
        return None
    impl_node = fields["impl"][0]
    if not isinstance(impl_node, yaml.ScalarNode):
        problems.append(f"{where(impl_node)}: impl must be 'module:Class'")
        return None
    impl = str(impl_node.value)
    module_name, _, class_name = impl.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        problems.append(
            f"{where(impl_node)}: cannot import node implementation {_yaml.excerpt(impl)}: "
            f"{_yaml.excerpt(str(exc), 300)}"
        )
        return None
    if not (isinstance(cls, type) and issubclass(cls, Task | Plan)):
        problems.append(f"{where(impl_node)}: {impl} is not a Task or Plan subclass")
        return None
    options = _value(fields["with"][0], where, problems) if "with" in fields else {}
    if options is not None and not isinstance(options, dict):
        problems.append(f"{where(fields['with'][0])}: 'with' must be a mapping of options")
        return None
    try:
        node = cls(**(options or {}))
    except (TypeError, ValueError, DefinitionError) as exc:
        # Never the whole value: it may be huge, or stand for something huge.
        problems.append(
            f"{where(impl_node)}: cannot create {impl} with {_yaml.excerpt(options)}: "
            f"{_yaml.excerpt(str(exc), 300)}"
        )
        return None
    if "name" in fields:
        name_node = fields["name"][0]
        if not isinstance(name_node, yaml.ScalarNode):
            problems.append(f"{where(name_node)}: name must be a string")
            return None
        if not NAME_PATTERN.match(str(name_node.value)):
            problems.append(
                f"{where(name_node)}: node name {_yaml.excerpt(name_node.value)} is invalid: "
                "use letters, digits, '_' or '-', starting with a letter (at most 64)"
            )
            return None
        node.name = str(name_node.value)  # type: ignore[misc]
    return node


def _load_edges(
    item: yaml.Node,
    where: Any,
    fields: dict[str, tuple[yaml.Node, yaml.Node]],
    problems: list[str],
) -> list[Edge]:
    if "from" not in fields:
        if fields:
            problems.append(f"{where(item)}: edge needs 'from'")
        return []
    kind_node = fields["kind"][0] if "kind" in fields else None
    if kind_node is not None and not isinstance(kind_node, yaml.ScalarNode):
        problems.append(f"{where(kind_node)}: edge kind must be a name")
        return []
    kind_name = str(kind_node.value).upper() if kind_node is not None else "NORMAL"
    try:
        kind = EdgeKind[kind_name]
    except KeyError:
        problems.append(
            f"{where(item)}: unknown edge kind {_yaml.excerpt(kind_name)} "
            "(NORMAL, PARALLEL, JOIN, FINAL)"
        )
        return []
    sources = _names(fields["from"][0])
    targets: list[str | None] = list(_names(fields["to"][0])) if "to" in fields else [None]
    return [Edge(s, t, kind, where(item)) for s in sources for t in targets]


def _names(node: yaml.Node) -> list[str]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    # A nested list or mapping is no node name; show a placeholder, never its value.
    return [str(n.value) if isinstance(n, yaml.ScalarNode) else "(not a name)" for n in items]
