"""Pluggable infrastructure: bus, state store, blob store and KV store.

One small async Protocol per kind, implementations chosen by URL scheme::

    async with open_store("sqlite:///.tickrail/state.db") as store:
        await store.setup()
"""

from ._capability import offers
from .blob.base import BlobStore
from .bus.base import (
    Consumer,
    EventBus,
    Message,
    MessageSizeLimit,
    RebalanceHooks,
    ReportsLag,
    Wakeable,
)
from .kv.base import KVStore
from .registry import open_blob_store, open_bus, open_kv, open_store
from .store.base import (
    EventRecord,
    ExecutionRecord,
    LifetimeSummary,
    NewEvent,
    NewExecution,
    StateStore,
    UnitOfWork,
)

__all__ = [
    "BlobStore",
    "Consumer",
    "EventBus",
    "EventRecord",
    "ExecutionRecord",
    "KVStore",
    "LifetimeSummary",
    "Message",
    "MessageSizeLimit",
    "NewEvent",
    "NewExecution",
    "RebalanceHooks",
    "ReportsLag",
    "StateStore",
    "UnitOfWork",
    "Wakeable",
    "offers",
    "open_blob_store",
    "open_bus",
    "open_kv",
    "open_store",
]
