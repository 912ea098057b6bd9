"""The passport's order section: the order this unit belongs to (through its own id, its lot or
a container it travelled in), never another buyer's, and its state as the escrow logs leave it
now, not as it was when the passport was cached. TradeEscrow deployed as on the devnet, its
logs indexed by the node's indexer into the database the API reads (node.escrow.orders)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_utils.crypto import keccak
from fastapi.testclient import TestClient
from sqlalchemy import delete, event as sa_event, select

from api.main import create_app
from node.chain.build import build
from node.chain.client import ChainClient
from node.db import ChainLog
from waymark.devnet.anvil import AnvilControl, AnvilProcess
from waymark.ports import free_port
from node.escrow import OrderTerms
from node.escrow.orders import OrderIndex, read_orders
from node.member.runtime import build_indexer
from tests.api.world import World, api_settings, build_world
from tests.node.escrow_env import EscrowEnv, escrow_env, member

OTHER_BUYER = member(11)


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, EscrowEnv, TestClient]]:
    build()
    anvil = AnvilProcess(port=free_port()).start()
    folder = tmp_path_factory.mktemp("order-world")
    try:
        env = escrow_env(ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id), folder)
        world = build_world(anvil, folder, lots={"shared": "genuine", "released": "genuine", "unrelated": "genuine"}, lot_size=2)
        app = create_app(api_settings(world, folder, passport_ttl=3600.0), world.chain_settings, world.database)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield world, env, client
    finally:
        anvil.stop()


def index(world: World) -> None:
    indexer = build_indexer(world.runtime)
    for _ in range(50):
        if indexer.step().logs == 0:
            break


def salt() -> int:
    return time.time_ns() % 2**63


def container_of(world: World, lot: str) -> str:
    return world.lots[lot].container.canonical_uri


def deliver(env: EscrowEnv, terms: OrderTerms) -> None:
    for milestone in range(len(terms.milestones)):
        env.reach(terms, milestone)


def passport(client: TestClient, world: World, lot: str, index_: int = 0) -> dict[str, Any]:
    response = client.get("/api/v1/passport", params={"uri": world.unit(lot, index_).uri()})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def order_shown(client: TestClient, world: World, lot: str, wanted: dict[str, str] | None, index_: int = 0) -> dict[str, Any]:
    """The passport once its order section shows `wanted` (the API follows the indexed logs
    within about half a second); fails after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        body = passport(client, world, lot, index_)
        if body["escrow"] == wanted or time.monotonic() > deadline:
            assert body["escrow"] == wanted
            return body
        time.sleep(0.05)


def test_two_buyers_orders_on_one_container_show_neither_and_the_units_own_order_wins(setting: Any) -> None:
    world, env, client = setting
    container = container_of(world, "shared")
    mine = env.open(env.terms(shipment_ref=keccak(text=container), salt=salt()))
    index(world)
    order_shown(client, world, "shared", {"state": "Funded"})
    env.escrow.create(env.terms(shipment_ref=keccak(text=container), buyer=OTHER_BUYER.address, salt=salt()), env.seller)
    index(world)
    # Two buyers' orders name the container: which one the unit is in cannot be told from the chain.
    order_shown(client, world, "shared", None)
    order_shown(client, world, "shared", None, 1)
    unit = world.unit("shared", 0)
    env.escrow.create(env.terms(shipment_ref=keccak(text=unit.canonical_uri), buyer=OTHER_BUYER.address, salt=salt()), env.seller)
    index(world)
    order_shown(client, world, "shared", {"state": "Created"})  # the order naming the unit itself
    order_shown(client, world, "shared", None, 1)  # not the other unit's
    assert mine.order_id  # the container order stays the buyer's; it is just not this unit's to show


def test_a_release_is_shown_on_the_next_scan_without_rebuilding_the_passport(setting: Any) -> None:
    world, env, client = setting
    terms = env.open(env.terms(shipment_ref=keccak(text=container_of(world, "released")), salt=salt()))
    deliver(env, terms)
    index(world)
    order_shown(client, world, "released", {"state": "Delivered"})
    builds = client.app.state.services.passports.builds
    env.escrow.confirm(terms, env.buyer)
    index(world)
    order_shown(client, world, "released", {"state": "Released"})
    assert client.app.state.services.passports.builds == builds  # the cached passport, current order


def test_cancelling_an_unrelated_order_leaves_the_units_order_shown(setting: Any) -> None:
    world, env, client = setting
    container = container_of(world, "unrelated")
    mine = env.open(env.terms(shipment_ref=keccak(text=container), salt=salt()))
    deliver(env, mine)
    index(world)
    order_shown(client, world, "unrelated", {"state": "Delivered"})
    other = env.terms(shipment_ref=keccak(text=container), buyer=OTHER_BUYER.address, salt=salt())
    env.escrow.create(other, env.seller)
    env.escrow.cancel(other, env.seller)
    index(world)
    order_shown(client, world, "unrelated", {"state": "Delivered"})
    order_shown(client, world, "unrelated", {"state": "Delivered"}, 1)


def test_an_order_on_the_units_lot_is_its_order(setting: Any) -> None:
    # Last in this module: every lot of the world shares one lot number.
    world, env, client = setting
    unit = world.unit("released", 1)
    lot = f"https://id.gs1.org/01/{unit.gtin}/10/{unit.lot}"
    env.open(env.terms(shipment_ref=keccak(text=lot), salt=salt()))
    index(world)
    order_shown(client, world, "released", {"state": "Funded"}, 1)  # the lot's order is more specific than the container's


