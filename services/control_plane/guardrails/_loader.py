"""Policy files to compiled rules, with every problem located by file, line and rule.

``yaml.compose`` keeps each node's position, so an unknown key, a bad value or
a bad condition is reported on the line where it is written. Problems are
collected, not raised one at a time, so one run shows everything to fix.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import cel
import yaml

from tickrail.sdk import _yaml
from tickrail.sdk.errors import PolicyError
from tickrail.sdk.pb import envelope_pb2

from ._aggregates import BUILTIN_METRICS, usage_of
from ._context import ROOTS, root_views
from ._expressions import Condition, ConditionError, compile_condition
from ._leaves import Inputs
from ._model import ACTIONS, API_VERSION, KIND, SCOPES, Match, Rule

FILE_FIELDS = ("apiVersion", "kind", "description", "tenant", "disable", "rules")
RULE_FIELDS = ("name", "description", "scope", "match", "condition", "action", "message")
REQUIRED_RULE_FIELDS = ("name", "scope", "condition", "action")
MATCH_FIELDS = ("tenants", "graphs", "nodes")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

logger = logging.getLogger("tickrail.guardrails")


@dataclass
class PolicyDocument:
    """One parsed file: default rules, or one tenant's overrides."""

    file: str
    tenant: str | None = None
    #: Default rules this tenant turns off, with the line naming each.
    disable: list[tuple[str, int]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)


def parse_policy_file(file: str, text: str) -> tuple[PolicyDocument | None, list[PolicyError]]:
    """Parse and compile one file; the document is None when anything is wrong."""
    parser = _Parser(file)
    document = parser.document(text)
    return (None if parser.problems else document), parser.problems


