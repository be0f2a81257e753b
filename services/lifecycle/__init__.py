"""The lifecycle layer: the only implementation of every user-facing operation.

- ``LifecycleService`` (``service.py``): start, get, list, watch, pause, resume
  and answer, abort, replay, fork, usage, execution, over a started Runtime.
- ``LocalTransport`` / ``local_client`` (``local.py``): a ``TickrailClient``
  whose calls run in this process. The gRPC server (``tickrail.services.api``)
  and the embedded owner's Unix socket serve the same service remotely.
- ``open_session`` (``session.py``): where a command's client leads: a server,
  the cloud deployment, or the embedded state directory's single owner
  (``owner.py``), becoming that owner when there is none.

Front ends (the CLI, the gRPC servicer, the console) call these and nothing
below them; ruff's banned-import rule keeps it so.
"""

from __future__ import annotations

from .local import LocalTransport, local_client
from .service import LifecycleService
from .session import Owner, Purpose, ServerOptions, Session, open_session

__all__ = [
    "LifecycleService",
    "LocalTransport",
    "Owner",
    "Purpose",
    "ServerOptions",
    "Session",
    "local_client",
    "open_session",
]
