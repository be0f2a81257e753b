"""The embedded state directory has one owner; other commands are its clients.

Each test runs real `tickrail` processes on one state directory: a run that is
killed, a second terminal that steers or watches, a background owner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GRAPH = str(Path(__file__).with_name("owner_graph.py"))
EXAMPLES = ROOT / "examples"
WAIT_S = 60.0  # generous: a loaded machine is slow, and every wait ends on a condition


def tickrail(home: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickrail.services.cli.main", *argv],
        cwd=home,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(home: Path, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tickrail.services.cli.main", *argv],
        cwd=home,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}


def until(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode in (0, 1, 3), result.stderr
    return json.loads(result.stdout)


def only_lifetime(home: Path) -> str:
    listed = as_json(tickrail(home, "lifetimes", "list", "--json"))
    assert len(listed) == 1, listed
    return str(listed[0]["lifetime_id"])


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "gate").mkdir()
    yield tmp_path


def gate_input(home: Path) -> str:
    return json.dumps({"dir": str(home / "gate")})


def started(home: Path, n: int = 1) -> bool:
    return (home / "gate" / f"started-{n}").exists()


def one_record_per_execution(shown: dict[str, Any]) -> None:
    keys = [
        (e["header"]["name"], e["header"].get("iteration"), e["header"].get("input_id"))
        for e in shown["executions"]
    ]
    assert len(keys) == len(set(keys)), keys


def test_a_killed_run_is_continued_by_resume_with_one_record_per_execution(home: Path) -> None:
    run = start(home, "run", GRAPH, "--input", gate_input(home), "--quiet")
    try:
        until(lambda: started(home), "the Task to start")
        lifetime_id = only_lifetime(home)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=WAIT_S)
    finally:
        run.kill()
        run.communicate()
    shown = as_json(tickrail(home, "lifetimes", "show", lifetime_id, "--json"))
    assert shown["status"] == "RUNNING"  # nobody finished it: the owner died
    (home / "gate" / "release").write_text("go")
    resumed = tickrail(home, "lifetimes", "resume", lifetime_id, "--json", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "COMPLETED"
    assert "Traceback" not in resumed.stderr
    shown = as_json(tickrail(home, "lifetimes", "show", lifetime_id, "--json"))
    assert [e["header"]["name"] for e in shown["executions"]] == ["decide", "gate", "decide"]
    one_record_per_execution(shown)
    replay = tickrail(home, "replay", lifetime_id)
    assert replay.returncode == 0 and replay.stdout.startswith("OK"), replay.stdout


def test_a_second_terminal_aborts_a_running_lifetime_through_its_owner(home: Path) -> None:
    run = start(home, "run", GRAPH, "--input", gate_input(home), "--json", "--quiet")
    try:
        until(lambda: started(home), "the Task to start")
        lifetime_id = only_lifetime(home)
        owner = json.loads((home / ".tickrail" / "owner.json").read_text())
        assert owner["pid"] == run.pid
        aborted = tickrail(home, "lifetimes", "abort", lifetime_id, "--reason", "second terminal")
        assert aborted.returncode == 0, aborted.stderr
        assert "aborted" in aborted.stdout and "second terminal" in aborted.stdout
        out, err = run.communicate(timeout=WAIT_S)
    finally:
        run.kill()
    assert run.returncode == 1, err
    assert json.loads(out)["status"] == "ABORTED"
    shown = as_json(tickrail(home, "lifetimes", "show", lifetime_id, "--json"))
    terminal = [e for e in shown["events"] if e["kind"] in ("completed", "failed", "aborted")]
    assert [e["kind"] for e in terminal] == ["aborted"]
    assert tickrail(home, "replay", lifetime_id).returncode == 0


def test_a_second_terminal_watches_a_running_lifetime_to_its_end(home: Path) -> None:
    run = start(home, "run", GRAPH, "--input", gate_input(home), "--quiet")
    try:
        until(lambda: started(home), "the Task to start")
        lifetime_id = only_lifetime(home)
        watch = start(home, "lifetimes", "watch", lifetime_id)
        # released whenever: before or after the watcher has caught up, it must see the end
        (home / "gate" / "release").write_text("go")
        out, err = watch.communicate(timeout=WAIT_S)
        assert watch.returncode == 0, err
        assert "COMPLETED" in out and "gate" in out
        run.communicate(timeout=WAIT_S)
        assert run.returncode == 0
    finally:
        run.kill()


def test_two_runs_at_once_share_one_owner_and_both_complete(home: Path) -> None:
    first = start(home, "run", GRAPH, "--input", gate_input(home), "--json", "--quiet")
    try:
        until(lambda: started(home), "the first Task to start")
        second = start(home, "run", str(EXAMPLES / "hello.yaml"), "--json", "--quiet")
        out2, err2 = second.communicate(timeout=WAIT_S)
        assert second.returncode == 0, err2
        assert json.loads(out2)["status"] == "COMPLETED"
        # the second was a client: the first still owns the directory
        owner = json.loads((home / ".tickrail" / "owner.json").read_text())
        assert owner["pid"] == first.pid
        (home / "gate" / "release").write_text("go")
        _, err1 = first.communicate(timeout=WAIT_S)
        assert first.returncode == 0, err1
    finally:
        first.kill()
    assert not (home / ".tickrail" / "owner.json").exists()  # the owner let go


def test_run_timeout_aborts_with_reason_timeout_and_exit_4(home: Path) -> None:
    result = tickrail(home, "run", GRAPH, "--input", gate_input(home), "--timeout", "1")
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "--timeout 1s passed" in result.stdout and "reason: timeout" in result.stdout
    lifetime_id = only_lifetime(home)
    shown = as_json(tickrail(home, "lifetimes", "show", lifetime_id, "--json"))
    assert shown["status"] == "ABORTED"
    aborted = [e for e in shown["events"] if e["kind"] == "aborted"]
    assert len(aborted) == 1 and aborted[0]["aborted"]["reason"] == "timeout"
    assert tickrail(home, "replay", lifetime_id).returncode == 0


def test_run_detach_keeps_running_in_a_background_owner(home: Path) -> None:
    detached = tickrail(home, "run", GRAPH, "--input", gate_input(home), "--detach")
    assert detached.returncode == 0, detached.stderr
    lifetime_id = detached.stdout.split()[0]
    until(lambda: started(home), "the Task to start in the background owner")
    owner = json.loads((home / ".tickrail" / "owner.json").read_text())
    assert "owner" in owner["command"]
    (home / "gate" / "release").write_text("go")
    watched = tickrail(home, "lifetimes", "watch", lifetime_id)
    assert watched.returncode == 0 and "COMPLETED" in watched.stdout, watched.stderr
    # idle for a while, the background owner exits and lets go of the directory
    until(
        lambda: not (home / ".tickrail" / "owner.json").exists(),
        "the background owner to exit",
        timeout=WAIT_S,
    )


def test_a_human_answer_that_is_not_json_is_taken_as_text(home: Path) -> None:
    run = tickrail(home, "run", str(EXAMPLES / "human_review.py"), "--quiet")
    assert run.returncode == 3, run.stderr
    lifetime_id = only_lifetime(home)
    # several prompts wait: the hint names --exec and --input for each
    hints = [line for line in run.stdout.splitlines() if "continue with" in line]
    assert len(hints) == 2 and all("--exec" in h and "--input" in h for h in hints), run.stdout
    shown = as_json(tickrail(home, "lifetimes", "show", lifetime_id, "--json"))
    waiting = [
        e["header"]["exec_id"]
        for e in shown["executions"]
        if e["header"]["status"] == "EXECUTION_STATUS_WAITING"
    ]
    for exec_id in waiting:
        answered = tickrail(
            home, "lifetimes", "resume", lifetime_id, "--exec", exec_id, "--input", "approve"
        )
        assert answered.returncode in (0, 3), answered.stderr
    assert answered.returncode == 0
    shown = as_json(tickrail(home, "lifetimes", "show", lifetime_id, "--json"))
    assert shown["status"] == "COMPLETED"
    replay = tickrail(home, "replay", lifetime_id)
    assert replay.returncode == 0, replay.stdout
