"""The CLI's subcommands; each returns the process exit code.

Every lifetime operation goes through the lifecycle layer: a session's
TickrailClient reaches the service wherever it runs (``--server``, the cloud
deployment, the embedded owner's socket, or this process as the owner), so
this module only parses, calls and prints. It imports nothing below
``tickrail.services.lifecycle`` but the role processes' entry points.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tickrail.sdk._redact import redact_url
from tickrail.sdk.client import LifetimeDetail, TickrailClient
from tickrail.sdk.errors import (
    AdapterError,
    ConfigurationError,
    LifetimeStateError,
    OwnerError,
    UnavailableError,
)
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.loading import load_graph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings, load_settings
from tickrail.services.lifecycle import Purpose, ServerOptions, Session, open_session
from tickrail.services.lifecycle._graphs import GRAPH_LABEL, graph_label, load_recorded_graph
from tickrail.services.lifecycle.owner import StateLock, read_owner
from tickrail.services.lifecycle.stops import StopWatch
from tickrail.services.process import serve

from . import render
from .console_out import Lines
from .progress import Progress
from .tables import Column, print_table

EXIT_CODES: dict[str, int] = {"COMPLETED": 0, "PAUSED": 3}
#: ``run --timeout`` passed: the lifetime was aborted with reason ``timeout``.
EXIT_TIMEOUT = 4
TERMINAL = {"completed", "failed", "aborted"}
#: How long ``run`` keeps waiting for the control plane to record its start
#: (without ``--timeout``): long enough for a control plane that is restarting
#: or rejoining its consumer group to come back.
START_PATIENCE_S = 120.0
#: How long an aborted (timed-out) lifetime gets to record its end.
ABORT_WAIT_S = 30.0


def _settings(args: argparse.Namespace) -> Settings:
    from .main import settings_overrides

    return load_settings(
        getattr(args, "config", None), overrides=settings_overrides(args)
    ).resolved()


def _tenant(args: argparse.Namespace, settings: Settings) -> str:
    return getattr(args, "tenant", None) or settings.tenant


def _server(args: argparse.Namespace) -> ServerOptions | None:
    """``--server`` and its credentials, or None (the local state or deployment)."""
    address = getattr(args, "server", None)
    if not address:
        return None
    import grpc

    credentials = None
    if args.ca_cert:
        try:
            roots = Path(args.ca_cert).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read --ca-cert: {exc}") from exc
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    return ServerOptions(
        address,
        token=os.environ.get(args.token_env) or None,
        secure=args.secure,
        credentials=credentials,
    )


def _command_line() -> str:
    return " ".join(["tickrail", *sys.argv[1:]])[:200]


def _session(
    args: argparse.Namespace,
    settings: Settings,
    purpose: Purpose,
    graphs: list[AgentGraph] | None = None,
) -> contextlib.AbstractAsyncContextManager[Session]:
    return open_session(
        settings,
        tenant=_tenant(args, settings),
        purpose=purpose,
        graphs=graphs or [],
        server=_server(args),
        command=_command_line(),
    )


# ---- following a lifetime ----------------------------------------------------------


async def _follow(
    client: TickrailClient, lifetime_id: str, progress: Progress, *, after_seq: int = 0
) -> pb.LifetimeEvent | None:
    """Print the lifetime's events until it stops (ends, is held, or can only wait
    for a person: see ``StopWatch``); return that event."""
    stops = StopWatch()
    async for event in client.watch(lifetime_id, after_seq=after_seq):
        progress.on_event(event)
        if stops.stops(event):
            return event
    return None


async def _follow_for(
    client: TickrailClient,
    lifetime_id: str,
    progress: Progress,
    timeout: float | None,
    *,
    after_seq: int = 0,
) -> tuple[pb.LifetimeEvent | None, bool]:
    """``_follow`` for at most ``timeout`` seconds. Past it, the lifetime is aborted
    with reason ``timeout`` (recorded as a decision like any abort); returns the
    final event and whether the timeout ended it."""
    try:
        async with asyncio.timeout(timeout):
            return await _follow(client, lifetime_id, progress, after_seq=after_seq), False
    except TimeoutError:
        pass
    with contextlib.suppress(LifetimeStateError):  # it ended at the very same moment
        await client.abort(lifetime_id, reason="timeout")
    progress.quiet = True
    async with asyncio.timeout(ABORT_WAIT_S):
        async for event in client.watch(lifetime_id):
            if event.WhichOneof("kind") in TERMINAL:
                return event, True
    return None, True


def _waiting(detail: LifetimeDetail) -> dict[str, str]:
    """Executions WAITING for a person: exec id -> node name (from the record)."""
    waiting: dict[str, str] = {}
    for execution in detail.executions:
        header = execution.header
        if header.status == pb.EXECUTION_STATUS_WAITING:
            waiting[header.exec_id] = header.name
        else:
            waiting.pop(header.exec_id, None)
    answered = {e.resumed.exec_id for e in detail.events if e.WhichOneof("kind") == "resumed"}
    return {k: v for k, v in waiting.items() if k not in answered}


async def _finish(
    client: TickrailClient,
    lifetime_id: str,
    final: pb.LifetimeEvent | None,
    wall: float,
    as_json: bool,
    *,
    timed_out: float | None = None,
) -> int:
    detail = await client.get(lifetime_id)
    status = detail.info.status
    kind = final.WhichOneof("kind") if final is not None else None
    out: dict[str, Any] = {
        "lifetime_id": lifetime_id,
        "status": status,
        "wall_time_s": round(wall, 4),
        **render.totals(detail.executions),
    }
    if final is not None and kind == "completed":
        out["output"] = render.payload_json(final.completed.output)
    elif final is not None and kind in {"failed", "aborted", "paused"}:
        out["reason"] = render.describe_event(final)
    waiting = _waiting(detail) if status == "PAUSED" else {}
    if waiting:
        out["waiting"] = [{"exec_id": k, "name": v} for k, v in waiting.items()]
    if as_json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    elif timed_out is not None:
        print(
            f"tickrail: --timeout {timed_out:g}s passed: lifetime {lifetime_id} is "
            f"{out['status']} (reason: timeout) after {out['executions']} executions; "
            f"details: tickrail lifetimes show {lifetime_id}"
        )
    else:
        print(
            f"{out['status']} lifetime {lifetime_id} in {wall:.3f}s: "
            f"{out['executions']} executions, {out['tokens']:,} tokens, ${out['cost_usd']:.4f}"
        )
        if "reason" in out:
            print(f"  {out['reason']}")
        if status == "PAUSED":
            for hint in _continue_hints(lifetime_id, waiting):
                print(f"  continue with: {hint}")
        print(f"  details: tickrail lifetimes show {lifetime_id}")
    if timed_out is not None:
        return EXIT_TIMEOUT
    return EXIT_CODES.get(status, 1)


def _continue_hints(lifetime_id: str, waiting: dict[str, str]) -> list[str]:
    resume = f"tickrail lifetimes resume {lifetime_id}"
    if not waiting:
        return [resume]
    if len(waiting) == 1:
        return [f"{resume} --input ANSWER"]
    return [
        f"{resume} --exec {exec_id} --input ANSWER   ({name})" for exec_id, name in waiting.items()
    ]


async def _follow_to_the_end(
    args: argparse.Namespace,
    session: Session,
    lifetime_id: str,
    progress: Progress,
    started: float,
    after_seq: int = 0,
) -> int:
    """Follow until the lifetime stops (or ``--timeout``), print the summary, let
    an owner finish its other work; the exit code."""
    client = session.client
    final, timed_out = await _follow_for(
        client, lifetime_id, progress, args.timeout, after_seq=after_seq
    )
    code = await _finish(
        client,
        lifetime_id,
        final,
        time.perf_counter() - started,
        args.json,
        timed_out=args.timeout if timed_out else None,
    )
    await _others(session, progress)
    return code


async def _others(session: Session, progress: Progress) -> None:
    """An owner finishes what it took on for other clients before it exits."""
    owner = session.owner
    if owner is None or not owner.active:
        return
    progress.stream = sys.stderr
    print(
        f"tickrail: finishing {len(owner.active)} other lifetime(s) this process owns: "
        f"{', '.join(sorted(owner.active))} (Ctrl-C stops; the next owner continues them)",
        file=sys.stderr,
    )
    await owner.until_idle()


@contextlib.asynccontextmanager
async def _interrupted(session: Session) -> AsyncIterator[None]:
    """Say what Ctrl-C does while this process owns running work: node runs in
    flight get the grace period to finish and be recorded (nothing is lost if
    they do not: the next owner runs again what was not recorded)."""
    try:
        yield
    except asyncio.CancelledError:
        if session.owner is not None:
            grace = session.owner.runtime.settings.shutdown_grace_s
            print(
                f"tickrail: interrupted; node runs in flight get up to {grace:g}s to finish "
                "and be recorded (Ctrl-C again to stop now)",
                file=sys.stderr,
                flush=True,
            )
        raise


# ---- run ----------------------------------------------------------------------------


async def cmd_run(args: argparse.Namespace) -> int:
    from .main import parse_json_arg

    settings = _settings(args)
    graph = load_graph(args.graph)
    value = parse_json_arg(args.input, "--input")
    labels = dict(_label(item) for item in args.label)
    labels[GRAPH_LABEL] = graph_label(args.graph)
    if args.detach:
        return await _run_detached(args, settings, graph, value, labels)
    progress = Progress(quiet=args.quiet)
    started = time.perf_counter()
    async with _session(args, settings, Purpose.RUN, [graph]) as session, _interrupted(session):
        client = session.client
        patience = args.timeout if args.timeout is not None else START_PATIENCE_S
        lifetime_id = await _start_patiently(client, graph, value, labels, patience)
        return await _follow_to_the_end(args, session, lifetime_id, progress, started)


async def _start_patiently(
    client: TickrailClient,
    graph: AgentGraph,
    value: Any,
    labels: dict[str, str],
    patience: float,
) -> str:
    """Start the lifetime, asking again under the same id while the control plane has
    not recorded it (it may be restarting): a repeated start is recorded once."""
    lifetime_id = uuid.uuid4().hex[:20]
    deadline = time.monotonic() + patience
    told = False
    while True:
        try:
            return await client.start(graph, value, labels=labels, lifetime_id=lifetime_id)
        except UnavailableError:
            if time.monotonic() >= deadline:
                raise
            if not told:
                print(
                    f"tickrail: the control plane has not recorded the start of {lifetime_id} "
                    "yet (is it running, or restarting?); still waiting",
                    file=sys.stderr,
                )
                told = True


async def _run_detached(
    args: argparse.Namespace,
    settings: Settings,
    graph: AgentGraph,
    value: Any,
    labels: dict[str, str],
) -> int:
    """Start the lifetime in a background owner (started here if none runs) and return."""
    if settings.profile != "embedded":
        raise ConfigurationError("--detach is for the embedded profile (a local background owner)")
    home = Path(settings.home)
    if read_owner(home) is None and _lock_free(home):
        _spawn_owner(args, home)
    async with _session(args, settings, Purpose.READ, [graph]) as session:
        if session.owner is None and session.service is not None:
            raise OwnerError("the background owner did not start; see " + str(home / "owner.log"))
        lifetime_id = await session.client.start(graph, value, labels=labels)
    print(lifetime_id if args.json is False else json.dumps({"lifetime_id": lifetime_id}))
    print(
        f"  running in the background ({session.where}); follow with: "
        f"tickrail lifetimes watch {lifetime_id}",
        file=sys.stderr,
    )
    return 0


def _lock_free(home: Path) -> bool:
    lock = StateLock(home)
    if lock.acquire():
        lock.release()
        return True
    return False


def _spawn_owner(args: argparse.Namespace, home: Path) -> None:
    """Start ``tickrail owner`` in its own session, logging to <home>/owner.log."""
    argv = [sys.executable, "-m", "tickrail.services.cli.main", "owner"]
    for flag in ("config", "profile", "home", "store_url", "bus_url", "blob_url", "kv_url"):
        value = getattr(args, flag, None)
        if value:
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    for policy in getattr(args, "policies", None) or []:
        argv += ["--policy", policy]
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "owner.log", "ab") as log:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # survives the terminal closing
            close_fds=True,
        )
    deadline = time.monotonic() + 30
    while read_owner(home) is None:
        if time.monotonic() > deadline:
            raise OwnerError(f"the background owner did not start; see {home / 'owner.log'}")
        time.sleep(0.05)


async def cmd_owner(args: argparse.Namespace) -> int:
    """The background owner ``run --detach`` starts: serves until idle for a while."""
    settings = _settings(args)
    if settings.profile != "embedded":
        raise ConfigurationError("tickrail owner is for the embedded profile")
    async with _session(args, settings, Purpose.RUN) as session:
        if session.owner is None:
            print(f"tickrail owner: the state is already owned by {session.where}", file=sys.stderr)
            return 0
        await session.owner.until_idle(idle_s=args.idle_exit)
    return 0


# ---- role processes -----------------------------------------------------------------


async def cmd_data_plane(args: argparse.Namespace) -> int:
    return await serve(["data_plane"], _settings(args), port=args.port)


async def cmd_control_plane(args: argparse.Namespace) -> int:
    return await serve(["control_plane"], _settings(args), port=args.port)


async def cmd_executor(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.graphs:
        raise ConfigurationError("an executor needs graphs to serve: --graph or 'graphs' setting")
    graphs = [load_graph(target) for target in settings.graphs]
    return await serve(["executor"], settings, graphs, port=args.port)


def _label(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigurationError(f"--label {item!r} must look like KEY=VALUE")
    return key, value


# ---- serve --------------------------------------------------------------------------


async def cmd_serve(args: argparse.Namespace) -> int:
    from tickrail.services.api.serve import run_api_server

    settings = _settings(args)
    graphs = [load_graph(target) for target in settings.graphs]
    tokens = dict(_token_reference(item) for item in args.token)
    return await run_api_server(
        settings,
        graphs,
        address=args.address,
        tokens=tokens or None,
        insecure=args.insecure,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


def _token_reference(item: str) -> tuple[str, str]:
    tenant, sep, variable = item.partition("=")
    if not sep or not tenant or not variable:
        raise ConfigurationError(f"--token {item!r} must look like TENANT=ENV_VAR")
    return tenant, variable


# ---- lifetimes ----------------------------------------------------------------------


async def cmd_lifetimes_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    async with _session(args, settings, Purpose.READ) as session:
        detail = await session.client.get(args.lifetime_id)
    if args.json:
        print(json.dumps(render.lifetime_json(detail), indent=2, ensure_ascii=False))
    else:
        lines = Lines(sys.stdout)  # statuses coloured on a terminal, unless NO_COLOR
        for line in render.lifetime_table(detail).split("\n"):
            lines.write(line)
    return 0


async def cmd_lifetimes_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    async with _session(args, settings, Purpose.READ) as session:
        page = await session.client.list(status=args.status, page_size=args.limit)
    rows = page.lifetimes
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "lifetime_id": r.lifetime_id,
                        "tenant_id": r.tenant_id,
                        "graph_id": r.graph_id,
                        "status": r.status,
                        "started_at": render.iso(r.started_at.timestamp()),
                        "updated_at": render.iso(r.updated_at.timestamp()),
                        "events": r.events,
                    }
                    for r in rows
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    if not rows:
        print("no lifetimes recorded", file=sys.stderr)
        return 0
    print_table(
        ["lifetime", Column("status", status=True), "graph", "tenant", "started",
         Column("events", numeric=True)],
        [
            (r.lifetime_id, r.status, r.graph_id, r.tenant_id,
             render.iso(r.started_at.timestamp()), r.events)
            for r in rows
        ],
    )  # fmt: skip
    return 0


async def cmd_lifetimes_watch(args: argparse.Namespace) -> int:
    settings = _settings(args)
    progress = Progress(stream=sys.stdout)
    async with _session(args, settings, Purpose.READ) as session:
        client = session.client
        detail = await client.get(args.lifetime_id)
        orphan = session.service is not None and session.owner is None
        if orphan and detail.info.status in ("RUNNING", "PAUSED"):
            # Nobody owns the state, so nothing moves this lifetime now: show what
            # is recorded and say how to continue it rather than wait for ever.
            for event in detail.events:
                progress.on_event(event)
            print(
                f"no process is running lifetime {args.lifetime_id} ({detail.info.status}); "
                f"continue it with: tickrail lifetimes resume {args.lifetime_id}",
                file=sys.stderr,
            )
            return EXIT_CODES.get(detail.info.status, 1)
        async for event in client.watch(args.lifetime_id):
            progress.on_event(event)
    return 0


async def cmd_lifetimes_pause(args: argparse.Namespace) -> int:
    return await _steer(args, "pause")


async def cmd_lifetimes_abort(args: argparse.Namespace) -> int:
    return await _steer(args, "abort")


async def _steer(args: argparse.Namespace, verb: str) -> int:
    """Pause or abort, through whoever owns the lifetime (or this process, as owner)."""
    settings = _settings(args)
    reason = args.reason or f"{verb} from the command line"
    async with _session(args, settings, Purpose.STEER) as session:
        client = session.client
        before = await client.get(args.lifetime_id)
        if before.info.status in ("COMPLETED", "FAILED", "ABORTED"):
            raise LifetimeStateError(f"lifetime {args.lifetime_id} is {before.info.status} already")
        after = max((e.seq for e in before.events), default=0)
        if verb == "pause":
            await client.pause(args.lifetime_id, reason=reason)
        else:
            await client.abort(args.lifetime_id, reason=reason)
        where = session.where
    if settings.profile == "cloud" or args.server:
        print(f"{verb} sent for {args.lifetime_id} (to {where})")
        return 0
    # Locally the decision lands in moments: wait for it, so the exit says it happened.
    wanted = {"pause": {"paused", *TERMINAL}, "abort": TERMINAL}[verb]
    final = await _decision(args, settings, args.lifetime_id, after, wanted)
    what = render.describe_event(final) if final is not None else ""
    kind = final.WhichOneof("kind") if final is not None else "unchanged"
    print(f"{args.lifetime_id}: {kind}{': ' + what if what else ''}")
    return 0


async def _decision(
    args: argparse.Namespace, settings: Settings, lifetime_id: str, after: int, wanted: set[str]
) -> pb.LifetimeEvent | None:
    """The first event of a kind in ``wanted`` after ``after``. The owner may exit
    right after recording it (its own run ended), so a broken stream is retried on
    a new session, which then reads the record itself."""
    async with asyncio.timeout(ABORT_WAIT_S):
        while True:
            try:
                async with _session(args, settings, Purpose.READ) as session:
                    async for event in session.client.watch(lifetime_id, after_seq=after):
                        after = max(after, event.seq)
                        if event.WhichOneof("kind") in wanted:
                            return event
                    return None  # ended without one (e.g. completed before a pause)
            except AdapterError as exc:
                if not exc.retriable:
                    raise
                await asyncio.sleep(0.05)


async def cmd_usage(args: argparse.Namespace) -> int:
    settings = _settings(args)
    async with _session(args, settings, Purpose.READ) as session:
        found = await session.client.usage(lifetime_id=args.lifetime, group_by=args.by)
    rows = [(r.key, r.tokens_in, r.tokens_out, r.cost_usd, r.executions) for r in found]
    if args.json:
        keys = ("key", "tokens_in", "tokens_out", "cost_usd", "executions")
        print(
            json.dumps(
                [dict(zip(keys, row, strict=True)) for row in rows], indent=2, ensure_ascii=False
            )
        )
        return 0
    numbers = [Column(h, numeric=True) for h in ("tokens in", "tokens out", "cost $", "executions")]
    print_table(
        [args.by, *numbers],
        [(key, f"{i:,}", f"{o:,}", f"{cost:.4f}", f"{n:,}") for key, i, o, cost, n in rows],
    )
    return 0


async def cmd_lifetimes_resume(args: argparse.Namespace) -> int:
    from .main import parse_answer_arg

    settings = _settings(args)
    human = parse_answer_arg(args.input, "--input")
    progress = Progress(quiet=args.quiet)
    t0 = time.perf_counter()
    graphs = []
    if args.graph:
        graphs.append(load_graph(args.graph))
    async with _session(args, settings, Purpose.RUN, graphs) as session, _interrupted(session):
        client = session.client
        before = await client.get(args.lifetime_id)
        after = max((e.seq for e in before.events), default=0)
        progress.origin = before.info.started_at.timestamp()
        if before.info.status == "PAUSED" or args.input is not None:
            if args.graph is None and session.owner is not None:
                started = before.events[0].started
                session.owner.runtime.add_graph(load_recorded_graph(started, None))
            await client.resume(
                args.lifetime_id,
                input=human,
                exec_id=args.exec_id,
                reason="resumed from the command line",
            )
        elif before.info.status == "RUNNING":
            # A previous owner died (this process recovered the lifetime when it
            # took over), or another process runs it: either way, follow it.
            where = "continued here" if session.owner is not None else f"run by {session.where}"
            progress.line(f"lifetime {args.lifetime_id} is RUNNING ({where})")
        else:
            raise LifetimeStateError(
                f"lifetime {args.lifetime_id} is {before.info.status}, not PAUSED or RUNNING"
            )
        return await _follow_to_the_end(args, session, args.lifetime_id, progress, t0, after)


async def cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings(args)
    graphs = [load_graph(args.graph)] if args.graph else []
    async with _session(args, settings, Purpose.READ, graphs) as session:
        if session.service is not None and args.rerun_plans and not graphs:
            detail = await session.client.get(args.lifetime_id)
            session.service.runtime.add_graph(load_recorded_graph(detail.events[0].started, None))
        report = await session.client.replay(args.lifetime_id, rerun_plans=args.rerun_plans)
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2, ensure_ascii=False))
        return 0 if report.ok else 1
    d = report.divergence
    if d is not None:
        print(f"DIVERGED at event seq {d.seq} ({d.event_id}) after {report.checked} equal events")
        print(f"  recorded: {d.expected}")
        print(f"  derived:  {d.got}")
    else:
        print(f"OK: {report.checked} recorded decisions re-derived identically")
    if args.rerun_plans:
        print(
            f"{len(report.plan_differences)} plan execution(s) re-run on their recorded "
            "inputs differ"
        )
        for p in report.plan_differences:
            print(f"  {p.exec_id} ({p.name}): recorded {p.expected}")
            print(f"  {' ' * len(p.exec_id)}  {' ' * len(p.name)}   now     {p.got}")
    return 0 if report.ok else 1


async def cmd_fork(args: argparse.Namespace) -> int:
    from .main import parse_json_arg

    settings = _settings(args)
    result: Any = ...
    if args.result is not None:
        result = parse_json_arg(f"@{args.result}", "--result")
    progress = Progress(quiet=args.quiet)
    t0 = time.perf_counter()
    async with _session(args, settings, Purpose.RUN) as session, _interrupted(session):
        client = session.client
        if session.owner is not None:
            detail = await client.get(args.lifetime_id)
            session.owner.runtime.add_graph(load_recorded_graph(detail.events[0].started, None))
        kwargs: dict[str, Any] = {"rerun_finished_branches": args.rerun_finished_branches}
        if result is not ...:
            kwargs["result"] = result
        forked = await client.fork_lifetime(args.lifetime_id, args.from_exec, **kwargs)
        progress.line(f"forked {args.lifetime_id} at {args.from_exec} as {forked.lifetime_id}")
        return await _follow_to_the_end(
            args, session, forked.lifetime_id, progress, t0, forked.history_seq
        )


async def cmd_migrate(args: argparse.Namespace) -> int:
    from tickrail.adapters import open_store

    settings = _settings(args)
    lock = StateLock(Path(settings.home)) if settings.profile == "embedded" else None
    if lock is not None and not lock.acquire():
        owner = read_owner(lock.home)
        print(
            f"the store is in use by its owner ({owner.command if owner else 'starting'}), "
            "which applied its migrations when it started"
        )
        return 0
    try:
        async with open_store(settings.store_url) as store:
            applied = await store.setup()
    finally:
        if lock is not None:
            lock.release()
    shown = redact_url(settings.store_url)
    if applied:
        versions = ", ".join(str(v) for v in applied)
        print(f"store {shown}: applied migration(s) {versions}; now up to date")
    else:
        print(f"store {shown} is already up to date (nothing to apply)")
    return 0


async def cmd_policy_check(args: argparse.Namespace) -> int:
    from tickrail.services.control_plane.guardrails import check_files

    problems = check_files(args.files)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{len(args.files)} policy file(s) OK")
    return 0


async def cmd_policy_test(args: argparse.Namespace) -> int:
    from .policy_test import run_policy_test

    return await run_policy_test(args, _settings(args))
