"""Usage as inline SVG bar charts: tokens and dollars side by side per key."""

from __future__ import annotations

from html import escape

from .models import UsageRowOut

ROW_H, LABEL_W, BAR_W = 24, 190, 300


def bars(rows: list[UsageRowOut], *, title: str) -> str:
    if not rows:
        return f'<p class="empty">No usage recorded ({escape(title)}).</p>'
    most_tokens = max(r.tokens for r in rows) or 1
    most_cost = max(r.cost_usd for r in rows) or 1.0
    width = LABEL_W + 2 * (BAR_W + 110)
    height = 30 + len(rows) * ROW_H
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'data-rows="{len(rows)}">',
        f'<text x="{LABEL_W}" y="16" font-size="12" font-weight="600">tokens</text>',
        f'<text x="{LABEL_W + BAR_W + 110}" y="16" font-size="12" font-weight="600">dollars</text>',
    ]
    for i, r in enumerate(rows):
        y = 26 + i * ROW_H
        tw = max(r.tokens / most_tokens * BAR_W, 1.0)
        cw = max(r.cost_usd / most_cost * BAR_W, 1.0)
        cx = LABEL_W + BAR_W + 110
        out.append(
            f'<g class="chart-row" data-key="{escape(r.key)}" data-tokens="{r.tokens}" '
            f'data-cost="{r.cost_usd:.6f}">'
            f'<text x="4" y="{y + 14}" font-size="11">{escape(r.key[:32])}</text>'
            f'<rect x="{LABEL_W}" y="{y + 2}" width="{tw:.1f}" height="{ROW_H - 8}" fill="#4a7fd6">'
            f"<title>{r.tokens:,} tokens ({r.tokens_in:,} in, {r.tokens_out:,} out)</title></rect>"
            f'<text x="{LABEL_W + tw + 4:.1f}" y="{y + 14}" font-size="11">{r.tokens:,}</text>'
            f'<rect x="{cx}" y="{y + 2}" width="{cw:.1f}" height="{ROW_H - 8}" fill="#3aa56b">'
            f"<title>${r.cost_usd:.6f} over {r.executions:,} executions</title></rect>"
            f'<text x="{cx + cw + 4:.1f}" y="{y + 14}" font-size="11">${r.cost_usd:.4f}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)
