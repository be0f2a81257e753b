"""Hot reload: swap in a new PolicySet when the files change; keep the old one if
the new files are invalid."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from tickrail.sdk.errors import PolicyError

from ._policyset import PolicySet

logger = logging.getLogger("tickrail.guardrails")


class PolicyWatcher:
    """Holds the current PolicySet and replaces it when the files change.

    The first load happens in the constructor and raises PolicyError: a process
    must not start with invalid policies. Later reloads never raise.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        interval: float = 1.0,
        on_error: Callable[[PolicyError], None] | None = None,
    ) -> None:
        self._paths = tuple(Path(p) for p in paths)
        self._interval = interval
        self._on_error = on_error
        self._fingerprint = self._snapshot()
        self._current = PolicySet.load(self._paths)

    @property
    def current(self) -> PolicySet:
        return self._current

    def reload(self) -> bool:
        """Load the files now. On error keep the current set, log, call
        ``on_error`` and return False."""
        return self._apply(self._try_load())

    async def run(self) -> None:
        """Poll the files every ``interval`` seconds and reload when they change.

        Reading and compiling run in a worker thread so a large policy set does
        not stall the event loop. Runs until cancelled.
        """
        while True:
            await asyncio.sleep(self._interval)
            fingerprint = await asyncio.to_thread(self._snapshot)
            if fingerprint == self._fingerprint:
                continue
            # Remember it even if the reload fails: one error per change, not per poll.
            self._fingerprint = fingerprint
            self._apply(await asyncio.to_thread(self._try_load))

    def install_sighup(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reload on SIGHUP (Unix only)."""
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def _try_load(self) -> PolicySet | PolicyError:
        try:
            return PolicySet.load(self._paths)
        except PolicyError as exc:
            return exc

    def _apply(self, result: PolicySet | PolicyError) -> bool:
        if isinstance(result, PolicyError):
            logger.error(
                "policy reload failed; keeping version %s\n%s", self._current.version, result
            )
            if self._on_error is not None:
                self._on_error(result)
            return False
        if result.version != self._current.version:
            logger.info("policies reloaded: %s -> %s", self._current.version, result.version)
        self._current = result
        return True

    def _snapshot(self) -> str:
        """A digest of which policy files exist and what they contain."""
        digest = hashlib.sha256()
        for path in self._paths:
            try:
                files = (
                    sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
                    if path.is_dir()
                    else [path]
                )
                for file in files:
                    data = file.read_bytes()
                    digest.update(f"{file}\0{len(data)}\0".encode())
                    digest.update(data)
            except OSError:  # missing or vanishing mid-scan: the reload will say so
                digest.update(f"{path}\0<unreadable>\0".encode())
        return digest.hexdigest()
