"""TradeEscrow administration and order validation: constructor checks, the token allowlist,
pausing new orders (never funds), and each reason an offer or a funding is refused."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from waymark.devnet.anvil import AnvilControl
from tests.contracts.escrow_world import (
    DISPUTE_TIMEOUT,
    FX_QUORUM,
    OPERATOR,
    ZERO,
    EscrowWorld,
    Kind,
    State,
    Step,
    deploy_world,
    empty_fx,
    schedule,
)
from tests.helpers import reverts


@pytest.fixture
def w(chain: ChainClient, accounts: list[LocalAccount]) -> EscrowWorld:
    return deploy_world(chain, accounts)


def operator_call(w: EscrowWorld, fn: str, *args: Any, sender: LocalAccount | None = None) -> Any:
    return w.send(fn, *args, sender=sender or w.operator)


# ---- construction and views -----------------------------------------------------------------------


def test_constructor_records_registry_timeout_and_fx_quorum(w: EscrowWorld) -> None:
    assert w.view("registry") == w.registry.address
    assert w.view("disputeTimeout") == DISPUTE_TIMEOUT
    assert w.view("fxQuorum") == FX_QUORUM


def test_constructor_reverts_without_registry(w: EscrowWorld) -> None:
    with reverts("EscrowInvalidAccount", account=ZERO):
        w.chain.deploy("TradeEscrow", ZERO, DISPUTE_TIMEOUT, FX_QUORUM, sender=w.deployer)


@pytest.mark.parametrize("timeout,quorum", [(0, 2), (DISPUTE_TIMEOUT, 0)])
def test_constructor_reverts_with_zero_timeout_or_quorum(w: EscrowWorld, timeout: int, quorum: int) -> None:
    with reverts("EscrowInvalidConfiguration", disputeTimeout=timeout, fxQuorum=quorum):
        w.chain.deploy("TradeEscrow", w.registry.address, timeout, quorum, sender=w.deployer)


# ---- allowlist -----------------------------------------------------------------------------------------


def test_allow_token_records_currency_and_decimals(w: EscrowWorld) -> None:
    token = w.chain.deploy("DevStablecoin", "Dev CHF", "wCHF", 2, w.deployer.address, sender=w.deployer)
    receipt = operator_call(w, "allowToken", token.address, b"CHF")
    (event,) = w.events(receipt, "TokenAllowed")
    assert (event.args.token, event.args.currency, event.args.decimals) == (token.address, b"CHF", 2)
    assert list(w.view("tokenInfo", token.address)) == [True, b"CHF", 2]


def test_allow_token_reverts_for_non_operator(w: EscrowWorld) -> None:
    with reverts("EscrowMissingRole", account=w.seller.address, role=OPERATOR):
        operator_call(w, "allowToken", w.usd.address, b"USD", sender=w.seller)


def test_allow_token_reverts_without_currency(w: EscrowWorld) -> None:
    with reverts("EscrowUnsupportedToken", token=w.usd.address, decimals=6, currency=b"\0\0\0"):
        operator_call(w, "allowToken", w.usd.address, b"\0\0\0")


def test_allow_token_reverts_above_18_decimals(w: EscrowWorld) -> None:
    token = w.chain.deploy("DevStablecoin", "Too Fine", "FINE", 24, w.deployer.address, sender=w.deployer)
    with reverts("EscrowUnsupportedToken", decimals=24):
        operator_call(w, "allowToken", token.address, b"XYZ")


def test_disallowed_token_stops_new_orders_but_not_funded_ones(w: EscrowWorld) -> None:
    funded = w.open(w.terms(salt=1))
    offered = w.terms(salt=2)
    w.create(offered)
    receipt = operator_call(w, "disallowToken", w.usd.address)
    assert w.events(receipt, "TokenDisallowed")[0].args.token == w.usd.address
    with reverts("EscrowTokenNotAllowed", token=w.usd.address):
        w.create(w.terms(salt=3))
    with reverts("EscrowTokenNotAllowed", token=w.usd.address):
        w.fund(offered)
    w.deliver(funded)
    w.send("confirmDelivery", funded.as_tuple(), sender=w.buyer)
    w.send("withdraw", w.usd.address, w.seller.address, sender=w.seller)
    assert w.balance(w.usd, w.seller.address) > 0


def test_disallow_reverts_for_a_token_not_allowed(w: EscrowWorld) -> None:
    with reverts("EscrowTokenNotAllowed", token=w.registry.address):
        operator_call(w, "disallowToken", w.registry.address)


def test_disallow_reverts_for_non_operator(w: EscrowWorld) -> None:
    with reverts("EscrowMissingRole", account=w.buyer.address, role=OPERATOR):
        operator_call(w, "disallowToken", w.usd.address, sender=w.buyer)


# ---- pause -------------------------------------------------------------------------------------------------


def test_pause_stops_new_orders_and_funding_but_never_funds_in_flight(
    w: EscrowWorld, devnet: AnvilControl
) -> None:
    running = w.open(w.terms(salt=1))
    overdue = w.open(w.terms(salt=2))
    offered = w.terms(salt=3)
    w.create(offered)
    operator_call(w, "pause")
    assert w.view("paused") is True
    with reverts("EnforcedPause"):
        w.create(w.terms(salt=4))
    with reverts("EnforcedPause"):
        w.fund(offered)
    with reverts("EnforcedPause"):
        w.send("fundWithPermit", offered.as_tuple(), empty_fx(), (0, 0, 0, b"\0" * 32, b"\0" * 32), sender=w.buyer)
    # Everything that concerns money already held keeps working.
    w.deliver(running)
    w.send("confirmDelivery", running.as_tuple(), sender=w.buyer)
    w.send("withdraw", w.usd.address, w.seller.address, sender=w.seller)
    w.send("openDispute", overdue.as_tuple(), b"\x01" * 32, sender=w.buyer)
    w.send("resolveDispute", overdue.as_tuple(), 10_000, b"\x02" * 32, sender=w.arbitrator)
    w.send("withdraw", w.usd.address, w.buyer.address, sender=w.buyer)
    w.send("cancelOrder", offered.as_tuple(), sender=w.seller)
    operator_call(w, "unpause")
    w.create(w.terms(salt=4))


def test_pause_and_unpause_revert_for_non_operator(w: EscrowWorld) -> None:
    with reverts("EscrowMissingRole", account=w.seller.address, role=OPERATOR):
        operator_call(w, "pause", sender=w.seller)
    operator_call(w, "pause")
    with reverts("EscrowMissingRole", account=w.seller.address, role=OPERATOR):
        operator_call(w, "unpause", sender=w.seller)


def test_pause_twice_and_unpause_when_running_revert(w: EscrowWorld) -> None:
    with reverts("ExpectedPause"):
        operator_call(w, "unpause")
    operator_call(w, "pause")
    with reverts("EnforcedPause"):
        operator_call(w, "pause")


# ---- creating an order ----------------------------------------------------------------------------------


def test_create_reverts_when_caller_is_not_seller(w: EscrowWorld) -> None:
    t = w.terms()
    with reverts("EscrowNotSeller", orderId=t.order_id, caller=w.buyer.address):
        w.create(t, sender=w.buyer)


def test_create_reverts_when_order_exists(w: EscrowWorld) -> None:
    t = w.terms()
    w.create(t)
    with reverts("EscrowOrderExists", orderId=t.order_id):
        w.create(t)


@pytest.mark.parametrize("field", ["zero", "seller"])
def test_create_reverts_with_invalid_buyer(w: EscrowWorld, field: str) -> None:
    buyer = ZERO if field == "zero" else w.seller.address
    with reverts("EscrowInvalidAccount", account=buyer):
        w.create(w.terms(buyer=buyer))


@pytest.mark.parametrize("change", [{"platform": ZERO}, {"carrier": ZERO}], ids=["platform", "carrier"])
def test_create_reverts_with_a_fee_and_no_fee_account(w: EscrowWorld, change: dict[str, str]) -> None:
    with reverts("EscrowInvalidAccount", account=ZERO):
        w.create(w.terms(**change))


def test_create_reverts_for_a_token_not_allowed(w: EscrowWorld) -> None:
    token = w.chain.deploy("DevStablecoin", "Other", "OTH", 6, w.deployer.address, sender=w.deployer)
    with reverts("EscrowTokenNotAllowed", token=token.address):
        w.create(w.terms(token=token.address))


def test_create_reverts_with_zero_amount(w: EscrowWorld) -> None:
    with reverts("EscrowInvalidAmount", amount=0):
        w.create(w.terms(amount=0))


def test_create_reverts_when_fees_exceed_everything(w: EscrowWorld) -> None:
    with reverts("EscrowInvalidFees", platformFeeBps=6000, carrierFeeBps=5000):
        w.create(w.terms(platform_fee_bps=6000, carrier_fee_bps=5000))


def test_create_reverts_with_ship_by_in_the_past(w: EscrowWorld) -> None:
    ship_by = w.now() - 1
    with reverts("EscrowInvalidDeadlines", shipBy=ship_by):
        w.create(w.terms(ship_by=ship_by))


def test_create_reverts_with_deliver_by_not_after_ship_by(w: EscrowWorld) -> None:
    t = w.terms()
    with reverts("EscrowInvalidDeadlines", shipBy=t.ship_by, deliverBy=t.ship_by):
        w.create(t.but(deliver_by=t.ship_by))


@pytest.mark.parametrize("count", [1, 6])
def test_create_reverts_with_too_few_or_too_many_milestones(w: EscrowWorld, count: int) -> None:
    steps = (Step(Kind.SHIPPED, 10_000, 1),) if count == 1 else schedule(*([2000] * 5 + [0]))
    with reverts("EscrowInvalidMilestoneCount", count=count):
        w.create(w.terms(milestones=steps))


@pytest.mark.parametrize(
    "kinds,index",
    [
        ((Kind.DELIVERED, Kind.DELIVERED), 0),
        ((Kind.SHIPPED, Kind.SHIPPED), 1),
        ((Kind.SHIPPED, Kind.SHIPPED, Kind.DELIVERED), 1),
        ((Kind.SHIPPED, Kind.DELIVERED, Kind.DELIVERED), 1),
        ((Kind.SHIPPED, Kind.CUSTOMS_CLEARED, Kind.CUSTOMS_CLEARED), 2),
    ],
)
def test_create_reverts_with_milestones_out_of_shape(w: EscrowWorld, kinds: tuple[Kind, ...], index: int) -> None:
    shares = [0] * (len(kinds) - 1) + [10_000]
    steps = tuple(Step(k, s, 1) for k, s in zip(kinds, shares))
    with reverts("EscrowInvalidMilestoneKind", index=index, kind=kinds[index]):
        w.create(w.terms(milestones=steps))


def test_create_reverts_with_a_zero_quorum(w: EscrowWorld) -> None:
    steps = (Step(Kind.SHIPPED, 0, 1), Step(Kind.CUSTOMS_CLEARED, 3000, 0), Step(Kind.DELIVERED, 7000, 1))
    with reverts("EscrowInvalidQuorum", index=1):
        w.create(w.terms(milestones=steps))


def test_create_reverts_when_shares_do_not_sum_to_everything(w: EscrowWorld) -> None:
    with reverts("EscrowInvalidShares", totalBps=9999):
        w.create(w.terms(milestones=schedule(0, 3000, 6999)))


def non_canonical(calldata: bytes) -> bytes:
    """The same terms with the milestones array moved one word further (a valid, odd encoding)."""
    selector, body = calldata[:4], bytearray(calldata[4:])
    first_arg = int.from_bytes(body[:32], "big")
    offset_word = first_arg + 25 * 32
    assert int.from_bytes(body[offset_word : offset_word + 32], "big") == 0x340
    body[offset_word : offset_word + 32] = (0x360).to_bytes(32, "big")
    array_at = first_arg + 0x340
    return selector + bytes(body[:array_at]) + b"\0" * 32 + bytes(body[array_at:])


def raw_send(w: EscrowWorld, data: bytes, sender: LocalAccount) -> Any:
    tx = {"from": sender.address, "to": w.escrow.address, "data": data, "gas": 2_000_000, "chainId": w.chain.chain_id}
    return w.chain.send(tx, sender)  # type: ignore[arg-type]


def test_create_reverts_when_terms_are_encoded_non_canonically(w: EscrowWorld) -> None:
    t = w.terms()
    data = bytes.fromhex(w.escrow.functions.createOrder(t.as_tuple())._encode_transaction_data()[2:])
    with reverts("EscrowNonCanonicalTerms", milestonesOffset=0x360):
        raw_send(w, non_canonical(data), w.seller)
    assert w.state(t) == State.NONE


def test_non_canonical_terms_cannot_reach_an_order_whose_tail_they_change(w: EscrowWorld) -> None:
    """With the array moved one word on, the last word of the milestones fell outside the bytes
    hashed: the same id, a different last milestone. Such calls are refused, not mapped."""
    t = w.terms()
    w.create(t)
    data = bytearray(non_canonical(bytes.fromhex(w.escrow.functions.cancelOrder(t.as_tuple())._encode_transaction_data()[2:])))
    data[-1] ^= 0x01  # the last milestone's quorum, outside the canonical hash window
    with reverts("EscrowNonCanonicalTerms", milestonesOffset=0x360):
        raw_send(w, bytes(data), w.seller)
    assert w.state(t) == State.CREATED


@pytest.mark.parametrize(("index", "bits"), [(15, 1 << 32), (16, 1 << 255), (17, 1 << 64)], ids=["reviewWindow", "disputeWindow", "salt"])
def test_terms_words_with_bits_beyond_their_type_are_refused_when_the_order_is_made(w: EscrowWorld, index: int, bits: int) -> None:
    """Words no check at creation reads: taken, they would give a new order id, and `release` and
    `openDispute`, whose reads validate them, would revert only once the goods were delivered."""
    t = w.terms()
    for fn, sender in ((w.escrow.functions.createOrder(t.as_tuple()), w.seller),
                       (w.escrow.functions.placeOrder(t.as_tuple(), empty_fx()), w.buyer)):
        data = bytearray(bytes.fromhex(fn._encode_transaction_data()[2:]))
        at = 4 + int.from_bytes(data[4:36], "big") + index * 32
        word = int.from_bytes(data[at : at + 32], "big") | bits
        data[at : at + 32] = word.to_bytes(32, "big")
        with reverts("EscrowNonCanonicalWord", index=index, word=word):
            raw_send(w, bytes(data), sender)
    assert w.state(t) == State.NONE


# ---- funding ------------------------------------------------------------------------------------------------


def test_fund_reverts_when_caller_is_not_buyer(w: EscrowWorld) -> None:
    t = w.terms()
    w.create(t)
    with reverts("EscrowNotBuyer", orderId=t.order_id, caller=w.seller.address):
        w.send("fund", t.as_tuple(), empty_fx(), sender=w.seller)


def test_fund_reverts_after_ship_by(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.terms()
    w.create(t)
    devnet.increase_time(t.ship_by - w.now() + 1)
    with reverts("EscrowDeadlinePassed", orderId=t.order_id, deadline=t.ship_by):
        w.fund(t)


def test_fund_reverts_when_already_funded(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowInvalidState", orderId=t.order_id, current=State.FUNDED, expected=State.CREATED):
        w.fund(t)


# ---- coverage of the specification ------------------------------------------------------------------------


def test_every_custom_error_of_the_escrow_is_asserted_by_a_test() -> None:
    """Each rejection in ITradeEscrow maps to one error and at least one test that expects it."""
    import json
    import re
    from pathlib import Path

    from node.chain.build import load_artifact

    here = Path(__file__).parent
    source = "".join(p.read_text() for p in here.glob("test_trade_escrow*.py"))
    names = {item["name"] for item in load_artifact("TradeEscrow").abi if item["type"] == "error"}
    # Raised by OpenZeppelin's EIP712 for over-long names (ours are constants) or asserted
    # from the reentrant token's record of the refused call rather than by `reverts`.
    unreachable = {"InvalidShortString", "StringTooLong", "ReentrancyGuardReentrantCall"}
    missing = sorted(n for n in names - unreachable if not re.search(rf'reverts\(\s*"{n}"', source))
    assert not missing, json.dumps(missing)
    assert "ReentrancyGuardReentrantCall" in source
