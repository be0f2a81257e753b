"""``tickrail new NAME``: a project that runs, tests and ships a graph out of the box.

The project: a ``pyproject.toml`` depending on tickrail, a package with a
graph (a Plan that fans out to a Task per item and joins), a guardrail
policy, a ``tickrail.yaml`` that loads it, a pytest test that runs the graph
on the test profile through the ``tickrail`` command, a Dockerfile on top of
the tickrail image, a README and a .gitignore.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from tickrail.sdk.errors import ConfigurationError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def package_name(name: str) -> str:
    """The importable package for a project name: ``my-agent`` -> ``my_agent``."""
    if not _NAME.match(name):
        raise ConfigurationError(
            f"project name {name!r}: use a letter, then letters, digits, '-' or '_' "
            "(at most 64 characters)"
        )
    package = name.replace("-", "_").lower()
    if keyword.iskeyword(package) or package in {"tickrail", "test", "tests"}:
        raise ConfigurationError(f"project name {name!r} would shadow the package {package!r}")
    return package


def create_project(target: Path, name: str | None = None) -> list[Path]:
    """Write the project into ``target`` (new or empty); returns the files written."""
    name = name or target.name
    package = package_name(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigurationError(f"{target} already exists and is not empty; choose a new name")
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        ".gitignore": GITIGNORE,
        "tickrail.yaml": CONFIG,
        "policies/guardrails.yaml": POLICY,
        f"src/{package}/__init__.py": INIT,
        f"src/{package}/graph.py": GRAPH,
        "tests/test_graph.py": TEST,
        "Dockerfile": DOCKERFILE,
        ".dockerignore": DOCKERIGNORE,
    }
    written = []
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(name=name, package=package))
        written.append(path)
    return written


PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
description = "An agent graph run by tickrail"
requires-python = ">=3.11"
# pytest is here so `pip install -e . && pytest` works on a fresh machine;
# move it to an optional "test" extra when you ship the package.
dependencies = ["tickrail", "pytest>=8"]

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

README = """\
# {name}

An agent graph run by [tickrail](https://github.com/tickrail/tickrail):
`src/{package}/graph.py` holds a Plan that fans out one Task per topic and
joins their results.

tickrail is not on PyPI yet: install it from its checkout first
(`pip install -e /path/to/tickrail`), then this project:

```bash
pip install -e .
tickrail run src/{package}/graph.py --input '{{"topics": ["tea", "coffee"]}}'
tickrail graph src/{package}/graph.py --format mermaid
tickrail dev src/{package}/graph.py --input '{{"topics": ["tea"]}}'  # rerun on every change
pytest
```

`tickrail.yaml` is the configuration (state in `./.tickrail/`), and
`policies/guardrails.yaml` the guardrails it loads. The Dockerfile builds an
executor image on top of the tickrail image.
"""

GITIGNORE = """\
.tickrail/
__pycache__/
*.egg-info/
.venv/
"""

CONFIG = """\
# tickrail settings for this project (flags and TICKRAIL_* variables override).
profile: embedded
home: .tickrail
policies:
  - policies/guardrails.yaml
"""

POLICY = """\
apiVersion: tickrail/v1
kind: GuardrailPolicy
description: Guardrails of {name}.
rules:
  - name: lifetime-cost-ceiling
    description: Ask a person before one lifetime spends more than $5.
    scope: lifetime
    condition: lifetime.sum.cost_usd > 5.0
    action: PAUSE_LIFETIME
    message: this lifetime spent more than $5

  - name: runaway-loop
    description: A node run this often in one lifetime is stuck.
    scope: execution
    condition: execution.iteration > 50
    action: ABORT_LIFETIME
    message: a node ran more than 50 times
"""

INIT = '''\
"""{name}: an agent graph run by tickrail."""
'''

GRAPH = '''\
"""The graph: ``plan`` fans out one ``research`` Task per topic, then joins them.

Run it with ``tickrail run src/{package}/graph.py --input '{{"topics": ["tea"]}}'``.
"""

from __future__ import annotations

from typing import Any

from tickrail import (
    AgentGraph,
    Finish,
    Next,
    Plan,
    PlanContext,
    Task,
    TaskContext,
    final,
    join,
    parallel,
)

MAX_BRANCHES = 3


class Research(Task):
    """Do the work for one topic. Put the model or API call here."""

    name = "research"
    timeout = 30

    async def run(self, ctx: TaskContext) -> Any:
        topic = str(ctx.input)
        ctx.emit(f"researching {{topic}}")  # streamed to `tickrail run` and watchers
        # A real Task calls a model here, e.g. with a client wrapped by
        # tickrail.llm.wrap(...), which records tokens and cost for you.
        ctx.record_usage(tokens_in=10, tokens_out=5, model="none")
        return {{"topic": topic, "summary": f"notes on {{topic}}"}}


class Research2(Research):
    name = "research_2"


class Research3(Research):
    name = "research_3"


BRANCHES = ["research", "research_2", "research_3"]


class Split(Plan):
    """Decide what runs next: fan out over the topics, then finish with the notes."""

    name = "plan"

    async def plan(self, ctx: PlanContext) -> Any:
        topics = list((ctx.input or {{}}).get("topics", []))[:MAX_BRANCHES] or ["tickrail"]
        return Next({{branch: topic for branch, topic in zip(BRANCHES, topics, strict=False)}})


class Collect(Plan):
    """Runs once, after every branch, with all their results."""

    name = "collect"

    async def plan(self, ctx: PlanContext) -> Any:
        return Finish({{"notes": [u.value for u in ctx.upstream if u.ok]}})


graph = AgentGraph(
    "{package}",
    version="0.1.0",
    entry="plan",
    nodes=[Split(), Research(), Research2(), Research3(), Collect()],
    edges=[
        parallel("plan", BRANCHES),
        join(BRANCHES, "collect"),
        final("collect"),
    ],
)
'''

TEST = '''\
"""Run the graph end to end on tickrail's test profile (in memory, nothing kept)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tickrail(*args: str) -> subprocess.CompletedProcess[str]:
    command = shutil.which("tickrail", path=str(Path(sys.executable).parent)) or "tickrail"
    return subprocess.run(
        [command, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_graph_completes_with_a_note_per_topic() -> None:
    topics = {{"topics": ["tea", "coffee"]}}
    done = tickrail(
        "run", "src/{package}/graph.py", "--profile", "test",
        "--input", json.dumps(topics), "--json", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "COMPLETED"
    notes = summary["output"]["value"]["notes"]
    assert sorted(n["topic"] for n in notes) == ["coffee", "tea"]


def test_the_policies_are_valid() -> None:
    done = tickrail("policy", "check", "policies/guardrails.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
'''

DOCKERFILE = """\
# An image for {name}: the tickrail image (built from the Dockerfile at the
# root of the tickrail repository; set TICKRAIL_IMAGE to where you publish it)
# plus this project's graph code. That image runs `tickrail` as its
# entrypoint, as uid 10001 (the Helm chart's), with /app on PYTHONPATH, so the
# package only needs copying there; its dependencies beyond tickrail would be
# installed with /opt/tickrail/bin/pip.
ARG TICKRAIL_IMAGE=tickrail:0.1.0
FROM ${{TICKRAIL_IMAGE}}
COPY --chown=10001:10001 src/{package} /app/{package}
COPY --chown=10001:10001 policies /app/policies
# The executor role serving this graph; the chart sets the same per executor group.
CMD ["executor", "--graph", "{package}.graph:graph"]
"""


DOCKERIGNORE = """\
.tickrail/
.venv/
**/__pycache__/
"""
