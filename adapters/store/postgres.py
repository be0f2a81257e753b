"""Postgres StateStore (``postgresql://user@host:port/db?schema=tickrail``) on asyncpg.

Each append is one SQL statement (the batch travels as arrays and is unnested
server-side), so it is atomic without an explicit transaction and costs one
round trip. Append-only is enforced in the database: statement-level triggers
refuse UPDATE, DELETE and TRUNCATE on every table.

``lifetimes`` holds one append-only row per lifetime (written with its first
event) so ``list_lifetimes`` walks an index newest-first and stops at ``limit``
instead of aggregating the whole event log.

``seq`` is allocated at insert time, so under concurrent writers a row with a
lower ``seq`` can commit after one with a higher ``seq``. tickrail appends one
lifetime's events from one consumer (the bus partitions by lifetime id), so
``events(lifetime_id, after_seq)`` reads stay gap-free per lifetime.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped,unused-ignore]  # no stubs; see pyproject

from tickrail.sdk._redact import redact_url
from tickrail.sdk.errors import AdapterError, ConfigurationError

from .._lifecycle import Lifecycle
from .base import EventRecord, ExecutionRecord, LifetimeSummary, NewEvent, NewExecution

# Versioned migrations: append only; never edit one that has shipped. They run
# with search_path set to the configured schema.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE executions (
            seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            exec_id     TEXT NOT NULL UNIQUE,
            lifetime_id TEXT NOT NULL,
            tenant_id   TEXT NOT NULL,
            name        TEXT NOT NULL,
            kind        INTEGER NOT NULL,
            status      INTEGER NOT NULL,
            created_at  DOUBLE PRECISION NOT NULL,
            envelope    BYTEA NOT NULL
        );
        CREATE INDEX executions_by_lifetime ON executions (lifetime_id, seq);

        CREATE TABLE events (
            seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id    TEXT NOT NULL UNIQUE,
            lifetime_id TEXT NOT NULL,
            tenant_id   TEXT NOT NULL,
            graph_id    TEXT NOT NULL,
            kind        TEXT NOT NULL,
            status      INTEGER NOT NULL,
            created_at  DOUBLE PRECISION NOT NULL,
            body        BYTEA NOT NULL
        );
        CREATE INDEX events_by_lifetime ON events (lifetime_id, seq)
            INCLUDE (status, created_at);
        CREATE INDEX events_by_tenant ON events (tenant_id, seq);

        CREATE TABLE lifetimes (
            lifetime_id TEXT PRIMARY KEY,
            tenant_id   TEXT NOT NULL,
            graph_id    TEXT NOT NULL,
            first_seq   BIGINT NOT NULL,
            started_at  DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX lifetimes_newest ON lifetimes (first_seq DESC);
        CREATE INDEX lifetimes_by_tenant ON lifetimes (tenant_id, first_seq DESC);

        CREATE FUNCTION tickrail_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'tickrail table % is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'restrict_violation';
        END
        $$;
        CREATE TRIGGER executions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON executions
            FOR EACH STATEMENT EXECUTE FUNCTION tickrail_refuse_change();
        CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
            FOR EACH STATEMENT EXECUTE FUNCTION tickrail_refuse_change();
        CREATE TRIGGER lifetimes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON lifetimes
            FOR EACH STATEMENT EXECUTE FUNCTION tickrail_refuse_change();
        """,
    ),
]

_EXEC_COLUMNS = "seq, exec_id, lifetime_id, tenant_id, name, kind, status, created_at, envelope"
_EVENT_COLUMNS = "seq, event_id, lifetime_id, tenant_id, graph_id, kind, status, created_at, body"

