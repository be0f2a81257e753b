"""The lifecycle API: start, inspect, steer, replay and fork lifetimes over gRPC.

``serve_api(runtime, address=..., auth=...)`` serves it for a started Runtime;
``run_api_server`` is ``tickrail serve``. The service is
``proto/tickrail/v1/lifecycle.proto``; the Python client is ``sdk.client``.
See docs/api.md.
"""

from .auth import Authenticator
from .backend import LifecycleBackend
from .serve import run_api_server
from .server import ApiServer, LifecycleServicer, serve_api

__all__ = [
    "ApiServer",
    "Authenticator",
    "LifecycleBackend",
    "LifecycleServicer",
    "run_api_server",
    "serve_api",
]
