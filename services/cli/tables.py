"""Tables for people: aligned columns from the widest cell, status words coloured.

On a terminal: a rich table with a ruled header and coloured statuses. Piped:
the same columns as plain, space-aligned text (a header row, then the rows),
which stays easy to ``grep``, ``sort`` and ``awk``. Column widths come from
the cells themselves, so long ids and names never break the alignment, and
East Asian wide characters and emoji count as the two cells they take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from rich import box
from rich.table import Table
from rich.text import Text

from .console_out import PIPE_WIDTH, STATUS_STYLES, console, styled


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    numeric: bool = False  # right-aligned
    status: bool = False  # coloured by STATUS_STYLES on a terminal


def print_table(
    columns: Sequence[Column | str],
    rows: Sequence[Sequence[object]],
    stream: TextIO | None = None,
) -> None:
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    out = console(stream)
    fancy = styled(out)
    table = Table(
        box=box.SIMPLE_HEAD if fancy else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if fancy else "",
        show_header=True,
        padding=(0, 2, 0, 0) if not fancy else (0, 1),
    )
    for col in cols:
        table.add_column(col.header, justify="right" if col.numeric else "left", no_wrap=True)
    for row in rows:
        if len(row) != len(cols):
            raise ValueError(f"a row has {len(row)} cells for {len(cols)} columns: {row!r}")
        cells = []
        for col, value in zip(cols, row, strict=True):
            text = "" if value is None else str(value)
            style = STATUS_STYLES.get(text, "") if col.status and fancy else ""
            cells.append(Text(text, style=style))
        table.add_row(*cells)
    needed = console(stream, width=PIPE_WIDTH).measure(table).maximum
    if needed > out.width:  # never cut ids short: let the terminal wrap the lines
        out = console(stream, width=needed)
    out.print(table)