def test_the_order_index_rebuilds_when_the_chain_reorganised_under_its_checkpoint(setting: Any) -> None:
    world, _env, _client = setting
    unit = world.unit("released", 1)
    lot_key = keccak(text=f"https://id.gs1.org/01/{unit.gtin}/10/{unit.lot}")
    orders = OrderIndex(world.db, world.client.chain_id)
    orders.sync()
    assert [o.state for o in orders.orders_for([lot_key])[lot_key]] == ["Funded"]
    # A reorganisation took the lot order's funding away: the indexer's roll back deletes that
    # log, which is the one the index's checkpoint names.
    with world.db.connect(write=True) as conn:
        last, event = conn.execute(
            select(ChainLog.id, ChainLog.event).where(ChainLog.contract == "TradeEscrow").order_by(ChainLog.id.desc()).limit(1)
        ).one()
        assert event == "OrderFunded" and last == orders.checkpoint
        conn.execute(delete(ChainLog).where(ChainLog.id == last))
    orders.sync()
    fresh = OrderIndex(world.db, world.client.chain_id)  # nothing held in memory: what the table says
    assert [o.state for o in fresh.orders_for([lot_key])[lot_key]] == ["Created"]
    assert orders.checkpoint < last


def test_an_order_indexed_right_after_a_sync_is_seen_by_the_next_fresh(setting: Any) -> None:
    world, env, _client = setting
    key = container_of(world, "unrelated")
    terms = env.open(env.terms(shipment_ref=keccak(text=key), salt=salt()))  # on chain, not yet indexed
    orders = OrderIndex(world.db, world.client.chain_id)
    orders.sync()  # a sync has just finished (the background syncer's, say)
    index(world)  # the node stores the new order's logs a moment later
    orders.fresh()  # a passport's first build, at once
    assert terms.order_id in {o.order_id for o in orders.orders_for([keccak(text=key)])[keccak(text=key)]}


def test_the_index_takes_the_orders_a_build_read_only_while_it_has_not_moved_since(setting: Any) -> None:
    """A passport build process reads the unit's orders in its own snapshot (read_orders) against
    the checkpoint the API's index had when the build was asked for; the index takes them without
    reading the database itself, unless a sync moved it meanwhile."""
    world, env, _client = setting
    chain_id, key = world.client.chain_id, keccak(text=container_of(world, "unrelated"))
    index(world)
    orders = OrderIndex(world.db, chain_id)
    orders.sync()
    read = read_orders(world.db, chain_id, orders.checkpoint, [key])
    assert read is not None and read.orders[key] == OrderIndex(world.db, chain_id).orders_for([key])[key]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa_event.listen(world.db.engine, "before_cursor_execute", count)
    try:
        assert orders.take(read)
        held = orders.orders_for([key])[key]
    finally:
        sa_event.remove(world.db.engine, "before_cursor_execute", count)
    assert statements == [] and held == read.orders[key]

    # A new order naming the key: a read against the checkpoint before its logs is refused ...
    before = read
    terms = env.open(env.terms(shipment_ref=key, salt=salt()))
    index(world)
    assert read_orders(world.db, chain_id, orders.checkpoint, [key]) is None
    # ... and a read made before them is not taken by an index that has synced since: it shows the new order.
    moved = OrderIndex(world.db, chain_id)
    moved.sync()
    assert moved.checkpoint > before.checkpoint
    assert not moved.take(before)
    moved.refresh([key])
    assert terms.order_id in {o.order_id for o in moved.orders_for([key])[key]}
    assert terms.order_id not in {o.order_id for o in before.orders[key]}


def test_milestones_during_a_dispute_leave_it_disputed_and_a_lapsed_dispute_funded_again(setting: Any) -> None:
    world, env, _client = setting
    chain_id = world.client.chain_id
    delivered_key, lapsing_key = keccak(text=f"delivered while disputed {salt()}"), keccak(text=f"lapsing {salt()}")
    delivered = env.open(env.terms(shipment_ref=delivered_key, salt=salt()))
    lapsing = env.open(env.terms(shipment_ref=lapsing_key, salt=salt()))
    env.reach(lapsing, 0)
    for terms in (delivered, lapsing):
        env.escrow.dispute(terms, b"\x01" * 32, env.buyer)
    deliver(env, delivered)  # every milestone attested during the dispute
    index(world)
    orders = OrderIndex(world.db, chain_id)
    orders.sync()
    assert [o.state for o in orders.orders_for([delivered_key])[delivered_key]] == ["Disputed"]
    AnvilControl(world.client.rpc_url).increase_time(env.escrow.dispute_timeout() + 1)
    env.escrow.resolve_expired(lapsing, env.outsider)  # shipped, within deliver-by: the dispute lapses
    env.escrow.resolve_expired(delivered, env.outsider)  # delivered: decided for the seller side
    index(world)
    orders.sync()
    shown = orders.orders_for([delivered_key, lapsing_key])
    assert [o.state for o in shown[lapsing_key]] == ["Funded"] and [o.state for o in shown[delivered_key]] == ["Resolved"]
