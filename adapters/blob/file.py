"""Blobs as files under a root directory: ``file:///var/lib/tickrail/blobs``."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tickrail.sdk._redact import redact_url
from tickrail.sdk.errors import AdapterError, ConfigurationError

from .._lifecycle import Lifecycle
from ._confine import check_key, check_tenant, refused


def _safe_relative(key: str) -> Path:
    path = Path(key)
    if path.is_absolute() or ".." in path.parts or not key:
        raise AdapterError(f"invalid blob key {key!r}: must be a relative path without '..'")
    return path


def _read_confined(path: Path) -> bytes:
    # O_NOFOLLOW: the path was resolved already; a symlink appearing in its
    # place since is refused rather than followed.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


class FileBlobStore(Lifecycle):
    """Writes each blob atomically (temp file, fsync, rename) so a reader never
    sees a partial file. File I/O runs in a worker thread: blobs are large."""

    def __init__(self, url: str, **_: Any) -> None:
        parts = urlsplit(url)
        if parts.scheme != "file" or not parts.path:
            raise ConfigurationError(
                f"file blob URL must look like file:///abs/path, got {redact_url(url)!r}"
            )
        self.root = Path(unquote(parts.path))
        self._real_root = self.root.resolve()

    async def _start(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise AdapterError(f"cannot create blob directory {self.root}: {exc}") from exc
        self._real_root = self.root.resolve()

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        self._check_open()
        target = self.root / _safe_relative(key)
        await asyncio.to_thread(self._write, target, data)
        return target.as_uri()

    def _inside(self, path: Path) -> Path | None:
        """The path relative to the real root, after resolving symlinks; None if outside."""
        try:
            return path.resolve().relative_to(self._real_root)
        except (ValueError, OSError, RuntimeError):  # outside, or a symlink loop
            return None

    def _write(self, target: Path, data: bytes) -> None:
        try:
            # A symlinked directory under the root must not carry the write outside:
            # judge the deepest directory that exists before creating any below it.
            existing = target.parent
            while not existing.exists() and existing != self.root:
                existing = existing.parent
            if self._inside(existing) is None:
                raise refused(target.as_uri())
            target.parent.mkdir(parents=True, exist_ok=True)
            if self._inside(target.parent) is None:
                raise refused(target.as_uri())
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise AdapterError(f"cannot write blob {target}: {exc}", retriable=True) from exc

    async def get(self, uri: str, *, tenant: str | None = None) -> bytes:
        self._check_open()
        parts = urlsplit(uri)
        if (
            parts.scheme != "file"
            or parts.netloc not in {"", "localhost"}
            or parts.query
            or parts.fragment
        ):
            raise refused(uri)
        path = Path(unquote(parts.path))
        if not path.is_absolute() or "\0" in str(path):
            raise refused(uri)
        # Resolve first (symlinks and '..' included), then judge the real path.
        relative = await asyncio.to_thread(self._inside, path)
        if relative is None or not relative.parts:
            raise refused(uri)
        check_tenant(check_key(relative.as_posix(), uri), tenant, uri)
        real = self._real_root / relative
        try:
            return await asyncio.to_thread(_read_confined, real)
        except FileNotFoundError as exc:
            raise AdapterError(f"blob not found: {uri}") from exc
        except (IsADirectoryError, NotADirectoryError) as exc:
            raise refused(uri, "not a blob") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise refused(uri) from exc
            raise AdapterError(f"cannot read blob {uri}: {exc}", retriable=True) from exc
