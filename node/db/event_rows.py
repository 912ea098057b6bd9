"""Bulk reads and writes of event rows on the DB-API cursor, the one place their SQLite and
PostgreSQL forms differ. Capture, replication and the anchorer store thousands of events a
second: per-row parameter handling in SQLAlchemy would cost more than the statements themselves.

    with event_rows(conn) as rows:      # conn: a write transaction (Database.connect(write=True))
        known = rows.existing(digests)
        ids = rows.insert(EVENT_COLUMNS, new_rows)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

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


@contextmanager
def event_rows(conn: Connection) -> Iterator[EventRows]:
    """The event-row statements on `conn`'s DB-API cursor, closed when the block ends."""
    rows = EventRows(conn.connection.dbapi_connection.cursor(), conn.dialect.name == "sqlite")  # type: ignore[union-attr]
    try:
        yield rows
    finally:
        rows.cursor.close()


class EventRows:
    """Bulk statements on the `events` and `event_epcs` tables of one transaction."""

    def __init__(self, cursor: Any, sqlite: bool) -> None:
        self.cursor = cursor
        self._sqlite = sqlite

    def existing(self, digests: Sequence[bytes]) -> dict[bytes, int | None]:
        """Of `digests`, those already stored, with their batch id (None while pending)."""
        found: dict[bytes, int | None] = {}
        if self._sqlite:
            for chunk in _chunks(digests):
                self.cursor.execute(f"SELECT digest, batch_id FROM events WHERE digest IN ({', '.join('?' * len(chunk))})", list(chunk))
                found.update((bytes(d), b) for d, b in self.cursor.fetchall())
        elif digests:
            self.cursor.execute("SELECT digest, batch_id FROM events WHERE digest = ANY(%b::bytea[])", [list(digests)])
            found.update((bytes(d), b) for d, b in self.cursor.fetchall())
        return found

    def insert(self, columns: Sequence[tuple[str, str]], rows: Sequence[tuple[Any, ...]]) -> dict[bytes, int]:
        """Insert event rows (digest first) that are not stored yet; digest -> id of those inserted.
        On SQLite the caller holds the only write lock (BEGIN IMMEDIATE), so the new rows are exactly
        those past the largest id; on PostgreSQL one statement over column arrays, and a concurrent
        insert of the same event is skipped."""
        if not rows:
            return {}
        names = ", ".join(name for name, _type in columns)
        if self._sqlite:
            self.cursor.execute("SELECT coalesce(max(id), 0) FROM events")
            before = int(self.cursor.fetchall()[0][0])
            self.cursor.executemany(f"INSERT INTO events ({names}) VALUES ({', '.join('?' * len(columns))})", rows)
            self.cursor.execute("SELECT id, digest FROM events WHERE id > ?", (before,))
        else:
            self.cursor.execute(
                f"INSERT INTO events ({names}) SELECT * FROM unnest({', '.join(f'%b::{kind}[]' for _name, kind in columns)}) "
                "ON CONFLICT (digest) DO NOTHING RETURNING id, digest",
                [list(column) for column in zip(*rows)],
            )
        return {bytes(digest): int(row_id) for row_id, digest in self.cursor.fetchall()}

    def insert_epcs(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """Index rows (event id, EPC, relation) of newly inserted events."""
        if not rows:
            return
        if self._sqlite:
            self.cursor.executemany("INSERT INTO event_epcs (event_id, epc, relation) VALUES (?, ?, ?)", rows)
        else:
            self.cursor.execute(
                "INSERT INTO event_epcs (event_id, epc, relation) SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[])",
                [list(column) for column in zip(*rows)],
            )

    def pending(self, limit: int) -> list[tuple[int, bytes, str]]:
        """The anchorer's queue: the oldest `limit` pending events (id, digest, signer), in id order.
        (Read through SQLAlchemy, its result rows cost 6 us each against under 1 us here.)"""
        self.cursor.execute(f"SELECT id, digest, signer {self._queue}", (limit,))
        return [(int(row_id), bytes(digest), signer) for row_id, digest, signer in self.cursor.fetchall()]

    def next_batch(self, limit: int) -> tuple[int, int | None]:
        """How many events the queue's next `limit` are, and when the oldest of them was received (ms)."""
        self.cursor.execute(f"SELECT count(*), min(received_at_ms) FROM (SELECT received_at_ms {self._queue}) AS next_batch", (limit,))
        count, oldest_ms = self.cursor.fetchall()[0]
        return int(count), None if oldest_ms is None else int(oldest_ms)

    @property
    def _queue(self) -> str:
        # ix_events_pending holds exactly the pending events, in id order
        return f"FROM events WHERE batch_id IS NULL ORDER BY id LIMIT {'?' if self._sqlite else '%s'}"

    def batch_pending(self, batch_id: int, ids: Sequence[int], proofs: Sequence[bytes]) -> int:
        """Put the pending events `ids` into batch `batch_id`, the i-th at leaf i with proof
        `proofs[i]`; the number of them that were still pending (and so were put)."""
        if self._sqlite:
            self.cursor.executemany(
                "UPDATE events SET batch_id = ?, leaf_index = ?, proof = ? WHERE id = ? AND batch_id IS NULL",
                [(batch_id, leaf, proof, row_id) for leaf, (row_id, proof) in enumerate(zip(ids, proofs, strict=True))],
            )
        else:  # one statement over arrays rather than a round trip per row
            self.cursor.execute(
                "UPDATE events SET batch_id = %s, leaf_index = u.leaf, proof = u.proof "
                "FROM unnest(%b::bigint[], %b::int[], %b::bytea[]) AS u(id, leaf, proof) "
                "WHERE events.id = u.id AND events.batch_id IS NULL",
                [batch_id, list(ids), list(range(len(ids))), list(proofs)],
            )
        return int(self.cursor.rowcount)

    def attach_pending(self, batch_id: int, placed: Sequence[tuple[int, bytes, bytes]]) -> None:
        """Put those of the events `placed` (leaf index, proof, digest) that are pending into
        batch `batch_id` at their leaf; anchored ones are left alone."""
        if not placed:
            return
        mark = "?" if self._sqlite else "%s"
        self.cursor.executemany(
            f"UPDATE events SET batch_id = {mark}, leaf_index = {mark}, proof = {mark} WHERE digest = {mark} AND batch_id IS NULL",
            [(batch_id, leaf, proof, digest) for leaf, proof, digest in placed],
        )
