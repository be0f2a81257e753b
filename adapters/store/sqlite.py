"""SQLite StateStore (``sqlite:///path/to/state.db``): the embedded default.

WAL mode, one connection reused for the process. Statements run on the event
loop thread on purpose: an indexed insert takes microseconds, while a hop to a
worker thread costs tens of them, and the hot path appends on every step.
Batches share one transaction, so concurrent lifetimes amortise the commit.

Durability: ``synchronous=NORMAL`` (the default here) survives a process crash
but a power loss may drop the last transactions; add ``?synchronous=FULL`` to
the URL to fsync every commit. Append-only is enforced by triggers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from tickrail.sdk._redact import redact_url
from tickrail.sdk.errors import AdapterError, ConfigurationError

from .._lifecycle import Lifecycle
from .base import (
    EventRecord,
    ExecutionRecord,
    LifetimeSummary,
    NewEvent,
    NewExecution,
    UnitOfWork,
)

# Versioned migrations: append only; never edit one that has shipped.
# seq is the rowid without AUTOINCREMENT: rows are never deleted (triggers
# refuse it), so rowids only grow, and we skip a sqlite_sequence write per row.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE executions (
            seq         INTEGER PRIMARY KEY,
            exec_id     TEXT NOT NULL UNIQUE,
            lifetime_id TEXT NOT NULL,
            tenant_id   TEXT NOT NULL,
            name        TEXT NOT NULL,
            kind        INTEGER NOT NULL,
            status      INTEGER NOT NULL,
            created_at  REAL NOT NULL,
            envelope    BLOB NOT NULL
        );
        CREATE INDEX executions_by_lifetime ON executions (lifetime_id, seq);
        CREATE TABLE events (
            seq         INTEGER PRIMARY KEY,
            event_id    TEXT NOT NULL UNIQUE,
            lifetime_id TEXT NOT NULL,
            tenant_id   TEXT NOT NULL,
            graph_id    TEXT NOT NULL,
            kind        TEXT NOT NULL,
            status      INTEGER NOT NULL,
            created_at  REAL NOT NULL,
            body        BLOB NOT NULL
        );
        CREATE INDEX events_by_lifetime ON events (lifetime_id, seq);
        CREATE TRIGGER executions_append_only_update BEFORE UPDATE ON executions
            BEGIN SELECT RAISE(ABORT, 'executions are append-only'); END;
        CREATE TRIGGER executions_append_only_delete BEFORE DELETE ON executions
            BEGIN SELECT RAISE(ABORT, 'executions are append-only'); END;
        CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        """,
    ),
    # Events: two B-trees instead of three. Their ids are only ever used to
    # make appends idempotent, and an event id belongs to its lifetime (it is
    # "<lifetime>/<suffix>"), so one unique (lifetime_id, event_id) index does
    # both that and the per-lifetime reads (it carries seq, the rowid), and
    # the event_id index goes. Executions keep theirs: get_execution looks an
    # exec id up alone. Measured: a step's SQLite work falls ~10-15 % (one
    # B-tree page fewer dirtied per event).
    (
        2,
        """
        CREATE TABLE events_v2 (
            seq         INTEGER PRIMARY KEY,
            event_id    TEXT NOT NULL,
            lifetime_id TEXT NOT NULL,
            tenant_id   TEXT NOT NULL,
            graph_id    TEXT NOT NULL,
            kind        TEXT NOT NULL,
            status      INTEGER NOT NULL,
            created_at  REAL NOT NULL,
            body        BLOB NOT NULL
        );
        INSERT INTO events_v2 SELECT seq, event_id, lifetime_id, tenant_id, graph_id, kind,
            status, created_at, body FROM events;
        DROP TRIGGER events_append_only_update;
        DROP TRIGGER events_append_only_delete;
        DROP TABLE events;
        ALTER TABLE events_v2 RENAME TO events;
        CREATE UNIQUE INDEX events_by_lifetime ON events (lifetime_id, event_id);
        CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        """,
    ),
    # Executions: two B-trees instead of three, as events in 2. The exec id of
    # every dispatched execution is derived from its lifetime's id
    # ("<lifetime>.<step>.<attempt>", see _owner), so one unique
    # (lifetime_id, exec_id) index makes appends idempotent, serves the
    # per-lifetime reads and finds an exec id alone through the lifetime it
    # names. The exec_id and (lifetime_id, seq) indexes both had a leaf per
    # lifetime, in random order across lifetimes: with thousands of live
    # lifetimes a batch dirtied one page of each per step, and the commit
    # wrote them all. Rows whose exec id does not name their lifetime (not
    # dispatched by a control plane: tests, hand-written rows) are flagged
    # ``apart`` and also sit in a partial index, empty when the control plane
    # wrote every row. (tickrail_apart is _apart, registered by setup().)
    (
        3,
        """
        CREATE TABLE executions_v3 (
            seq         INTEGER PRIMARY KEY,
            exec_id     TEXT NOT NULL,
            lifetime_id TEXT NOT NULL,
            tenant_id   TEXT NOT NULL,
            name        TEXT NOT NULL,
            kind        INTEGER NOT NULL,
            status      INTEGER NOT NULL,
            created_at  REAL NOT NULL,
            envelope    BLOB NOT NULL,
            apart       INTEGER NOT NULL
        );
        INSERT INTO executions_v3 SELECT seq, exec_id, lifetime_id, tenant_id, name, kind,
            status, created_at, envelope, tickrail_apart(exec_id, lifetime_id) FROM executions;
        DROP TRIGGER executions_append_only_update;
        DROP TRIGGER executions_append_only_delete;
        DROP TABLE executions;
        ALTER TABLE executions_v3 RENAME TO executions;
        CREATE UNIQUE INDEX executions_by_lifetime ON executions (lifetime_id, exec_id);
        CREATE UNIQUE INDEX executions_apart ON executions (exec_id) WHERE apart;
        CREATE TRIGGER executions_append_only_update BEFORE UPDATE ON executions
            BEGIN SELECT RAISE(ABORT, 'executions are append-only'); END;
        CREATE TRIGGER executions_append_only_delete BEFORE DELETE ON executions
            BEGIN SELECT RAISE(ABORT, 'executions are append-only'); END;
        """,
    ),
]

