"""Log lines with timestamps, as text or as one JSON object per line.

``log_format: json`` (the setting, or ``TICKRAIL_LOG_FORMAT=json``) gives lines
a log pipeline can parse: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, and where known ``lifetime_id``, ``exec_id``, ``trace_id`` and
``span_id`` (the ids of the node run or decision the line was logged in, and
its OpenTelemetry span when tracing is on), ``exception`` for a traceback.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys
from typing import Any

from tickrail.sdk._redact import RedactingFilter
from tickrail.sdk.errors import ConfigurationError

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: (lifetime id, exec id) of the work this task or thread is doing
_current: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "tickrail_log_context", default=("", "")
)


class context:  # lower case: used like a function, ``with logs.context(...):``
    """Lines logged inside name this lifetime and execution (a class: it runs per step)."""

    __slots__ = ("_token", "_value")

    def __init__(self, lifetime_id: str, exec_id: str = "") -> None:
        self._value = (lifetime_id, exec_id)

    def __enter__(self) -> None:
        self._token = _current.set(self._value)

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso(record.created)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        lifetime_id, exec_id = _current.get()
        if lifetime_id:
            out["lifetime_id"] = lifetime_id
        if exec_id:
            out["exec_id"] = exec_id
        out.update(_span_ids())
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def _iso(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _span_ids() -> dict[str, str]:
    from tickrail.services import tracing

    if not tracing.enabled():
        return {}
    from opentelemetry import trace

    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return {}
    return {"trace_id": f"{span.trace_id:032x}", "span_id": f"{span.span_id:016x}"}


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ConfigurationError(f"log_format must be text or json, not {fmt!r}")
    return JsonFormatter() if fmt == "json" else TextFormatter()


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (tests and tools swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


_handler: logging.Handler | None = None


def setup(level: int = logging.WARNING, fmt: str = "text") -> None:
    """Log to stderr at ``level`` in ``fmt``; calling again changes both."""
    global _handler
    root = logging.getLogger()
    if _handler is None:
        _handler = _Stderr()
        _handler.addFilter(RedactingFilter())  # no URL in a log line shows a secret
        root.addHandler(_handler)
    _handler.setFormatter(formatter(fmt or "text"))
    root.setLevel(level)


def use_format(fmt: str) -> None:
    """Switch the format of the handler ``setup`` installed (once settings are read)."""
    if _handler is not None:
        _handler.setFormatter(formatter(fmt or "text"))
