"""The lifecycle API: start, inspect, steer, replay and fork lifetimes over gRPC.

``serve_api(service, address=..., auth=...)`` serves a LifecycleService
(``tickrail.services.lifecycle``, the one implementation of every operation);
``run_api_server`` is ``tickrail serve``. The service is
``proto/tickrail/v1/lifecycle.proto``; the Python client is ``tickrail.TickrailClient``.
See docs/api.md. The names below are imported on first use, so importing this
package costs nothing until a server is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ApiServer": ".server",
    "Authenticator": ".auth",
    "LifecycleServicer": ".server",
    "run_api_server": ".serve",
    "serve_api": ".server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