#: The page cache's bound (KiB): the index leaves of ~10,000 live lifetimes.
CACHE_KIB = 64 * 1024
#: WAL pages (4 KiB) written before the WAL is checkpointed into the database.
CHECKPOINT_PAGES = 40_000

_T = TypeVar("_T")
_R = TypeVar("_R")
_EXEC_COLUMNS = "seq, exec_id, lifetime_id, tenant_id, name, kind, status, created_at, envelope"
_EVENT_COLUMNS = "seq, event_id, lifetime_id, tenant_id, graph_id, kind, status, created_at, body"


def _parse(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or not parts.path:
        raise ConfigurationError(
            f"SQLite URL must look like sqlite:///path/to.db, got {redact_url(url)!r}"
        )
    path = unquote(parts.path)
    if parts.netloc == "" and path.startswith("//"):
        path = path[1:]  # sqlite:////abs/path
    elif parts.netloc == "" and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = path.lstrip("/")  # sqlite:///relative/path, as SQLAlchemy reads it
    sync = parse_qs(parts.query).get("synchronous", ["NORMAL"])[0].upper()
    if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ConfigurationError(
            f"{redact_url(url)!r}: synchronous must be OFF, NORMAL, FULL or EXTRA"
        )
    return path, sync


class SQLiteStore(Lifecycle, UnitOfWork):
    def __init__(self, url: str, **_: Any) -> None:
        self.url = url
        self.path, self._synchronous = _parse(url)
        self._db: sqlite3.Connection | None = None
        # One connection serves the process: writers take turns, and a unit of
        # work holds the turn across its appends (which then skip BEGIN/COMMIT).
        self._write_lock = asyncio.Lock()
        self._in_unit: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"sqlite-unit-{id(self)}", default=False
        )
        # The next executions and events seqs, read once per write transaction
        # (see _next_seqs); None outside one.
        self._next: list[int] | None = None

    @property
    def db(self) -> sqlite3.Connection:
        self._check_open()
        if self._db is None:
            raise AdapterError("SQLiteStore used before start()")
        return self._db

    async def _start(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.execute("PRAGMA busy_timeout=5000")
            # Checkpoint (and fsync the database) every ~160 MB of WAL, not every 4 MB:
            # a checkpoint copies each page the WAL holds, and with thousands of
            # live lifetimes most are index leaves dirtied again and again. Measured
            # at 10,000 lifetimes: 78 -> 70 µs of SQLite CPU per step (40 MB before).
            db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
            # Thousands of live lifetimes append to as many index leaves, in no
            # order: beyond the default 2 MB cache each append read its leaf back.
            # The cache grows only as pages are used (a small store stays small).
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        except sqlite3.Error as exc:
            raise AdapterError(f"cannot open SQLite store {self.path}: {exc}") from exc
        self._db = db

    async def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def setup(self) -> list[int]:
        db = self.db
        done: list[int] = []
        try:
            db.create_function("tickrail_apart", 2, _apart, deterministic=True)
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
            newer = sorted(applied - {version for version, _ in MIGRATIONS})
            if newer:  # migrated by a newer tickrail: no retry can fix that
                raise ConfigurationError(
                    f"SQLite store {self.path} has schema version {newer[-1]}, newer than "
                    f"this tickrail knows ({MIGRATIONS[-1][0]}): upgrade tickrail"
                )
            for version, sql in MIGRATIONS:
                if version in applied:
                    continue
                db.execute("BEGIN IMMEDIATE")
                try:
                    # Another process may have applied it while we waited.
                    already = db.execute(
                        "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                    ).fetchone()
                    if already:
                        db.execute("ROLLBACK")
                        continue
                    for statement in _split(sql):
                        db.execute(statement)
                    db.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (version, time.time()),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                done.append(version)
        except sqlite3.Error as exc:
            raise AdapterError(f"cannot migrate SQLite store {self.path}: {exc}") from exc
        return done

    def unit_of_work(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Appends inside the block commit together (see ``store.base.unit_of_work``)."""
        return _Unit(self)

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` in its own transaction, or in the caller's unit of work."""
        db = self.db
        if self._in_unit.get():
            return work(db)
        async with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                self._next = None
            return result

    async def append_executions(self, batch: Sequence[NewExecution]) -> list[ExecutionRecord]:
        try:
            return await self._write(lambda db: self._insert_executions(db, batch))
        except sqlite3.Error as exc:
            raise AdapterError(
                f"cannot append executions: {exc}", retriable=True, dependency="sqlite"
            ) from exc

    def _next_seqs(self, db: sqlite3.Connection) -> list[int]:
        """The next [executions, events] seqs, and whether any execution is
        ``apart``; the caller advances the seqs it takes.

        seq is the rowid, so MAX reads one B-tree edge, and the partial index
        of apart rows answers EXISTS at once; all three are read with one
        statement, once per write transaction: BEGIN IMMEDIATE makes this
        connection the only writer until COMMIT, so nobody else takes them.
        Handing seqs out lets a batch go in with one executemany instead of a
        RETURNING per row; rowids only grow, since rows are never deleted.
        """
        if self._next is None:
            [(executions, events, apart)] = db.execute(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM executions),"
                " (SELECT COALESCE(MAX(seq), 0) FROM events),"
                " EXISTS (SELECT 1 FROM executions WHERE apart)"
            ).fetchall()
            self._next = [executions + 1, events + 1, apart]
        return self._next

    def _insert_executions(
        self, db: sqlite3.Connection, batch: Sequence[NewExecution]
    ) -> list[ExecutionRecord]:
        fresh = _first_of_each(batch, [n.exec_id for n in batch])
        seqs = self._next_seqs(db)
        flags = [_apart(n.exec_id, n.lifetime_id) for n in fresh]
        if seqs[2] or any(flags):
            # An exec id recorded under another lifetime, apart, is not caught by
            # the (lifetime_id, exec_id) index: leave out every id stored already.
            known = _stored(db, [n.exec_id for n in fresh])
            if known:
                keep = [k for k, n in enumerate(fresh) if n.exec_id not in known]
                fresh, flags = [fresh[k] for k in keep], [flags[k] for k in keep]
            seqs[2] = int(seqs[2] or any(flags))
        seq0 = seqs[0]
        seqs[0] += len(fresh)
        # An id recorded before is ignored (INSERT OR IGNORE) and looked up below.
        cur = db.executemany(
            "INSERT OR IGNORE INTO executions (seq, exec_id, lifetime_id, tenant_id, name,"
            " kind, status, created_at, envelope, apart) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    seq0 + k,
                    n.exec_id,
                    n.lifetime_id,
                    n.tenant_id,
                    n.name,
                    n.kind,
                    n.status,
                    n.created_at,
                    n.envelope,
                    flags[k],
                )
                for k, n in enumerate(fresh)
            ],
        )
        if fresh is batch and cur.rowcount == len(batch):  # the hot path: all new
            return [ExecutionRecord.of(seq0 + k, n, created=True) for k, n in enumerate(batch)]
        # Redeliveries: the stored row wins; a repeat inside the batch is the
        # record of its first occurrence, as if appended one by one.
        mine = {n.exec_id: seq0 + k for k, n in enumerate(fresh)}
        stored = _stored(db, [n.exec_id for n in batch])
        out: list[ExecutionRecord] = []
        seen: set[str] = set()
        for n in batch:
            record = stored[n.exec_id]
            created = record.seq == mine.get(n.exec_id) and n.exec_id not in seen
            seen.add(n.exec_id)
            out.append(ExecutionRecord.of(record.seq, n, True) if created else record)
        return out

    async def append_events(self, batch: Sequence[NewEvent]) -> list[bool]:
        try:
            return await self._write(lambda db: self._insert_events(db, batch))
        except sqlite3.Error as exc:
            raise AdapterError(
                f"cannot append events: {exc}", retriable=True, dependency="sqlite"
            ) from exc

    def _insert_events(self, db: sqlite3.Connection, batch: Sequence[NewEvent]) -> list[bool]:
        keys = [(n.lifetime_id, n.event_id) for n in batch]
        fresh = _first_of_each(batch, keys)
        seqs = self._next_seqs(db)
        seq0 = seqs[1]
        seqs[1] += len(fresh)
        cur = db.executemany(
            "INSERT OR IGNORE INTO events (seq, event_id, lifetime_id, tenant_id, graph_id,"
            " kind, status, created_at, body) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    seq0 + k,
                    n.event_id,
                    n.lifetime_id,
                    n.tenant_id,
                    n.graph_id,
                    n.kind,
                    n.status,
                    n.created_at,
                    n.body,
                )
                for k, n in enumerate(fresh)
            ],
        )
        if fresh is batch and cur.rowcount == len(batch):
            return [True] * len(batch)
        # The rows stored under the seq handed to them are the new ones.
        handed = range(seq0, seq0 + len(fresh))
        new = {r[0] for r in _select_in(db, "SELECT seq FROM events WHERE", "seq", handed)}
        mine = {(n.lifetime_id, n.event_id): seq0 + k for k, n in enumerate(fresh)}
        out: list[bool] = []
        seen: set[tuple[str, str]] = set()
        for key in keys:
            out.append(mine[key] in new and key not in seen)
            seen.add(key)
        return out

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise AdapterError(
                f"SQLite query failed: {exc}", retriable=True, dependency="sqlite"
            ) from exc

    async def get_execution(self, exec_id: str) -> ExecutionRecord | None:
        try:
            return _stored(self.db, [exec_id]).get(exec_id)
        except sqlite3.Error as exc:
            raise AdapterError(
                f"SQLite query failed: {exc}", retriable=True, dependency="sqlite"
            ) from exc

    async def executions(self, lifetime_id: str) -> list[ExecutionRecord]:
        rows = self._query(
            f"SELECT {_EXEC_COLUMNS} FROM executions WHERE lifetime_id = ? ORDER BY seq",
            (lifetime_id,),
        )
        return [ExecutionRecord(*r) for r in rows]

    async def events(self, lifetime_id: str, after_seq: int = 0) -> list[EventRecord]:
        rows = self._query(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE lifetime_id = ? AND seq > ? ORDER BY seq",
            (lifetime_id, after_seq),
        )
        return [EventRecord(*r) for r in rows]

    async def list_lifetimes(
        self,
        *,
        tenant_id: str | None = None,
        status: int | None = None,
        limit: int = 100,
    ) -> list[LifetimeSummary]:
        rows = self._query(
            "SELECT e.lifetime_id, e.tenant_id, e.graph_id, e.status, s.started, e.created_at, s.n"
            " FROM (SELECT lifetime_id, MIN(seq) AS first, MAX(seq) AS last,"
            "       MIN(created_at) AS started, COUNT(*) AS n FROM events"
            "       WHERE (?1 IS NULL OR tenant_id = ?1) GROUP BY lifetime_id) AS s"
            " JOIN events AS e ON e.seq = s.last"
            " WHERE (?2 IS NULL OR e.status = ?2)"
            " ORDER BY s.first DESC LIMIT ?3",
            (tenant_id, status, limit),
        )
        return [LifetimeSummary(*r) for r in rows]


