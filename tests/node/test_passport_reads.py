"""What a cold passport build reads besides the unit's history: the product's master data once per
builder while verified, the network facts (member nodes, withheld batches) in one statement,
and the corrections only for a timeline an error declaration names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import delete, event as sa_event, insert

from api.readmodel import product_master as product_master_module
from api.readmodel.chain_view import ChainView
from api.readmodel.passport import PassportBuilder
from api.readmodel.product_master import master_hash, store_master
from node.db.models import NetworkBatch, NetworkPeerCursor, ProductMaster as ProductMasterRow
from node.member.network.holders import network_facts
from node.member.runtime import NodeRuntime
from tests.api.world import PRODUCT_MASTER, register_product
from tests.node.story import GTIN, capture_and_anchor, lot_story, story_events


def _captured(runtime: NodeRuntime, chain_now: int) -> Any:
    story = lot_story(chain_now, size=1)
    capture_and_anchor(runtime, story_events(story))
    return story


def _builder(runtime: NodeRuntime, **hooks: Any) -> PassportBuilder:
    return PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r",
                           browser_rpc_url="http://b", **hooks)


def test_verified_master_data_is_read_once_per_builder_and_other_states_at_every_build(
    runtime: NodeRuntime, chain_now: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_product(runtime.client, runtime.deployment)
    story = _captured(runtime, chain_now)
    reads: list[str] = []
    real = product_master_module.master_section

    def counted(db: Any, gtin: str, registered: bytes | None) -> dict[str, Any]:
        reads.append(gtin)
        return real(db, gtin, registered)

    monkeypatch.setattr(product_master_module, "master_section", counted)
    builder = _builder(runtime)

    def master() -> dict[str, Any]:
        core = builder.build(story.units[0])
        assert core is not None
        return core.body["product"]["master"]  # type: ignore[no-any-return]

    assert master()["status"] == "not_held"
    store_master(runtime.db, GTIN, PRODUCT_MASTER, master_hash(PRODUCT_MASTER))
    assert master()["status"] == "verified"  # stored since: shown at the next build
    assert len(reads) == 2
    with runtime.db.connect(write=True) as conn:
        conn.execute(delete(ProductMasterRow))
    shown = master()
    assert shown["status"] == "verified" and shown["metadataHash"] == "0x" + master_hash(PRODUCT_MASTER).hex()
    assert len(reads) == 2  # kept: not read again
    assert _builder(runtime).build(story.units[0]).body["product"]["master"]["status"] == "not_held"  # type: ignore[union-attr]


def test_network_facts_come_in_one_statement(runtime: NodeRuntime) -> None:
    with runtime.db.connect(write=True) as conn:
        conn.execute(insert(NetworkPeerCursor), [{"org_id": 3, "url": "http://carrier", "after": 0}, {"org_id": 4, "url": "http://customs", "after": 0}])
        conn.execute(insert(NetworkBatch), [
            {"root": bytes([n]) * 32, "org_id": org, "chain_id": 1, "event_count": 1, "uri": "", "block_number": 1,
             "block_hash": b"\0" * 32, "block_time": 0, "tx_hash": b"\0" * 32, "state": state, "first_seen_ms": 0}
            for n, (org, state) in enumerate([(3, "withheld"), (3, "withheld"), (4, "held"), (5, "withheld")])
        ])
    statements: list[str] = []
    sa_event.listen(runtime.db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with runtime.db.connect() as conn:
        assert network_facts(conn, [3, 4]) == (3, {3: 2})  # this node and two peers; org 3's two withheld batches
        assert network_facts(conn, [4]) == (3, {})
        assert network_facts(conn, []) == (3, {})
    assert len([s for s in statements if "network_" in s]) == 3  # one each (SQLite's BEGIN aside)


def test_the_corrections_are_read_only_for_a_timeline_an_error_declaration_names(runtime: NodeRuntime, chain_now: int) -> None:
    story = _captured(runtime, chain_now)
    asked: list[Sequence[str]] = []

    def corrections(event_ids: Sequence[str]) -> Mapping[str, dict[str, Any]]:
        asked.append(event_ids)
        return {}

    core = _builder(runtime, corrections=corrections).build(story.units[0])
    assert core is not None and core.body["timeline"] and asked == []
