"""The install command to print in a hint, as this copy of tickrail was installed.

tickrail is installed from a checkout (``pip install -e .``), so a hint that
says ``pip install 'tickrail[kafka]'`` would fetch something else or nothing;
pip records where the distribution came from (PEP 610), and the hint repeats it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import metadata
from urllib.parse import unquote, urlsplit


@cache
def _origin() -> tuple[str, bool] | None:
    """(local path, editable) when tickrail was installed from a folder."""
    try:
        raw = metadata.distribution("tickrail").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    url = urlsplit(str(info.get("url", "")))
    if url.scheme != "file":
        return None
    editable = bool(info.get("dir_info", {}).get("editable"))
    return unquote(url.path), editable


def install_command(extra: str) -> str:
    """``pip install ...`` that adds ``extra`` to this installation."""
    origin = _origin()
    if origin is None:
        return f"pip install 'tickrail[{extra}]'"
    path, editable = origin
    return f"pip install {'-e ' if editable else ''}'{path}[{extra}]'"