# The batch arrives as parallel arrays. `first` keeps the first occurrence of
# each id (duplicates inside a batch), inserted in input order so seq follows
# it. The outer SELECT cannot see rows the CTE inserted, so it takes new rows
# from RETURNING and earlier rows from the table. A row inserted here comes
# back without its envelope (NULL): the caller has it, and sending every
# envelope back was most of the bytes of the answer.
_APPEND_EXECUTIONS = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[],
                         $6::int4[], $7::float8[], $8::bytea[]) WITH ORDINALITY
        AS t(exec_id, lifetime_id, tenant_id, name, kind, status, created_at, envelope, ord)
),
first AS (SELECT DISTINCT ON (exec_id) * FROM input ORDER BY exec_id, ord),
ins AS (
    INSERT INTO executions (exec_id, lifetime_id, tenant_id, name, kind, status,
                            created_at, envelope)
    SELECT exec_id, lifetime_id, tenant_id, name, kind, status, created_at, envelope
    FROM first ORDER BY ord
    ON CONFLICT (exec_id) DO NOTHING
    RETURNING seq, exec_id, lifetime_id, tenant_id, name, kind, status, created_at
)
SELECT COALESCE(ins.seq, e.seq), i.exec_id,
       COALESCE(ins.lifetime_id, e.lifetime_id), COALESCE(ins.tenant_id, e.tenant_id),
       COALESCE(ins.name, e.name), COALESCE(ins.kind, e.kind),
       COALESCE(ins.status, e.status), COALESCE(ins.created_at, e.created_at),
       e.envelope,
       (ins.seq IS NOT NULL AND f.ord = i.ord) AS created
FROM input AS i
JOIN first AS f ON f.exec_id = i.exec_id
LEFT JOIN ins ON ins.exec_id = i.exec_id
LEFT JOIN executions AS e ON e.exec_id = i.exec_id
ORDER BY i.ord
"""

_APPEND_EVENTS = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::int4[], $7::float8[], $8::bytea[]) WITH ORDINALITY
        AS t(event_id, lifetime_id, tenant_id, graph_id, kind, status, created_at, body, ord)
),
first AS (SELECT DISTINCT ON (event_id) * FROM input ORDER BY event_id, ord),
ins AS (
    INSERT INTO events (event_id, lifetime_id, tenant_id, graph_id, kind, status,
                        created_at, body)
    SELECT event_id, lifetime_id, tenant_id, graph_id, kind, status, created_at, body
    FROM first ORDER BY ord
    ON CONFLICT (event_id) DO NOTHING
    RETURNING seq, event_id, lifetime_id, tenant_id, graph_id, created_at
),
new_lifetimes AS (
    INSERT INTO lifetimes (lifetime_id, tenant_id, graph_id, first_seq, started_at)
    SELECT DISTINCT ON (lifetime_id) lifetime_id, tenant_id, graph_id, seq, created_at
    FROM ins ORDER BY lifetime_id, seq
    ON CONFLICT (lifetime_id) DO NOTHING
)
SELECT (ins.seq IS NOT NULL AND f.ord = i.ord) AS created
FROM input AS i
JOIN first AS f ON f.event_id = i.event_id
LEFT JOIN ins ON ins.event_id = i.event_id
ORDER BY i.ord
"""

# Same answers as SQLiteStore.list_lifetimes: newest first by first event; the
# status, tenant and graph of the latest event; started_at the earliest time.
_LIST_LIFETIMES = """
SELECT l.lifetime_id, last.tenant_id, last.graph_id, last.status, agg.started,
       last.created_at, agg.n
FROM lifetimes AS l
CROSS JOIN LATERAL (
    SELECT tenant_id, graph_id, status, created_at FROM events AS e
    WHERE e.lifetime_id = l.lifetime_id ORDER BY seq DESC LIMIT 1
) AS last
CROSS JOIN LATERAL (
    SELECT MIN(created_at) AS started, COUNT(*) AS n FROM events AS e
    WHERE e.lifetime_id = l.lifetime_id
) AS agg
WHERE ($1::text IS NULL OR l.tenant_id = $1) AND ($2::int4 IS NULL OR last.status = $2)
ORDER BY l.first_seq DESC
LIMIT $3
"""

