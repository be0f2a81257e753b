"""The SQLite store's migration 2 keeps a version-1 database's rows and order."""

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
    assert len(db.execute("PRAGMA index_list(executions)").fetchall()) == 2
    db.close()
