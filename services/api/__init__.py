"""The lifecycle API: start, inspect, steer, replay and fork lifetimes over gRPC.

``serve_api(runtime, address=..., auth=...)`` serves it for a started Runtime;
``run_api_server`` is ``tickrail serve``. The service is
``proto/tickrail/v1/lifecycle.proto``; the Python client is ``tickrail.sdk.client``.
See docs/api.md.

grpcio is an optional extra (``tickrail[grpc]``), so the names below are
imported on first use: importing this package, or a grpc-free module in it,
never needs grpc.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ApiServer": ".server",
    "Authenticator": ".auth",
    "LifecycleBackend": ".backend",
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
