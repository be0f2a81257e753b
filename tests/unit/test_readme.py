"""The README's commands work as written, and its pictures match the code.

Every line of every fenced ``bash``/``sh``/``shell`` block is a command
(``&&`` chains are split, ``# comments`` dropped). Each runs with the
installed ``tickrail`` in a temporary folder holding copies of ``examples/``
and ``policies/``, so state lands in that folder's ``.tickrail/``; ``cd``
moves the folder for the commands after it. ``<lifetime-id>`` and ``ID``
stand for the lifetime most recently recorded there, ``EXEC`` for the first
execution the previous commands said waits for a person. A ``run`` or
``resume`` that stops PAUSED waiting for a person (exit 3, as the README's
human-in-the-loop walk-throughs expect) counts as success.

Not run, and why (each rule names what it matches):
- ``pip install ...``: it would change the environment this suite runs in,
  which already has tickrail installed from this checkout.
- ``./scripts/check``: the whole suite, this test included.
- long-running servers (``tickrail serve``, ``ui``, ``dev``, ``owner``,
  ``data-plane``, ``control-plane``, ``executor``): they run until stopped;
  their own tests start and stop them.
- commands with ``--server``: they need one of those servers.
A command no rule matches must exit 0; a placeholder ``<...>`` the test
does not know fails it, so new README commands get a rule or run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

SKIPS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^pip install\b"), "changes the environment the suite runs in"),
    (re.compile(r"^\./scripts/check\b"), "the whole suite, this test included"),
    (
        re.compile(r"^tickrail (serve|ui|dev|owner|data-plane|control-plane|executor)\b"),
        "a long-running server",
    ),
    (re.compile(r"--server\b"), "needs a running tickrail serve"),
]
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Command:
    text: str
    line: int

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


def blocks(kinds: set[str]) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced block whose language is in ``kinds``."""
    out: list[tuple[int, list[str]]] = []
    lang: str | None = None
    start, lines = 0, []
    for number, line in enumerate(README.read_text().splitlines(), start=1):
        if lang is None:
            fence = FENCE.match(line)
            if fence:
                lang, start, lines = fence.group(1) or "text", number + 1, []
            continue
        if line.startswith("```"):
            if lang in kinds:
                out.append((start, lines))
            lang = None
            continue
        lines.append(line)
    return out


def readme_commands() -> list[Command]:
    commands = []
    for start, lines in blocks({"bash", "sh", "shell"}):
        for offset, line in enumerate(lines):
            text = without_comment(line).strip()
            for part in filter(None, (p.strip() for p in text.split("&&"))):
                commands.append(Command(part, start + offset))
    return commands


def without_comment(line: str) -> str:
    """The line up to a shell comment: a '#' outside quotes, after a blank or at the start."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def skip_reason(command: str) -> str | None:
    for pattern, reason in SKIPS:
        if pattern.search(command):
            return reason
    return None


COMMANDS = readme_commands()


def test_the_readme_has_commands_and_every_one_is_run_or_skipped_for_a_reason() -> None:
    assert len(COMMANDS) >= 5
    ran = [c for c in COMMANDS if skip_reason(c.text) is None]
    assert any(c.text.startswith("tickrail run") for c in ran)


def test_every_readme_command_runs(tmp_path: Path) -> None:
    for folder in ("examples", "policies"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    cwd = tmp_path
    ran = 0
    waiting: list[str] = []
    for command in COMMANDS:
        if skip_reason(command.text) is not None:
            continue
        text = command.text
        if text.startswith("cd "):
            cwd = (cwd / text[3:].strip()).resolve()
            continue
        if "<lifetime-id>" in text or re.search(r"\bID\b", text):
            latest = _latest_lifetime(cwd, env)
            text = re.sub(r"\bID\b", latest, text.replace("<lifetime-id>", latest))
        if re.search(r"\bEXEC\b", text):
            assert waiting, f"{command}: no execution was waiting for a person before it"
            text = re.sub(r"\bEXEC\b", waiting[0], text)
        unknown = re.findall(r"<[a-z][a-z-]*>", text)
        assert not unknown, f"{command}: unknown placeholder {unknown}; teach test_readme.py"
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        said = done.stdout + done.stderr
        asks = re.findall(r"waiting for a person at ([^\n]+)", said)
        if asks:
            waiting = re.findall(r"(\S+\.\d+\.\d+) \(", asks[-1])
        paused_for_a_person = done.returncode == 3 and bool(asks)
        assert done.returncode == 0 or paused_for_a_person, (
            f"{command}\nexit {done.returncode}\n{done.stderr[-2000:]}"
        )
        ran += 1
    assert ran >= 5


def _latest_lifetime(cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["tickrail", "lifetimes", "list", "--json", "--limit", "1"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows, "a README command needs a lifetime, but none was recorded before it"
    return str(rows[0]["lifetime_id"])


DIAGRAMS = blocks({"mermaid"})  # those marked as generated must match the code


@pytest.mark.parametrize(("start", "block"), DIAGRAMS, ids=[f"line{s}" for s, _ in DIAGRAMS])
def test_readme_diagrams_are_the_ones_the_code_draws(start: int, block: list[str]) -> None:
    above = README.read_text().splitlines()[start - 3]  # the line before the fence
    marker = re.fullmatch(r"<!-- generated by: (tickrail graph \S+(?: --\S+ \S+)*) .*-->", above)
    if marker is None:
        pytest.skip("drawn by hand (no `<!-- generated by: tickrail graph ... -->` above it)")
    drawn = subprocess.run(
        [str(BIN / "tickrail"), *marker.group(1).split()[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert drawn.returncode == 0, drawn.stderr
    assert "\n".join(block) + "\n" == drawn.stdout, (
        f"README.md:{start}: the diagram is stale; regenerate it with `{marker.group(1)}`"
    )


def test_the_readme_names_every_core_dependency() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = README.read_text()
    paragraph = text[text.index("The core install is") :].split("\n\n")[0].lower()
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()
        assert name in paragraph, f"README's core install list does not name {name}"
