"""The CLI's subcommands; each returns the process exit code."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tickrail.adapters import EventRecord, ExecutionRecord, LifetimeSummary, open_store
from tickrail.adapters.store.base import summarize
from tickrail.sdk.errors import ConfigurationError, LifetimeNotFoundError
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.loading import load_graph
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings, load_settings
from tickrail.services.process import serve
from tickrail.services.runtime import Runtime

from . import render
from .progress import Progress

GRAPH_LABEL = "tickrail.graph"
EXIT_CODES: dict[int, int] = {
    pb.LIFETIME_STATUS_COMPLETED: 0,
    pb.LIFETIME_STATUS_PAUSED: 3,
}


def _settings(args: argparse.Namespace) -> Settings:
    from .main import settings_overrides

    return load_settings(
        getattr(args, "config", None), overrides=settings_overrides(args)
    ).resolved()


def _graph_label(target: str) -> str:
    """How to find the graph again (for resume): absolute path for files."""
    if target.endswith((".py", ".yaml", ".yml")):
        return os.path.abspath(target)
    return target


async def cmd_run(args: argparse.Namespace) -> int:
    from .main import parse_json_arg

    settings = _settings(args)
    graph = load_graph(args.graph)
    value = parse_json_arg(args.input, "--input")
    labels = dict(_label(item) for item in args.label)
    labels[GRAPH_LABEL] = _graph_label(args.graph)
    progress = Progress(quiet=args.quiet)
    started = time.perf_counter()
    async with _runtime(settings, [graph]) as runtime:
        lifetime_id = await runtime.start_lifetime(
            graph, value, tenant=args.tenant, labels=labels, on_event=progress.on_event
        )
        final = await runtime.wait(lifetime_id, timeout=args.timeout)
        wall = time.perf_counter() - started
        return await _finish(runtime, lifetime_id, final, wall, args.json)


async def _finish(
    runtime: Runtime, lifetime_id: str, final: pb.LifetimeEvent, wall: float, as_json: bool
) -> int:
    events = await runtime.store.events(lifetime_id)
    executions = await runtime.store.executions(lifetime_id)
    status = summarize(events).status if events else pb.LIFETIME_STATUS_UNSPECIFIED
    kind = final.WhichOneof("kind")
    out: dict[str, Any] = {
        "lifetime_id": lifetime_id,
        "status": render.LIFETIME[status],
        "wall_time_s": round(wall, 4),
        **render.totals(executions),
    }
    if kind == "completed":
        out["output"] = render.payload_json(final.completed.output)
    elif kind in {"failed", "aborted", "paused"}:
        out["reason"] = render.describe_event(final)
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{out['status']} lifetime {lifetime_id} in {wall:.3f}s: "
            f"{out['executions']} executions, {out['tokens']:,} tokens, ${out['cost_usd']:.4f}"
        )
        if "reason" in out:
            print(f"  {out['reason']}")
        if status == pb.LIFETIME_STATUS_PAUSED:
            print(f"  continue with: tickrail lifetimes resume {lifetime_id}")
        print(f"  details: tickrail lifetimes show {lifetime_id}")
    return EXIT_CODES.get(int(status), 1)


def _runtime(settings: Settings, graphs: list[AgentGraph]) -> Runtime:
    """All roles here (embedded), or none: a cloud deployment's processes do the work."""
    if settings.profile == "cloud":
        return Runtime(settings, graphs, roles=(), watch=False)
    return Runtime(settings, graphs)


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


def _recorded_graph(events: Sequence[EventRecord], override: str | None) -> AgentGraph:
    """The graph a lifetime was started with (or ``override``), checked to be the
    same graph id and version: running a lifetime on other code is refused."""
    started = pb.LifetimeEvent.FromString(events[0].body).started
    target = override or started.labels.get(GRAPH_LABEL)
    if not target:
        raise ConfigurationError("the lifetime does not record its graph; pass --graph")
    graph = load_graph(target)
    if (graph.graph_id, graph.version) != (started.graph.graph_id, started.graph.version):
        raise ConfigurationError(
            f"{target} is {graph.graph_id}@{graph.version}, but the lifetime runs "
            f"{started.graph.graph_id}@{started.graph.version}"
        )
    return graph


async def _load_lifetime(settings: Settings, lifetime_id: str) -> tuple[Any, Any, Any]:
    async with open_store(settings.store_url) as store:
        await store.setup()
        events = await store.events(lifetime_id)
        if not events:
            raise LifetimeNotFoundError(f"no lifetime {lifetime_id!r} in {settings.store_url}")
        executions = await store.executions(lifetime_id)
    return summarize(events), executions, events


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


