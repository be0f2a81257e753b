"""Shared start/close bookkeeping for adapters."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from tickrail.sdk.errors import AdapterClosedError


class Lifecycle:
    """``async with`` support, idempotent close, and refusal of use after close.

    Subclasses implement ``_start`` and ``_close`` and call ``_check_open()`` at
    the top of every operation.
    """

    _started: bool = False
    _closed: bool = False

    async def start(self) -> None:
        self._check_open()
        if not self._started:
            await self._start()
            self._started = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started:
            await self._close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterClosedError(type(self).__name__)

    async def _start(self) -> None:
        """Connect; override where there is something to connect to."""

    async def _close(self) -> None:
        """Disconnect; override where there is something to release."""
