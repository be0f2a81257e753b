"""Where the CLI writes for people: a rich Console per stream, colour only when fitting.

Colour and styles are used only on a terminal and never with ``NO_COLOR`` set
(https://no-color.org; rich honours it, and ``FORCE_COLOR`` the other way).
Piped output is plain text at full width, so ``grep``/``awk`` see whole lines
rather than rows wrapped at 80 columns. Text is printed as text: ``°`` stays
``°``.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TextIO

from rich.console import Console
from rich.text import Text

#: Lifetime and execution status words, and the style each gets on a terminal.
STATUS_STYLES = {
    "COMPLETED": "green",
    "SUCCEEDED": "green",
    "RUNNING": "cyan",
    "PAUSED": "yellow",
    "WAITING": "yellow",
    "RETRYING": "yellow",
    "FAILED": "bold red",
    "TIMED_OUT": "bold red",
    "ABORTED": "red",
    "GUARDRAIL": "magenta",
    "REJECTED": "magenta",
}

PIPE_WIDTH = 10_000  # no wrapping when nobody reads it on a screen


def console(stream: TextIO | None = None, width: int | None = None) -> Console:
    """A Console for ``stream`` (stdout by default), read when called (tests swap streams).

    ``width`` overrides the terminal's, e.g. so a table wider than the screen
    is printed whole (the terminal wraps it) instead of with cut-off ids.
    """
    out = sys.stdout if stream is None else stream
    terminal = _is_terminal(out)
    return Console(
        file=out,
        no_color=bool(os.environ.get("NO_COLOR")),
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=not terminal,
        width=width if width is not None else (None if terminal else PIPE_WIDTH),
        force_terminal=True if os.environ.get("FORCE_COLOR") else None,
    )


def styled(console: Console) -> bool:
    """Whether this console shows styles (a terminal, colour not turned off)."""
    return console.is_terminal and console.color_system is not None and not console.no_color


def status_text(word: str) -> Text:
    return Text(word, style=STATUS_STYLES.get(word, ""))


def _is_terminal(stream: TextIO) -> bool:
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Lines:
    """Writes whole lines to one stream, status words coloured when ``styled``."""

    _WORDS = re.compile(r"\b(" + "|".join(sorted(STATUS_STYLES, key=len, reverse=True)) + r")\b")

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._console: Console | None = None
        self._styled: bool | None = None

    def write(self, text: str) -> None:
        if self._styled is None:
            self._console = console(self.stream)
            self._styled = styled(self._console)
        if not self._styled or self._console is None:
            print(text, file=self.stream, flush=True)
            return
        line = Text(text)
        for match in self._WORDS.finditer(text):
            line.stylize(STATUS_STYLES[match.group(1)], match.start(), match.end())
        self._console.print(line, soft_wrap=True)
        self.stream.flush()