_OWN_OPTIONS = {
    "schema",
    "min_size",
    "max_size",
    "command_timeout",
    "connect_timeout",
    "runtime_role",
}
#: What the runtime role may do: read and append, nothing else (see docs/deploy.md).
_RUNTIME_GRANTS = (
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    "GRANT SELECT, INSERT ON {schema}.executions, {schema}.events, {schema}.lifetimes TO {role}",
    "GRANT SELECT ON {schema}.schema_migrations TO {role}",
)
# Without bounds a server that accepts connections and never answers (or a
# dropped connection nobody closed) hangs a role for ever instead of failing it
# into a retry.
DEFAULT_COMMAND_TIMEOUT_S = 60.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# SQLSTATEs worth retrying: connection trouble, serialization, overload, shutdown.
_RETRIABLE_STATES = ("08", "40001", "40P01", "53", "57P01", "57P02", "57P03", "55P03")


def newer_than_code(applied: set[int], where: str) -> None:
    """Refuse a schema migrated by a newer tickrail: no retry can fix that."""
    newer = sorted(applied - {version for version, _ in MIGRATIONS})
    if newer:
        raise ConfigurationError(
            f"{where} has schema version {newer[-1]}, newer than this tickrail knows "
            f"({max(v for v, _ in MIGRATIONS)}): upgrade tickrail on this machine"
        )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _error(what: str, exc: BaseException) -> AdapterError:
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        retriable = state.startswith(_RETRIABLE_STATES)
        detail = f"{type(exc).__name__} [{state}]: {exc}"
    else:
        # Lost, refused or timed-out connections may work next time; other
        # interface errors are misuse and will not.
        retriable = isinstance(
            exc, OSError | TimeoutError | asyncpg.exceptions.ConnectionDoesNotExistError
        ) or (
            # "connection is closed", "the connection was lost": the pool
            # replaces the connection on the next try.
            isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc).lower()
        )
        detail = f"{type(exc).__name__}: {exc}"
    return AdapterError(f"{what}: {detail}", retriable=retriable, dependency="postgres")


def _record(row: Any, inserted: dict[str, bytes]) -> ExecutionRecord:
    """A row of _APPEND_EXECUTIONS; one inserted by it has the batch's envelope."""
    envelope = row[8] if row[8] is not None else inserted[row[1]]
    return ExecutionRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], envelope, row[9]
    )


