"""TradeEscrow's buyer-placed orders (placeOrder, placeOrderWithPermit): the buyer creates and
funds an order at the seller's terms in one transaction; the seller accepts by shipping and may
cancel, refunding the buyer, until then. The term checks, funding rules, adversarial tokens and
the state machine after placement are the same as for an order the seller offered."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from web3.contract import Contract

from node.chain.client import ChainClient
from waymark.devnet.anvil import AnvilControl
from tests.contracts.escrow_world import (
    BPS,
    DAY,
    DISPUTE_TIMEOUT,
    UNIT6,
    UNIT18,
    ZERO,
    EscrowWorld,
    Kind,
    Reason,
    State,
    Step,
    Terms,
    deploy_world,
    empty_fx,
    link_account,
    schedule,
)
from tests.contracts.test_trade_escrow_tokens import permit_for
from tests.helpers import reverts

NO_PERMIT = (0, 0, 0, b"\0" * 32, b"\0" * 32)
REENTRANCY_SELECTOR = function_signature_to_4byte_selector("ReentrancyGuardReentrantCall()")


@pytest.fixture
def w(chain: ChainClient, accounts: list[LocalAccount]) -> EscrowWorld:
    return deploy_world(chain, accounts)


def listed(w: EscrowWorld, name: str, *args: Any) -> Contract:
    token = w.chain.deploy(name, *args, sender=w.deployer)
    w.chain.transact(w.escrow.functions.allowToken(token.address, b"USD"), sender=w.operator)
    return token


def place_in(w: EscrowWorld, token: Contract, terms: Terms) -> Any:
    w.chain.transact(token.functions.mint(w.buyer.address, terms.amount), sender=w.deployer)
    w.chain.transact(token.functions.approve(w.escrow.address, terms.amount), sender=w.buyer)
    return w.send("placeOrder", terms.as_tuple(), empty_fx(), sender=w.buyer)


def fee_split(amount: int, terms: Terms) -> tuple[int, int, int]:
    platform = amount * terms.platform_fee_bps // BPS
    carrier = amount * terms.carrier_fee_bps // BPS
    return amount - platform - carrier, platform, carrier


# ---- placing ------------------------------------------------------------------------------------------


def test_buyer_places_and_funds_an_order_in_one_transaction(w: EscrowWorld) -> None:
    t = w.terms()
    w.mint(w.usd, w.buyer.address, t.amount)
    w.approve(w.usd, w.buyer, t.amount)
    returned = w.escrow.functions.placeOrder(t.as_tuple(), empty_fx()).call({"from": w.buyer.address})
    assert returned == t.order_id == w.view("orderIdOf", t.as_tuple())

    receipt = w.send("placeOrder", t.as_tuple(), empty_fx(), sender=w.buyer)
    (created,) = w.events(receipt, "OrderCreated")
    assert (created.args.orderId, created.args.seller, created.args.buyer) == (t.order_id, t.seller, t.buyer)
    published = created.args.terms
    assert (published["seller"], published["buyer"], published["token"], published["amount"]) == (
        t.seller, t.buyer, t.token, t.amount
    )
    (funded,) = w.events(receipt, "OrderFunded")
    assert (funded.args.orderId, funded.args.buyer, funded.args.seller) == (t.order_id, t.buyer, t.seller)
    assert (funded.args.due, funded.args.deposited) == (t.amount, t.amount)
    # The same events, in the same order, as createOrder followed by fund.
    topics = ["0x" + bytes(log["topics"][0]).hex() for log in receipt["logs"] if log["address"] == w.escrow.address]
    assert topics == [w.escrow.events.OrderCreated().topic, w.escrow.events.OrderFunded().topic]

    assert w.order(t) == (State.FUNDED, 0, 0, t.amount, t.amount)
    assert w.balance(w.usd, w.escrow.address) == t.amount
    assert w.balance(w.usd, w.buyer.address) == 0


def test_placed_order_runs_the_whole_lifecycle_and_conserves_the_deposit(w: EscrowWorld) -> None:
    t = w.placed(w.terms())
    w.attest(t, 0)  # the seller's acceptance: the goods shipped
    duty = 40 * UNIT6
    w.attest(t, 1, duty=duty, payee=w.customs[0].address)
    w.attest(t, 2)
    receipt = w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    assert w.events(receipt, "OrderReleased")[0].args.confirmedByBuyer is True
    assert w.state(t) == State.RELEASED
    parties = {t.seller, t.buyer, t.platform, t.carrier, w.customs[0].address}
    owed = {p: w.credit(w.usd, p) for p in parties}
    assert owed[w.customs[0].address] == duty and owed[t.buyer] == 0
    assert sum(owed.values()) == t.amount
    w.send("withdraw", w.usd.address, w.seller.address, sender=w.seller)
    assert w.balance(w.usd, w.seller.address) == owed[t.seller]


def test_seller_cancels_a_placed_order_before_shipping_and_the_buyer_is_refunded(w: EscrowWorld) -> None:
    t = w.placed(w.terms())
    receipt = w.send("cancelOrder", t.as_tuple(), sender=w.seller)
    (event,) = w.events(receipt, "OrderCancelled")
    assert (event.args.seller, event.args.buyer, event.args.refunded) == (t.seller, t.buyer, t.amount)
    assert w.order(t)[0] == State.CANCELLED and w.order(t)[4] == 0
    assert w.credit(w.usd, w.buyer.address) == t.amount
    w.send("withdraw", w.usd.address, w.buyer.address, sender=w.buyer)
    assert w.balance(w.usd, w.buyer.address) == t.amount
    assert w.balance(w.usd, w.escrow.address) == 0


def test_seller_cannot_cancel_a_placed_order_once_shipped(w: EscrowWorld) -> None:
    t = w.placed(w.terms())
    w.attest(t, 0)
    with reverts("EscrowAlreadyShipped", orderId=t.order_id):
        w.send("cancelOrder", t.as_tuple(), sender=w.seller)


def test_only_the_seller_may_cancel_a_placed_order(w: EscrowWorld) -> None:
    t = w.placed(w.terms())
    with reverts("EscrowNotSeller", orderId=t.order_id, caller=w.buyer.address):
        w.send("cancelOrder", t.as_tuple(), sender=w.buyer)


def test_placed_order_the_seller_never_ships_is_refunded_after_ship_by(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.placed(w.terms())
    with reverts("EscrowDeadlineNotPassed", orderId=t.order_id, deadline=t.ship_by):
        w.send("refund", t.as_tuple(), sender=w.outsider)
    devnet.increase_time(t.ship_by - w.now() + 1)
    receipt = w.send("refund", t.as_tuple(), sender=w.outsider)
    (event,) = w.events(receipt, "OrderRefunded")
    assert (event.args.reason, event.args.amount) == (Reason.SHIP_BY_PASSED, t.amount)
    assert w.credit(w.usd, w.buyer.address) == t.amount


def test_dispute_on_an_unshipped_placed_order_times_out_to_a_refund(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.placed(w.terms())
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    with reverts("EscrowInvalidState", current=State.DISPUTED, expected=State.FUNDED):
        w.send("cancelOrder", t.as_tuple(), sender=w.seller)
    devnet.increase_time(DISPUTE_TIMEOUT + 1)
    receipt = w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider)
    assert w.events(receipt, "DisputeResolved")[0].args.toBuyer == t.amount
    assert w.state(t) == State.RESOLVED


def test_placed_order_cannot_be_funded_again_or_offered_again(w: EscrowWorld) -> None:
    t = w.placed(w.terms())
    with reverts("EscrowInvalidState", orderId=t.order_id, current=State.FUNDED, expected=State.CREATED):
        w.fund(t)
    with reverts("EscrowOrderExists", orderId=t.order_id):
        w.create(t)


def test_place_reverts_when_the_order_exists(w: EscrowWorld) -> None:
    offered = w.terms(salt=1)
    w.create(offered)  # an offer the buyer should fund, not place again
    with reverts("EscrowOrderExists", orderId=offered.order_id):
        w.place(offered)
    t = w.placed(w.terms(salt=2))
    with reverts("EscrowOrderExists", orderId=t.order_id):
        w.place(t)


def test_offer_and_placed_order_with_different_salts_coexist(w: EscrowWorld) -> None:
    offered = w.open(w.terms(salt=1))
    placed = w.placed(w.terms(salt=2))
    assert offered.order_id != placed.order_id
    assert w.state(offered) == w.state(placed) == State.FUNDED
    assert w.balance(w.usd, w.escrow.address) == offered.amount + placed.amount


# ---- who may place, and the term checks ------------------------------------------------------------------


def test_place_reverts_when_caller_is_not_buyer(w: EscrowWorld) -> None:
    t = w.terms()
    for caller in (w.seller, w.outsider):
        with reverts("EscrowNotBuyer", orderId=t.order_id, caller=caller.address):
            w.send("placeOrder", t.as_tuple(), empty_fx(), sender=caller)


def test_place_reverts_with_a_zero_seller(w: EscrowWorld) -> None:
    with reverts("EscrowInvalidAccount", account=ZERO):
        w.place(w.terms(seller=ZERO))


def test_place_reverts_when_buyer_is_the_seller(w: EscrowWorld) -> None:
    with reverts("EscrowInvalidAccount", account=w.buyer.address):
        w.place(w.terms(seller=w.buyer.address))


@pytest.mark.parametrize(
    "change,error,args",
    [
        ({"amount": 0}, "EscrowInvalidAmount", {"amount": 0}),
        ({"platform_fee_bps": 9000, "carrier_fee_bps": 1001}, "EscrowInvalidFees", {"platformFeeBps": 9000}),
        ({"carrier": ZERO}, "EscrowInvalidAccount", {"account": ZERO}),
        ({"price_currency": b"USD"}, "EscrowInvalidPriceCurrency", {"currency": b"USD"}),
        ({"milestones": schedule(0, 3000, 6000)}, "EscrowInvalidShares", {"totalBps": 9000}),
        ({"milestones": (Step(Kind.SHIPPED, 10_000, 1),)}, "EscrowInvalidMilestoneCount", {"count": 1}),
        (
            {"milestones": (Step(Kind.SHIPPED, 0, 1), Step(Kind.SHIPPED, 10_000, 1))},
            "EscrowInvalidMilestoneKind",
            {"index": 1},
        ),
        ({"milestones": (Step(Kind.SHIPPED, 0, 1), Step(Kind.DELIVERED, 10_000, 0))}, "EscrowInvalidQuorum", {"index": 1}),
    ],
    ids=["amount", "fees", "fee-account", "currency", "shares", "count", "kind", "quorum"],
)
def test_place_applies_the_checks_of_an_offer(
    w: EscrowWorld, change: dict[str, Any], error: str, args: dict[str, Any]
) -> None:
    with reverts(error, **args):
        w.place(w.terms(**change))


def test_place_reverts_with_ship_by_already_passed(w: EscrowWorld) -> None:
    ship_by = w.now() - 1
    with reverts("EscrowInvalidDeadlines", shipBy=ship_by):
        w.place(w.terms(ship_by=ship_by))


def test_place_reverts_for_a_token_not_allowed(w: EscrowWorld) -> None:
    w.chain.transact(w.escrow.functions.disallowToken(w.usd.address), sender=w.operator)
    with reverts("EscrowTokenNotAllowed", token=w.usd.address):
        w.place(w.terms())


def test_pause_stops_placing_orders_but_not_placed_ones(w: EscrowWorld) -> None:
    running = w.placed(w.terms(salt=1))
    t = w.terms(salt=2)
    w.mint(w.usd, w.buyer.address, t.amount)
    w.approve(w.usd, w.buyer, t.amount)
    w.chain.transact(w.escrow.functions.pause(), sender=w.operator)
    with reverts("EnforcedPause"):
        w.send("placeOrder", t.as_tuple(), empty_fx(), sender=w.buyer)
    with reverts("EnforcedPause"):
        w.send("placeOrderWithPermit", t.as_tuple(), empty_fx(), NO_PERMIT, sender=w.buyer)
    w.send("cancelOrder", running.as_tuple(), sender=w.seller)
    w.send("withdraw", w.usd.address, w.buyer.address, sender=w.buyer)
    assert w.state(running) == State.CANCELLED


# ---- permit ---------------------------------------------------------------------------------------------------


def test_place_with_permit_needs_no_prior_approval(w: EscrowWorld) -> None:
    t = w.terms()
    w.mint(w.usd, w.buyer.address, t.amount)
    permit = permit_for(w, w.usd, w.buyer, t.amount, w.now() + DAY)
    receipt = w.send("placeOrderWithPermit", t.as_tuple(), empty_fx(), permit, sender=w.buyer)
    assert w.events(receipt, "OrderFunded")[0].args.deposited == t.amount
    assert w.order(t)[0] == State.FUNDED


def test_front_run_permit_does_not_block_placing(w: EscrowWorld) -> None:
    t = w.terms()
    w.mint(w.usd, w.buyer.address, t.amount)
    value, deadline, v, r, s = permit = permit_for(w, w.usd, w.buyer, t.amount, w.now() + DAY)
    w.chain.transact(
        w.usd.functions.permit(w.buyer.address, w.escrow.address, value, deadline, v, r, s), sender=w.outsider
    )
    w.send("placeOrderWithPermit", t.as_tuple(), empty_fx(), permit, sender=w.buyer)
    assert w.order(t)[0] == State.FUNDED


def test_place_with_a_failed_permit_and_no_allowance_reverts_in_the_token(w: EscrowWorld) -> None:
    t = w.terms()
    w.mint(w.usd, w.buyer.address, t.amount)
    permit = permit_for(w, w.usd, w.buyer, t.amount, w.now() - 1)
    with reverts("ERC20InsufficientAllowance", spender=w.escrow.address, allowance=0, needed=t.amount):
        w.send("placeOrderWithPermit", t.as_tuple(), empty_fx(), permit, sender=w.buyer)
    assert w.state(t) == State.NONE


def test_place_with_permit_reverts_when_caller_is_not_buyer(w: EscrowWorld) -> None:
    t = w.terms()
    with reverts("EscrowNotBuyer", orderId=t.order_id, caller=w.seller.address):
        w.send("placeOrderWithPermit", t.as_tuple(), empty_fx(), NO_PERMIT, sender=w.seller)


# ---- FX and adversarial tokens ---------------------------------------------------------------------------------


def test_placed_order_priced_in_eur_locks_the_attested_rate(w: EscrowWorld) -> None:
    t = w.terms(amount=500 * UNIT18, price_currency=b"EUR")
    rate = 1_100_000_000_000_000_000
    fx = w.fx_quote(t, b"EUR", b"USD", rate)
    receipt = w.place(t, fx)
    (locked,) = w.events(receipt, "RateLocked")
    assert (locked.args.orderId, locked.args.rate, locked.args.timestamp) == (t.order_id, rate, fx[3])
    (funded,) = w.events(receipt, "OrderFunded")
    assert funded.args.due == funded.args.deposited == 550 * UNIT6
    assert list(w.view("lockedRate", t.order_id)) == [rate, fx[3]]


def test_placed_fx_order_with_a_quote_for_another_pair_reverts(w: EscrowWorld) -> None:
    t = w.terms(amount=500 * UNIT18, price_currency=b"EUR")
    with reverts("EscrowRateMismatch", base=b"GBP", quote=b"USD"):
        w.place(t, w.fx_quote(t, b"GBP", b"USD", 10**18))
    assert w.state(t) == State.NONE


def test_placed_fx_quote_signed_by_the_buyers_organisation_is_a_conflict(w: EscrowWorld) -> None:
    oracle = w.oracles[0]
    w.give_eth(oracle.address)
    link_account(w.chain, w.registry, w.buyer, oracle, w.deployer)
    t = w.terms(amount=500 * UNIT18, price_currency=b"EUR")
    with reverts("EscrowConflictOfInterest", orderId=t.order_id, account=oracle.address):
        w.place(t, w.fx_quote(t, b"EUR", b"USD", 10**18))


def test_fee_on_transfer_token_placed_order_holds_what_arrived(w: EscrowWorld) -> None:
    token = listed(w, "MockFeeOnTransferToken", 200)  # 2% burnt per transfer
    t = w.terms(token=token.address)
    receipt = place_in(w, token, t)
    (funded,) = w.events(receipt, "OrderFunded")
    arrived = t.amount * 98 // 100
    assert (funded.args.due, funded.args.deposited) == (t.amount, arrived)
    w.deliver(t)
    w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    assert sum(w.credit(token, p) for p in (t.seller, t.platform, t.carrier)) == arrived
    assert fee_split(arrived, t)[0] == w.credit(token, t.seller)


def test_placing_with_a_token_that_delivers_nothing_reverts(w: EscrowWorld) -> None:
    token = listed(w, "MockFeeOnTransferToken", 10_000)
    t = w.terms(token=token.address)
    with reverts("EscrowNothingReceived", orderId=t.order_id):
        place_in(w, token, t)
    assert w.state(t) == State.NONE


def test_placing_with_a_token_returning_false_reverts_and_leaves_no_order(w: EscrowWorld) -> None:
    token = listed(w, "MockReturnsFalseToken")
    w.chain.transact(token.functions.setFailing(True), sender=w.deployer)
    t = w.terms(token=token.address)
    with reverts("SafeERC20FailedOperation", token=token.address):
        place_in(w, token, t)
    assert w.state(t) == State.NONE


def test_reentrant_token_cannot_reenter_while_an_order_is_placed(w: EscrowWorld) -> None:
    token = listed(w, "MockReentrantToken")
    t = w.terms(token=token.address)
    other = w.terms(token=token.address, salt=7)
    reenter = w.escrow.functions.placeOrder(other.as_tuple(), empty_fx())._encode_transaction_data()
    w.chain.transact(token.functions.arm(w.escrow.address, reenter), sender=w.deployer)
    place_in(w, token, t)
    assert w.chain.call(token.functions.callbacks()) == 1
    assert w.chain.call(token.functions.lastCallSucceeded()) is False
    assert bytes(w.chain.call(token.functions.lastCallResult()))[:4] == REENTRANCY_SELECTOR
    assert w.order(t)[0] == State.FUNDED and w.order(t)[3] == t.amount
    assert w.state(other) == State.NONE