def _client(args: argparse.Namespace, settings: Settings) -> Any:
    """A TickrailClient for --server (imported here: it needs the grpc extra)."""
    import grpc

    from tickrail.sdk.client import TickrailClient

    credentials = None
    if args.ca_cert:
        try:
            roots = Path(args.ca_cert).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read --ca-cert: {exc}") from exc
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    return TickrailClient(
        args.server,
        tenant=args.tenant or settings.tenant,
        token=os.environ.get(args.token_env) or None,
        secure=args.secure,
        credentials=credentials,
    )


def _summary_of(info: Any) -> LifetimeSummary:
    return LifetimeSummary(
        lifetime_id=info.lifetime_id,
        tenant_id=info.tenant_id,
        graph_id=info.graph_id,
        status=pb.LifetimeStatus.Value(f"LIFETIME_STATUS_{info.status}"),
        started_at=info.started_at.timestamp(),
        updated_at=info.updated_at.timestamp(),
        events=info.events,
    )


async def _load_remote(args: argparse.Namespace, settings: Settings) -> tuple[Any, Any, Any]:
    """``_load_lifetime`` through the API: the same records, rebuilt from its answer."""
    async with _client(args, settings) as client:
        detail = await client.get(args.lifetime_id)
    summary = _summary_of(detail.info)
    executions = [
        ExecutionRecord(
            seq=e.seq,
            exec_id=e.header.exec_id,
            lifetime_id=e.header.lifetime_id,
            tenant_id=e.header.tenant_id,
            name=e.header.name,
            kind=e.header.kind,
            status=e.header.status,
            created_at=e.header.created_at.ToNanoseconds() / 1e9,
            envelope=e.envelope.SerializeToString(),
        )
        for e in detail.executions
    ]
    events = [
        EventRecord(
            seq=e.seq,
            event_id=e.event_id,
            lifetime_id=e.lifetime_id,
            tenant_id=e.tenant_id,
            graph_id=summary.graph_id,
            kind=e.WhichOneof("kind") or "",
            status=summary.status,
            created_at=e.created_at.ToNanoseconds() / 1e9,
            body=e.SerializeToString(),
        )
        for e in detail.events
    ]
    return summary, executions, events


async def cmd_lifetimes_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.server:
        summary, executions, events = await _load_remote(args, settings)
    else:
        summary, executions, events = await _load_lifetime(settings, args.lifetime_id)
    if args.json:
        print(json.dumps(render.lifetime_json(summary, executions, events), indent=2))
    else:
        print(render.lifetime_table(summary, executions, events))
    return 0


async def cmd_lifetimes_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    status = getattr(pb, f"LIFETIME_STATUS_{args.status}") if args.status else None
    if args.server:
        async with _client(args, settings) as client:
            page = await client.list(status=args.status, page_size=args.limit)
        rows = [_summary_of(info) for info in page.lifetimes]
    else:
        async with open_store(settings.store_url) as store:
            await store.setup()
            rows = await store.list_lifetimes(
                tenant_id=args.tenant, status=status, limit=args.limit
            )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "lifetime_id": r.lifetime_id,
                        "tenant_id": r.tenant_id,
                        "graph_id": r.graph_id,
                        "status": render.LIFETIME[r.status],
                        "started_at": render.iso(r.started_at),
                        "updated_at": render.iso(r.updated_at),
                        "events": r.events,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return 0
    if not rows:
        print("no lifetimes recorded", file=sys.stderr)
        return 0
    print(f"{'lifetime':<22} {'status':<10} {'graph':<20} {'tenant':<12} {'started':<24} events")
    for r in rows:
        print(
            f"{r.lifetime_id:<22} {render.LIFETIME[r.status]:<10} {r.graph_id[:20]:<20} "
            f"{r.tenant_id[:12]:<12} {render.iso(r.started_at):<24} {r.events}"
        )
    return 0


async def cmd_lifetimes_watch(args: argparse.Namespace) -> int:
    settings = _settings(args)
    progress = Progress(stream=sys.stdout)
    if args.server:
        async with _client(args, settings) as client:
            async for event in client.watch(args.lifetime_id):
                progress.on_event(event)
        return 0
    async with open_store(settings.store_url) as store:
        if not await store.events(args.lifetime_id):
            raise LifetimeNotFoundError(f"no lifetime {args.lifetime_id!r} in {settings.store_url}")
        after = 0
        while True:
            for record in await store.events(args.lifetime_id, after_seq=after):
                after = record.seq
                progress.on_event(pb.LifetimeEvent.FromString(record.body))
                if record.kind in {"completed", "failed", "aborted"}:
                    return 0
            await asyncio.sleep(0.2)


async def cmd_lifetimes_pause(args: argparse.Namespace) -> int:
    return await _steer(args, "pause")


