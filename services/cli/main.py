"""``tickrail``: run graphs and inspect lifetimes.

Exit codes: 0 success (a run COMPLETED), 1 the lifetime did not complete,
2 bad usage or configuration, 3 the lifetime is PAUSED, 4 ``--timeout``
passed (the lifetime was aborted with reason ``timeout``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tickrail.sdk._install import install_command
from tickrail.sdk._payload import loads_json
from tickrail.sdk._redact import redact_text
from tickrail.sdk.errors import RoleError, TickrailError
from tickrail.services import logs

from . import commands, devtools

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_USAGE, EXIT_PAUSED, EXIT_TIMEOUT = 0, 1, 2, 3, 4
EXIT_HELP = """exit codes:
  0    success (a run or resume COMPLETED)
  1    the lifetime FAILED or was ABORTED (or replay DIVERGED), or a role of
       this process failed (the message names it)
  2    bad usage, configuration or input (the message names it)
  3    the lifetime is PAUSED (held, or waiting for a person's answer)
  4    --timeout passed: the lifetime was aborted with reason "timeout"
  130  interrupted (Ctrl-C); a RUNNING lifetime is continued by the next owner
"""

# Optional drivers and the extra that installs each (adapters say the same for URLs).
_EXTRAS = {
    "aiokafka": "kafka",
    "asyncpg": "postgres",
    "boto3": "s3",
    "botocore": "s3",
    "redis": "redis",
    "fastapi": "ui",
    "starlette": "ui",
    "uvicorn": "ui",
    "jinja2": "ui",
}


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "configuration (flags beat TICKRAIL_* variables beat the file)"
    )
    group.add_argument(
        "--config", help="settings YAML file (default: $TICKRAIL_CONFIG or ./tickrail.yaml)"
    )
    group.add_argument(
        "--profile", choices=["embedded", "cloud", "test"], help="deployment profile"
    )
    group.add_argument("--home", help="state directory of the embedded profile (default .tickrail)")
    group.add_argument("--store-url", help="state store URL (sqlite:///..., postgresql://...)")
    group.add_argument("--bus-url", help="event bus URL (memory://, kafka://host:port)")
    group.add_argument("--blob-url", help="blob store URL (file:///..., s3://bucket/prefix)")
    group.add_argument("--kv-url", help="KV store URL (memory://, redis://host:port)")
    group.add_argument(
        "--policy",
        action="append",
        dest="policies",
        metavar="FILE",
        help="guardrail policy file or directory (repeatable)",
    )


def _remote(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("through a lifecycle API server instead of the store")
    group.add_argument("--server", metavar="HOST:PORT", help="a `tickrail serve` address")
    group.add_argument(
        "--token-env",
        default="TICKRAIL_TOKEN",
        metavar="VAR",
        help="environment variable holding the API token (default TICKRAIL_TOKEN)",
    )
    group.add_argument("--secure", action="store_true", help="connect with TLS")
    group.add_argument(
        "--ca-cert", metavar="PEM", help="trust this CA (implies --secure; for a private CA)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickrail",
        description="Run agent graphs with every step recorded.",
        epilog=EXIT_HELP + devtools.OUTPUT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one lifetime of a graph and follow it to the end")
    run.add_argument("graph", help="graph: path/to/file.py, package.module:attr, or graph.yaml")
    run.add_argument(
        "--input", default=None, help="lifetime input as JSON, or @file.json (default: null)"
    )
    run.add_argument("--tenant", help="tenant id (default: the 'tenant' setting)")
    run.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="label to record with the lifetime (repeatable)",
    )
    run.add_argument("--json", action="store_true", help="print a machine-readable summary")
    run.add_argument("--quiet", action="store_true", help="no live progress")
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="abort the lifetime (reason 'timeout', exit 4) if it has not stopped after S seconds",
    )
    run.add_argument(
        "--detach",
        action="store_true",
        help="run in a background owner that outlives this terminal; print the lifetime id",
    )
    _common(run)

    lifetimes = sub.add_parser("lifetimes", help="inspect and steer recorded lifetimes")
    lsub = lifetimes.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = lsub.add_parser("list", help="recent lifetimes, newest first")
    ls.add_argument("--tenant")
    ls.add_argument("--status", choices=["RUNNING", "PAUSED", "COMPLETED", "FAILED", "ABORTED"])
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--json", action="store_true")
    _common(ls)
    _remote(ls)
    show = lsub.add_parser("show", help="every execution and decision of one lifetime")
    show.add_argument("lifetime_id")
    show.add_argument("--tenant", help="tenant of the lifetime (with --server)")
    show.add_argument("--json", action="store_true")
    _common(show)
    _remote(show)
    watch = lsub.add_parser("watch", help="print a lifetime's decisions as they happen")
    watch.add_argument("lifetime_id")
    watch.add_argument("--tenant", help="tenant of the lifetime (with --server)")
    _remote(watch)
    _common(watch)
    for verb, text in (
        ("pause", "hold a running lifetime: routing stops until it is resumed"),
        ("abort", "end a lifetime now (terminal)"),
    ):
        steer = lsub.add_parser(verb, help=text)
        steer.add_argument("lifetime_id")
        steer.add_argument("--reason", default="", help="recorded with the decision")
        steer.add_argument("--tenant", help="tenant of the lifetime (with --server)")
        _remote(steer)
        _common(steer)

    res = lsub.add_parser("resume", help="continue a PAUSED lifetime where it stopped")
    res.add_argument("lifetime_id")
    res.add_argument("--graph", help="graph to run it with (default: the one it was started with)")
    res.add_argument(
        "--input", default=None, help="a person's answer to a waiting Task, as JSON or @file"
    )
    res.add_argument(
        "--exec",
        dest="exec_id",
        metavar="EXEC_ID",
        help="the waiting execution the answer is for (needed when several wait)",
    )
    res.add_argument("--json", action="store_true")
    res.add_argument("--quiet", action="store_true")
    res.add_argument("--timeout", type=float, default=None)
    res.add_argument("--tenant", help="tenant of the lifetime (with --server)")
    _remote(res)
    _common(res)

    usage = sub.add_parser("usage", help="tokens and cost, by tenant, lifetime, node or day")
    usage.add_argument("--by", choices=["tenant", "lifetime", "node", "day"], default="tenant")
    usage.add_argument("--lifetime", metavar="ID", help="only this lifetime")
    usage.add_argument("--tenant", help="only this tenant (default: every tenant, locally)")
    usage.add_argument("--json", action="store_true")
    _remote(usage)
    _common(usage)

    replay = sub.add_parser(
        "replay", help="re-derive a lifetime's decisions from its log and compare (read-only)"
    )
    replay.add_argument("lifetime_id")
    replay.add_argument(
        "--rerun-plans",
        action="store_true",
        help="also run the Plan code again on the recorded Task results",
    )
    replay.add_argument("--graph", help="graph code for --rerun-plans (default: as recorded)")
    replay.add_argument("--json", action="store_true")
    _common(replay)

    fork = sub.add_parser(
        "fork", help="new lifetime from a recorded one: keep its history up to an execution"
    )
    fork.add_argument("lifetime_id")
    fork.add_argument(
        "--from",
        dest="from_exec",
        required=True,
        metavar="EXEC_ID",
        help="the execution to continue from (it runs again, unless --result)",
    )
    fork.add_argument(
        "--result",
        metavar="FILE",
        help="JSON file with a replacement result for that (Task) execution",
    )
    fork.add_argument(
        "--rerun-finished-branches",
        action="store_true",
        help="run again the parallel branches that had finished before the fork point "
        "(default: keep their recorded results)",
    )
    fork.add_argument("--json", action="store_true")
    fork.add_argument("--quiet", action="store_true")
    fork.add_argument("--timeout", type=float, default=None)
    _common(fork)

    srv = sub.add_parser("serve", help="serve the lifecycle API over gRPC (docs/api.md)")
    srv.add_argument(
        "--address", default="127.0.0.1:50051", help="host:port to listen on (default %(default)s)"
    )
    srv.add_argument(
        "--graph",
        action="append",
        dest="graphs",
        metavar="GRAPH",
        help="graph to serve: file.py, module:attr or graph.yaml "
        "(repeatable; default: the 'graphs' setting)",
    )
    srv.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TENANT=ENV_VAR",
        help="a tenant and the environment variable holding its API token (repeatable)",
    )
    srv.add_argument(
        "--insecure",
        action="store_true",
        help="no authentication (development only; loopback addresses only)",
    )
    srv.add_argument("--tls-cert", metavar="PEM", help="serve TLS with this certificate chain")
    srv.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    _common(srv)

    owner = sub.add_parser(
        "owner",
        help="own the embedded state in the background (what `run --detach` starts)",
    )
    owner.add_argument(
        "--idle-exit",
        type=float,
        default=10.0,
        metavar="S",
        help="exit after S seconds with no lifetime running (default %(default)s)",
    )
    _common(owner)

    from tickrail.services.console.cli import add_parser as add_ui

    add_ui(sub, _common)

    migrate = sub.add_parser("migrate", help="create or upgrade the state store's schema")
    _common(migrate)

    for role, text in (
        ("data-plane", "persist execution envelopes and announce them (a role process)"),
        ("control-plane", "judge executions and route the next work (a role process)"),
        ("executor", "run the Tasks and Plans of graph modules (a role process)"),
    ):
        proc = sub.add_parser(role, help=text)
        proc.add_argument("--port", type=int, help="health and metrics port (default 8080)")
        if role == "executor":
            proc.add_argument(
                "--graph",
                action="append",
                dest="graphs",
                metavar="GRAPH",
                help="graph to serve: file.py, module:attr or graph.yaml "
                "(repeatable; default: the 'graphs' setting)",
            )
            proc.add_argument(
                "--serves",
                choices=["all", "tasks", "plans"],
                dest="executor_serves",
                help="run only Tasks or only Plans",
            )
        _common(proc)

    policy = sub.add_parser("policy", help="check guardrail policy files")
    psub = policy.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate policy files (exit 1 on any error)")
    check.add_argument("files", nargs="+")
    ptest = psub.add_parser("test", help="what-if: evaluate policies against a recorded lifetime")
    ptest.add_argument("files", nargs="+")
    ptest.add_argument("--lifetime", required=True, metavar="ID")
    ptest.add_argument("--json", action="store_true")
    _common(ptest)
    devtools.register(sub, _common)
    return parser


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = (
        "profile",
        "home",
        "store_url",
        "bus_url",
        "blob_url",
        "kv_url",
        "policies",
        "graphs",
        "executor_serves",
    )
    return {k: getattr(args, k, None) for k in keys}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # the log_format setting applies once settings are read (Runtime)
        logs.setup(
            logging.DEBUG if args.verbose else logging.WARNING,
            os.environ.get("TICKRAIL_LOG_FORMAT", "text"),
        )
    except TickrailError as exc:
        print(f"tickrail: TICKRAIL_LOG_FORMAT: {exc}", file=sys.stderr)
        return EXIT_USAGE
    name = f"cmd_{args.command}_{getattr(args, 'action', '')}".rstrip("_").replace("-", "_")
    handler = getattr(args, "handler", None) or getattr(commands, name)
    try:
        return int(asyncio.run(handler(args)))
    except RoleError as exc:  # a role of this process died: not the caller's input
        print(f"tickrail: {exc}", file=sys.stderr)
        return EXIT_NOT_COMPLETED
    except TickrailError as exc:
        print(f"tickrail: {redact_text(str(exc))}{_flag_hint(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"tickrail: this needs the optional {exc.name!r} package: {install_command(extra)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. piped into head: not an error worth a traceback
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print(
            "tickrail: interrupted (a RUNNING lifetime stays RUNNING: the next owner, e.g. "
            "`tickrail lifetimes resume ID`, continues it)",
            file=sys.stderr,
        )
        return 130


#: Request fields the lifecycle API names in its errors, as the flags that set them.
_FLAGS = {"exec_id": "--exec", "input": "--input", "from_exec_id": "--from", "result": "--result"}


def _flag_hint(exc: TickrailError) -> str:
    from tickrail.sdk.errors import InvalidArgumentError

    flag = _FLAGS.get(exc.field) if isinstance(exc, InvalidArgumentError) else None
    return f" (use {flag})" if flag else ""


def parse_answer_arg(raw: str | None, what: str) -> Any:
    """A person's answer: JSON when it parses as JSON, else the text itself
    (``--input yes`` answers "yes"); ``@file`` reads the file the same way."""
    from tickrail.sdk.errors import ConfigurationError

    if raw is None:
        return None
    if raw.startswith("@"):
        path = Path(raw[1:])
        try:
            raw = path.read_text()
        except OSError as exc:
            raise ConfigurationError(f"{what}: cannot read {path}: {exc}") from exc
    try:
        return loads_json(raw)
    except json.JSONDecodeError:
        return raw
    except ValueError as exc:  # NaN, Infinity: JSON-like, but not JSON
        raise ConfigurationError(f"{what}: {exc}") from None


def parse_json_arg(raw: str | None, what: str) -> Any:
    """``--input`` values: JSON text, or @path to a JSON file."""
    from tickrail.sdk.errors import ConfigurationError

    if raw is None:
        return None
    source = what
    if raw.startswith("@"):
        path = Path(raw[1:])
        try:
            raw = path.read_text()
        except OSError as exc:
            raise ConfigurationError(f"{what}: cannot read {path}: {exc}") from exc
        source = str(path)
    try:
        return loads_json(raw)
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):  # NaN, Infinity, 1e999
            raise ConfigurationError(f"{source} is not valid JSON: {exc}") from None
        raise ConfigurationError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from exc


if __name__ == "__main__":
    raise SystemExit(main())
