"""The public surface the control plane and CLI import."""

from __future__ import annotations

import inspect

import tickrail.services.control_plane.guardrails as guardrails


def test_public_names_are_curated() -> None:
    assert sorted(guardrails.__all__) == sorted(
        [
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
    )
    for name in guardrails.__all__:
        assert hasattr(guardrails, name), name


def test_facade_signatures() -> None:
    check = inspect.signature(guardrails.Guardrails.check)
    assert list(check.parameters) == ["self", "envelope", "lifetime_started_at", "now"]
    assert check.parameters["lifetime_started_at"].kind is inspect.Parameter.KEYWORD_ONLY
    assert inspect.iscoroutinefunction(guardrails.Guardrails.check)
    assert inspect.iscoroutinefunction(guardrails.what_if)
    watcher = inspect.signature(guardrails.PolicyWatcher)
    assert list(watcher.parameters) == ["paths", "interval", "on_error"]
    assert guardrails.SEVERITY["ABORT_LIFETIME"] > guardrails.SEVERITY["PAUSE_LIFETIME"]
    assert guardrails.SEVERITY["PAUSE_LIFETIME"] > guardrails.SEVERITY["REJECT_EXECUTION"]