class _Unit:
    """One write transaction around a block (a class: this runs once per step,
    and an ``asynccontextmanager`` generator costs several times more)."""

    __slots__ = ("_nested", "_store", "_token")

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._nested = False
        self._token: contextvars.Token[bool] | None = None

    async def __aenter__(self) -> None:
        store = self._store
        if store._in_unit.get():
            self._nested = True  # part of the enclosing unit
            return
        await store._write_lock.acquire()
        self._token = store._in_unit.set(True)
        try:
            store.db.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self._end()
            if isinstance(exc, sqlite3.Error):
                raise _failed(exc) from exc
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if self._nested:
            return
        db = self._store.db
        try:
            if exc_type is None:
                db.execute("COMMIT")
            else:
                db.execute("ROLLBACK")
        except sqlite3.Error as error:
            if exc_type is None:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise _failed(error) from error
        finally:
            self._end()
        if isinstance(exc, sqlite3.Error):
            raise _failed(exc) from exc

    def _end(self) -> None:
        store = self._store
        store._next = None
        if self._token is not None:
            store._in_unit.reset(self._token)
            self._token = None
        store._write_lock.release()


def _failed(exc: sqlite3.Error) -> AdapterError:
    return AdapterError(f"SQLite transaction failed: {exc}", retriable=True, dependency="sqlite")


