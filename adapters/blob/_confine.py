"""Confinement rules every blob store applies before touching a URI.

A blob URI arrives inside an envelope or a reference, which anyone who can
write to a topic can forge. So a store accepts only URIs of the shape it
creates, under its own root (or bucket and prefix), and, for a read on behalf
of a lifetime, only under that lifetime's tenant (keys are
``tenant/lifetime/exec_id/part``). A refusal says "refused" and nothing else
about the target: not whether it exists, not its size.
"""

from __future__ import annotations

from tickrail.sdk.errors import AdapterError

_SHOWN = 200


def refused(uri: str, why: str = "outside this blob store") -> AdapterError:
    shown = uri if len(uri) <= _SHOWN else uri[:_SHOWN] + "..."
    return AdapterError(f"blob {shown!r} refused: {why}", retriable=False)


def check_key(key: str, uri: str) -> list[str]:
    """The key's segments, if it is a relative path tickrail could have made."""
    segments = key.split("/")
    if not key or any(s in {"", ".", ".."} for s in segments) or "\\" in key or "\0" in key:
        raise refused(uri)
    return segments


def check_tenant(segments: list[str], tenant: str | None, uri: str) -> None:
    """A read for a lifetime stays inside its tenant's prefix."""
    if tenant is None:
        return
    if not tenant or "/" in tenant or tenant in {".", ".."} or segments[0] != tenant:
        raise refused(uri, "outside the lifetime's tenant")
