"""One owner per embedded state directory (the Lattice daemon's local-first pattern).

The process that runs lifetimes on a state directory holds a POSIX lock on
``<home>/owner.lock`` for as long as it lives: the kernel drops it when the
process ends, however it ends (exit, Ctrl-C, SIGKILL, a closed terminal), so a
dead owner never blocks the next one. While it holds the lock it serves the
lifecycle API on a Unix socket (mode 0600 in a 0700 folder: only its user can
connect) and says where in ``<home>/owner.json``. Every other ``tickrail``
command on that directory is a client of the owner; when there is none, the
command takes the lock itself. A new owner first recovers the lifetimes that
the previous one left RUNNING: their graphs are loaded from what each lifetime
recorded, and the control plane re-dispatches the work that was in flight
under its original input ids (a recorded execution is never run again).

A POSIX (``fcntl``) lock rather than ``flock``: it belongs to the process, so a
child forked by user code (a process pool) does not keep it alive after the
owner died.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from tickrail.sdk.errors import ConfigurationError, OwnerError, TickrailError
from tickrail.sdk.graph import AgentGraph
from tickrail.sdk.pb import envelope_pb2 as pb

from ._graphs import GRAPH_LABEL, load_recorded_graph

log = logging.getLogger("tickrail.owner")

LOCK_FILE = "owner.lock"
INFO_FILE = "owner.json"
#: Unix socket paths are limited to 107 bytes; longer homes put it under /tmp.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True, slots=True)
class OwnerInfo:
    """What ``owner.json`` says about the live owner."""

    pid: int
    socket: str  # path of the Unix socket serving the lifecycle API ("" while starting)
    command: str  # e.g. "tickrail run examples/x.py"
    started_at: float

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"


def socket_path(home: Path) -> Path:
    """Where the owner of ``home`` listens: in it, or in a private folder under the
    temp dir when the path would be too long for a Unix socket."""
    inside = home / "owner.sock"
    if len(str(inside)) <= _MAX_SOCKET_PATH:
        return inside
    folder = Path(tempfile.gettempdir()) / f"tickrail-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    stat = folder.stat()
    if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
        raise ConfigurationError(
            f"{folder} is not a private folder of this user; remove it or use a shorter --home"
        )
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:24]
    return folder / f"{digest}.sock"


class StateLock:
    """The owner lock of one state directory, held by at most one process."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if no live process holds it; never waits."""
        if self._fd is not None:
            return True
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def publish(self, info: OwnerInfo) -> None:
        """Say where this owner serves (written whole, then renamed into place)."""
        target = self.home / INFO_FILE
        scratch = target.with_suffix(".tmp")
        scratch.write_text(json.dumps(asdict(info)))
        os.replace(scratch, target)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            (self.home / INFO_FILE).unlink()
        fd, self._fd = self._fd, None
        os.close(fd)  # closing the descriptor releases the POSIX lock

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_owner(home: Path) -> OwnerInfo | None:
    """What the live owner published, or None (none yet, or a file from a dead one)."""
    try:
        raw = json.loads((home / INFO_FILE).read_text())
        info = OwnerInfo(**raw)
    except (OSError, ValueError, TypeError):
        return None
    if not info.socket or not _alive(info.pid):
        return None
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(info: OwnerInfo | None) -> str:
    if info is None:
        return "another process (starting, or not serving)"
    return f"pid {info.pid} ({info.command})"


async def orphaned_graphs(
    store: Any, graphs: Sequence[AgentGraph]
) -> tuple[list[str], list[AgentGraph]]:
    """Lifetimes a dead owner left RUNNING, and the graphs needed to continue them.

    A lifetime whose graph cannot be loaded (the file moved, another version)
    is left as it is, with a warning saying why; it can be resumed with --graph.
    """
    known = {g.graph_id: g for g in graphs}
    ids: list[str] = []
    extra: list[AgentGraph] = []
    for summary in await store.list_lifetimes(status=pb.LIFETIME_STATUS_RUNNING, limit=100_000):
        events = await store.events(summary.lifetime_id)
        if not events:
            continue
        started = pb.LifetimeEvent.FromString(events[0].body).started
        graph = known.get(started.graph.graph_id)
        if graph is None or graph.version != started.graph.version:
            try:
                graph = load_recorded_graph(started, None)
            except TickrailError as exc:
                log.warning(
                    "lifetime %s was left RUNNING but cannot be continued here: %s "
                    "(resume it with: tickrail lifetimes resume %s --graph GRAPH)",
                    summary.lifetime_id,
                    exc,
                    summary.lifetime_id,
                )
                continue
            if graph.graph_id not in known:
                known[graph.graph_id] = graph
                extra.append(graph)
            elif known[graph.graph_id].version != graph.version:
                log.warning(
                    "lifetime %s runs %s@%s but this process runs version %s; "
                    "it continues when an owner of that version starts",
                    summary.lifetime_id,
                    graph.graph_id,
                    started.graph.version,
                    known[graph.graph_id].version,
                )
                continue
        ids.append(summary.lifetime_id)
    return ids, extra


def owner_info(socket: Path, command: str) -> OwnerInfo:
    return OwnerInfo(pid=os.getpid(), socket=str(socket), command=command, started_at=time.time())


__all__ = [
    "GRAPH_LABEL",
    "INFO_FILE",
    "LOCK_FILE",
    "OwnerError",
    "OwnerInfo",
    "StateLock",
    "describe",
    "orphaned_graphs",
    "owner_info",
    "read_owner",
    "socket_path",
]
