"""ctx.emit: a Task's partial output reaches watchers live; the result is recorded as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tickrail import AgentGraph, Task, TaskContext, final
from tickrail.sdk._payload import decode_bytes
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

TICKRAIL = str(Path(sys.executable).with_name("tickrail"))  # the installed command
GRAPH_FILE = """
from tickrail import AgentGraph, Task, final


class Write(Task):
    def run(self, ctx):  # a def Task: emits from its worker thread
        for word in ["Il ", "fait ", "21 °C"]:
            ctx.emit(word)
        ctx.emit({"progress": 1.0})
        return "done"


graph = AgentGraph("emitter", version="1.0.0", entry="write", nodes=[Write()],
                   edges=[final("write")])
"""


class Steps(Task):
    name = "steps"

    async def run(self, ctx: TaskContext) -> Any:
        for n in range(3):
            ctx.emit(f"step {n}")
        ctx.emit({"n": 3, "thread": threading.current_thread().name != ""})
        return "ok"


async def test_emitted_output_reaches_listeners_in_order_before_the_end(tmp_path: Path) -> None:
    graph = AgentGraph("e", version="1.0.0", entry="steps", nodes=[Steps()], edges=[final("steps")])
    seen: list[pb.LifetimeEvent] = []
    async with Runtime(Settings(profile="test", home=str(tmp_path)), [graph]) as rt:
        lifetime_id = await rt.start_lifetime(graph, on_event=seen.append)
        end = await rt.wait(lifetime_id, timeout=60)
        assert end.WhichOneof("kind") == "completed"
        recorded = [r.kind for r in await rt.store.events(lifetime_id)]
    kinds = [e.WhichOneof("kind") for e in seen]
    outputs = [e.output for e in seen if e.WhichOneof("kind") == "output"]
    assert [o.text for o in outputs[:3]] == ["step 0", "step 1", "step 2"]
    assert decode_bytes(outputs[3].data.content_type, outputs[3].data.inline) == {
        "n": 3,
        "thread": True,
    }
    assert [o.index for o in outputs] == [0, 1, 2, 3]
    assert max(i for i, k in enumerate(kinds) if k == "output") < kinds.index("completed")
    assert "output" not in recorded  # progress, not record: replay never sees it


def test_tickrail_run_prints_streamed_output_live(tmp_path: Path) -> None:
    (tmp_path / "emitter.py").write_text(GRAPH_FILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}
    done = subprocess.run(
        [TICKRAIL, "run", "emitter.py", "--profile", "test"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    err = done.stderr
    line = next(x for x in err.splitlines() if "> Il" in x)
    assert line.split("> ", 1)[1] == "Il fait 21 °C"  # one line, Unicode as text
    value = next(x for x in err.splitlines() if "progress" in x)
    assert json.loads(value.split("> ", 1)[1]) == {"progress": 1.0}
    assert err.index("Il fait") < err.index("COMPLETED")


GATED = """
import pathlib, time
from tickrail import AgentGraph, Task, final

GATE = pathlib.Path(__file__).with_name("gate")


class Gated(Task):
    def run(self, ctx):
        ctx.emit("before the gate")
        while not GATE.exists():
            time.sleep(0.05)
        ctx.emit("après la porte")
        return "done"


graph = AgentGraph("gated", version="1.0.0", entry="gated", nodes=[Gated()],
                   edges=[final("gated")])
"""


def test_lifetimes_watch_in_another_process_shows_output_live(tmp_path: Path) -> None:
    (tmp_path / "gated.py").write_text(GATED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}
    env["PYTHONUNBUFFERED"] = "1"
    run = subprocess.Popen(
        [TICKRAIL, "run", "gated.py", "--quiet"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watch: subprocess.Popen[str] | None = None
    try:
        lifetime_id = _first_lifetime(tmp_path, env)
        watch = subprocess.Popen(
            [TICKRAIL, "lifetimes", "watch", lifetime_id],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert watch.stdout is not None
        lines = []
        for line in watch.stdout:  # ends when the lifetime completes
            lines.append(line)
            if "-> gated" in line:  # subscribed: recorded events come after listening
                (tmp_path / "gate").write_text("open")
        assert watch.wait(timeout=120) == 0, "".join(lines)
        text = "".join(lines)
        assert "> après la porte" in text  # emitted while this process watched
        assert text.index("après la porte") < text.index("COMPLETED")
    finally:
        (tmp_path / "gate").write_text("open")
        assert run.wait(timeout=120) == 0
        if watch is not None and watch.stdout is not None:
            watch.stdout.close()


def _first_lifetime(cwd: Path, env: dict[str, str]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = subprocess.run(
            [TICKRAIL, "lifetimes", "list", "--json"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        rows = json.loads(listed.stdout) if listed.returncode == 0 and listed.stdout else []
        if rows:
            return str(rows[0]["lifetime_id"])
        time.sleep(0.1)  # polling for the run to record its start, not a fixed wait
    raise AssertionError("the run never recorded its lifetime")


PROCESS_TASK = """
from tickrail import AgentGraph, Task, final
from tickrail.sdk.context import current_context


class Crunch(Task):
    pool = "process"

    def run(self, ctx):
        ctx.emit("from a worker process")  # nothing to stream to there: a no-op
        assert current_context() is ctx  # what tickrail.llm records on
        ctx.record_usage(tokens_in=3, tokens_out=2)
        return "crunched"


graph = AgentGraph("crunch", version="1.0.0", entry="crunch", nodes=[Crunch()],
                   edges=[final("crunch")])
"""


def test_a_process_pool_task_can_emit_and_record(tmp_path: Path) -> None:
    (tmp_path / "crunch.py").write_text(PROCESS_TASK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}
    done = subprocess.run(
        [TICKRAIL, "run", "crunch.py", "--profile", "test", "--json", "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "COMPLETED" and summary["output"]["value"] == "crunched"
    assert summary["tokens"] == 5
