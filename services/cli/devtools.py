"""Developer commands: ``graph`` (draw one), ``new`` (scaffold a project), ``dev``
(run with reload) and ``completion`` (shell completion scripts).

``register`` adds them to the ``tickrail`` parser; each sets its own handler.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

Common = Callable[[argparse.ArgumentParser], None]

#: Added to the ``tickrail --help`` epilog, after the exit codes.
OUTPUT_HELP = """
NO_COLOR=1 turns colour off; piped output is never coloured.
Shell completion: tickrail completion bash|zsh|tcsh.
"""


def register(sub: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    graph = sub.add_parser(
        "graph",
        help="draw a graph: a Mermaid flowchart, Graphviz DOT or JSON",
        description="Print a picture of GRAPH, drawn from its code.",
    )
    graph.add_argument("graph", help="graph: path/to/file.py, package.module:attr, or graph.yaml")
    graph.add_argument(
        "--format", choices=["mermaid", "dot", "json"], default="mermaid", help="(default mermaid)"
    )
    graph.add_argument(
        "--direction",
        choices=["TD", "LR", "BT", "RL"],
        default="TD",
        help="Mermaid layout direction (default TD)",
    )
    graph.set_defaults(handler=cmd_graph)

    new = sub.add_parser(
        "new",
        help="create a project: a graph, a policy, a config, a test and a Dockerfile",
        description="Create the folder NAME with a tickrail project whose test passes as is.",
    )
    new.add_argument("name", metavar="NAME", help="project name (also its folder)")
    new.add_argument("--dir", type=Path, help="where to create it (default ./NAME)")
    new.set_defaults(handler=cmd_new)

    dev = sub.add_parser(
        "dev",
        help="run a graph and run it again whenever its code changes",
        description=(
            "Watch GRAPH's folder and restart on every change, after in-flight work stops. "
            "With --input, run one lifetime per change and print it; else serve the web "
            "console (tickrail ui) when it is installed; else run the embedded owner, so "
            "`tickrail run GRAPH` in another terminal runs the fresh code."
        ),
    )
    dev.add_argument("graph", help="graph: path/to/file.py, package.module:attr, or graph.yaml")
    dev.add_argument("--input", help="lifetime input as JSON or @file.json: run once per change")
    dev.add_argument(
        "--address", help="console address HOST:PORT (with the console; default its own)"
    )
    dev.add_argument(
        "--no-console",
        action="store_true",
        help="run the embedded owner even when the web console is installed",
    )
    dev.set_defaults(handler=cmd_dev)
    common(dev)

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or tcsh)",
        description=(
            "Print the completion script for SHELL. Install it with, e.g.:\n"
            "  bash: tickrail completion bash \\\n"
            "          > ~/.local/share/bash-completion/completions/tickrail\n"
            "  zsh:  tickrail completion zsh > ~/.zfunc/_tickrail  (with fpath+=~/.zfunc)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    completion.add_argument("shell", choices=["bash", "zsh", "tcsh"])
    completion.set_defaults(handler=cmd_completion)


async def cmd_graph(args: argparse.Namespace) -> int:
    from tickrail.sdk import diagram
    from tickrail.sdk.loading import load_graph

    spec = load_graph(args.graph).spec
    if args.format == "mermaid":
        text = diagram.to_mermaid(spec, args.direction)
    elif args.format == "dot":
        text = diagram.to_dot(spec)
    else:
        text = diagram.to_json_text(spec)
    sys.stdout.write(text)
    return 0


async def cmd_new(args: argparse.Namespace) -> int:
    from .scaffold import create_project, package_name

    target = args.dir if args.dir is not None else Path(args.name)
    written = create_project(target, args.name)
    package = package_name(args.name)
    print(f"created {target}/ ({len(written)} files):")
    for path in written:
        print(f"  {path.relative_to(target)}")
    print(
        "\nnext:\n"
        f"  cd {target}\n"
        "  pip install -e .   # after tickrail itself: pip install -e PATH/TO/tickrail\n"
        "  pytest\n"
        f'  tickrail dev src/{package}/graph.py --input \'{{"topics": ["tea"]}}\''
    )
    return 0


_FORWARDED = ("config", "profile", "home", "store_url", "bus_url", "blob_url", "kv_url")


async def cmd_dev(args: argparse.Namespace) -> int:
    from tickrail.sdk.errors import ConfigurationError
    from tickrail.services.config import load_settings

    from .devloop import DevLoop, console_available, watched_folder
    from .main import settings_overrides

    # Bad settings fail here, with the file named, rather than in a restart loop.
    settings = load_settings(args.config, overrides=settings_overrides(args)).resolved()
    base = [sys.executable, "-m", "tickrail.services.cli.main"]
    flags: list[str] = []
    for key in _FORWARDED:
        value = getattr(args, key, None)
        if value:
            flags += [f"--{key.replace('_', '-')}", str(value)]
    for policy in args.policies or ():
        flags += ["--policy", policy]
    if args.input is not None:
        mode, child = "run", [*base, "run", args.graph, "--input", args.input, *flags]
    elif console_available() and not args.no_console:
        mode, child = "server", [*base, "ui", "--graph", args.graph, *flags]
        if args.address:
            child += ["--address", args.address]
    else:
        if settings.profile != "embedded":
            raise ConfigurationError(
                "tickrail dev without --input runs the embedded owner: use the embedded "
                "profile, or give --input to run one lifetime per change"
            )
        mode, child = "owner", [*base, "owner", "--idle-exit", "1e9", *flags]

    def busy() -> bool:
        listed = subprocess.run(
            [*base, "lifetimes", "list", "--status", "RUNNING", "--json", *flags],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return listed.returncode == 0 and listed.stdout.strip() not in ("", "[]")

    loop = DevLoop(
        child,
        watched_folder(args.graph),
        mode=mode,
        grace_s=settings.shutdown_grace_s,
        say=lambda text: print(text, file=sys.stderr, flush=True),
        busy=busy,
    )
    return loop.run()


#: Positional and option names whose values are paths: completed as files.
_PATH_ARGS = {"graph", "files", "config", "home", "policies", "input", "result", "dir"}


async def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    from .main import build_parser

    parser = build_parser()
    _mark_paths(parser, shtab.FILE)
    sys.stdout.write(shtab.complete(parser, shell=args.shell))
    return 0


def _mark_paths(parser: argparse.ArgumentParser, files: object) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _mark_paths(child, files)
        elif action.dest in _PATH_ARGS:
            action.complete = files  # type: ignore[attr-defined]  # read by shtab
