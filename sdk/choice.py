"""Is a Plan's choice legal for its graph? One check, run twice.

The executor runs it as soon as a Plan returns (the Plan's execution FAILS
with the reason, before anything is dispatched) and the control plane runs it
again before routing, since it trusts no executor. Both see the choice as the
recorded ``PlanResult``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tickrail.sdk.decision import Send, check_sends
from tickrail.sdk.pb import envelope_pb2 as pb

#: The default cap on how many Task runs one Plan execution may start (also
#: what a spec without ``max_fanout``, such as an old record, is capped at).
DEFAULT_MAX_FANOUT = 256


def sends_of(result: pb.PlanResult) -> list[pb.TaskSend]:
    """The runs a PlanResult asks for, in dispatch order (old records: by name)."""
    if result.sends:
        return list(result.sends)
    return [
        pb.TaskSend(task=name, input=result.task_inputs.get(name))
        for name in result.next_task_names
    ]


def describe(sends: Sequence[pb.TaskSend], limit: int = 8) -> str:
    names = [s.task + (f"#{s.id}" if s.id else "") for s in sends]
    shown = ", ".join(names[:limit]) + (
        f", ... ({len(names)} in all)" if len(names) > limit else ""
    )
    return f"Next([{shown}])"


def choice_problem(
    plan: str,
    result: pb.PlanResult,
    edges: Mapping[str, int],
    *,
    has_final: bool,
    max_fanout: int,
    sends: list[pb.TaskSend] | None = None,
) -> str:
    """Why this Plan's decision is illegal for the graph, or '' when it is fine.

    ``sends``: ``sends_of(result)``, when the caller has listed them already.
    """
    if result.finish:
        if not has_final:
            return (
                f"Plan {plan!r} returned Finish(...) but has no FINAL edge; add "
                f"final({plan!r}) to let it end the lifetime"
            )
        return ""
    if sends is None:
        sends = sends_of(result)
    if len(sends) == 1:
        # The common choice, one Task along one of its edges, is legal on its own:
        # no send ids to check, nothing to wait for (and no message to build).
        only = sends[0]
        if not only.id and not only.after and only.task in edges and max_fanout >= 1:
            return ""

    def refused(reason: str) -> str:
        return f"Plan {plan!r} chose {describe(sends)}: {reason}"

    if not sends:
        return refused("it chose no Task (return Finish(...) to end the lifetime)")
    unknown = sorted({s.task for s in sends if s.task not in edges})
    if unknown:
        allowed = ", ".join(f"{t} ({_edge(k)})" for t, k in edges.items()) or "none"
        return refused(
            f"{', '.join(map(repr, unknown))} is not a target of its edges; its edges "
            f"allow: {allowed}"
        )
    if len(sends) > max_fanout:
        return refused(
            f"that is {len(sends)} Task runs, over the graph's max_fanout of {max_fanout} "
            "(raise AgentGraph(max_fanout=...) or dispatch in rounds)"
        )
    structural = check_sends([Send(s.task, None, id=s.id, after=s.after) for s in sends])
    if structural:
        return refused("; ".join(structural))
    if len(sends) > 1:
        serial = sorted({s.task for s in sends if edges[s.task] != pb.EDGE_KIND_PARALLEL})
        if serial:
            return refused(
                f"{', '.join(map(repr, serial))} is reached by a NORMAL edge, and only "
                "PARALLEL edges run several Tasks (or one Task several times) at once; "
                f"declare parallel({plan!r}, [...])"
            )
    return ""


def _edge(kind: int) -> str:
    return pb.EdgeKind.Name(kind).removeprefix("EDGE_KIND_") if kind else "?"
