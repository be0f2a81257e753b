"""SIGTERM stops the console promptly even while pages hold event streams open."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

from tests.console.server import Console, run_example


def _open_event_stream(port: int, lifetime_id: str) -> socket.socket:
    """A page following a lifetime: the SSE request, read until the stream has begun."""
    stream = socket.create_connection(("127.0.0.1", port), timeout=60)
    stream.sendall(
        f"GET /api/lifetimes/{lifetime_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    seen = b""
    while b"retry:" not in seen:  # the stream's first line: the response is under way
        chunk = stream.recv(65536)
        assert chunk, f"the console closed the stream: {seen!r}"
        seen += chunk
    return stream


def test_sigterm_stops_the_console_while_a_page_follows_a_paused_lifetime(tmp_path: Path) -> None:
    lifetime_id = run_example(tmp_path, "human_review.py")  # waits for a person: never ends
    console = Console(tmp_path)
    stream = _open_event_stream(console.port, lifetime_id)
    try:
        stream.settimeout(1.0)
        with contextlib.suppress(TimeoutError):  # only the lifetime or the server ends it
            assert b"event: end" not in stream.recv(65536)
        began = time.monotonic()
        console.proc.terminate()
        code = console.proc.wait(timeout=120)  # bounded by the grace period (5 s), not the page
        took = time.monotonic() - began
    finally:
        stream.close()
        if console.proc.poll() is None:
            console.proc.kill()
    assert code == 0, console.log.read_text()
    print(f"stopped {took:.1f}s after SIGTERM with a stream open")