class _Parser:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[PolicyError] = []

    def problem(
        self,
        message: str,
        node: yaml.Node | None = None,
        rule: str | None = None,
        *,
        line: int | None = None,
    ) -> None:
        if line is None and node is not None:
            line = node.start_mark.line + 1
        self.problems.append(PolicyError(message, file=self.file, line=line, rule=rule))

    # ---- generic node readers -------------------------------------------------

    def value(self, node: yaml.Node) -> Any:
        try:
            return _yaml.construct(node)
        except _yaml.YAMLProblem as exc:
            self.problem(exc.message, node, line=exc.line)
            return None

    def fields(
        self,
        node: yaml.Node,
        allowed: tuple[str, ...],
        required: tuple[str, ...],
        what: str,
        rule: str | None = None,
    ) -> dict[str, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(f"{what} must be a mapping", node, rule)
            return None
        found: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                shown = _yaml.excerpt(key)
                self.problem(f"{what}: keys must be strings, got {shown}", key_node, rule)
            elif key in found:
                self.problem(f"{what}: duplicate field {_yaml.excerpt(key)}", key_node, rule)
            elif key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problem(f"unknown field {_yaml.excerpt(key)} in {what}{hint}", key_node, rule)
            else:
                found[key] = value_node
        for key in required:
            if key not in found:
                self.problem(f"missing required field {key!r} in {what}", node, rule)
        return found

    def string(self, node: yaml.Node, what: str, rule: str | None = None) -> str | None:
        value = self.value(node)
        if not isinstance(value, str) or not value.strip():
            shown = _yaml.excerpt(value)
            self.problem(f"{what} must be a non-empty string, got {shown}", node, rule)
            return None
        return value

    def strings(self, node: yaml.Node, what: str, rule: str | None = None) -> list[str] | None:
        value = self.value(node)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            shown = _yaml.excerpt(value)
            self.problem(f"{what} must be a non-empty list of strings, got {shown}", node, rule)
            return None
        return value

    # ---- the policy file --------------------------------------------------------

    def document(self, text: str) -> PolicyDocument | None:
        try:
            # Bounded: no alias bombs, no unknown tags, no runaway nesting (sdk/_yaml.py).
            root = _yaml.compose(text)
        except _yaml.YAMLProblem as exc:
            self.problem(exc.message, line=exc.line)
            return None
        if root is None:
            self.problem("empty file: expected apiVersion, kind and rules", line=1)
            return None
        fields = self.fields(root, FILE_FIELDS, ("apiVersion", "kind"), "the policy file")
        if fields is None:
            return None
        for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
            if key in fields and self.value(fields[key]) != expected:
                self.problem(f"{key} must be {expected!r}", fields[key])
        document = PolicyDocument(file=self.file)
        if "tenant" in fields:
            document.tenant = self.string(fields["tenant"], "tenant")
        if "description" in fields:
            self.string(fields["description"], "description")
        if "disable" in fields:
            if "tenant" not in fields:
                self.problem(
                    "disable is only allowed in a tenant override file (one with tenant:)",
                    fields["disable"],
                )
            names = self.strings(fields["disable"], "disable")
            items = fields["disable"].value if names is not None else []
            for name, item in zip(names or [], items, strict=False):
                document.disable.append((name, item.start_mark.line + 1))
        rules = fields.get("rules")
        if rules is not None:
            if not isinstance(rules, yaml.SequenceNode):
                self.problem("rules must be a list", rules)
            else:
                for index, node in enumerate(rules.value):
                    rule = self.rule(node, index, document.tenant, "tenant" in fields)
                    if rule is not None:
                        document.rules.append(rule)
        return document

    def rule(
        self, node: yaml.Node, index: int, tenant: str | None, tenant_file: bool
    ) -> Rule | None:
        label = _name_of(node)
        before = len(self.problems)
        fields = self.fields(node, RULE_FIELDS, REQUIRED_RULE_FIELDS, f"rule #{index + 1}", label)
        if fields is None:
            return None

        def text(key: str) -> str | None:
            return self.string(fields[key], key, label) if key in fields else None

        name = text("name")
        if name is not None and not _NAME.match(name):
            self.problem(
                "name may contain only letters, digits, '_', '.' and '-'", fields["name"], label
            )
        scope = text("scope")
        if scope is not None and scope not in SCOPES:
            self.problem(
                f"unknown scope {_yaml.excerpt(scope)}; expected one of {', '.join(SCOPES)}",
                fields["scope"],
                label,
            )
            scope = None
        action = text("action")
        if action is not None and action not in ACTIONS:
            self.problem(
                f"unknown action {_yaml.excerpt(action)}; expected one of {', '.join(ACTIONS)}",
                fields["action"],
                label,
            )
        description = text("description") or ""
        message = text("message") or description.strip() or f"guardrail {name} fired"
        match = self.match(fields["match"], label, tenant_file) if "match" in fields else Match()
        condition: Condition | None = None
        condition_line = node.start_mark.line + 1
        if "condition" in fields:
            condition_line = fields["condition"].start_mark.line + 1
            source = text("condition")
            if source is not None and scope is not None:
                condition = self.condition(fields["condition"], source, scope, match, tenant, label)
        if len(self.problems) > before or condition is None or match is None:
            return None
        assert name is not None and scope is not None and action is not None
        return Rule(
            name=name,
            scope=scope,
            action=action,
            message=message.strip(),
            condition=condition,
            match=match,
            description=description.strip(),
            file=self.file,
            line=node.start_mark.line + 1,
            condition_line=condition_line,
            tenant=tenant,
        )

    def match(self, node: yaml.Node, rule: str | None, tenant_file: bool) -> Match | None:
        fields = self.fields(node, MATCH_FIELDS, (), "match", rule)
        if fields is None:
            return None
        if tenant_file and "tenants" in fields:
            self.problem(
                "match.tenants is not allowed in a tenant override file", fields["tenants"], rule
            )
            return None
        lists = {key: self.strings(value, f"match.{key}", rule) for key, value in fields.items()}
        if any(v is None for v in lists.values()):
            return None

        def of(key: str) -> frozenset[str] | None:
            value = lists.get(key)
            return frozenset(value) if value is not None else None

        return Match(tenants=of("tenants"), graphs=of("graphs"), nodes=of("nodes"))

    def condition(
        self,
        node: yaml.Node,
        source: str,
        scope: str,
        match: Match | None,
        tenant: str | None,
        rule: str | None,
    ) -> Condition | None:
        line = node.start_mark.line + 1
        try:
            condition = compile_condition(source, scope)
            envelope, counters = _sample(condition, match or Match(), tenant)
            inputs = Inputs(envelope, (counters, counters, counters), 1.0)
            activation = root_views(
                inputs, ROOTS, metrics=condition.metrics, nodes=condition.nodes, all_nodes=True
            )
            expected = condition.evaluate(cel.Context(variables=activation))
            if condition.flattened and not _same_when_flat(condition, inputs, activation, expected):
                logger.warning(
                    "%s line %d, rule %r: rewritten condition disagrees on the sample "
                    "execution; evaluating it as written (slower)",
                    self.file,
                    line,
                    rule,
                )
                condition = condition.written_only()
        except ConditionError as exc:
            if exc.expr_line is not None and getattr(node, "style", None) == "|":
                # A literal block keeps line breaks: expression line k is k lines below "|".
                line += exc.expr_line
            self.problem(f"condition: {exc}", rule=rule, line=line)
            return None
        return condition


def _name_of(node: yaml.Node) -> str | None:
    """The rule's name, if written plainly, to label problems found before it is checked."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if (
                isinstance(key, yaml.ScalarNode)
                and key.value == "name"
                and isinstance(value, yaml.ScalarNode)
                and value.value
            ):
                return str(value.value)
    return None


def _sample(
    condition: Condition, match: Match, tenant: str | None
) -> tuple[envelope_pb2.ExecutionEnvelope, dict[str, float]]:
    """A realistic one-execution envelope and its counters, to catch type errors and
    non-boolean results at load time instead of on the first real execution."""

    def first(values: frozenset[str] | None, default: str) -> str:
        return sorted(values)[0] if values else default

    envelope = envelope_pb2.ExecutionEnvelope(
        task=envelope_pb2.TaskExecution(
            header=envelope_pb2.ExecutionHeader(
                name=first(match.nodes, "sample-node"),
                exec_id="sample-exec",
                graph_id=first(match.graphs, "sample-graph"),
                lifetime_id="sample-lifetime",
                tenant_id=tenant or first(match.tenants, "sample-tenant"),
                attempt=1,
                iteration=1,
                status=envelope_pb2.EXECUTION_STATUS_SUCCEEDED,
                kind=envelope_pb2.NODE_KIND_TASK,
            ),
            telemetry=envelope_pb2.PolicyTelemetry(
                tokens_in=100,
                tokens_out=50,
                cost_usd=0.01,
                latency_ms=250.0,
                model="sample-model",
                metrics={m: 1.0 for m in condition.metrics if m not in BUILTIN_METRICS},
            ),
        )
    )
    add, maximum = usage_of(envelope).fields()
    return envelope, {**add, **maximum}


def _same_when_flat(
    condition: Condition, inputs: Inputs, activation: dict[str, Any], expected: bool
) -> bool:
    """Whether the rewritten condition agrees with the written one on the sample.

    A safety net for the rewrite (see _leaves.py): on any difference the rule is
    evaluated as written, which is slower but cannot differ.
    """
    variables = {var: leaf.getter(inputs) for var, leaf in condition.leaves}
    variables.update({root: activation[root] for root in condition.nested})
    for var, leaf in condition.leaves:
        try:
            written = leaf.walk(activation)
            if type(written) is not type(variables[var]) or written != variables[var]:
                return False
        except (KeyError, TypeError):
            return False
    try:
        return condition.evaluate_flat(cel.Context(variables=variables)) == expected
    except ConditionError:
        return False
