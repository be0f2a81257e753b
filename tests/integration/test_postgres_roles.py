"""Least privilege in Postgres: the owner migrates, the runtime only reads and appends.

The test makes its own uniquely named owner and runtime roles and schema on
the machine's Postgres (trust authentication: the roles log in without a
password), migrates as the owner granting the runtime role, runs the store as
the runtime role, and shows that role cannot change or delete a recorded
execution or event, truncate, alter or drop the tables, disable the triggers
(by ALTER TABLE or session_replication_role), or create anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.services import random_name
from tickrail.adapters import NewEvent, NewExecution
from tickrail.adapters.registry import open_store
from tickrail.sdk.errors import AdapterError

asyncpg = pytest.importorskip("asyncpg")

pytestmark = pytest.mark.integration


@dataclass
class Roles:
    schema: str
    owner_url: str
    runtime_url: str
    runtime_dsn: str


def _as(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}", query=""))


@pytest.fixture
async def roles(postgres_url: str) -> AsyncIterator[Roles]:
    admin_dsn = _as(postgres_url, urlsplit(postgres_url).username or "postgres")
    suffix = random_name("").replace("-", "_").lower()
    owner, runtime, schema = f"tr_owner_{suffix}", f"tr_runtime_{suffix}", f"tr_roles_{suffix}"
    admin = await asyncpg.connect(admin_dsn)
    database = await admin.fetchval("SELECT current_database()")
    try:
        await admin.execute(f'CREATE ROLE "{owner}" LOGIN')
        await admin.execute(f'CREATE ROLE "{runtime}" LOGIN')
        await admin.execute(f'GRANT CREATE ON DATABASE "{database}" TO "{owner}"')
        yield Roles(
            schema=schema,
            owner_url=f"{_as(postgres_url, owner)}?schema={schema}&runtime_role={runtime}",
            runtime_url=f"{_as(postgres_url, runtime)}?schema={schema}",
            runtime_dsn=_as(postgres_url, runtime),
        )
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        for role in (owner, runtime):
            await admin.execute(f'DROP OWNED BY "{role}" CASCADE')
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


FORBIDDEN = [
    "UPDATE {s}.executions SET status = 99",
    "UPDATE {s}.events SET body = 'x'",
    "DELETE FROM {s}.executions",
    "DELETE FROM {s}.events",
    "DELETE FROM {s}.lifetimes",
    "TRUNCATE {s}.executions",
    "TRUNCATE {s}.events",
    "ALTER TABLE {s}.executions DISABLE TRIGGER ALL",
    "ALTER TABLE {s}.executions DISABLE TRIGGER executions_append_only",
    "ALTER TABLE {s}.events DISABLE TRIGGER events_append_only",
    "DROP TRIGGER executions_append_only ON {s}.executions",
    "DROP TABLE {s}.events",
    "CREATE TABLE {s}.shadow (x int)",
    "CREATE OR REPLACE FUNCTION {s}.tickrail_refuse_change() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    "SET session_replication_role = replica",
    "DELETE FROM {s}.schema_migrations",
]


async def test_the_runtime_role_reads_and_appends_and_can_do_nothing_else(roles: Roles) -> None:
    async with open_store(roles.owner_url) as owner_store:
        await owner_store.setup()  # tickrail migrate, as the owner
    async with open_store(roles.runtime_url) as store:
        await store.setup()  # a role process starting: the schema is current, no DDL
        (record,) = await store.append_executions(
            [NewExecution("L.1.1", "L", "t", "n", 1, 1, 1.0, b"envelope")]
        )
        assert record.created
        assert await store.append_events(
            [NewEvent("L/started", "L", "t", "g", "started", 1, 1.0, b"event")]
        ) == [True]
        assert [r.exec_id for r in await store.executions("L")] == ["L.1.1"]
        assert [s.lifetime_id for s in await store.list_lifetimes()] == ["L"]

    conn = await asyncpg.connect(roles.runtime_dsn)
    try:
        allowed = []
        for statement in FORBIDDEN:
            sql = statement.format(s=f'"{roles.schema}"')
            try:
                async with conn.transaction():
                    await conn.execute(sql)
                allowed.append(sql)
            except (asyncpg.InsufficientPrivilegeError, asyncpg.PostgresError):
                pass
        assert not allowed, f"the runtime role could run: {allowed}"
        # The record is intact.
        assert await conn.fetchval(f'SELECT status FROM "{roles.schema}".executions') == 1
        assert await conn.fetchval(f'SELECT count(*) FROM "{roles.schema}".events') == 1
    finally:
        await conn.close()


async def test_the_runtime_role_cannot_migrate_and_is_told_who_can(roles: Roles) -> None:
    with pytest.raises(AdapterError, match="owner role"):
        async with open_store(roles.runtime_url) as store:
            await store.setup()  # nothing migrated yet: it would need CREATE
