"""``tickrail dev GRAPH``: run the graph, and run it again whenever its code changes.

The graph runs in a child process (``tickrail ui`` when the web console is
installed, else ``tickrail run``), so every reload imports the code afresh,
with no module state left from the previous version. The parent watches the
graph's folder; on a change it restarts the child only after in-flight work
has stopped: a ``run`` child is left to finish its lifetime, a console child
gets SIGTERM and shuts down gracefully (in-flight nodes finish within
``shutdown_grace_s``).

Watching is by polling modification times (twice a second, source files
only, hidden folders, virtualenvs and caches skipped), which needs no extra
package and works on every filesystem, network mounts included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

WATCHED_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".toml")
SKIPPED_DIRS = {"__pycache__", "node_modules", "venv", "env", "build", "dist"}
POLL_S = 0.5


def console_available() -> bool:
    import importlib.util

    # The web console (`tickrail ui`) is an optional part; look without importing it.
    return importlib.util.find_spec("tickrail.services.console") is not None


def watched_folder(target: str) -> Path:
    """The folder holding the graph's code: a file's folder, or a module's package."""
    if target.endswith((".py", ".yaml", ".yml")):
        return Path(target).resolve().parent
    import importlib.util

    module = target.partition(":")[0]
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    spec = importlib.util.find_spec(module.partition(".")[0])
    if spec is None or not spec.origin:
        return Path.cwd()
    return Path(spec.origin).resolve().parent  # a package's folder, or a module's


def _files(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".") and d not in SKIPPED_DIRS and not d.endswith(".egg-info")
        ]
        for name in names:
            if name.endswith(WATCHED_SUFFIXES):
                yield Path(root, name)


def snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    out: dict[Path, tuple[int, int]] = {}
    for path in _files(folder):
        with contextlib.suppress(OSError):  # removed while we looked
            st = path.stat()
            out[path] = (st.st_mtime_ns, st.st_size)
    return out


def changes(before: dict[Path, tuple[int, int]], after: dict[Path, tuple[int, int]]) -> list[Path]:
    keys = before.keys() | after.keys()
    return sorted(p for p in keys if before.get(p) != after.get(p))


class DevLoop:
    def __init__(
        self,
        child_argv: Sequence[str],
        folder: Path,
        *,
        server: bool,
        grace_s: float,
        say: Callable[[str], None],
    ) -> None:
        self.child_argv = list(child_argv)
        self.folder = folder
        self.server = server  # the child serves until stopped (console), or runs once
        self.grace_s = grace_s
        self.say = say
        self.stopping = False

    def run(self) -> int:
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._loop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _loop(self) -> int:
        seen = snapshot(self.folder)
        self.say(f"tickrail dev: watching {self.folder} (Ctrl-C to stop)")
        while not self.stopping:
            child = subprocess.Popen(self.child_argv)
            changed: list[Path] = []
            while not self.stopping and child.poll() is None and not changed:
                time.sleep(POLL_S)
                now = snapshot(self.folder)
                changed, seen = changes(seen, now), now
            if self.stopping:
                self._end(child)
                break
            if changed and child.poll() is None:
                if self.server:
                    self.say(f"tickrail dev: {_names(changed)} changed; restarting")
                    self._end(child)
                else:
                    self.say(
                        f"tickrail dev: {_names(changed)} changed; "
                        "rerunning when the running lifetime ends"
                    )
                    self._wait(child)
                continue
            if changed:  # the child ended just as the code changed
                continue
            code = child.returncode
            self.say(f"tickrail dev: exited with {code}; waiting for a change")
            while not self.stopping and not changed:
                time.sleep(POLL_S)
                now = snapshot(self.folder)
                changed, seen = changes(seen, now), now
            if changed:
                self.say(f"tickrail dev: {_names(changed)} changed; rerunning")
        return 0

    def _wait(self, child: subprocess.Popen[bytes]) -> None:
        while child.poll() is None:
            if self.stopping:
                self._end(child)
                return
            time.sleep(POLL_S)

    def _end(self, child: subprocess.Popen[bytes]) -> None:
        """SIGTERM, then the grace period for in-flight nodes, then SIGKILL."""
        if child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=self.grace_s + 10)
        except subprocess.TimeoutExpired:
            self.say("tickrail dev: the runtime did not stop in time; killing it")
            child.kill()
            child.wait()


def _names(paths: Sequence[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
