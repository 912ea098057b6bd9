"""The held-batches feed (node.member.network.holders.held_feed) stops before a batch of this node
still waiting to be anchored, so a follower's cursor never passes over it; on both backends."""

from __future__ import annotations

from sqlalchemy import insert, update

from node.db import Batch, Database
from node.member.network.holders import held_feed


def _batch(db: Database, n: int, status: str) -> None:
    with db.connect(write=True) as conn:
        conn.execute(insert(Batch), {"id": n, "root": bytes([n]) * 32, "event_count": 1, "status": status, "created_at_ms": n, "sends": 0})


def test_the_feed_stops_before_a_batch_still_prepared_and_goes_on_once_it_is_anchored(db: Database) -> None:
    assert held_feed(db, 0) == {"batches": [], "next": 0}
    _batch(db, 1, "confirmed")
    _batch(db, 2, "prepared")
    _batch(db, 3, "confirmed")  # imported from a peer after this node formed batch 2
    assert held_feed(db, 0) == {"batches": [{"seq": 1, "root": "0x" + "01" * 32}], "next": 1}
    assert held_feed(db, 1) == {"batches": [], "next": 1}
    with db.connect(write=True) as conn:
        conn.execute(update(Batch).where(Batch.id == 2).values(status="anchored"))
    assert [b["seq"] for b in held_feed(db, 1)["batches"]] == [2, 3]
    assert held_feed(db, 1, limit=1) == {"batches": [{"seq": 2, "root": "0x" + "02" * 32}], "next": 2}
    _batch(db, 4, "prepared")  # a prepared batch after the cursor's position holds back only what follows it
    _batch(db, 5, "confirmed")
    assert held_feed(db, 3) == {"batches": [], "next": 3}
    assert [b["seq"] for b in held_feed(db, 0)["batches"]] == [1, 2, 3]
