"""The SQLite store's migrations keep an older database's rows and order; exec ids."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tickrail.adapters import NewEvent, NewExecution
from tickrail.adapters.store.sqlite import MIGRATIONS, SQLiteStore, _split


def _version_one(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    version, sql = MIGRATIONS[0]
    assert version == 1
    for statement in _split(sql):
        db.execute(statement)
    db.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    for seq, lifetime in ((3, "A"), (7, "B"), (9, "A")):
        db.execute(
            "INSERT INTO executions VALUES (?, ?, ?, 't', 'n', 1, 2, 1.5, ?)",
            (seq, f"x{seq}", lifetime, f"env{seq}".encode()),
        )
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, 't', 'g', 'routed', 1, 2.5, ?)",
            (seq, f"v{seq}", lifetime, f"body{seq}".encode()),
        )
    db.commit()
    db.close()


async def test_version_one_rows_survive_and_new_seqs_follow_them(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _version_one(path)
    async with SQLiteStore(f"sqlite:///{path}") as store:
        await store.setup()
        await store.setup()  # idempotent once migrated
        old = await store.executions("A")
        assert [(r.seq, r.exec_id, r.envelope) for r in old] == [
            (3, "x3", b"env3"),
            (9, "x9", b"env9"),
        ]
        [dup, new] = await store.append_executions(
            [
                NewExecution("x7", "B", "t", "n", 1, 2, 3.0, b"other"),
                NewExecution("x10", "A", "t", "n", 1, 2, 3.0, b"env10"),
            ]
        )
        assert not dup.created and dup.envelope == b"env7" and dup.seq == 7
        assert new.created and new.seq > 9
        assert await store.append_events(
            [
                NewEvent("v9", "A", "t", "g", "routed", 1, 3.0, b"again"),
                NewEvent("v10", "A", "t", "g", "routed", 2, 3.0, b"body10"),
            ]
        ) == [False, True]
        events = await store.events("A", after_seq=3)
        assert [(e.event_id, e.body) for e in events] == [("v9", b"body9"), ("v10", b"body10")]
        assert events[-1].seq > 9
        [b, a] = await store.list_lifetimes()  # newest first: B started after A
        assert (b.lifetime_id, a.lifetime_id, a.status, a.events) == ("B", "A", 2, 3)
    db = sqlite3.connect(path)
    # Events: the rowid B-tree and one unique (lifetime_id, event_id) index.
    assert [r[1] for r in db.execute("PRAGMA index_list(events)")] == ["events_by_lifetime"]
    # Executions: the rowid B-tree, one unique (lifetime_id, exec_id) index and
    # the partial index of rows whose exec id does not name their lifetime.
    indexes = sorted(r[1] for r in db.execute("PRAGMA index_list(executions)"))
    assert indexes == ["executions_apart", "executions_by_lifetime"]
    db.close()


def _version_two(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    for version, sql in MIGRATIONS[:2]:
        for statement in _split(sql):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    rows = ((3, "A.1.1", "A"), (7, "x7", "B"), (9, "A.2.1", "A"), (11, "B.1.1", "A"))
    for seq, exec_id, lifetime in rows:
        db.execute(
            "INSERT INTO executions VALUES (?, ?, ?, 't', 'n', 1, 2, 1.5, ?)",
            (seq, exec_id, lifetime, f"env{seq}".encode()),
        )
    db.commit()
    db.close()


async def test_version_two_executions_keep_ids_and_order(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _version_two(path)
    async with SQLiteStore(f"sqlite:///{path}") as store:
        assert await store.setup() == [3]
        assert [r.exec_id for r in await store.executions("A")] == ["A.1.1", "A.2.1", "B.1.1"]
        for exec_id, seq in (("A.1.1", 3), ("x7", 7), ("B.1.1", 11)):
            found = await store.get_execution(exec_id)
            assert found is not None and found.seq == seq
        [again, elsewhere, new] = await store.append_executions(
            [
                NewExecution("A.2.1", "A", "t", "n", 1, 2, 3.0, b"other"),
                NewExecution("B.1.1", "B", "t", "n", 1, 2, 3.0, b"other"),
                NewExecution("A.3.1", "A", "t", "n", 1, 2, 3.0, b"env12"),
            ]
        )
        assert not again.created and again.seq == 9
        assert not elsewhere.created and elsewhere.lifetime_id == "A"  # ids stay unique
        assert new.created and new.seq == 12
    db = sqlite3.connect(path)
    apart = db.execute("SELECT exec_id FROM executions WHERE apart ORDER BY seq").fetchall()
    assert apart == [("x7",), ("B.1.1",)]  # ids that do not name their lifetime
    db.close()


async def test_an_exec_id_is_recorded_once_whatever_lifetime_a_row_names(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(f"sqlite:///{tmp_path / 'state.db'}") as store:
        await store.setup()
        [first] = await store.append_executions(
            [NewExecution("M.1.1", "L", "t", "n", 1, 2, 1.0, b"apart")]
        )
        [named, _] = await store.append_executions(
            [
                NewExecution("M.1.1", "M", "t", "n", 1, 2, 2.0, b"named"),
                NewExecution("L.1.1", "L", "t", "n", 1, 2, 2.0, b"l"),
            ]
        )
        assert first.created and not named.created and named.envelope == b"apart"
        [late] = await store.append_executions(
            [NewExecution("L.1.1", "K", "t", "n", 1, 2, 3.0, b"k")]
        )
        assert not late.created and late.lifetime_id == "L"
        assert [r.exec_id for r in await store.executions("L")] == ["M.1.1", "L.1.1"]
        assert await store.executions("K") == []


async def test_dispatched_exec_ids_stay_out_of_the_partial_index(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        await store.setup()
        batch = [
            NewExecution(f"life.{step}.{attempt}", "life", "t", "n", 1, 2, 1.0, b"e")
            for step in range(1, 4)
            for attempt in (1, 2)
        ]
        assert all(r.created for r in await store.append_executions(batch))
        assert not any(r.created for r in await store.append_executions(batch))
        found = await store.get_execution("life.2.2")
        assert found is not None and found.seq == batch.index(batch[3]) + 1
        assert await store.get_execution("life.9.1") is None
        assert await store.get_execution("other.2.2") is None
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM executions WHERE apart").fetchone() == (0,)
    assert db.execute("SELECT COUNT(*) FROM executions").fetchone() == (6,)
    db.close()
