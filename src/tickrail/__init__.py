"""tickrail: event-sourced control and data planes for LLM agent graphs.

Everything a graph author needs is importable from here::

    from tickrail import AgentGraph, Finish, Next, Plan, Task, final, join, parallel

Run a graph with ``tickrail run my_graph.py``. The repository's folders are
subpackages: ``tickrail.sdk`` (whose curated names this module re-exports),
``tickrail.adapters`` (bus, store, blob and KV drivers) and
``tickrail.services`` (the roles, the lifecycle layer, the CLI, the API); only
this module's ``__all__`` is the stable public surface.
"""

from __future__ import annotations

from tickrail.sdk import *  # noqa: F403 - the SDK's curated names are the package's
from tickrail.sdk import __all__ as __all__

__version__ = "0.1.0"
