"""``tickrail dev GRAPH``: run the graph, and run it again whenever its code changes.

The graph runs in a child process, so every reload imports the code afresh,
with no module state left from the previous version: ``tickrail run`` with
``--input`` (one lifetime per change), else ``tickrail ui`` when the web
console is installed, else ``tickrail owner``, the embedded owner through
which every other ``tickrail`` command on this state directory runs (so
``tickrail run GRAPH`` in another terminal runs the fresh code). The parent
watches the graph's folder and restarts the child only after in-flight work
has stopped (see ``DevLoop``).

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
    """Restart ``child_argv`` on changes under ``folder``.

    ``mode`` says what the child is: ``run`` (runs one lifetime and exits: a
    change reruns it after the running lifetime ends), ``server`` (the console:
    stopped with SIGTERM, which lets in-flight nodes finish) or ``owner`` (the
    embedded owner other ``tickrail`` commands use: restarted once ``busy()``
    says no lifetime is RUNNING, with SIGINT, as Ctrl-C would).
    """

    def __init__(
        self,
        child_argv: Sequence[str],
        folder: Path,
        *,
        mode: str,
        grace_s: float,
        say: Callable[[str], None],
        busy: Callable[[], bool] | None = None,
    ) -> None:
        if mode not in ("run", "server", "owner"):
            raise ValueError(f"unknown dev mode {mode!r}")
        self.child_argv = list(child_argv)
        self.folder = folder
        self.mode = mode
        self.grace_s = grace_s
        self.say = say
        self.busy = busy or (lambda: False)
        self.stopping = False
        self._seen: dict[Path, tuple[int, int]] = {}

    def run(self) -> int:
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._loop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _changed(self) -> list[Path]:
        now = snapshot(self.folder)
        found, self._seen = changes(self._seen, now), now
        return found

    def _loop(self) -> int:
        self._seen = snapshot(self.folder)
        self.say(f"tickrail dev: watching {self.folder} (Ctrl-C to stop)")
        while not self.stopping:
            child = subprocess.Popen(self.child_argv)
            changed: list[Path] = []
            while not self.stopping and child.poll() is None and not changed:
                time.sleep(POLL_S)
                changed = self._changed()
            if self.stopping:
                self._end(child, signal.SIGTERM)
                break
            if changed and child.poll() is None:
                self._restart(child, changed)
                continue
            if changed:  # the child ended just as the code changed
                continue
            self._after_exit(child.returncode)
        return 0

    def _restart(self, child: subprocess.Popen[bytes], changed: list[Path]) -> None:
        names = _names(changed)
        if self.mode == "server":
            self.say(f"tickrail dev: {names} changed; restarting")
            self._end(child, signal.SIGTERM)
        elif self.mode == "run":
            self.say(f"tickrail dev: {names} changed; rerunning when the running lifetime ends")
            self._wait(child)
        else:
            if self.busy():
                self.say(f"tickrail dev: {names} changed; restarting when no lifetime runs")
                while not self.stopping and child.poll() is None and self.busy():
                    time.sleep(POLL_S)
                    self._changed()  # later edits are part of this restart
            self.say(f"tickrail dev: {names} changed; restarting the owner")
            self._end(child, signal.SIGINT)

    def _after_exit(self, code: int | None) -> None:
        if self.mode == "owner":
            # Another process owns the state (or the owner stopped): try again
            # soon, so the next `tickrail run` finds an owner with fresh code.
            self.say(f"tickrail dev: the owner exited with {code}; starting another")
            deadline = time.monotonic() + 2.0
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(POLL_S)
            return
        self.say(f"tickrail dev: exited with {code}; waiting for a change")
        changed: list[Path] = []
        while not self.stopping and not changed:
            time.sleep(POLL_S)
            changed = self._changed()
        if changed:
            self.say(f"tickrail dev: {_names(changed)} changed; rerunning")

    def _wait(self, child: subprocess.Popen[bytes]) -> None:
        while child.poll() is None:
            if self.stopping:
                self._end(child, signal.SIGTERM)
                return
            time.sleep(POLL_S)

    def _end(self, child: subprocess.Popen[bytes], signum: int) -> None:
        """Signal, then the grace period for in-flight nodes, then SIGKILL."""
        if child.poll() is not None:
            return
        child.send_signal(signum)
        try:
            child.wait(timeout=self.grace_s + 10)
        except subprocess.TimeoutExpired:
            self.say("tickrail dev: the runtime did not stop in time; killing it")
            child.kill()
            child.wait()


def _names(paths: Sequence[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