def _first_of_each(batch: Sequence[_R], keys: Sequence[Hashable]) -> Sequence[_R]:
    """``batch`` itself when its keys are distinct (the usual case), else the first of each."""
    if len(batch) < 2 or len(set(keys)) == len(keys):
        return batch
    first: dict[Hashable, _R] = {}
    for key, row in zip(keys, batch, strict=True):
        first.setdefault(key, row)
    return list(first.values())


def _owner(exec_id: str) -> str | None:
    """The lifetime an exec id names: "<lifetime>.<step>.<attempt>" (None if it names none).

    The control plane derives every input id from its lifetime's and each
    attempt's exec id from the input's (the data plane checks both, see
    DispatchSigner.check), so a dispatched execution's id names its lifetime.
    """
    head, _, attempt = exec_id.rpartition(".")
    lifetime, _, step = head.rpartition(".")
    if lifetime and step.isdecimal() and attempt.isdecimal() and (step + attempt).isascii():
        return lifetime
    return None


def _apart(exec_id: str, lifetime_id: str) -> int:
    """1 if the exec id does not name this lifetime (the row goes in executions_apart)."""
    return int(_owner(exec_id) != lifetime_id)


def _stored(db: sqlite3.Connection, exec_ids: Sequence[str]) -> dict[str, ExecutionRecord]:
    """The recorded executions with these ids, by id: through the lifetime each
    id names, else among the rows apart (each read uses one of the indexes)."""
    found: dict[str, ExecutionRecord] = {}
    by_lifetime = f"SELECT {_EXEC_COLUMNS} FROM executions WHERE lifetime_id = ? AND exec_id = ?"
    for exec_id in exec_ids:
        owner = _owner(exec_id)
        if owner is not None and exec_id not in found:
            row = db.execute(by_lifetime, (owner, exec_id)).fetchone()
            if row is not None:
                found[exec_id] = ExecutionRecord(*row)
    rest = {exec_id for exec_id in exec_ids if exec_id not in found}
    apart = f"SELECT {_EXEC_COLUMNS} FROM executions WHERE apart AND"
    for row in _select_in(db, apart, "exec_id", rest):
        found[row[1]] = ExecutionRecord(*row)
    return found


_IN_CHUNK = 500  # below SQLite's default limit of 32,766 host parameters, with room


def _select_in(db: sqlite3.Connection, select: str, column: str, keys: Iterable[Any]) -> list[Any]:
    """Rows of ``select`` (which ends in WHERE or AND) whose ``column`` is one
    of ``keys``, in chunks."""
    wanted = list(keys)
    rows: list[Any] = []
    for i in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[i : i + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows += db.execute(f"{select} {column} IN ({marks})", chunk).fetchall()
    return rows


def _split(sql: str) -> list[str]:
    """Split a migration into statements; trigger bodies keep their inner ';'."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements
