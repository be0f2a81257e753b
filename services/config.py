"""Settings: defaults, overridden by one YAML file, overridden by TICKRAIL_* variables.

Every field can be set in the YAML file (``store_url: ...``) or by the
environment variable ``TICKRAIL_<FIELD>`` (``TICKRAIL_STORE_URL``). Secrets are
never values here: URLs carry no passwords in files; drivers read credentials
from their standard environment (PGPASSWORD, AWS_*, REDIS_PASSWORD...).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from tickrail.sdk import _yaml
from tickrail.sdk._payload import DEFAULT_OFFLOAD_THRESHOLD
from tickrail.sdk.errors import ConfigurationError

ENV_PREFIX = "TICKRAIL_"

#: TICKRAIL_* variables that are not settings but are read elsewhere: the
#: config file, API tokens (``--token-env``; ``--token TENANT=TICKRAIL_TOKEN_X``
#: by convention), and the test services' URLs and switch.
OTHER_VARIABLES = frozenset(
    {
        "CONFIG",
        "TOKEN",
        "REQUIRE_SERVICES",
        "KAFKA_URL",
        "POSTGRES_URL",
        "REDIS_URL",
        "S3_URL",
        "DISPATCH_SECRET",  # the default of the dispatch_secret_env setting (a secret)
    }
)
OTHER_PREFIXES = ("TOKEN_",)

log = logging.getLogger("tickrail.config")
_warned: set[str] = set()


@dataclass
class Settings:
    """One deployment's configuration (every role reads the same file)."""

    profile: str = "embedded"
    """embedded (one process, local files), cloud (Kafka, Postgres, S3, Redis) or test."""

    home: str = ".tickrail"
    """Directory for the embedded profile's state (SQLite database, blobs)."""

    bus_url: str = ""
    """Event bus: memory:// or kafka://host:port. Default: per profile."""

    store_url: str = ""
    """State store: sqlite:///path, memory://, or postgresql://... Default: per profile."""

    blob_url: str = ""
    """Blob store: file:///path, memory://, or s3://bucket/prefix. Default: per profile."""

    kv_url: str = ""
    """KV store for guardrail aggregates: memory:// or redis://host:port/db."""

    topic_prefix: str = "tickrail."
    """Prefix of every topic name, so deployments can share a Kafka cluster."""

    per_tenant_topics: bool = False
    """Give each tenant its own topics (the consumers read those of ``tenants``)."""

    tenants: list[str] = field(default_factory=list)
    """Tenants whose topics this deployment reads, with ``per_tenant_topics``."""

    tenant: str = "default"
    """Tenant id for lifetimes started by ``tickrail run``."""

    offload_threshold: int = DEFAULT_OFFLOAD_THRESHOLD
    """Payloads larger than this many bytes go to the blob store, not inline."""

    executor_concurrency: int = 1000
    """How many node runs one executor process runs at once."""

    blocking_pool_size: int = 0
    """Threads that run plain ``def`` Tasks and Plans (0: executor_concurrency, sized for I/O)."""

    process_pool_size: int = 0
    """Worker processes for CPU-bound Tasks with ``pool = "process"`` (0: the CPU count)."""

    policies: list[str] = field(default_factory=list)
    """Guardrail policy files or directories (empty: no policies)."""

    shutdown_grace_s: float = 30.0
    """On SIGTERM, how long in-flight node runs may take before they are cancelled."""

    start_timeout_s: float = 60.0
    """How long opening the adapters and starting the roles may take before the
    process gives up with an error naming what it was waiting for."""

    graphs: list[str] = field(default_factory=list)
    """Graphs an executor process serves: file.py, package.module:attr or graph.yaml."""

    executor_serves: str = "all"
    """What an executor process runs: all, tasks or plans (to scale them apart)."""

    executor_group_per_graph: bool = False
    """Executors read inputs in one consumer group per set of graphs they serve
    (``{prefix}executor-tasks-{graph ids}``) instead of one per kind, and run only
    their graphs' inputs: deploy executors per graph, and restarting one graph's
    never stalls another's. Every executor of a deployment must then use it."""

    dispatch_secret_env: str = "TICKRAIL_DISPATCH_SECRET"
    """Name of the environment variable holding the secret that signs dispatched inputs
    (required by the cloud profile; the embedded one keeps its own in ``home``)."""

    http_port: int = 8080
    """Port of a role process's /healthz, /readyz and /metrics (0: any free port)."""

    log_format: str = "text"
    """Log lines as text or json (one object per line, with lifetime, exec and trace ids)."""

    def resolved(self) -> Settings:
        """A copy with the profile's default URLs filled in."""
        home = Path(self.home).resolve()
        defaults = {
            "embedded": {
                "bus_url": "memory://",
                "store_url": f"sqlite:///{home / 'state.db'}",
                "blob_url": (home / "blobs").as_uri(),
                "kv_url": "memory://",
            },
            "test": {
                "bus_url": "memory://",
                "store_url": "memory://",
                "blob_url": (home / "blobs").as_uri(),
                "kv_url": "memory://",
            },
            "cloud": {},
        }
        if self.executor_serves not in {"all", "tasks", "plans"}:
            raise ConfigurationError(
                f"executor_serves must be all, tasks or plans, not {self.executor_serves!r}"
            )
        if self.log_format not in {"text", "json"}:
            raise ConfigurationError(f"log_format must be text or json, not {self.log_format!r}")
        if self.profile not in defaults:
            raise ConfigurationError(
                f"unknown profile {self.profile!r}: use embedded, cloud or test"
            )
        values: dict[str, Any] = {
            k: getattr(self, k) or v for k, v in defaults[self.profile].items()
        }
        settings = dataclasses.replace(self, **values)
        missing = [
            n for n in ("bus_url", "store_url", "blob_url", "kv_url") if not getattr(settings, n)
        ]
        if missing:
            env = ", ".join(ENV_PREFIX + n.upper() for n in missing)
            raise ConfigurationError(f"profile {self.profile!r} needs {', '.join(missing)} ({env})")
        return settings


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults, then the YAML file (``path``, ``$TICKRAIL_CONFIG`` or ./tickrail.yaml),
    then ``TICKRAIL_*`` variables, then ``overrides`` (flags); later ones win."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = path or env.get(f"{ENV_PREFIX}CONFIG")
    if path is None and Path("tickrail.yaml").is_file():
        path = "tickrail.yaml"
    known = {f.name: f for f in fields(Settings)}
    _warn_unknown_variables(env, known)
    if path is not None:
        values.update(_read_yaml(Path(path), known))
    for name, f in known.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(f, raw, ENV_PREFIX + name.upper())
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    return Settings(**values)


