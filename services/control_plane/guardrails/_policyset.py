"""PolicySet: the compiled, immutable result of loading policy files."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cel

from tickrail.sdk import _yaml
from tickrail.sdk.errors import PolicyError, join_problems
from tickrail.sdk.pb import envelope_pb2

from . import _cost
from ._context import EvaluationContext, build_context, root_views
from ._expressions import ConditionError
from ._leaves import Inputs, Leaf
from ._loader import PolicyDocument, parse_policy_file
from ._model import Rule
from ._verdict import Verdict

_CACHE_LIMIT = 4096

logger = logging.getLogger("tickrail.guardrails")


class PolicySet:
    """Compiled rules: defaults plus per-tenant overrides. Immutable once loaded."""

    def __init__(
        self,
        version: str,
        files: Sequence[str],
        defaults: Sequence[Rule],
        tenants: Mapping[str, Sequence[Rule]],
    ) -> None:
        self._version = version
        self._files = tuple(files)
        self._defaults = tuple(defaults)
        self._tenants = {tenant: tuple(rules) for tenant, rules in tenants.items()}
        every = [*self._defaults, *(r for rules in self._tenants.values() for r in rules)]
        self._metrics = frozenset().union(*(r.condition.metrics for r in every))
        self._nodes = frozenset().union(
            *(r.condition.nodes for r in every), *(r.match.nodes or () for r in every)
        )
        self._all_nodes = any(r.condition.dynamic_nodes for r in every)
        self._has_rules = bool(every)
        self._reads_tenant = any(r.scope == "tenant" for r in every)
        # Selection depends only on (tenant, graph, node); caching it keeps
        # evaluation to the CEL calls. Bounded, since those keys are open-ended.
        self._selected: dict[tuple[str, str, str], _Plan] = {}

    @property
    def version(self) -> str:
        """Content hash of the loaded files, recorded with every decision."""
        return self._version

    @property
    def files(self) -> tuple[str, ...]:
        return self._files

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The default rules, in file order (tenant overrides excluded)."""
        return self._defaults

    @property
    def tenants(self) -> tuple[str, ...]:
        """Tenants with override files."""
        return tuple(sorted(self._tenants))

    @property
    def has_rules(self) -> bool:
        """Whether any rule, default or tenant override, is loaded."""
        return self._has_rules

    @property
    def reads_tenant(self) -> bool:
        """Whether any rule has tenant scope (and so needs tenant aggregates)."""
        return self._reads_tenant

    def __repr__(self) -> str:
        return (
            f"PolicySet(version={self._version!r}, rules={len(self._defaults)}, "
            f"tenants={len(self._tenants)})"
        )

    @classmethod
    def empty(cls) -> PolicySet:
        return cls(hashlib.sha256().hexdigest()[:12], (), (), {})

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> PolicySet:
        """Load files, or directories of ``*.yaml``/``*.yml`` (not recursive).

        Everything is validated; all problems are raised together as one
        PolicyError (a single problem keeps its file, line and rule attributes).
        """
        policies, problems = _load(paths)
        if problems or policies is None:
            if len(problems) == 1:
                raise problems[0]
            files = {p.file for p in problems}
            raise PolicyError(
                f"{len(problems)} problems in policy files:\n{join_problems(map(str, problems))}",
                file=files.pop() if len(files) == 1 else None,
            )
        return policies

    def rules_for(self, tenant_id: str, graph_id: str, node: str) -> tuple[Rule, ...]:
        """The rules that apply to one execution, after tenant overrides, in order."""
        return self._select(tenant_id, graph_id, node).rules

    def _select(self, tenant_id: str, graph_id: str, node: str) -> _Plan:
        key = (tenant_id, graph_id, node)
        plan = self._selected.get(key)
        if plan is None:
            rules = tuple(
                rule
                for rule in self._tenants.get(tenant_id, self._defaults)
                if rule.match.matches(tenant_id, graph_id, node)
            )
            if len(self._selected) >= _CACHE_LIMIT:
                self._selected.clear()
            plan = self._selected[key] = _Plan(rules)
        return plan

    def context(
        self,
        envelope: envelope_pb2.ExecutionEnvelope,
        *,
        lifetime: Mapping[str, float],
        tenant: Mapping[str, float],
        day: Mapping[str, float],
        elapsed_s: float,
    ) -> EvaluationContext:
        """The activation for ``envelope``, pre-filled for the names these rules use."""
        return build_context(
            envelope,
            lifetime=lifetime,
            tenant=tenant,
            day=day,
            elapsed_s=elapsed_s,
            metrics=self._metrics,
            nodes=self._nodes,
            all_nodes=self._all_nodes,
        )

    def evaluate(self, context: EvaluationContext) -> list[Verdict]:
        """The rules that fire for ``context``, in order. Pure: no I/O.

        Raises PolicyError (naming file, line and rule) if a condition fails to
        evaluate or returns a non-boolean.
        """
        plan = self._select(context.tenant_id, context.graph_id, context.node)
        if not plan.rules:
            return []
        activation = context.activation

        def full() -> Any:
            return cel.Context(variables={root: activation[root] for root in plan.roots})

        try:
            variables = {var: leaf.walk(activation) for var, leaf in plan.leaves}
            variables.update({root: activation[root] for root in plan.nested})
        except (KeyError, TypeError, IndexError):
            # Not shaped like build_context's activation: evaluate as written.
            return self._run(plan, None, full)
        return self._run(plan, variables, full)

    def evaluate_counters(
        self,
        envelope: envelope_pb2.ExecutionEnvelope,
        *,
        lifetime: Mapping[str, float],
        tenant: Mapping[str, float],
        day: Mapping[str, float],
        elapsed_s: float,
    ) -> list[Verdict]:
        """``evaluate(context(...))`` without building the whole activation.

        Only the leaves the selected rules read are computed, straight from the
        counters; roots a rule reads whole are built as ``context`` would.
        """
        inputs = Inputs(envelope, (lifetime, tenant, day), elapsed_s)
        header = inputs.header
        plan = self._select(header.tenant_id, header.graph_id, header.name)
        if not plan.rules:
            return []
        variables = {var: get(inputs) for var, get in plan.getters}
        if plan.nested:
            variables.update(self._views(inputs, plan.nested))

        def full() -> Any:
            return cel.Context(variables=self._views(inputs, plan.roots))

        return self._run(plan, variables, full)

    def _views(self, inputs: Inputs, roots: Iterable[str]) -> dict[str, Any]:
        return root_views(
            inputs, roots, metrics=self._metrics, nodes=self._nodes, all_nodes=self._all_nodes
        )

    def _run(
        self, plan: _Plan, variables: dict[str, Any] | None, full: Callable[[], Any]
    ) -> list[Verdict]:
        """Evaluate ``plan`` on ``variables`` (its leaves and nested roots), converted
        into CEL values once.

        ``full()`` gives the whole activation. It is built only when a condition
        fails, to evaluate that condition as written (so the error reads as
        written, and the rewrite never decides what the written condition would
        not), for a probe the rewrite left out, or when ``variables`` is None:
        then every condition is evaluated as written.
        """
        whole: Any = None

        def activation() -> Any:
            nonlocal whole
            if whole is None:
                whole = full()
            return whole

        if variables is None:
            context = activation()
            return [
                self._verdict(rule, rule.condition.observe(context))
                for rule in plan.rules
                if self._written(rule, context)
            ]
        context = cel.Context(variables=variables)
        verdicts: list[Verdict] = []
        for rule, program in plan.programs:
            started = time.perf_counter()
            try:
                fired = program.execute(context)
            except Exception:  # reported below, as the written condition fails
                fired = None
            elapsed = time.perf_counter() - started
            if elapsed > _cost.EVALUATION_TIME_LIMIT_S:  # see _cost: a policy error
                raise PolicyError(
                    f"condition evaluation took {elapsed:.2f} s, over the "
                    f"{_cost.EVALUATION_TIME_LIMIT_S} s limit",
                    file=rule.file,
                    line=rule.condition_line,
                    rule=rule.name,
                )
            if fired is True:
                observed = rule.condition.observe_flat(variables, context, activation)
            elif fired is False:
                continue
            elif self._written(rule, activation()):  # raises if the written one fails too
                _disagree(rule)
                observed = rule.condition.observe(activation())
            else:
                _disagree(rule)
                continue
            verdicts.append(self._verdict(rule, observed))
        return verdicts

    @staticmethod
    def _written(rule: Rule, context: Any) -> bool:
        """The written condition on the whole activation; PolicyError if it fails."""
        try:
            return rule.condition.evaluate(context)
        except ConditionError as exc:
            raise PolicyError(
                f"condition failed: {exc}",
                file=rule.file,
                line=rule.condition_line,
                rule=rule.name,
            ) from exc

    def _verdict(self, rule: Rule, observed: dict[str, Any]) -> Verdict:
        return Verdict(
            rule=rule.name,
            action=rule.action,
            scope=rule.scope,
            message=rule.message,
            policy_version=self._version,
            observed=observed,
        )


