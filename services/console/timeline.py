"""The timeline: one row per branch, one bar per execution, as an SVG picture.

A branch is an execution's stack of fan-out frames, so the rows of one fan-out
sit side by side in time (parallelism), and the join Plan lands back on the
parent's row with a connector from each branch's last bar (the join). Retried
attempts are their own bars; a question to a person is a hatched span from
the asking attempt to the run that got the answer (or to now); guardrail
decisions are red marks on the row of the execution they judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape

from .models import EventOut, ExecutionOut

ROW_H, LABEL_W, PLOT_W, TOP = 28, 170, 820, 26
BAR_FILL = {
    "SUCCEEDED": "#5cb870",
    "FAILED": "#d9534f",
    "TIMED_OUT": "#d9534f",
    "RETRYING": "#f0ad4e",
    "WAITING": "#e0c341",
}
Branch = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Row:
    key: Branch
    label: str
    executions: list[ExecutionOut]


def _key(e: ExecutionOut) -> Branch:
    return tuple((b.fanout_id, b.index) for b in e.branch)


def rows(executions: list[ExecutionOut]) -> list[Row]:
    """Branches in the order their first execution was recorded, each under its parent."""
    by_key: dict[Branch, list[ExecutionOut]] = {}
    for e in executions:
        by_key.setdefault(_key(e), []).append(e)
    for key in list(by_key):  # a nested branch's parents get rows even if empty
        for depth in range(len(key)):
            by_key.setdefault(key[:depth], [])
    first_seen = {key: min((e.seq for e in es), default=0) for key, es in by_key.items()}

    def sort_key(key: Branch) -> tuple[tuple[int, int], ...]:
        return tuple((first_seen[key[: i + 1]], index) for i, (_, index) in enumerate(key))

    out = []
    for key in sorted(by_key, key=sort_key):
        es = by_key[key]
        if not key:
            label = "main"
        else:
            head = es[0].name if es else "branch"
            width = es[0].branch[-1].width if es else 0
            label = f"{'  ' * (len(key) - 1)}↳ {head} [{key[-1][1] + 1}/{width}]"
        out.append(Row(key, label, es))
    return out


def _start(e: ExecutionOut) -> datetime | None:
    return e.started_at or e.created_at


def render(
    executions: list[ExecutionOut],
    events: list[EventOut],
    *,
    answered_by: dict[str, str],
    dispatched_by: dict[str, str],
    now: datetime,
    running: bool,
) -> str:
    """``answered_by``: WAITING exec id -> exec id of the run that got the answer;
    ``dispatched_by``: input id -> exec id whose routing dispatched it."""
    table = rows(executions)
    times = [t for e in executions for t in (_start(e), e.finished_at) if t is not None]
    times += [ev.created_at for ev in events if ev.created_at is not None]
    if not times:
        return '<p class="empty">No executions recorded yet.</p>'
    t0 = min(times)
    t1 = now if running else max(times)
    span = max((t1 - t0).total_seconds(), 1e-3)

    def x(t: datetime) -> float:
        return LABEL_W + (t - t0).total_seconds() / span * PLOT_W

    row_of = {e.exec_id: i for i, r in enumerate(table) for e in r.executions}
    by_id = {e.exec_id: e for e in executions}
    height = TOP + len(table) * ROW_H + 10
    width = LABEL_W + PLOT_W + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" data-rows="{len(table)}" '
        f'data-bars="{len(executions)}">',
        '<defs><pattern id="wait" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="3" height="6" fill="#e0c341"/>'
        "</pattern></defs>",
    ]
    for tick in range(5):
        tx = LABEL_W + tick * PLOT_W / 4
        out.append(
            f'<line x1="{tx}" y1="{TOP - 6}" x2="{tx}" y2="{height - 6}" stroke="#ddd"/>'
            f'<text x="{tx + 2}" y="{TOP - 10}" font-size="10" fill="#777">'
            f"+{span * tick / 4:.3g}s</text>"
        )
    for i, row in enumerate(table):
        y = TOP + i * ROW_H
        out.append(
            f'<g class="row" data-branch="{escape(row.label.strip())}" '
            f'data-bars="{len(row.executions)}">'
            f'<text x="4" y="{y + 17}" font-size="11" xml:space="preserve">'
            f"{escape(row.label)}</text>"
            f'<line x1="{LABEL_W}" y1="{y + ROW_H}" x2="{LABEL_W + PLOT_W}" y2="{y + ROW_H}" '
            f'stroke="#f0f0f0"/></g>'
        )
    # Fan-out and join connectors first, so the bars draw over them.
    for e in executions:
        start = _start(e)
        parents = set(e.parent_exec_ids)
        if e.input_id in dispatched_by:
            parents.add(dispatched_by[e.input_id])
        for parent_id in sorted(parents):
            parent = by_id.get(parent_id)
            if e.attempt > 1 or parent is None or start is None:
                continue
            if row_of[parent_id] == row_of[e.exec_id]:
                continue
            pend = parent.finished_at or _start(parent)
            if pend is None:
                continue
            y1 = TOP + row_of[parent_id] * ROW_H + ROW_H / 2
            y2 = TOP + row_of[e.exec_id] * ROW_H + ROW_H / 2
            out.append(
                f'<path class="link" d="M{x(pend)},{y1} L{x(start)},{y2}" stroke="#9aa" '
                f'stroke-width="1" fill="none"/>'
            )
    for e in executions:
        start, end = _start(e), e.finished_at or (now if running else None)
        if start is None:
            continue
        end = end or start
        y = TOP + row_of[e.exec_id] * ROW_H + 5
        w = max(x(end) - x(start), 2.0)
        fill = BAR_FILL.get(e.status, "#999")
        tip = (
            f"{e.name} #{e.iteration} attempt {e.attempt}: {e.status.lower()}, "
            f"{(end - start).total_seconds() * 1000:.0f} ms"
        )
        if e.telemetry.tokens_in or e.telemetry.tokens_out:
            tip += f", {e.telemetry.tokens_in + e.telemetry.tokens_out} tokens"
        if e.error:
            tip += f" — {e.error_type}: {e.error}"
        out.append(
            f'<a href="/executions/{escape(e.exec_id)}">'
            f'<rect class="bar" data-exec="{escape(e.exec_id)}" '
            f'data-name="{escape(e.name)}" data-status="{e.status}" x="{x(start):.1f}" y="{y}" '
            f'width="{w:.1f}" height="{ROW_H - 10}" rx="2" fill="{fill}" '
            f'stroke="{"#333" if e.kind == "plan" else "none"}">'
            f"<title>{escape(tip)}</title></rect></a>"
        )
        if e.status == "WAITING":
            answer = by_id.get(answered_by.get(e.exec_id, ""))
            asked_until = _start(answer) if answer is not None else None
            until = asked_until or (now if running else end)
            if until > end:
                out.append(
                    f'<rect class="human-wait" data-exec="{escape(e.exec_id)}" x="{x(end):.1f}" '
                    f'y="{y + 3}" width="{max(x(until) - x(end), 2.0):.1f}" height="{ROW_H - 16}" '
                    f'fill="url(#wait)" stroke="#b9a030"><title>waiting for a person: '
                    f"{escape(e.human_prompt)}</title></rect>"
                )
    for ev in events:
        if ev.kind != "guardrail" or ev.created_at is None:
            continue
        exec_id = str(ev.body.get("exec_id", ""))
        i = row_of.get(exec_id, 0)
        gx, gy = x(ev.created_at), TOP + i * ROW_H + 3
        tip = f"{ev.body.get('rule', '')}: {ev.body.get('action', '')} {ev.body.get('message', '')}"
        out.append(
            f'<path class="guardrail" data-exec="{escape(exec_id)}" '
            f'd="M{gx - 5},{gy} L{gx + 5},{gy} L{gx},{gy + 9} z" fill="#c0392b">'
            f"<title>{escape(tip)}</title></path>"
        )
    out.append("</svg>")
    return "".join(out)
