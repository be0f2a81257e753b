"""Liveness, readiness and Prometheus metrics over plain HTTP/1.1.

A few fixed GET routes do not justify a web framework; asyncio's server is
enough. The metrics body is prometheus-client's exposition (services/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from tickrail.services.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger("tickrail.health")


class HealthServer:
    """``/healthz`` (the loop answers), ``/readyz`` (roles started and alive, and no
    dependency being waited for), ``/metrics``."""

    def __init__(
        self,
        port: int,
        *,
        host: str = "0.0.0.0",
        ready: Callable[[], bool],
        metrics: Callable[[], bytes],
        detail: Callable[[], str] | None = None,
        waiting_for: Callable[[], str] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._ready, self._metrics = ready, metrics
        self._detail = detail  # why it is not ready (e.g. the startup phase)
        # which dependency a running role is retrying ('' when none)
        self._waiting_for = waiting_for or (lambda: "")
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sockets = self._server.sockets or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b""):
                pass  # headers are not needed
            parts = request.decode(errors="replace").split()
            path = parts[1] if len(parts) > 1 else "/"
            status, body, kind = self._route(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _route(self, path: str) -> tuple[str, bytes, str]:
        text = "text/plain; charset=utf-8"
        if path == "/healthz":
            return "200 OK", b"ok\n", text
        if path == "/readyz":
            # Not ready while a dependency is being retried, naming it; /healthz
            # stays 200 meanwhile (the process is fine, restarting it won't help).
            waiting = self._waiting_for() if self._ready() else ""
            if self._ready() and not waiting:
                return "200 OK", b"ready\n", text
            if waiting:
                return "503 Service Unavailable", f"not ready: {waiting}\n".encode(), text
            why = f": {self._detail()}" if self._detail is not None else ""
            return "503 Service Unavailable", f"not ready{why}\n".encode(), text
        if path == "/metrics":
            return "200 OK", self._metrics(), CONTENT_TYPE_LATEST
        return "404 Not Found", b"not found\n", text
