"""Guardrail policies: YAML rules with CEL conditions over usage aggregates.

The control plane makes one call per execution, before routing it::

    guardrails = Guardrails(PolicyWatcher(["policies/"]), kv)
    verdicts = await guardrails.check(envelope, lifetime_started_at=started)
    decision = strongest(verdicts)  # ABORT_LIFETIME > PAUSE_LIFETIME > REJECT_EXECUTION

Every verdict is recorded (``Verdict.to_proto``); the strongest is applied.
File format, activation and key layout: docs/policies.md.
"""

from ._aggregates import (
    BUILTIN_METRICS,
    DAY_TTL_S,
    lifetime_key,
    rebuild_lifetime_aggregates,
    rebuild_tenant_aggregates,
    tenant_day_key,
    tenant_key,
)
from ._context import EvaluationContext
from ._engine import Guardrails, Judged, what_if
from ._model import (
    ABORT_LIFETIME,
    ACTIONS,
    PAUSE_LIFETIME,
    REJECT_EXECUTION,
    SCOPES,
    SEVERITY,
    Match,
    Rule,
)
from ._policyset import PolicySet, check_files
from ._verdict import Verdict, strongest
from ._watcher import PolicyWatcher

__all__ = [
    "ABORT_LIFETIME",
    "ACTIONS",
    "BUILTIN_METRICS",
    "DAY_TTL_S",
    "PAUSE_LIFETIME",
    "REJECT_EXECUTION",
    "SCOPES",
    "SEVERITY",
    "EvaluationContext",
    "Guardrails",
    "Judged",
    "Match",
    "PolicySet",
    "PolicyWatcher",
    "Rule",
    "Verdict",
    "check_files",
    "lifetime_key",
    "rebuild_lifetime_aggregates",
    "rebuild_tenant_aggregates",
    "strongest",
    "tenant_day_key",
    "tenant_key",
    "what_if",
]