async def cmd_lifetimes_abort(args: argparse.Namespace) -> int:
    return await _steer(args, "abort")


async def _steer(args: argparse.Namespace, verb: str) -> int:
    """Pause or abort: through the API, over the bus (cloud), or here (embedded)."""
    settings = _settings(args)
    if args.server:
        async with _client(args, settings) as client:
            await getattr(client, verb)(args.lifetime_id, reason=args.reason)
        print(f"{verb} sent for {args.lifetime_id}")
        return 0
    summary, _, _ = await _load_lifetime(settings, args.lifetime_id)
    if summary.status in (
        pb.LIFETIME_STATUS_COMPLETED,
        pb.LIFETIME_STATUS_FAILED,
        pb.LIFETIME_STATUS_ABORTED,
    ):
        raise ConfigurationError(
            f"lifetime {args.lifetime_id} is {render.LIFETIME[summary.status]} already"
        )
    command = pb.LifetimeCommand(
        command_id=f"{verb}-{time.time_ns()}",
        lifetime_id=args.lifetime_id,
        tenant_id=summary.tenant_id,
    )
    reason = args.reason or f"{verb} from the command line"
    if verb == "pause":
        command.pause.CopyFrom(pb.LifetimePaused(reason=reason))
    else:
        command.abort.CopyFrom(pb.LifetimeAborted(reason=reason))
    if settings.profile == "cloud":  # a control-plane process takes it from the bus
        async with Runtime(settings, roles=(), watch=False) as runtime:
            await runtime.send(command)
        print(f"{verb} sent for {args.lifetime_id}")
        return 0
    # Embedded: the lifetime's control plane lives in the process running it.
    running = summary.status == pb.LIFETIME_STATUS_RUNNING
    if verb == "pause" or (running and not getattr(args, "force", False)):
        force = ", or --force if no process runs it any more" if verb == "abort" else ""
        raise ConfigurationError(
            "in the embedded profile a RUNNING lifetime is steered by the process running it; "
            f"use a server (tickrail serve, then --server){force}"
        )
    async with Runtime(settings, roles=("control_plane",)) as runtime:
        runtime.follow(args.lifetime_id, lambda _e: None)
        await runtime.send(command)
        final = await runtime.wait(args.lifetime_id, timeout=30)
    print(f"{args.lifetime_id}: {render.describe_event(final) or final.WhichOneof('kind')}")
    return 0


async def cmd_usage(args: argparse.Namespace) -> int:
    settings = _settings(args)
    rows: list[tuple[str, int, int, float, int]]
    if args.server:
        async with _client(args, settings) as client:
            found = await client.usage(lifetime_id=args.lifetime, group_by=args.by)
        rows = [(r.key, r.tokens_in, r.tokens_out, r.cost_usd, r.executions) for r in found]
    else:
        from tickrail.sdk.pb import lifecycle_pb2 as api
        from tickrail.services.usage import usage_rows

        async with open_store(settings.store_url) as store:
            if args.lifetime:
                ids = [args.lifetime]
            else:
                listed = await store.list_lifetimes(tenant_id=args.tenant, limit=1_000_000)
                ids = [s.lifetime_id for s in listed]
            records = [r for lifetime_id in ids for r in await store.executions(lifetime_id)]
        grouping = api.UsageGrouping.Value(f"USAGE_GROUPING_{args.by.upper()}")
        rows = [
            (r.key, r.tokens_in, r.tokens_out, r.cost_usd, r.executions)
            for r in usage_rows(records, grouping)
        ]
    if args.json:
        keys = ("key", "tokens_in", "tokens_out", "cost_usd", "executions")
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return 0
    print(f"{args.by:<32} {'tokens in':>11} {'tokens out':>11} {'cost $':>10} {'executions':>10}")
    for key, t_in, t_out, cost, count in rows:
        print(f"{key[:32]:<32} {t_in:>11,} {t_out:>11,} {cost:>10.4f} {count:>10,}")
    return 0


