"""``tickrail new`` makes a project whose tests pass as is; ``tickrail dev`` reloads on change.

Both run the real command in a subprocess with this environment (nothing is
installed). The dev tests wait on what the command prints, with generous
deadlines, never on fixed sleeps.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TICKRAIL = str(Path(sys.executable).with_name("tickrail"))
DEADLINE_S = 120


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_new_creates_a_project_whose_tests_pass(tmp_path: Path) -> None:
    done = subprocess.run(
        [TICKRAIL, "new", "my-agent"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    project = tmp_path / "my-agent"
    for relative in (
        "pyproject.toml",
        "tickrail.yaml",
        "policies/guardrails.yaml",
        "src/my_agent/graph.py",
        "tests/test_graph.py",
        "Dockerfile",
        "README.md",
    ):
        assert (project / relative).is_file(), relative
    pyproject = (project / "pyproject.toml").read_text()
    assert 'dependencies = ["tickrail", "pytest>=8"]' in pyproject
    assert 'name = "my-agent"' in pyproject
    dockerfile = (project / "Dockerfile").read_text()
    assert "--chown=10001:10001 src/my_agent /app/my_agent" in dockerfile  # the chart's uid
    assert 'CMD ["executor", "--graph", "my_agent.graph:graph"]' in dockerfile
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout
    # The graph draws, and it is a Task and Plan graph with a fan-out and join.
    drawn = subprocess.run(
        [TICKRAIL, "graph", "src/my_agent/graph.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        drawn.returncode == 0 and "-.->|parallel|" in drawn.stdout and "==>|join|" in drawn.stdout
    )


@pytest.mark.parametrize("name", ["9lives", "has space", "tickrail", "class"])
def test_new_refuses_bad_names(tmp_path: Path, name: str) -> None:
    done = subprocess.run(
        [TICKRAIL, "new", name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert repr(name) in done.stderr
    assert not (tmp_path / name).exists()


def test_new_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mine.txt").write_text("keep me")
    done = subprocess.run(
        [TICKRAIL, "new", "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "not empty" in done.stderr
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["mine.txt"]


GRAPH = """
import pathlib
from tickrail import AgentGraph, Task, final

HERE = pathlib.Path(__file__).parent


class Answer(Task):
    def run(self, ctx):
        gate = HERE / "gate"
        while {wait} and not gate.exists():  # in-flight until the test opens the gate
            import time; time.sleep(0.05)
        return "{version}"


graph = AgentGraph("dev", version="1.0.0", entry="answer", nodes=[Answer()],
                   edges=[final("answer")])
