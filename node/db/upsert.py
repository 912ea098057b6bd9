"""Dialect-specific INSERT ... ON CONFLICT for SQLite and PostgreSQL (the same SQL on both)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: Connection, table: Table) -> Any:
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


def insert_ignore(conn: Connection, table: Table, keys: Sequence[str]) -> Any:
    """INSERT that skips rows whose `keys` already exist."""
    return _insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))


def upsert(conn: Connection, table: Table, keys: Sequence[str], update: Sequence[str]) -> Any:
    """INSERT that overwrites the `update` columns of an existing row with the same `keys`."""
    stmt = _insert(conn, table)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update})
