"""Bulk reads and writes of event rows on the DB-API cursor, the one place their SQLite and
PostgreSQL forms differ. Capture and replication store thousands of events a second: per-row
parameter handling in SQLAlchemy would cost more than the inserts themselves."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

#: The columns of an event row as capture stores it (pending), with their PostgreSQL array types.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("digest", "bytea"), ("event_type", "text"), ("action", "text"), ("biz_step", "text"), ("event_time", "bigint"),
    ("event_time_ms", "bigint"), ("subject", "bytea"), ("signer", "text"), ("signature", "bytea"), ("role", "text"),
    ("body", "text"), ("received_at_ms", "bigint"), ("corrects", "bytea"),
    # The verification record: signature and role checked on arrival, and by which organisation.
    ("signer_org", "bigint"), ("verified_at_ms", "bigint"),
)
#: ... and as an imported batch's events arrive: anchored, with their place in the batch.
ANCHORED_EVENT_COLUMNS = EVENT_COLUMNS + (("batch_id", "bigint"), ("leaf_index", "int"), ("proof", "bytea"))

_CHUNK = 500  # SQLite's bound-parameter limit is far above this; it keeps statements short


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def existing_events(cursor: Any, is_sqlite: bool, digests: Sequence[bytes]) -> dict[bytes, int | None]:
    """Of `digests`, those already stored, with their batch id (None while pending)."""
    found: dict[bytes, int | None] = {}
    if is_sqlite:
        for chunk in _chunks(digests):
            cursor.execute(f"SELECT digest, batch_id FROM events WHERE digest IN ({', '.join('?' * len(chunk))})", list(chunk))
            found.update((bytes(d), b) for d, b in cursor.fetchall())
    elif digests:
        cursor.execute("SELECT digest, batch_id FROM events WHERE digest = ANY(%b::bytea[])", [list(digests)])
        found.update((bytes(d), b) for d, b in cursor.fetchall())
    return found


def insert_events(cursor: Any, is_sqlite: bool, columns: Sequence[tuple[str, str]], rows: Sequence[tuple[Any, ...]]) -> dict[bytes, int]:
    """Insert event rows (digest first) that are not stored yet; digest -> id of those inserted.
    On SQLite the caller holds the only write lock (BEGIN IMMEDIATE), so the new rows are exactly
    those past the largest id; on PostgreSQL one statement over column arrays, and a concurrent
    insert of the same event is skipped."""
    if not rows:
        return {}
    names = ", ".join(name for name, _type in columns)
    if is_sqlite:
        cursor.execute("SELECT coalesce(max(id), 0) FROM events")
        before = int(cursor.fetchall()[0][0])
        cursor.executemany(f"INSERT INTO events ({names}) VALUES ({', '.join('?' * len(columns))})", rows)
        cursor.execute("SELECT id, digest FROM events WHERE id > ?", (before,))
    else:
        cursor.execute(
            f"INSERT INTO events ({names}) SELECT * FROM unnest({', '.join(f'%b::{kind}[]' for _name, kind in columns)}) "
            "ON CONFLICT (digest) DO NOTHING RETURNING id, digest",
            [list(column) for column in zip(*rows)],
        )
    return {bytes(digest): int(row_id) for row_id, digest in cursor.fetchall()}


def insert_event_epcs(cursor: Any, is_sqlite: bool, rows: Sequence[tuple[int, str, str]]) -> None:
    """Index rows (event id, EPC, relation) of newly inserted events."""
    if not rows:
        return
    if is_sqlite:
        cursor.executemany("INSERT INTO event_epcs (event_id, epc, relation) VALUES (?, ?, ?)", rows)
    else:
        cursor.execute(
            "INSERT INTO event_epcs (event_id, epc, relation) SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[])",
            [list(column) for column in zip(*rows)],
        )