def unknown_variables(env: Mapping[str, str], known: Mapping[str, object]) -> list[str]:
    """TICKRAIL_* names in ``env`` that no setting or other part of tickrail reads."""
    out = []
    for name in env:
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest.lower() in known or rest in OTHER_VARIABLES or rest.startswith(OTHER_PREFIXES):
            continue
        out.append(name)
    return sorted(out)


def _warn_unknown_variables(env: Mapping[str, str], known: Mapping[str, object]) -> None:
    # A mistyped variable (TICKRAIL_STORE_ULR) would otherwise be silently ignored.
    candidates = [n.upper() for n in known] + sorted(OTHER_VARIABLES)
    for name in unknown_variables(env, known):
        if name in _warned:
            continue
        _warned.add(name)
        # Compared without the shared prefix, which would make everything look close.
        close = difflib.get_close_matches(name[len(ENV_PREFIX) :], candidates, n=1, cutoff=0.75)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
        log.warning("%s is not a tickrail setting and is ignored%s", name, hint)


def _read_yaml(path: Path, known: Mapping[str, dataclasses.Field[Any]]) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from exc
    try:
        root = _yaml.compose(_yaml.decode(data))
    except _yaml.YAMLProblem as exc:
        line = f":{exc.line}" if exc.line is not None else ""
        raise ConfigurationError(f"config file {path}{line}: {exc.message}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigurationError(f"config file {path} must be a mapping of settings")
    entries = [
        (k.value if isinstance(k, yaml.ScalarNode) else "(not a name)", k, v) for k, v in root.value
    ]
    unknown = [(key, k) for key, k, _ in entries if key not in known]
    if unknown:
        names = ", ".join(_yaml.excerpt(key)[1:-1] for key, _ in unknown)
        raise ConfigurationError(
            f"config file {path}:{unknown[0][1].start_mark.line + 1}: unknown setting(s) "
            f"{names} (known: {', '.join(sorted(known))})"
        )
    values: dict[str, Any] = {}
    for key, key_node, value_node in entries:
        where = f"{path}:{key_node.start_mark.line + 1}"
        try:
            raw = _yaml.construct(value_node)
        except _yaml.YAMLProblem as exc:
            raise ConfigurationError(f"{where}: {key}: {exc.message}") from None
        values[key] = _coerce(known[key], raw, f"{where}: {key}")
    return values


#: Whole-number settings travel as int32 or less; ports are ports.
_INT_RANGES = {"http_port": (0, 65535), "offload_threshold": (0, 2**40)}
_INT_RANGE = (0, 2**31 - 1)


def _coerce(f: dataclasses.Field[Any], raw: Any, where: str) -> Any:
    kind = str(f.type)
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in {"1", "true", "yes", "on"}:
                return True
            if str(raw).lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if kind == "int":
            if isinstance(raw, bool | float):
                raise ValueError(f"not a whole number: {_yaml.excerpt(raw)}")
            number = int(str(raw)) if not isinstance(raw, int) else raw
            low, high = _INT_RANGES.get(f.name, _INT_RANGE)
            if not low <= number <= high:
                raise ValueError(f"{_yaml.excerpt(number)} is out of range ({low}..{high})")
            return number
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError(f"not a number: {raw!r}")
            value = float(raw)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{_yaml.excerpt(raw)} is not a finite number >= 0")
            return value
        if kind == "list[str]":
            if isinstance(raw, list):
                if not all(isinstance(v, str | int | float) for v in raw):
                    raise ValueError(f"must be a list of strings, got {_yaml.excerpt(raw)}")
                return [str(v) for v in raw]
            if not isinstance(raw, str | int | float):
                raise ValueError(f"must be a list of strings, got {_yaml.excerpt(raw)}")
            return [v.strip() for v in str(raw).split(",") if v.strip()]
        if isinstance(raw, list | dict):
            raise ValueError(f"must be a single value, got {_yaml.excerpt(raw)}")
        return str(raw)
    except ValueError as exc:
        # The message shows an excerpt, never the whole value (which may be huge).
        raise ConfigurationError(f"{where}: {_yaml.excerpt(str(exc), 300)[1:-1]}") from None
