"""Locks that make a service the only one of its kind on a database, held for as long as the
process runs it and released by the operating system or the server when the process dies
(no stale lock after a SIGKILL). SQLite: an flock on a file beside the database;
PostgreSQL: a session advisory lock.

And the lock that makes appends to a feed read by id commit in the order of their ids
(`in_id_order`)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from node.db.engine import Database, DatabaseError

#: PostgreSQL advisory lock keys, one per service (727377 is the migration lock, node.db.engine).
ANCHORER_LOCK = ("anchorer", 727378)

#: Feeds that peers, clients or the node's own services read by id (`after=`, a checkpoint), one
#: key each: the sealed documents' changes (document_feed.seq), the batches this node holds
#: (batches.id: anchored here or imported), the clone alerts (scan_alerts.id), the chain's logs
#: as the indexer stores them (chain_logs.id: the replicator's and the order index's checkpoints),
#: the events (events.id: EPCIS query subscriptions deliver up to one). A transaction that takes
#: two takes BATCHES_FEED first.
DOCUMENT_FEED = ("document feed", 727379)
BATCHES_FEED = ("batches feed", 727380)
ALERTS_FEED = ("alerts feed", 727381)
CHAIN_LOGS_FEED = ("chain logs", 727382)
EVENTS_FEED = ("events", 727383)


class LockHeld(DatabaseError):
    """Another process holds the lock; `where` names the database (no password)."""

    code = "lock_held"

    def __init__(self, name: str, where: str) -> None:
        self.where = where
        super().__init__(f"another process holds the {name} lock of {where}")


@contextmanager
def hold(db: Database, lock: tuple[str, int]) -> Iterator[None]:
    """Hold `lock` (name, PostgreSQL key) on `db` while the block runs; LockHeld if another holds it."""
    name, key = lock
    if db.is_sqlite:
        path = f"{db.url.database}.{name}.lock"
        handle: IO[str] = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise LockHeld(name, str(db.url.database)) from None
        try:
            yield
        finally:
            handle.close()
        return
    with db.engine.connect() as conn:
        if not conn.execute(text(f"SELECT pg_try_advisory_lock({int(key)})")).scalar():
            raise LockHeld(name, db.url.render_as_string(hide_password=True))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text(f"SELECT pg_advisory_unlock({int(key)})"))
            conn.commit()


def in_id_order(conn: Connection | Session, feed: tuple[str, int]) -> None:
    """Make what this transaction appends to `feed` commit after everything appended before it.

    A feed's reader keeps the last id it read and asks for the rows after it. On PostgreSQL a
    row's id is drawn when it is inserted, not when it commits: of two writers, the one with the
    higher id may commit first, a reader then moves past the lower one, and that row, committed a
    moment later, is never read. Taken before the transaction's first write, a transaction
    advisory lock (released at commit or rollback) lets one writer of the feed at a time draw
    ids and commit. Keyed by schema too: nodes in schemas of one database do not wait for each
    other. SQLite needs nothing: it has one writer at a time, holding the write lock until commit."""
    dialect = conn.get_bind().dialect if isinstance(conn, Session) else conn.dialect
    if dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": feed[1]})