"""


class Dev:
    """A running ``tickrail dev``; ``expect`` waits for a line containing some text."""

    def __init__(self, folder: Path, *args: str) -> None:
        argv = args or ("graph.py", "--input", "null", "--profile", "test")
        self.proc = subprocess.Popen(
            [TICKRAIL, "dev", *argv],
            cwd=folder,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def expect(self, text: str) -> list[str]:
        """Lines up to and including the first that contains ``text``."""
        deadline = time.monotonic() + DEADLINE_S
        got: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            got.append(line)
            self.seen.append(line)
            if text in line:
                return got
        raise AssertionError(f"no line with {text!r} in time; saw:\n{''.join(self.seen)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout=DEADLINE_S)
        self.reader.join(timeout=DEADLINE_S)  # it ends at the pipe's end
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


@pytest.fixture
def dev_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "app"
    folder.mkdir()
    yield folder


def write(path: Path, text: str) -> None:
    # Bump the mtime past the old one even on a coarse-grained filesystem.
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    stamp = max(time.time_ns(), old + 2_000_000_000)
    os.utime(path, ns=(stamp, stamp))


def test_dev_reruns_the_graph_when_its_code_changes(dev_folder: Path) -> None:
    write(dev_folder / "graph.py", GRAPH.format(version="v1", wait=False))
    dev = Dev(dev_folder)
    try:
        dev.expect('output "v1"')
        dev.expect("waiting for a change")
        write(dev_folder / "graph.py", GRAPH.format(version="v2", wait=False))
        dev.expect("graph.py changed; rerunning")
        dev.expect('output "v2"')
    finally:
        code = dev.stop()
    assert code == 0


def test_dev_lets_in_flight_work_finish_before_reloading(dev_folder: Path) -> None:
    write(dev_folder / "graph.py", GRAPH.format(version="old", wait=True))
    dev = Dev(dev_folder)
    try:
        dev.expect("-> answer")  # the Task is running, held at the gate
        write(dev_folder / "graph.py", GRAPH.format(version="new", wait=False))
        dev.expect("rerunning when the running lifetime ends")
        (dev_folder / "gate").write_text("open")
        before = dev.expect('output "')
        assert 'output "old"' in before[-1]  # the in-flight run finished on the old code
        dev.expect('output "new"')
    finally:
        code = dev.stop()
    assert code == 0


def owner_pid(folder: Path, other_than: int = 0) -> int:
    """Wait until an owner (not ``other_than``) serves the folder's state; its pid."""
    info = folder / ".tickrail" / "owner.json"
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            data = json.loads(info.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("socket") and data.get("pid") not in (None, other_than):
            return int(data["pid"])
        time.sleep(0.1)  # polling for the owner to come up, not a fixed wait
    raise AssertionError(f"no owner came up in {folder}")


def run_via_owner(folder: Path) -> str:
    done = subprocess.run(
        [TICKRAIL, "run", "graph.py", "--json", "--quiet"],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["output"]["value"])


def test_dev_without_input_runs_an_owner_that_runs_fresh_code(dev_folder: Path) -> None:
    write(dev_folder / "graph.py", GRAPH.format(version="v1", wait=False))
    dev = Dev(dev_folder, "graph.py", "--no-console")
    try:
        first = owner_pid(dev_folder)
        assert run_via_owner(dev_folder) == "v1"
        assert owner_pid(dev_folder) == first  # the run went through dev's owner
        write(dev_folder / "graph.py", GRAPH.format(version="v2", wait=False))
        dev.expect("restarting the owner")
        owner_pid(dev_folder, other_than=first)
        assert run_via_owner(dev_folder) == "v2"
    finally:
        code = dev.stop()
    assert code == 0


def test_dev_restarts_its_owner_only_when_no_lifetime_runs(dev_folder: Path) -> None:
    write(dev_folder / "graph.py", GRAPH.format(version="old", wait=True))
    dev = Dev(dev_folder, "graph.py", "--no-console")
    run: subprocess.Popen[str] | None = None
    try:
        first = owner_pid(dev_folder)
        run = subprocess.Popen(
            [TICKRAIL, "run", "graph.py", "--json", "--quiet"],
            cwd=dev_folder,
            env=clean_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_for_running(dev_folder)
        write(dev_folder / "graph.py", GRAPH.format(version="new", wait=False))
        dev.expect("restarting when no lifetime runs")
        assert owner_pid(dev_folder) == first  # still the old owner: work is in flight
        (dev_folder / "gate").write_text("open")
        out, _ = run.communicate(timeout=DEADLINE_S)
        assert run.returncode == 0 and json.loads(out)["output"]["value"] == "old"
        dev.expect("restarting the owner")
        owner_pid(dev_folder, other_than=first)
        assert run_via_owner(dev_folder) == "new"
    finally:
        (dev_folder / "gate").write_text("open")
        if run is not None and run.poll() is None:
            run.communicate(timeout=DEADLINE_S)
        code = dev.stop()
    assert code == 0


def wait_for_running(folder: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        listed = subprocess.run(
            [TICKRAIL, "lifetimes", "list", "--status", "RUNNING", "--json"],
            cwd=folder,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
        if listed.returncode == 0 and json.loads(listed.stdout or "[]"):
            return
        time.sleep(0.1)
    raise AssertionError("the lifetime never showed as RUNNING")
