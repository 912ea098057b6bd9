"""What a node knows of the network moves the passports' watermark: a passport built before the
node learned that a peer holds a batch (or that a batch is withheld, or of a new peer) is rebuilt
at its next expiry, not kept until its maximum age because no event changed."""

from __future__ import annotations

from sqlalchemy import insert, update

from api.readmodel.chain_view import ChainView
from api.readmodel.passport import PassportBuilder
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Database
from node.db.models import NetworkBatch, NetworkHolder, NetworkPeerCursor
from node.member.network.holders import network_mark

ROOT = bytes(range(32))


def _mark(db: Database) -> tuple[object, ...]:
    with db.connect() as conn:
        return network_mark(conn)


def test_a_new_holder_a_withheld_batch_and_a_new_peer_each_move_the_network_mark(
    follower_db: Database, chain: ChainClient, deployment: Deployment
) -> None:
    db = follower_db
    seen = [_mark(db)]
    with db.connect(write=True) as conn:
        conn.execute(insert(NetworkHolder), {"root": ROOT, "org_id": 3, "seen_at_ms": 1_000})
    seen.append(_mark(db))
    with db.connect(write=True) as conn:
        conn.execute(insert(NetworkHolder), {"root": ROOT, "org_id": 4, "seen_at_ms": 2_000})
    seen.append(_mark(db))
    with db.connect(write=True) as conn:
        conn.execute(insert(NetworkBatch), {
            "root": ROOT, "org_id": 3, "chain_id": chain.chain_id, "event_count": 5, "uri": "waymark://", "block_number": 7,
            "block_hash": bytes(32), "block_time": 1, "tx_hash": bytes(32), "state": "waiting", "first_seen_ms": 1_000,
        })
    assert _mark(db) == seen[-1]  # a batch still waiting for its bundle shows nowhere yet
    with db.connect(write=True) as conn:
        conn.execute(update(NetworkBatch).values(state="withheld", withheld_since_ms=3_000))
    seen.append(_mark(db))
    with db.connect(write=True) as conn:
        conn.execute(update(NetworkBatch).values(state="held", imported_at_ms=4_000))
    seen.append(_mark(db))
    with db.connect(write=True) as conn:
        conn.execute(insert(NetworkPeerCursor), {"org_id": 3, "url": "http://carrier.example", "after": 0})
    seen.append(_mark(db))
    # Every step moved it. (Served after all, the count of withheld batches is back where it was;
    # the import of the batch's events moves the rest of the watermark.)
    assert all(before != after for before, after in zip(seen, seen[1:])), seen
    # ... and the passports' watermark carries it.
    builder = PassportBuilder(db, ChainView(chain, deployment), resolver_url="http://r", browser_rpc_url="http://b")
    assert builder.watermark()[-3:] == seen[-1]