_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool: nothing more.

    asyncpg rolls back an open transaction before calling this either way; its
    default then sends ``RESET ALL; UNLISTEN *; CLOSE ALL; ...``, a round trip
    after every statement, for session state this store never creates (no
    LISTEN, no cursors, no session SET or advisory lock outside a transaction).
    """


def _redact(url: str) -> str:
    """The URL for messages: the password and secret parameters replaced by ***."""
    return redact_url(url)


class PostgresStore(Lifecycle):
    """``postgresql://user@host:port/db?schema=tickrail&min_size=1&max_size=10``.

    Options (URL query or keyword): ``schema`` (created by ``setup()``, default
    ``tickrail``), ``min_size`` / ``max_size`` (connection pool, 1 / 10),
    ``command_timeout`` (seconds per statement, 60), ``connect_timeout`` (seconds
    to open a connection, 10). Every other query parameter
    (``sslmode``, ...) goes to the driver. Put passwords in ``PGPASSWORD`` or
    ``~/.pgpass``, not the URL; error messages never show it.
    """

    def __init__(self, url: str, **options: Any) -> None:
        parts = urlsplit(url)
        shown = _redact(url)
        if parts.scheme not in {"postgres", "postgresql"} or not parts.hostname:
            raise ConfigurationError(
                f"Postgres URL must look like postgresql://user@host:port/db, got {shown!r}"
            )
        query = dict(parse_qsl(parts.query))
        own: dict[str, Any] = {k: query.pop(k) for k in list(query) if k in _OWN_OPTIONS}
        unknown = set(options) - _OWN_OPTIONS
        if unknown:
            raise ConfigurationError(f"unknown PostgresStore options: {sorted(unknown)}")
        own.update(options)
        self.schema = str(own.get("schema", "tickrail"))
        if not _IDENTIFIER.fullmatch(self.schema):
            raise ConfigurationError(f"{shown!r}: schema {self.schema!r} is not a plain identifier")
        # Given to the migrating (owner) connection: the role the roles connect as,
        # granted SELECT and INSERT on the tables and nothing more.
        self.runtime_role = str(own.get("runtime_role", "")) or None
        if self.runtime_role is not None and not _IDENTIFIER.fullmatch(self.runtime_role):
            raise ConfigurationError(
                f"{shown!r}: runtime_role {self.runtime_role!r} is not a plain identifier"
            )
        try:
            self._min_size = int(own.get("min_size", 1))
            self._max_size = int(own.get("max_size", 10))
            self._command_timeout = float(own.get("command_timeout", DEFAULT_COMMAND_TIMEOUT_S))
            self._connect_timeout = float(own.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S))
        except ValueError as exc:
            raise ConfigurationError(f"{shown!r}: pool sizes and timeout must be numbers") from exc
        if not 0 <= self._min_size <= self._max_size or self._max_size < 1:
            raise ConfigurationError(f"{shown!r}: need 0 <= min_size <= max_size, max_size >= 1")
        self._dsn = urlunsplit(parts._replace(query=urlencode(query)))
        try:
            port = parts.port or 5432
        except ValueError as exc:
            raise ConfigurationError(f"{shown!r}: {exc}") from exc
        # For messages: never the password.
        self.where = f"postgres {parts.hostname}:{port}{parts.path or '/'} schema {self.schema}"
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        self._check_open()
        if self._pool is None:
            raise AdapterError("PostgresStore used before start()")
        return self._pool

    async def _start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=self._command_timeout,
                timeout=self._connect_timeout,
                # search_path per connection: unqualified names mean our schema.
                server_settings={
                    "search_path": _quote(self.schema),
                    "application_name": "tickrail",
                },
                reset=_keep_session,
            )
        except ValueError as exc:  # includes asyncpg's ClientConfigurationError
            raise ConfigurationError(f"bad Postgres URL for {self.where}: {exc}") from exc
        except _DRIVER_ERRORS as exc:
            raise _error(f"cannot connect to {self.where}", exc) from exc

    async def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except TimeoutError:
            pool.terminate()  # a connection still checked out after 10 s

    async def _current(self) -> bool:
        """The schema is migrated to the latest version (checked without any DDL, so a
        runtime role without CREATE can start against a migrated schema)."""
        table = f"{_quote(self.schema)}.schema_migrations"
        async with self.pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
            if not exists:
                return False
            applied = {r[0] for r in await conn.fetch(f"SELECT version FROM {table}")}
        return all(version in applied for version, _ in MIGRATIONS)

    async def setup(self) -> list[int]:
        """Apply pending migrations (returns their versions), then grant the runtime
        role if one is named.

        Run by ``tickrail migrate`` as the owner role; a role process connecting
        as the runtime role only finds the schema current and changes nothing.
        """
        schema = _quote(self.schema)
        done: list[int] = []
        try:
            if self.runtime_role is None and await self._current():
                return done
            async with self.pool.acquire() as conn, conn.transaction():
                # Serialises concurrent setup() calls from several processes.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    f"tickrail-migrate:{self.schema}",
                )
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                await conn.execute(f"SET LOCAL search_path TO {schema}")
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY,"
                    " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                newer_than_code(applied, self.where)
                for version, sql in MIGRATIONS:
                    if version not in applied:
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version) VALUES ($1)", version
                        )
                        done.append(version)
                if self.runtime_role is not None:
                    role = _quote(self.runtime_role)
                    for grant in _RUNTIME_GRANTS:
                        await conn.execute(grant.format(schema=schema, role=role))
        except asyncpg.InsufficientPrivilegeError as exc:
            raise AdapterError(
                f"cannot migrate {self.where}: {exc} (run `tickrail migrate` with the "
                "owner role's URL; the runtime role may only read and append)",
                retriable=False,
            ) from exc
        except _DRIVER_ERRORS as exc:
            raise _error(f"cannot migrate {self.where}", exc) from exc
        return done

    async def append_executions(self, batch: Sequence[NewExecution]) -> list[ExecutionRecord]:
        pool = self.pool
        if not batch:
            return []
        columns = (
            [n.exec_id for n in batch],
            [n.lifetime_id for n in batch],
            [n.tenant_id for n in batch],
            [n.name for n in batch],
            [n.kind for n in batch],
            [n.status for n in batch],
            [n.created_at for n in batch],
            [n.envelope for n in batch],
        )
        try:
            rows = await pool.fetch(_APPEND_EXECUTIONS, *columns)
            first: dict[str, bytes] = {}
            for n in batch:
                first.setdefault(n.exec_id, n.envelope)
            records = [None if r[0] is None else _record(r, first) for r in rows]
            if None in records:
                # Another writer committed the same exec id after this
                # statement's snapshot was taken; a fresh statement sees it.
                missing = [n.exec_id for n, r in zip(batch, records, strict=True) if r is None]
                found = {
                    r[1]: ExecutionRecord(*r)
                    for r in await pool.fetch(
                        f"SELECT {_EXEC_COLUMNS} FROM executions WHERE exec_id = ANY($1::text[])",
                        missing,
                    )
                }
                records = [
                    r if r is not None else found[n.exec_id]
                    for n, r in zip(batch, records, strict=True)
                ]
        except _DRIVER_ERRORS as exc:
            raise _error(f"cannot append {len(batch)} executions to {self.where}", exc) from exc
        return [r for r in records if r is not None]

    async def append_events(self, batch: Sequence[NewEvent]) -> list[bool]:
        pool = self.pool
        if not batch:
            return []
        columns = (
            [n.event_id for n in batch],
            [n.lifetime_id for n in batch],
            [n.tenant_id for n in batch],
            [n.graph_id for n in batch],
            [n.kind for n in batch],
            [n.status for n in batch],
            [n.created_at for n in batch],
            [n.body for n in batch],
        )
        try:
            rows = await pool.fetch(_APPEND_EVENTS, *columns)
        except _DRIVER_ERRORS as exc:
            raise _error(f"cannot append {len(batch)} events to {self.where}", exc) from exc
        return [bool(r[0]) for r in rows]

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[Any]:
        try:
            rows: list[Any] = await self.pool.fetch(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise _error(f"cannot read {what} from {self.where}", exc) from exc
        return rows

    async def get_execution(self, exec_id: str) -> ExecutionRecord | None:
        rows = await self._fetch(
            f"execution {exec_id!r}",
            f"SELECT {_EXEC_COLUMNS} FROM executions WHERE exec_id = $1",
            exec_id,
        )
        return ExecutionRecord(*rows[0]) if rows else None

    async def executions(self, lifetime_id: str) -> list[ExecutionRecord]:
        rows = await self._fetch(
            f"executions of lifetime {lifetime_id!r}",
            f"SELECT {_EXEC_COLUMNS} FROM executions WHERE lifetime_id = $1 ORDER BY seq",
            lifetime_id,
        )
        return [ExecutionRecord(*r) for r in rows]

    async def events(self, lifetime_id: str, after_seq: int = 0) -> list[EventRecord]:
        rows = await self._fetch(
            f"events of lifetime {lifetime_id!r}",
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE lifetime_id = $1 AND seq > $2 ORDER BY seq",
            lifetime_id,
            after_seq,
        )
        return [EventRecord(*r) for r in rows]

    async def list_lifetimes(
        self,
        *,
        tenant_id: str | None = None,
        status: int | None = None,
        limit: int = 100,
    ) -> list[LifetimeSummary]:
        rows = await self._fetch("lifetimes", _LIST_LIFETIMES, tenant_id, status, limit)
        return [LifetimeSummary(*r) for r in rows]
