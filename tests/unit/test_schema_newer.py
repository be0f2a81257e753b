"""A store migrated by a newer tickrail is refused with a clear error, not retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickrail.adapters.store.sqlite import SQLiteStore
from tickrail.sdk.errors import ConfigurationError


async def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    async with SQLiteStore(url) as store:
        await store.setup()
        store.db.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        store.db.commit()
    async with SQLiteStore(url) as store:
        with pytest.raises(ConfigurationError, match="schema version 999, newer"):
            await store.setup()
