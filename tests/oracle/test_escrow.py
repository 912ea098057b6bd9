"""Escrow milestones reached through the real relayer by a 2-of-3 quorum of oracles: carriers
attest Shipped and Delivered, customs attests the clearance with its duty, each from the events
its own source data produced; a late third oracle finds the milestone reached and is content.
FX rates signed by two oracles fund an order priced in another currency."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import httpx
from eth_utils.crypto import keccak
from fastapi.testclient import TestClient

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.escrow.client import EscrowClient
from node.escrow.store import order_key
from node.escrow.terms import FX_MAX_VALIDITY, Attestation, FxQuote, OrderTerms, State, customs_authorities, schedule
from oracle.app import create_app
from oracle.runtime import OracleRuntime
from tests.oracle.conftest import OracleFactory, relayer_app
from tests.oracle.journey import Journey
from tests.oracle.servers import NodeProcess, ServedApp
from tests.oracle.test_end_to_end import post
from waymark.devnet.anvil import AnvilProcess
from waymark.devnet.consortium import devnet_account

DAY = 24 * 3600
SELLER, BUYER = devnet_account(1), devnet_account(10)
CUSTOMS_PAYEE = devnet_account(4).address  # the customs authority's account: every customs oracle names it


def wait_settled(runtime: OracleRuntime, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(runtime.queue.pending(k) for k in ("document", "event", "escrow")):
        assert time.monotonic() < deadline, f"still pending: {runtime.queue.counts()}"
        time.sleep(0.05)
    assert runtime.queue.rejected() == [], runtime.queue.rejected()


def wait_reached(escrow: EscrowClient, terms: OrderTerms, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while escrow.order(terms.order_id).milestones_reached < count:
        assert time.monotonic() < deadline, f"order at {escrow.order(terms.order_id)}, waiting for {count} milestones"
        time.sleep(0.1)


def test_milestones_reached_through_the_relayer_by_two_of_three_oracles(
    make_oracle: OracleFactory, node: NodeProcess, relayer: ServedApp, chain: ChainClient, deployment: Deployment, chain_now: int,
) -> None:
    j = Journey(chain_now + 5, tag=4)
    escrow = EscrowClient.from_deployment(chain, deployment)
    eur = escrow.token_info(deployment.address("DevStablecoin:wEUR"))
    terms = OrderTerms(
        seller=SELLER.address, buyer=BUYER.address, token=eur.address, amount=eur.units("10000"),
        ship_by=chain_now + 10 * DAY, deliver_by=chain_now + 40 * DAY, milestones=schedule(2000, 3000, 5000, quorum=2),
        shipment_ref=keccak(text=j.canonical(j.container)), max_duty_bps=1_000,
        customs_authorities=customs_authorities([escrow.organisation_of(devnet_account(i).address) for i in (4, 12, 13)]),
    )
    terms = escrow.complete(terms)
    escrow.create(terms, SELLER)
    escrow.fund(terms, BUYER)
    carrier, forwarder, courier = (make_oracle(m, relayer=relayer.url) for m in ("carrier", "forwarder", "courier"))
    customs, broker, port = (make_oracle(m, relayer=relayer.url, duty_payee=CUSTOMS_PAYEE) for m in ("customs", "broker", "port"))

    # Shipped: the carrier's and the forwarder's feeds both report it; two organisations suffice.
    for oracle in (carrier, forwarder):
        with TestClient(create_app(oracle)) as app:
            post(app, "carrier", j.booking())
            shipped = post(app, "carrier", j.shipped())
            assert len(shipped["escrowFacts"]) == 1
            wait_settled(oracle)
    wait_reached(escrow, terms, 1)
    shipped_step = httpx.get(f"{relayer.url}/orders/{terms.order_id:#066x}", timeout=5).json()["milestones"][0]
    assert shipped_step["reached"] and shipped_step["milestone"]["status"] == "reached"
    assert {s["signer"] for s in shipped_step["milestone"]["signatures"]} == {carrier.account.address, forwarder.account.address}

    # Customs cleared with a duty of EUR 736.00, paid to the customs authority out of escrow.
    for oracle in (customs, broker):
        with TestClient(create_app(oracle)) as app:
            post(app, "customs", j.declaration_record())
            cleared = post(app, "customs", j.decision())
            assert len(cleared["escrowFacts"]) == 1
            wait_settled(oracle)
    wait_reached(escrow, terms, 2)
    assert escrow.credit(eur.address, CUSTOMS_PAYEE) == eur.units("736.00")
    # The port desk's oracle reports the same clearance late: nothing left to do, and no error.
    with TestClient(create_app(port)) as app:
        post(app, "customs", j.declaration_record())
        post(app, "customs", j.decision())
        wait_settled(port)
    (late,) = [port.queue.info(key) for key in [k for k in _escrow_keys(port)]]
    assert late is not None and late.status == "delivered" and "skipped" in str(late.result)

    # The buyer disputes while the goods are on their way: the oracles' delivery is still attested.
    escrow.dispute(terms, keccak(text="the buyer's complaint"), BUYER)
    # Delivered: the courier and the forwarder.
    for oracle in (courier, forwarder):
        with TestClient(create_app(oracle)) as app:
            if oracle is courier:
                post(app, "carrier", j.booking())
            post(app, "carrier", j.delivered())
            wait_settled(oracle)
    wait_reached(escrow, terms, 3)
    assert escrow.order(terms.order_id).state is State.DISPUTED  # the money waits for the ruling or the timeout
    # The events behind the milestones are on the node, anchored.
    assert node.wait_anchored([shipped["eventIds"][0], cleared["eventIds"][1]])


def _escrow_keys(runtime: OracleRuntime) -> list[str]:
    with sqlite3.connect(runtime.settings.queue_path()) as conn:
        return [r[0] for r in conn.execute("SELECT key FROM jobs WHERE kind = 'escrow'")]


def test_fx_quotes_signed_by_two_oracles_for_one_order_fund_it_in_euro(
    make_oracle: OracleFactory, chain: ChainClient, deployment: Deployment, chain_now: int,
) -> None:
    escrow = EscrowClient.from_deployment(chain, deployment)
    usd = escrow.token_info(deployment.address("DevStablecoin:wUSD"))
    terms = escrow.complete(OrderTerms(
        seller=SELLER.address, buyer=BUYER.address, token=usd.address, amount=1000 * 10**18, price_currency=b"EUR",
        ship_by=chain_now + 10 * DAY, deliver_by=chain_now + 40 * DAY, milestones=schedule(2000, 3000, 5000, quorum=2),
        shipment_ref=keccak(text="fx-order"),
        customs_authorities=customs_authorities([escrow.organisation_of(devnet_account(i).address) for i in (4, 12)]),
    ))
    escrow.create(terms, SELLER)
    quotes = []
    issued = escrow.chain_time()
    for member in ("inspector", "carrier"):  # ORACLE organisations, neither the seller's
        oracle = make_oracle(member)
        with TestClient(create_app(oracle)) as app:
            post(app, "fx", {"base": "EUR", "quote": "USD", "rate": "1.0842", "observedAt": f"{_iso(chain_now)}"})
            unsigned = app.get("/fx-rates/EUR/USD")
            assert unsigned.status_code == 200 and "signature" not in unsigned.json(), unsigned.text
            # The buyer asks every oracle for the same issue time, so that all sign one message.
            response = app.get("/fx-rates/EUR/USD", params={"orderId": order_key(terms.order_id), "issuedAt": issued})
            assert response.status_code == 200, response.text
            quotes.append(response.json())
    assert {q["rate"] for q in quotes} == {str(10842 * 10**14)}
    assert {q["orderId"] for q in quotes} == {order_key(terms.order_id)}
    issued, expires = max(q["issuedAt"] for q in quotes), min(q["expiresAt"] for q in quotes)
    assert 0 < expires - issued <= FX_MAX_VALIDITY
    signatures = escrow.sorted_bundle([Attestation(q["signer"], q["deadline"], bytes.fromhex(q["signature"][2:])) for q in quotes])
    assert {(q["issuedAt"], q["expiresAt"]) for q in quotes} == {(issued, expires)}
    fx = FxQuote(b"EUR", b"USD", int(quotes[0]["rate"]), quotes[0]["issuedAt"], quotes[0]["expiresAt"], tuple(signatures))
    escrow.fund(terms, BUYER, fx=fx)
    assert escrow.order(terms.order_id).deposited == usd.units("1084.20")
    assert escrow.locked_rate(terms.order_id) == (int(Decimal("1.0842") * 10**18), quotes[0]["issuedAt"])


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat()


def test_escrow_facts_wait_for_a_relayer_that_is_down(
    make_oracle: OracleFactory, node: NodeProcess, anvil: AnvilProcess, chain: ChainClient, deployment: Deployment,
    chain_now: int, tmp_path: Path,
) -> None:
    j = Journey(chain_now + 5, tag=5)
    escrow = EscrowClient.from_deployment(chain, deployment)
    usd = escrow.token_info(deployment.address("DevStablecoin:wUSD"))
    terms = OrderTerms(
        seller=SELLER.address, buyer=BUYER.address, token=usd.address, amount=usd.units("500"),
        ship_by=chain_now + 10 * DAY, deliver_by=chain_now + 40 * DAY, milestones=schedule(2000, 3000, 5000, quorum=2),
        shipment_ref=keccak(text=j.canonical(j.container)),
        customs_authorities=customs_authorities([escrow.organisation_of(devnet_account(i).address) for i in (4, 12)]),
    )
    terms = escrow.complete(terms)
    escrow.create(terms, SELLER)
    escrow.fund(terms, BUYER)
    served = ServedApp(relayer_app(anvil, deployment, tmp_path))  # its port is known, nothing listens yet
    carrier, forwarder = (make_oracle(m, relayer=served.url) for m in ("carrier", "forwarder"))
    for oracle in (carrier, forwarder):
        with TestClient(create_app(oracle)) as app:
            post(app, "carrier", j.booking())
            fact = post(app, "carrier", j.shipped())["escrowFacts"][0]
            deadline = time.monotonic() + 20
            while (oracle.queue.info(fact).attempts or 0) < 2:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, oracle.queue.info(fact)
                time.sleep(0.05)
            info = oracle.queue.info(fact)
            assert info is not None and info.status == "pending" and "unreachable" in (info.last_error or "")
    assert escrow.order(terms.order_id).milestones_reached == 0
    with served:
        carrier.start()
        forwarder.start()
        wait_reached(escrow, terms, 1)
        wait_settled(carrier)
        wait_settled(forwarder)
