"""Guards on what we promise: committed gencode, the public API, config loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tickrail
import tickrail.sdk
from tickrail.sdk.errors import ConfigurationError
from tickrail.services.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_committed_protobuf_code_matches_the_proto_files() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_public_api_is_exactly_what_we_document() -> None:
    assert sorted(tickrail.__all__) == sorted(
        [
            "AdapterError",
            "AgentGraph",
            "ConfigurationError",
            "DefinitionError",
            "Edge",
            "EdgeKind",
            "EnvelopeError",
            "ExecutionError",
            "Finish",
            "GraphValidationError",
            "Next",
            "NodeContext",
            "Plan",
            "PlanContext",
            "PolicyError",
            "Retry",
            "RoutingError",
            "Send",
            "Task",
            "TaskContext",
            "TickrailClient",
            "TickrailError",
            "Upstream",
            "Usage",
            "final",
            "join",
            "load_graph",
            "normal",
            "parallel",
        ]
    )
    for name in tickrail.__all__:
        assert getattr(tickrail, name) is not None
    # the SDK package re-exports the same objects, so either spelling is one class
    assert tickrail.Task is tickrail.sdk.Task and tickrail.Next is tickrail.sdk.Next


def test_the_sdk_never_imports_services_or_adapters() -> None:
    code = (
        "import sys, tickrail, tickrail.sdk.loading, tickrail.sdk.builtins\n"
        "roles = ('tickrail.services', 'tickrail.adapters')\n"
        "bad = [m for m in sys.modules if m.startswith(roles)]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_settings_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "tickrail.yaml"
    config.write_text("tenant: from-file\noffload_threshold: 10\npolicies: [a.yaml]\n")
    env = {"TICKRAIL_TENANT": "from-env", "TICKRAIL_PER_TENANT_TOPICS": "true"}
    s = load_settings(config, environ=env, overrides={"tenant": None, "store_url": "memory://"})
    assert (s.tenant, s.offload_threshold, s.per_tenant_topics) == ("from-env", 10, True)
    assert s.policies == ["a.yaml"] and s.store_url == "memory://"
    assert load_settings(config, environ=env, overrides={"tenant": "flag"}).tenant == "flag"


def test_unknown_settings_and_bad_values_are_named(tmp_path: Path) -> None:
    config = tmp_path / "tickrail.yaml"
    config.write_text("tenat: typo\n")
    with pytest.raises(ConfigurationError, match="unknown setting\\(s\\) tenat"):
        load_settings(config, environ={})
    with pytest.raises(ConfigurationError, match="TICKRAIL_OFFLOAD_THRESHOLD"):
        load_settings(None, environ={"TICKRAIL_OFFLOAD_THRESHOLD": "big"})
    with pytest.raises(ConfigurationError, match="profile 'cloud' needs bus_url"):
        Settings(profile="cloud").resolved()


def test_unknown_url_schemes_and_missing_drivers_are_explained() -> None:
    from tickrail.adapters import open_store

    with pytest.raises(ConfigurationError, match="scheme must be one of"):
        open_store("mongodb://x")


def test_a_missing_driver_names_the_install_command_of_this_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tickrail.adapters import open_store

    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "tickrail.adapters.store.postgres", raising=False)
    with pytest.raises(ConfigurationError) as missing:
        open_store("postgresql://localhost/x")
    # installed with `pip install -e .` from this checkout: the hint says so
    assert f"pip install -e '{ROOT}[postgres]'" in str(missing.value)


def test_the_embedded_cli_paths_never_import_optional_drivers() -> None:
    # run, lifetimes, usage, replay and policies must work with only the core install
    # (gRPC is core: the embedded owner's socket speaks the lifecycle API)
    code = (
        "import sys\n"
        "import tickrail.services.cli.commands, tickrail.services.usage, tickrail.services.api\n"
        "import tickrail.services.control_plane.guardrails\n"
        "import tickrail.services.control_plane.replay\n"
        "import tickrail.services.control_plane.fork, tickrail.services.runtime\n"
        "import tickrail.services.lifecycle\n"
        "optional = ('aiokafka', 'asyncpg', 'boto3', 'botocore', 'redis')\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & set(optional))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    "front_end", ["services/cli/x.py", "services/api/x.py", "services/console/x.py"]
)
def test_front_ends_may_not_import_role_internals(front_end: str) -> None:
    # The layering rule in pyproject.toml: front ends reach roles only through
    # tickrail.services.lifecycle. ruff checks a would-be module at that path.
    probe = (
        "from tickrail.services.runtime import Runtime\n"
        "from tickrail.services.control_plane.routing import route\n\n"
        "print(Runtime, route)\n"
    )
    found = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--select",
            "TID251",
            "--stdin-filename",
            front_end,
            "-",
        ],
        input=probe,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert found.returncode == 1 and found.stdout.count("TID251") == 2, found.stdout
    allowed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--select",
            "TID251",
            "--stdin-filename",
            "services/lifecycle/x.py",
            "-",
        ],
        input=probe,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert allowed.returncode == 0, allowed.stdout
