"""Which member nodes hold which batches: the held-batches feed this node serves, and what the
passport says about the network (how many member nodes hold each event, withheld records).

The feed (`GET /batches/held?after=<seq>&limit=<n>`) lists the anchored batches this node
holds in the order of its `batches.id`, never past a batch of its own still waiting to be
anchored, and batches are added in the order of their ids (node.db.locks.in_id_order: the
anchorer's and the replicator's), so a follower's cursor (`next`) never skips one. Peers poll it (node.member.network.replicator)
into `network_holders`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select
from sqlalchemy.orm import aliased

from node.db import Batch, Database
from node.db.models import NetworkBatch, NetworkHolder, NetworkPeerCursor
from node.db.plain import PlainSelect, side_by_side

FEED_LIMIT = 5000


def held_feed(db: Database, after: int, limit: int = FEED_LIMIT) -> dict[str, Any]:
    """One page of the held-batches feed: `{"batches": [{"seq", "root"}], "next": <cursor>}`."""
    limit = max(1, min(limit, FEED_LIMIT))
    # The fence and the batches in one statement, so one snapshot: read apart, a batch formed
    # and followed by an imported one between the two reads would be passed over.
    prepared = aliased(Batch)
    fence = select(func.min(prepared.id)).where(prepared.status == "prepared").scalar_subquery()
    query = select(Batch.id, Batch.root).where(Batch.id > after, Batch.status != "prepared", or_(fence.is_(None), Batch.id < fence))
    with db.session() as s:
        rows = s.execute(query.order_by(Batch.id).limit(limit)).all()
    return {
        "batches": [{"seq": int(i), "root": "0x" + bytes(r).hex()} for i, r in rows],
        "next": int(rows[-1][0]) if rows else after,
    }


# Peers seen holding an event's batch, as a column of a statement that reads events joined to
# their batches (the passport reads it with the unit's history: node.member.history's `extra`).
PEERS_HOLDING_BATCH = select(func.count(NetworkHolder.org_id)).where(NetworkHolder.root == Batch.root).correlate(Batch).scalar_subquery()


def network_facts(conn: Connection, org_ids: Iterable[int]) -> tuple[int, dict[int, int]]:
    """In one read: the member nodes this node knows of (itself and every peer whose feed it
    reads), and the withheld batches (count) of each of `org_ids` that has any."""
    rows = _NETWORK_FACTS.rows(conn, {"orgs": sorted(set(org_ids))})
    return 1 + int(rows[0][0] or 0), {int(o): int(n) for _, o, n in rows if o is not None}


# Built once (building a statement costs more than running it); each passport build runs
# _NETWORK_FACTS: the peers' count beside one row per organisation with withheld batches (none:
# the organisation NULL).
_PEERS = PlainSelect(select(func.count()).select_from(NetworkPeerCursor))
_NEWEST_HOLDER = select(func.max(NetworkHolder.seen_at_ms))  # ix_network_holders_seen_at_ms
_WITHHELD_BATCHES = select(func.count()).select_from(NetworkBatch).where(NetworkBatch.state == "withheld")  # ix_network_batches_state_next
_peers = select(func.count().label("peers")).select_from(NetworkPeerCursor).subquery("peers")
_withheld = (
    select(NetworkBatch.org_id, func.count().label("batches"))
    .where(NetworkBatch.state == "withheld", NetworkBatch.org_id.in_(bindparam("orgs", expanding=True)))
    .group_by(NetworkBatch.org_id)
    .subquery("withheld")
)
_NETWORK_FACTS = PlainSelect(
    select(_peers.c.peers, _withheld.c.org_id, _withheld.c.batches).select_from(side_by_side(_peers, _withheld))
)


def network_mark(conn: Connection) -> tuple[Any, ...]:
    """What this node knows of the network, in three index probes: it moves when a peer is seen
    holding another batch, a batch turns withheld or is served after all, or a peer appears. The
    passport's network section is made of these, so the passport cache watches it too
    (api.readmodel.passport's watermark)."""
    return (conn.execute(_NEWEST_HOLDER).scalar(), conn.execute(_WITHHELD_BATCHES).scalar(), _PEERS.rows(conn)[0][0])


def network_section(db: Database, timeline: Sequence[Mapping[str, Any]], peers_holding: Sequence[int]) -> dict[str, Any]:
    """The passport's `network` section: member nodes holding each timeline event (this node and
    `peers_holding` of each, read with the history: PEERS_HOLDING_BATCH), and the organisations
    of the unit's history some of whose batches no member node has served."""
    orgs = {
        int(org["id"]) for item in timeline if (org := (item.get("verification") or {}).get("signerOrg")) is not None
    }
    with db.connect() as conn:
        members, withheld = network_facts(conn, orgs)
    return {
        "memberNodes": members,
        "holders": [{"eventId": item["id"], "nodes": 1 + peers} for item, peers in zip(timeline, peers_holding, strict=True)],
        "withheld": [{"orgId": org, "batches": n} for org, n in sorted(withheld.items())],
    }
