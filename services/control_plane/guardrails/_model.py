"""The vocabulary of a policy file: actions, scopes, and the compiled Rule."""

from __future__ import annotations

from dataclasses import dataclass

from ._expressions import Condition

API_VERSION = "tickrail/v1"
KIND = "GuardrailPolicy"

REJECT_EXECUTION = "REJECT_EXECUTION"
PAUSE_LIFETIME = "PAUSE_LIFETIME"
ABORT_LIFETIME = "ABORT_LIFETIME"
ACTIONS = (REJECT_EXECUTION, PAUSE_LIFETIME, ABORT_LIFETIME)
#: Higher wins when several rules fire on one execution.
SEVERITY = {REJECT_EXECUTION: 1, PAUSE_LIFETIME: 2, ABORT_LIFETIME: 3}

SCOPES = ("execution", "lifetime", "tenant")


@dataclass(frozen=True)
class Match:
    """Which executions a rule applies to; ``None`` means any."""

    tenants: frozenset[str] | None = None
    graphs: frozenset[str] | None = None
    nodes: frozenset[str] | None = None

    def matches(self, tenant_id: str, graph_id: str, node: str) -> bool:
        return (
            (self.tenants is None or tenant_id in self.tenants)
            and (self.graphs is None or graph_id in self.graphs)
            and (self.nodes is None or node in self.nodes)
        )


@dataclass(frozen=True)
class Rule:
    """One compiled rule, with where it was written (for errors and audits)."""

    name: str
    scope: str
    action: str
    message: str
    condition: Condition
    match: Match
    description: str
    file: str
    #: Where the rule starts, and where its condition is (runtime errors cite it).
    line: int
    condition_line: int
    #: The tenant whose override file defined the rule; ``None`` for defaults.
    tenant: str | None = None