def _disagree(rule: Rule) -> None:
    logger.warning(
        "%s line %d, rule %r: the rewritten condition failed where the written one "
        "did not; used the written one",
        rule.file,
        rule.condition_line,
        rule.name,
    )


class _Plan:
    """The rules for one (tenant, graph, node) and what they read, worked out once."""

    __slots__ = ("getters", "leaves", "nested", "programs", "roots", "rules")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.programs = tuple(
            (rule, rule.condition.flat_program or rule.condition.program) for rule in rules
        )
        leaves: dict[str, Leaf] = {}
        nested: set[str] = set()
        for rule in rules:
            leaves.update(rule.condition.leaves)
            nested |= rule.condition.nested
        self.leaves = tuple(leaves.items())
        self.getters = tuple((var, leaf.getter) for var, leaf in self.leaves)
        self.nested = tuple(sorted(nested))
        self.roots = tuple(sorted(frozenset[str]().union(*(r.condition.roots for r in rules))))


def check_files(paths: Sequence[str | Path]) -> list[str]:
    """Every problem in the policy files, one human-readable line each; empty if valid."""
    return [str(problem) for problem in _load(paths)[1]]


def _files(paths: Iterable[str | Path]) -> tuple[list[Path], list[PolicyError]]:
    files: list[Path] = []
    problems: list[PolicyError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(PolicyError("no such file or directory", file=str(path)))
    # A file named twice (directly and through its directory) is loaded once.
    unique: dict[Path, Path] = {}
    for file in files:
        unique.setdefault(file.resolve(), file)
    return list(unique.values()), problems


def _load(paths: Sequence[str | Path]) -> tuple[PolicySet | None, list[PolicyError]]:
    files, problems = _files(paths)
    digest = hashlib.sha256()
    documents: list[PolicyDocument] = []
    for path in files:
        try:
            data = path.read_bytes()
            text = _yaml.decode(data)
        except OSError as exc:
            problems.append(PolicyError(f"cannot read: {exc}", file=str(path)))
            continue
        except _yaml.YAMLProblem as exc:
            problems.append(PolicyError(exc.message, file=str(path), line=exc.line))
            continue
        # Length-prefixed so that moving bytes between files changes the hash.
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
        document, found = parse_policy_file(str(path), text)
        problems.extend(found)
        if document is not None:
            documents.append(document)
    defaults, tenants, found = _assemble(documents)
    problems.extend(found)
    if problems:
        return None, problems
    return PolicySet(digest.hexdigest()[:12], [str(f) for f in files], defaults, tenants), []


def _assemble(
    documents: Sequence[PolicyDocument],
) -> tuple[list[Rule], dict[str, list[Rule]], list[PolicyError]]:
    """Apply tenant overrides: a same-named rule replaces the default in place,
    ``disable`` drops defaults, new rules follow the defaults."""
    problems: list[PolicyError] = []
    defaults: dict[str, Rule] = {}
    for document in documents:
        if document.tenant is None:
            for rule in document.rules:
                _add(defaults, rule, problems)

    tenants: dict[str, list[Rule]] = {}
    overrides: dict[str, dict[str, Rule]] = {}
    disabled: dict[str, set[str]] = {}
    for document in documents:
        tenant = document.tenant
        if tenant is None:
            continue
        own = overrides.setdefault(tenant, {})
        off = disabled.setdefault(tenant, set())
        for name, line in document.disable:
            where: dict[str, Any] = {"file": document.file, "line": line, "rule": name}
            if name not in defaults:
                problems.append(PolicyError("disables a rule that is not a default rule", **where))
            elif name in off:
                problems.append(PolicyError(f"disabled twice for tenant {tenant!r}", **where))
            off.add(name)
        for rule in document.rules:
            _add(own, rule, problems)
    for tenant, own in overrides.items():
        off = disabled[tenant]
        for name in sorted(off & own.keys()):
            rule = own[name]
            problems.append(
                PolicyError(
                    f"both disabled and overridden for tenant {tenant!r}",
                    file=rule.file,
                    line=rule.line,
                    rule=name,
                )
            )
        tenants[tenant] = [own.get(r.name, r) for r in defaults.values() if r.name not in off]
        tenants[tenant].extend(r for r in own.values() if r.name not in defaults)
    return list(defaults.values()), tenants, problems


def _add(rules: dict[str, Rule], rule: Rule, problems: list[PolicyError]) -> None:
    first = rules.get(rule.name)
    if first is not None:
        problems.append(
            PolicyError(
                f"duplicate rule name (first defined in {first.file} line {first.line})",
                file=rule.file,
                line=rule.line,
                rule=rule.name,
            )
        )
    else:
        rules[rule.name] = rule
