"""Blobs as files under a root directory: ``file:///var/lib/tickrail/blobs``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tickrail.sdk.errors import AdapterError, ConfigurationError

from .._lifecycle import Lifecycle


def _safe_relative(key: str) -> Path:
    path = Path(key)
    if path.is_absolute() or ".." in path.parts or not key:
        raise AdapterError(f"invalid blob key {key!r}: must be a relative path without '..'")
    return path


class FileBlobStore(Lifecycle):
    """Writes each blob atomically (temp file, fsync, rename) so a reader never
    sees a partial file. File I/O runs in a worker thread: blobs are large."""

    def __init__(self, url: str, **_: Any) -> None:
        parts = urlsplit(url)
        if parts.scheme != "file" or not parts.path:
            raise ConfigurationError(f"file blob URL must look like file:///abs/path, got {url!r}")
        self.root = Path(unquote(parts.path))

    async def _start(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise AdapterError(f"cannot create blob directory {self.root}: {exc}") from exc

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        self._check_open()
        target = self.root / _safe_relative(key)
        await asyncio.to_thread(self._write, target, data)
        return target.as_uri()

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise AdapterError(f"cannot write blob {target}: {exc}", retriable=True) from exc

    async def get(self, uri: str) -> bytes:
        self._check_open()
        parts = urlsplit(uri)
        if parts.scheme != "file":
            raise AdapterError(f"not a file blob URI: {uri!r}")
        path = Path(unquote(parts.path))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise AdapterError(f"blob not found: {uri}") from exc
        except OSError as exc:
            raise AdapterError(f"cannot read blob {uri}: {exc}", retriable=True) from exc
