"""Locks that make a service the only one of its kind on a database, held for as long as the
process runs it and released by the operating system or the server when the process dies
(no stale lock after a SIGKILL). SQLite: an flock on a file beside the database;
PostgreSQL: a session advisory lock."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from sqlalchemy import text

from node.db.engine import Database, DatabaseError

#: PostgreSQL advisory lock keys, one per service (727377 is the migration lock, node.db.engine).
ANCHORER_LOCK = ("anchorer", 727378)


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
