"""`Database.snapshot`: the reads of one thread inside it share one connection (a passport build
asks ten or so small questions), in one transaction on SQLite and in none on PostgreSQL; other
threads and writes keep their own."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, insert, select

from node.db import Batch, Database


def _add_batch(db: Database, n: int) -> None:
    with db.write() as s:
        s.add(Batch(root=bytes([n]) * 32, event_count=1, status="prepared", created_at_ms=0, sends=0))


def _count(db: Database) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Batch)).scalar_one())


def _connection_of_read(db: Database) -> object:
    with db.connect() as conn:
        return conn


def test_reads_inside_a_snapshot_share_one_connection_and_nested_blocks_join_it(db: Database) -> None:
    with db.snapshot():
        first = _connection_of_read(db)
        with db.snapshot():
            assert _connection_of_read(db) is first
        assert _connection_of_read(db) is first
        with db.connect(write=True) as writer:
            assert writer is not first  # a write takes its own connection and transaction
        elsewhere: list[object] = []
        thread = threading.Thread(target=lambda: elsewhere.append(_connection_of_read(db)))
        thread.start()
        thread.join()
        assert elsewhere[0] is not first  # another thread is not inside this snapshot
    assert _connection_of_read(db) is not first  # the block ended, and its connection with it


def test_a_snapshot_ends_cleanly_when_its_block_raises(db: Database) -> None:
    try:
        with db.snapshot():
            inside = _connection_of_read(db)
            raise KeyError("a failed build")
    except KeyError:
        pass
    assert _connection_of_read(db) is not inside
    _add_batch(db, 1)  # the failed block's transaction holds no lock
    assert _count(db) == 1


def test_a_write_committed_meanwhile_is_seen_after_the_snapshot(db: Database) -> None:
    _add_batch(db, 1)
    with db.snapshot():
        assert _count(db) == 1
        _add_batch(db, 2)  # its own connection: committed at once, not blocked by the open reads
        if db.is_sqlite:
            assert _count(db) == 1  # SQLite: the snapshot's reads see one state of the database
    assert _count(db) == 2


def test_a_snapshot_reads_in_one_transaction_on_sqlite_and_in_none_on_postgresql(db: Database) -> None:
    """PostgreSQL's reads are READ COMMITTED, each statement its own snapshot, in a transaction or
    not: without one the block saves BEGIN and COMMIT. Its connection goes back to the pool in
    transactions again, so a write that fails after it leaves nothing behind."""
    with db.snapshot():
        with db.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            if db.is_sqlite:
                assert raw.in_transaction
            else:
                assert raw.autocommit
    with pytest.raises(KeyError):
        with db.connect(write=True) as conn:
            conn.execute(insert(Batch).values(root=b"\x01" * 32, event_count=1, status="prepared", created_at_ms=0, sends=0))
            conn.execute(insert(Batch).values(root=b"\x02" * 32, event_count=1, status="prepared", created_at_ms=0, sends=0))
            raise KeyError("a failed write")
    assert _count(db) == 0
    with db.connect() as conn:
        assert db.is_sqlite or conn.connection.dbapi_connection is raw and not raw.autocommit
