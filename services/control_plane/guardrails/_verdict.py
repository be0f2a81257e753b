"""A fired rule, as the control plane records it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tickrail.sdk.pb import envelope_pb2

from ._model import SEVERITY


@dataclass(frozen=True)
class Verdict:
    """One rule whose condition held for an execution."""

    rule: str
    action: str
    scope: str
    message: str
    policy_version: str
    #: The leaf values the condition read, keyed by the path as written
    #: (``lifetime.sum.tokens_used``); numbers, strings and booleans.
    observed: dict[str, Any] = field(default_factory=dict)

    def to_proto(self, exec_id: str) -> envelope_pb2.GuardrailDecision:
        """Numbers go to ``observed``; strings and booleans to ``observed_json``."""
        numbers = {
            k: float(v)
            for k, v in self.observed.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        others = {k: v for k, v in self.observed.items() if k not in numbers}
        return envelope_pb2.GuardrailDecision(
            exec_id=exec_id,
            rule=self.rule,
            policy_version=self.policy_version,
            action=self.action,
            message=self.message,
            observed=numbers,
            scope=self.scope,
            observed_json=json.dumps(others, sort_keys=True) if others else "",
        )


def strongest(verdicts: Iterable[Verdict]) -> Verdict | None:
    """The verdict the control plane acts on: ABORT > PAUSE > REJECT, first wins a tie."""
    best: Verdict | None = None
    for verdict in verdicts:
        if best is None or SEVERITY[verdict.action] > SEVERITY[best.action]:
            best = verdict
    return best
