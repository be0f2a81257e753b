"""tickrail installs one import package, and a user's own `services/`, `sdk/` and
`adapters/` packages work beside it: at run time, and under `mypy --strict`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

USER_GRAPH = '''\
"""A user's graph that imports their own services/, sdk/ and adapters/ packages."""

from __future__ import annotations

from adapters.weather import forecast
from sdk.helpers import shout
from services.billing import RATE

from tickrail import AgentGraph, Finish, Next, Plan, PlanContext, Task, TaskContext, final, normal


class Bill(Task):
    async def run(self, ctx: TaskContext) -> dict[str, object]:
        # imported lazily, inside run(), as real Tasks often do
        from services.billing import invoice

        ctx.record_usage(tokens_in=3, tokens_out=4)
        return {"invoice": invoice(2), "rate": RATE, "sky": forecast(), "who": shout("ada")}


class Decide(Plan):
    async def plan(self, ctx: PlanContext) -> Next | Finish:
        if not ctx.upstream:
            return Next("bill")
        return Finish(ctx.upstream[0].value)


graph = AgentGraph(
    "user_app",
    version="1.0.0",
    entry="decide",
    nodes=[Decide(), Bill()],
    edges=[normal("decide", "bill"), normal("bill", "decide"), final("decide")],
)
'''


def _user_project(root: Path) -> Path:
    files = {
        "services/__init__.py": "",
        "services/billing.py": (
            "RATE: float = 0.25\n\n\ndef invoice(units: int) -> float:\n    return units * RATE\n"
        ),
        "sdk/__init__.py": "",
        "sdk/helpers.py": "def shout(name: str) -> str:\n    return name.upper()\n",
        "adapters/__init__.py": "",
        "adapters/weather.py": "def forecast() -> str:\n    return 'sunny'\n",
        "app_graph.py": USER_GRAPH,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRAIL_")}
    env.pop("PYTHONPATH", None)
    return env


def test_outside_the_checkout_only_tickrail_is_importable(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import importlib.util, json
        found = {m: importlib.util.find_spec(m) is not None
                 for m in ("sdk", "services", "adapters", "proto")}
        from tickrail import AgentGraph, Plan, Task
        print(json.dumps(found))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == {"sdk": False, "services": False, "adapters": False, "proto": False}


def test_a_user_project_with_its_own_services_package_runs_and_type_checks(
    tmp_path: Path,
) -> None:
    project = _user_project(tmp_path / "app")
    env = _clean_env()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickrail.services.cli.main",
            "run",
            "app_graph.py",
            "--json",
            "--quiet",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["status"] == "COMPLETED"
    assert summary["output"]["value"] == {
        "invoice": 0.5,
        "rate": 0.25,
        "sky": "sunny",
        "who": "ADA",
    }
    # mypy finds tickrail through the install (its .pth or site-packages), not a path hack
    mypy = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "app_graph.py",
            "services",
            "sdk",
            "adapters",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr


def test_a_regular_install_ships_exactly_one_top_level_package(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is needed to copy the checkout")
    dist = tmp_path / "dist"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("tickrail-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"tickrail"}
    for expected in (
        "tickrail/sdk/graph.py",
        "tickrail/services/control_plane/routing.py",
        "tickrail/adapters/store/sqlite.py",
        "tickrail/py.typed",
        "tickrail/sdk/pb/envelope_pb2.pyi",
    ):
        assert expected in names
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    project = _user_project(tmp_path / "app")
    env = _clean_env() | {"PYTHONPATH": str(site)}
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tickrail, sys; from tickrail.services.cli.main import main; "
            "assert tickrail.__file__.startswith(sys.argv[1]), tickrail.__file__; "
            "sys.exit(main(['run', 'app_graph.py', '--quiet']))",
            str(site),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
