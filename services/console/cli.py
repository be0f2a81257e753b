"""``tickrail ui``: its arguments and its command (registered in ``services/cli/main.py``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from tickrail.sdk.errors import ConfigurationError
from tickrail.sdk.loading import load_graph

DEFAULT_ADDRESS = "127.0.0.1:8321"


def add_parser(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    ui = sub.add_parser(
        "ui", help="serve the web console: see and steer lifetimes in a browser (docs/console.md)"
    )
    ui.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        metavar="HOST:PORT",
        help="where to listen (default %(default)s)",
    )
    ui.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TENANT=ENV_VAR",
        help="a tenant and the environment variable holding its token (repeatable); "
        "without any, the console runs unauthenticated, on a loopback address only",
    )
    ui.add_argument(
        "--graph",
        action="append",
        dest="graphs",
        metavar="GRAPH",
        help="graph code to run when resuming or forking (repeatable; default: the graphs "
        "the recorded lifetimes were started with)",
    )
    common(ui)
    ui.set_defaults(handler=cmd_ui)


def _token_reference(item: str) -> tuple[str, str]:
    tenant, sep, variable = item.partition("=")
    if not sep or not tenant or not variable:
        raise ConfigurationError(f"--token {item!r} must look like TENANT=ENV_VAR")
    return tenant, variable


async def cmd_ui(args: argparse.Namespace) -> int:
    from tickrail.services.cli.main import settings_overrides
    from tickrail.services.config import load_settings

    from .serve import run_console

    settings = load_settings(args.config, overrides=settings_overrides(args)).resolved()
    graphs = [load_graph(target) for target in settings.graphs]
    tokens = dict(_token_reference(item) for item in args.token)
    return await run_console(settings, graphs, address=args.address, tokens=tokens or None)
