"""Ownership claimed with the escrow order that bought the unit; the passport shows the
order's state (state only). TradeEscrow deployed as on the devnet (tests/node/escrow_env.py),
its logs indexed by the node's indexer into the database the API reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_utils.crypto import keccak
from fastapi.testclient import TestClient

from api.auth import sign_claim
from api.main import create_app
from node.chain.build import build
from node.chain.client import ChainClient
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from node.member.runtime import build_indexer
from tests.api.world import World, api_settings, build_world
from tests.node.escrow_env import EscrowEnv, escrow_env, member


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, EscrowEnv, TestClient]]:
    build()
    anvil = AnvilProcess(port=free_port()).start()
    folder = tmp_path_factory.mktemp("escrow-world")
    try:
        env = escrow_env(ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id), folder)
        world = build_world(anvil, folder, lots={"sold": "genuine"}, lot_size=4)  # reuses the deployment above
        app = create_app(api_settings(world, folder), world.chain_settings, world.database)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield world, env, client
    finally:
        anvil.stop()


def index(world: World) -> None:
    indexer = build_indexer(world.runtime)
    for _ in range(50):
        if indexer.step().logs == 0:
            break


def order_for(env: EscrowEnv, shipment: str, *, deliver: bool) -> Any:
    terms = env.open(env.terms(shipment_ref=keccak(text=shipment), salt=int(time.time() * 1000) % 2**63))
    if deliver:
        for milestone in range(len(terms.milestones)):
            env.reach(terms, milestone)
    return terms


def claim(client: TestClient, world: World, unit_uri: str, canonical: str, order_id: int, signer: Any) -> Any:
    issued = int(time.time())
    return client.post("/api/v1/ownership/claims", json={
        "method": "escrow", "uri": unit_uri, "orderId": str(order_id), "issuedAt": issued,
        "signature": sign_claim(signer.key, world.client.chain_id, canonical, order_id, issued),
    }, headers={"Waymark-Device": "buyer-laptop"})


def test_the_buyer_of_a_delivered_order_claims_the_unit_and_the_passport_shows_the_order(setting: Any) -> None:
    world, env, client = setting
    unit = world.unit("sold", 0)
    container = world.lots["sold"].container.canonical_uri  # the order shipped the container
    terms = order_for(env, container, deliver=True)
    index(world)
    passport = client.get("/api/v1/passport", params={"uri": unit.uri()}).json()
    assert passport["escrow"] == {"state": "Delivered"}
    assert "amount" not in str(passport["escrow"])
    response = claim(client, world, unit.uri(), unit.canonical_uri, terms.order_id, env.buyer)
    assert response.status_code == 201, response.text
    assert response.json()["method"] == "escrow" and response.json()["byThisDevice"] is True


def test_only_the_orders_buyer_may_claim_with_it(setting: Any) -> None:
    world, env, client = setting
    unit = world.unit("sold", 1)
    terms = order_for(env, unit.canonical_uri, deliver=True)
    index(world)
    response = claim(client, world, unit.uri(), unit.canonical_uri, terms.order_id, member(11))
    assert response.status_code == 422 and "not by the order's buyer" in response.json()["message"]


def test_an_order_for_another_shipment_does_not_prove_ownership(setting: Any) -> None:
    world, env, client = setting
    unit = world.unit("sold", 2)
    terms = order_for(env, "https://id.gs1.org/00/095212340000000000", deliver=True)
    index(world)
    response = claim(client, world, unit.uri(), unit.canonical_uri, terms.order_id, env.buyer)
    assert response.status_code == 422 and "not this unit" in response.json()["message"]


def test_an_order_not_delivered_yet_cannot_claim(setting: Any) -> None:
    world, env, client = setting
    unit = world.unit("sold", 3)
    terms = order_for(env, unit.canonical_uri, deliver=False)
    index(world)
    response = claim(client, world, unit.uri(), unit.canonical_uri, terms.order_id, env.buyer)
    assert response.status_code == 422 and "the order is Funded" in response.json()["message"]
