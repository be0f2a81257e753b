"""CLI polish: tables, colour rules, shell completion, mistyped TICKRAIL_* variables."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from tickrail.services import config
from tickrail.services.cli.main import main
from tickrail.services.cli.tables import Column, print_table
from tickrail.services.config import load_settings

TICKRAIL = str(Path(sys.executable).with_name("tickrail"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")

COLUMNS = ["lifetime", Column("status", status=True), "graph", Column("events", numeric=True)]
ROWS = [
    ["a1", "COMPLETED", "météo °C", 12],
    ["x" * 40, "FAILED", "天气预报", 3],
    ["b2", "RUNNING", "🚀 launch", 1000],
]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def render(stream: io.StringIO) -> str:
    print_table(COLUMNS, ROWS, stream)
    return stream.getvalue()


def test_piped_tables_are_plain_and_aligned_by_display_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    text = render(io.StringIO())
    assert not ANSI.search(text)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 1 + len(ROWS)
    assert "météo °C" in text and "\\u" not in text  # Unicode as text
    # Every column starts at the same screen column on every line (wide
    # characters and emoji take two cells), and numbers are right-aligned.
    header = lines[0]
    starts = [header.index(h) for h in ("status", "graph")]
    ends = cell_len(header)
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        for start, cell in zip(starts, cells[1:3], strict=True):
            assert cell_len(line[: line.index(cell)]) == start, line
        assert cell_len(line) == ends, line  # the right-aligned numbers end together
    assert all(len(line) < 200 for line in lines)  # no padding to a fake width


def test_terminal_tables_colour_statuses_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    coloured = render(Terminal())
    assert "\x1b[32mCOMPLETED" in coloured and "\x1b[1;31mFAILED" in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    plain = render(Terminal())
    assert not re.search(r"\x1b\[[0-9;]*3[0-9]m", plain)  # no colour codes at all
    assert "COMPLETED" in plain


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="2 cells for 4 columns"):
        print_table(COLUMNS, [["a", "b"]], io.StringIO())


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_subcommands_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "tickrail.bash"
    done = subprocess.run(
        [TICKRAIL, "completion", "bash"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    script.write_text(done.stdout)

    def complete(*words: str) -> list[str]:
        line = " ".join(["tickrail", *words])
        quoted = " ".join(f"'{w}'" for w in ("tickrail", *words))
        probe = (
            f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; "
            f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; "
            f"_shtab_tickrail tickrail '{words[-1]}' '{(['tickrail', *words])[-2]}'; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
        return out.stdout.split()

    assert complete("li") == ["lifetimes"]
    assert set(complete("lifetimes", "")) >= {"list", "show", "watch", "resume"}
    assert complete("graph", "--format", "") == ["mermaid", "dot", "json"]
    assert "completion" in complete("")


def test_zsh_completion_is_a_compdef(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#compdef tickrail") and "lifetimes" in out


def test_mistyped_tickrail_variables_are_named_once_with_a_hint(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "_warned", set())
    env = {
        "TICKRAIL_STORE_ULR": "sqlite:///x.db",  # mistyped
        "TICKRAIL_NOPE": "1",  # unknown, nothing close
        "TICKRAIL_TENANT": "acme",  # a setting
        "TICKRAIL_TOKEN": "t" * 20,  # read by --token-env
        "TICKRAIL_TOKEN_ACME": "t" * 20,  # a --token TENANT=VAR variable
        "TICKRAIL_CONFIG": str(tmp_path / "none.yaml"),
    }
    (tmp_path / "none.yaml").write_text("{}\n")
    with caplog.at_level(logging.WARNING, logger="tickrail.config"):
        assert load_settings(environ=env).tenant == "acme"
        load_settings(environ=env)  # warned once per process, not on every load
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "TICKRAIL_NOPE is not a tickrail setting and is ignored",
        "TICKRAIL_STORE_ULR is not a tickrail setting and is ignored; "
        "did you mean TICKRAIL_STORE_URL?",
    ]


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code in ("0", "1", "2", "3", "130"):
        assert re.search(rf"^\s+{code}\s+\S", out, re.MULTILINE), code


UNICODE_GRAPH = """
from tickrail import AgentGraph, Task, final


class Weather(Task):
    name = "weather"

    async def run(self, ctx):
        return "Zürich: 21 °C, ☀"


graph = AgentGraph("unicode", version="1.0.0", entry="weather", nodes=[Weather()],
                   edges=[final("weather")])
"""


def test_unicode_is_printed_as_text_everywhere(tmp_path: Path) -> None:
    (tmp_path / "weather.py").write_text(UNICODE_GRAPH)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}

    def tickrail(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TICKRAIL, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    run = tickrail("run", "weather.py", "--json")
    assert run.returncode == 0, run.stderr
    lifetime_id = json.loads(run.stdout)["lifetime_id"]
    shown = tickrail("lifetimes", "show", lifetime_id)
    as_json = tickrail("lifetimes", "show", lifetime_id, "--json")
    for text in (run.stdout, run.stderr, shown.stdout, as_json.stdout):
        assert "\\u" not in text, text
    assert "21 °C" in run.stderr and "21 °C" in shown.stdout and "21 °C" in as_json.stdout
    assert "Zürich: 21 °C, ☀" in run.stdout


def test_progress_colours_statuses_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickrail.sdk.pb import envelope_pb2 as pb
    from tickrail.services.cli.progress import Progress

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    event = pb.LifetimeEvent(
        lifetime_id="L", failed=pb.LifetimeFailed(exec_id="L.1.1", reason="boom")
    )
    terminal, pipe = Terminal(), io.StringIO()
    Progress(stream=terminal).on_event(event)
    Progress(stream=pipe).on_event(event)
    assert "\x1b[1;31mFAILED\x1b[0m" in terminal.getvalue()
    assert pipe.getvalue().split() == ["+", "0.000s", "FAILED", "boom"]
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    Progress(stream=plain).on_event(event)
    assert "\x1b[" not in plain.getvalue() and "FAILED" in plain.getvalue()


def test_a_table_wider_than_the_terminal_keeps_every_cell_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("TERM", "xterm-256color")
    out = render(Terminal())
    plain = ANSI.sub("", out)
    assert "x" * 40 in plain and "…" not in plain
    assert "天气预报" in plain and "🚀 launch" in plain


def test_render_table_aligns_by_display_width() -> None:
    from tickrail.services.cli.render import table

    lines = table(["node", "ms"], [["天气", "12"], ["weather", "3"]], right="<>")
    assert [cell_len(line) for line in lines] == [cell_len(lines[0])] * 3
    assert lines[1].startswith("天气     ") and lines[2].endswith(" 3")