async def cmd_lifetimes_resume(args: argparse.Namespace) -> int:
    from tickrail.sdk._payload import encode
    from tickrail.services.control_plane.commands import ResumeRefused, resume_command
    from tickrail.services.control_plane.projection import rebuild

    from .main import parse_json_arg

    settings = _settings(args)
    if args.server:
        return await _resume_remote(args, settings)
    summary, executions, events = await _load_lifetime(settings, args.lifetime_id)
    if summary.status != pb.LIFETIME_STATUS_PAUSED:
        raise ConfigurationError(
            f"lifetime {args.lifetime_id} is {render.LIFETIME[summary.status]}, not PAUSED"
        )
    state = rebuild(
        [pb.LifetimeEvent.FromString(e.body) for e in events],
        {r.exec_id: pb.ExecutionEnvelope.FromString(r.envelope) for r in executions},
    )
    assert state is not None
    human = parse_json_arg(args.input, "--input")
    try:
        resume = resume_command(
            state,
            answer=None if human is None else encode(human),
            exec_id=args.exec_id or "",
            reason="resumed from the command line",
        )
    except ResumeRefused as exc:
        flag = {"exec_id": "--exec", "input": "--input"}.get(exc.field)
        raise ConfigurationError(f"{exc} (use {flag})" if flag else str(exc)) from exc
    graph = _recorded_graph(events, args.graph)
    progress = Progress(quiet=args.quiet)
    t0 = time.perf_counter()
    async with _runtime(settings, [graph]) as runtime:
        runtime.follow(args.lifetime_id, progress.on_event, after_seq=events[-1].seq)
        await runtime.send(
            pb.LifetimeCommand(
                command_id=f"resume-{time.time_ns()}",
                lifetime_id=args.lifetime_id,
                tenant_id=summary.tenant_id,
                resume=resume,
            )
        )
        if runtime.control_plane is not None:  # embedded: in-flight work died with its process
            await runtime.control_plane.recover([args.lifetime_id])
        final = await runtime.wait(args.lifetime_id, timeout=args.timeout)
        return await _finish(runtime, args.lifetime_id, final, time.perf_counter() - t0, args.json)


async def _resume_remote(args: argparse.Namespace, settings: Settings) -> int:
    from .main import parse_json_arg

    human = parse_json_arg(args.input, "--input")
    progress = Progress(quiet=args.quiet)
    async with _client(args, settings) as client:
        before = await client.get(args.lifetime_id)
        after = max((e.seq for e in before.events), default=0)
        await client.resume(args.lifetime_id, input=human, exec_id=args.exec_id)
        last = None
        async with asyncio.timeout(args.timeout):
            async for event in client.watch(args.lifetime_id, after_seq=after):
                progress.on_event(event)
                last = event
                if event.WhichOneof("kind") == "paused":
                    break
        detail = await client.get(args.lifetime_id)
    status = pb.LifetimeStatus.Value(f"LIFETIME_STATUS_{detail.info.status}")
    out = {"lifetime_id": args.lifetime_id, "status": detail.info.status}
    if last is not None and last.WhichOneof("kind") == "completed":
        out["output"] = render.payload_json(last.completed.output)
    print(json.dumps(out, indent=2) if args.json else f"{detail.info.status} {args.lifetime_id}")
    return EXIT_CODES.get(int(status), 1)


async def cmd_replay(args: argparse.Namespace) -> int:
    from tickrail.adapters import open_blob_store
    from tickrail.services.control_plane.replay import replay_lifetime

    settings = _settings(args)
    graphs: list[AgentGraph] = []
    async with open_store(settings.store_url) as store, open_blob_store(settings.blob_url) as blobs:
        if args.rerun_plans:
            events = await store.events(args.lifetime_id)
            if events:
                graphs.append(_recorded_graph(events, args.graph))
        report = await replay_lifetime(
            store, args.lifetime_id, graphs=graphs, rerun_plans=args.rerun_plans, blobs=blobs
        )
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
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
            f"{report.plans_rerun} plan execution(s) re-run on their recorded inputs: "
            f"{len(report.plan_differences)} differ"
        )
        for p in report.plan_differences:
            print(f"  {p.exec_id} ({p.name}): recorded {p.expected}")
            print(f"  {' ' * len(p.exec_id)}  {' ' * len(p.name)}   now     {p.got}")
    return 0 if report.ok else 1


async def cmd_fork(args: argparse.Namespace) -> int:
    from tickrail.sdk._payload import encode
    from tickrail.services.control_plane.fork import fork_lifetime

    from .main import parse_json_arg

    settings = _settings(args)
    _, _, events = await _load_lifetime(settings, args.lifetime_id)
    graph = _recorded_graph(events, None)
    result = None
    if args.result is not None:
        result = encode(parse_json_arg(f"@{args.result}", "--result"))
    progress = Progress(quiet=args.quiet)
    t0 = time.perf_counter()
    async with _runtime(settings, [graph]) as runtime:
        new_id = await fork_lifetime(runtime, args.lifetime_id, args.from_exec, result=result)
        progress.line(f"forked {args.lifetime_id} at {args.from_exec} as {new_id}")
        runtime.follow(new_id, progress.on_event)
        final = await runtime.wait(new_id, timeout=args.timeout)
        return await _finish(runtime, new_id, final, time.perf_counter() - t0, args.json)


async def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    async with open_store(settings.store_url) as store:
        await store.setup()
    print(f"store {settings.store_url} is up to date")
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
