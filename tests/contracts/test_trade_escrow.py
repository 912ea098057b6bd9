"""TradeEscrow on a real Anvil: the life of an order, every refund path, disputes and their
timeout rule, release after the review window, and exact money accounting."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from waymark.devnet.anvil import AnvilControl
from tests.contracts.escrow_world import (
    BPS,
    DAY,
    DISPUTE_TIMEOUT,
    UNIT6,
    ZERO,
    EscrowWorld,
    Kind,
    Reason,
    State,
    Terms,
    deploy_world,
    schedule,
)
from tests.helpers import reverts


@pytest.fixture
def w(chain: ChainClient, accounts: list[LocalAccount]) -> EscrowWorld:
    return deploy_world(chain, accounts)


def credits(w: EscrowWorld, terms: Terms, *extra: str) -> dict[str, int]:
    token = w.chain.contract("DevStablecoin", terms.token)
    parties = {terms.seller, terms.buyer, terms.platform, terms.carrier, *extra}
    return {p: w.credit(token, p) for p in parties}


def split(amount: int, terms: Terms) -> tuple[int, int, int]:
    """(toSeller, platformFee, carrierFee) of a seller-side amount."""
    platform = amount * terms.platform_fee_bps // BPS
    carrier = amount * terms.carrier_fee_bps // BPS
    return amount - platform - carrier, platform, carrier


# ---- the happy path --------------------------------------------------------------------------


def test_full_lifecycle_pays_duty_shares_and_fees_and_conserves_the_deposit(w: EscrowWorld) -> None:
    t = w.terms()
    receipt = w.create(t)
    (created,) = w.events(receipt, "OrderCreated")
    assert created.args.orderId == t.order_id == w.view("orderIdOf", t.as_tuple())
    assert created.args.seller == w.seller.address and created.args.buyer == w.buyer.address
    published = created.args.terms
    assert (published["seller"], published["sellerOrg"], published["buyer"], published["buyerOrg"]) == (
        t.seller, t.seller_org, t.buyer, t.buyer_org
    )
    assert (published["token"], published["tokenDecimals"], published["maxDutyBps"]) == (t.token, 6, t.max_duty_bps)
    assert tuple(published["customsAuthorities"]) == t.customs_authorities
    assert w.state(t) == State.CREATED

    receipt = w.fund(t)
    (funded,) = w.events(receipt, "OrderFunded")
    assert (funded.args.due, funded.args.deposited) == (t.amount, t.amount)
    assert w.order(t)[3:] == (t.amount, t.amount)
    assert w.balance(w.usd, w.escrow.address) == t.amount

    receipt = w.attest(t, 0)
    (shipped,) = w.events(receipt, "MilestoneReached")
    assert (shipped.args.milestone, shipped.args.kind, shipped.args.toSeller) == (0, Kind.SHIPPED, 0)
    assert w.order(t)[:2] == (State.FUNDED, 1)

    duty = 50 * UNIT6
    customs_payee = w.customs[0].address
    receipt = w.attest(t, 1, duty=duty, payee=customs_payee)
    (cleared,) = w.events(receipt, "MilestoneReached")
    released = (t.amount - duty) * 3000 // 10_000
    assert cleared.args.duty == duty and cleared.args.dutyPayee == customs_payee
    assert (cleared.args.toSeller, cleared.args.platformFee, cleared.args.carrierFee) == split(released, t)
    assert w.order(t)[4] == t.amount - duty - released

    receipt = w.attest(t, 2)
    delivered_at = w.now()
    assert w.order(t)[:3] == (State.DELIVERED, 3, delivered_at)

    receipt = w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    (released_event,) = w.events(receipt, "OrderReleased")
    final = t.amount - duty - released
    assert released_event.args.confirmedByBuyer is True
    assert (released_event.args.toSeller, released_event.args.platformFee, released_event.args.carrierFee) == split(
        final, t
    )
    assert w.order(t)[0] == State.RELEASED and w.order(t)[4] == 0

    owed = credits(w, t, customs_payee)
    assert owed[customs_payee] == duty
    assert owed[w.buyer.address] == 0
    assert sum(owed.values()) == t.amount
    assert owed[w.platform.address] == split(released, t)[1] + split(final, t)[1]

    for account in (w.seller, w.platform, w.carrier_payee):
        amount = owed[account.address]
        receipt = w.send("withdraw", w.usd.address, account.address, sender=account)
        (withdrawn,) = w.events(receipt, "Withdrawn")
        assert (withdrawn.args.account, withdrawn.args.amount) == (account.address, amount)
        assert w.balance(w.usd, account.address) == amount
        assert w.credit(w.usd, account.address) == 0
    assert w.balance(w.usd, w.escrow.address) == duty  # the customs payee has not withdrawn yet


def test_buyer_confirmation_signed_and_relayed_by_someone_else_releases(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    deadline, signature = w.confirmation(t)
    receipt = w.send("confirmDeliveryBySig", t.as_tuple(), deadline, signature, sender=w.outsider)
    (event,) = w.events(receipt, "OrderReleased")
    assert event.args.confirmedByBuyer is True
    assert w.state(t) == State.RELEASED
    assert w.credit(w.usd, w.seller.address) == split(t.amount, t)[0]


def test_confirmation_signature_cannot_release_twice(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    deadline, signature = w.confirmation(t)
    w.send("confirmDeliveryBySig", t.as_tuple(), deadline, signature, sender=w.outsider)
    with reverts("EscrowInvalidState", current=State.RELEASED, expected=State.DELIVERED):
        w.send("confirmDeliveryBySig", t.as_tuple(), deadline, signature, sender=w.outsider)


def test_confirmation_reverts_before_delivery(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    with reverts("EscrowInvalidState", orderId=t.order_id, current=State.FUNDED, expected=State.DELIVERED):
        w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)


def test_confirmation_reverts_when_caller_is_not_buyer(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    with reverts("EscrowNotBuyer", orderId=t.order_id, caller=w.seller.address):
        w.send("confirmDelivery", t.as_tuple(), sender=w.seller)


def test_release_after_review_window_needs_no_buyer(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms(review_window=3 * DAY, dispute_window=2 * DAY))
    w.deliver(t)
    delivered_at = w.order(t)[2]
    with reverts("EscrowReviewWindowOpen", orderId=t.order_id, endsAt=delivered_at + 3 * DAY):
        w.send("release", t.as_tuple(), sender=w.outsider)
    devnet.increase_time(3 * DAY + 1)
    receipt = w.send("release", t.as_tuple(), sender=w.outsider)
    (event,) = w.events(receipt, "OrderReleased")
    assert event.args.confirmedByBuyer is False
    assert w.state(t) == State.RELEASED
    assert sum(credits(w, t).values()) == t.amount


def test_release_waits_for_the_longer_of_review_and_dispute_windows(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms(review_window=1 * DAY, dispute_window=4 * DAY))
    w.deliver(t)
    delivered_at = w.order(t)[2]
    devnet.increase_time(2 * DAY)
    with reverts("EscrowReviewWindowOpen", endsAt=delivered_at + 4 * DAY):
        w.send("release", t.as_tuple(), sender=w.outsider)


def test_release_reverts_unless_delivered(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowInvalidState", current=State.FUNDED, expected=State.DELIVERED):
        w.send("release", t.as_tuple(), sender=w.outsider)


def test_schedule_with_two_customs_milestones_releases_in_proportion(w: EscrowWorld) -> None:
    t = w.open(w.terms(milestones=schedule(1000, 2000, 3000, 4000)))
    for i in range(4):
        w.attest(t, i)
    first = t.amount * 1000 // 10_000
    second = (t.amount - first) * 2000 // 9000
    third = (t.amount - first - second) * 3000 // 7000
    assert w.order(t)[4] == t.amount - first - second - third
    w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    assert sum(credits(w, t).values()) == t.amount


def test_duty_is_capped_by_what_remains(w: EscrowWorld) -> None:
    t = w.open(w.terms(milestones=schedule(5000, 0, 5000), max_duty_bps=BPS))
    w.attest(t, 0)
    receipt = w.attest(t, 1, duty=t.amount, payee=w.customs[1].address)
    (event,) = w.events(receipt, "MilestoneReached")
    assert event.args.duty == t.amount // 2
    assert w.order(t)[4] == 0
    assert w.credit(w.usd, w.customs[1].address) == t.amount // 2


def test_order_priced_in_token_with_no_fees_pays_seller_everything(w: EscrowWorld) -> None:
    t = w.open(w.terms(platform=ZERO, platform_fee_bps=0, carrier=ZERO, carrier_fee_bps=0))
    w.deliver(t)
    w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    assert w.credit(w.usd, w.seller.address) == t.amount


# ---- refunds -----------------------------------------------------------------------------------


def test_refund_when_ship_by_passes_without_shipping(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms())
    with reverts("EscrowDeadlineNotPassed", orderId=t.order_id, deadline=t.ship_by):
        w.send("refund", t.as_tuple(), sender=w.outsider)
    devnet.increase_time(t.ship_by - w.now() + 1)
    receipt = w.send("refund", t.as_tuple(), sender=w.outsider)
    (event,) = w.events(receipt, "OrderRefunded")
    assert (event.args.reason, event.args.amount) == (Reason.SHIP_BY_PASSED, t.amount)
    assert w.state(t) == State.REFUNDED
    assert w.credit(w.usd, w.buyer.address) == t.amount
    w.send("withdraw", w.usd.address, w.buyer.address, sender=w.buyer)
    assert w.balance(w.usd, w.buyer.address) == t.amount


def test_refund_when_deliver_by_passes_keeps_released_shares_with_the_seller(
    w: EscrowWorld, devnet: AnvilControl
) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    w.attest(t, 1)
    released = t.amount * 3000 // 10_000
    devnet.increase_time(t.ship_by - w.now() + 1)
    with reverts("EscrowDeadlineNotPassed", deadline=t.deliver_by):
        w.send("refund", t.as_tuple(), sender=w.outsider)
    devnet.increase_time(t.deliver_by - w.now() + 1)
    receipt = w.send("refund", t.as_tuple(), sender=w.buyer)
    (event,) = w.events(receipt, "OrderRefunded")
    assert (event.args.reason, event.args.amount) == (Reason.DELIVER_BY_PASSED, t.amount - released)
    owed = credits(w, t)
    assert owed[w.buyer.address] == t.amount - released
    assert owed[w.seller.address] == split(released, t)[0]
    assert sum(owed.values()) == t.amount


def test_refund_reverts_once_delivered(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    devnet.increase_time(t.deliver_by - w.now() + 1)
    with reverts("EscrowInvalidState", current=State.DELIVERED, expected=State.FUNDED):
        w.send("refund", t.as_tuple(), sender=w.buyer)


def test_customs_return_refunds_what_remains(w: EscrowWorld) -> None:
    t = w.open(w.terms(milestones=schedule(1000, 3000, 6000)))
    w.attest(t, 0)
    receipt = w.customs_return(t, 1)
    (event,) = w.events(receipt, "OrderRefunded")
    shipped_share = t.amount * 1000 // 10_000
    assert (event.args.reason, event.args.amount) == (Reason.CUSTOMS_RETURNED, t.amount - shipped_share)
    assert w.state(t) == State.REFUNDED
    assert sum(credits(w, t).values()) == t.amount


def test_customs_return_reverts_for_a_milestone_that_is_not_customs(w: EscrowWorld) -> None:
    t = w.open(w.terms(milestones=schedule(0, 10_000, quorum=1)))
    w.attest(t, 0)
    with reverts("EscrowNotCustomsMilestone", orderId=t.order_id, milestone=1):
        w.customs_return(t, 1, signers=w.customs[:1])


def test_customs_return_reverts_for_a_milestone_already_cleared(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    w.attest(t, 1)
    with reverts("EscrowMilestoneAlreadyReached", milestone=1):
        w.customs_return(t, 1)


def test_customs_return_needs_the_milestone_quorum(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    with reverts("EscrowQuorumNotMet", provided=1, required=2):
        w.customs_return(t, 1, signers=w.customs[:1])


def test_seller_cancels_an_unfunded_offer(w: EscrowWorld) -> None:
    t = w.terms()
    w.create(t)
    receipt = w.send("cancelOrder", t.as_tuple(), sender=w.seller)
    (event,) = w.events(receipt, "OrderCancelled")
    assert event.args.refunded == 0
    assert w.state(t) == State.CANCELLED
    with reverts("EscrowInvalidState", current=State.CANCELLED, expected=State.CREATED):
        w.fund(t)


def test_seller_cancels_before_shipping_and_the_buyer_is_refunded(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    receipt = w.send("cancelOrder", t.as_tuple(), sender=w.seller)
    (event,) = w.events(receipt, "OrderCancelled")
    assert event.args.refunded == t.amount
    assert w.credit(w.usd, w.buyer.address) == t.amount


def test_cancel_reverts_after_shipping(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    with reverts("EscrowAlreadyShipped", orderId=t.order_id):
        w.send("cancelOrder", t.as_tuple(), sender=w.seller)


def test_cancel_reverts_when_caller_is_not_seller(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowNotSeller", orderId=t.order_id, caller=w.buyer.address):
        w.send("cancelOrder", t.as_tuple(), sender=w.buyer)


def test_cancel_reverts_once_delivered(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    with reverts("EscrowInvalidState", current=State.DELIVERED, expected=State.FUNDED):
        w.send("cancelOrder", t.as_tuple(), sender=w.seller)


# ---- disputes ----------------------------------------------------------------------------------


def test_dispute_in_transit_holds_what_remains_not_the_goods_until_an_arbitrator_splits_it(
    w: EscrowWorld, devnet: AnvilControl
) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    w.attest(t, 1)
    remaining = w.order(t)[4]
    receipt = w.send("openDispute", t.as_tuple(), b"\x11" * 32, sender=w.buyer)
    (opened,) = w.events(receipt, "DisputeOpened")
    assert (opened.args.openedBy, opened.args.evidenceHash) == (w.buyer.address, b"\x11" * 32)
    opened_at = w.now()
    assert w.order(t)[0] == State.DISPUTED and w.order(t)[2] == opened_at

    # The carriers still attest the delivery: its share is held as always, the order stays
    # Disputed, and its timeout starts again from the delivery.
    devnet.increase_time(DAY)
    (reached,) = w.events(w.attest(t, 2), "MilestoneReached")
    assert (reached.args.milestone, reached.args.toSeller, reached.args.platformFee, reached.args.carrierFee) == (2, 0, 0, 0)
    assert w.order(t) == (State.DISPUTED, 3, w.now(), t.amount, remaining) and w.now() >= opened_at + DAY
    with reverts("EscrowInvalidState", current=State.DISPUTED, expected=State.DELIVERED):
        w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    with reverts("EscrowInvalidState", current=State.DISPUTED, expected=State.FUNDED):
        w.send("refund", t.as_tuple(), sender=w.buyer)
    with reverts("EscrowInvalidState", current=State.DISPUTED, expected=State.FUNDED):
        w.send("cancelOrder", t.as_tuple(), sender=w.seller)

    receipt = w.send("resolveDispute", t.as_tuple(), 6000, b"\x22" * 32, sender=w.arbitrator)
    (resolved,) = w.events(receipt, "DisputeResolved")
    to_buyer = remaining * 6000 // BPS
    assert resolved.args.arbitrator == w.arbitrator.address
    assert (resolved.args.buyerShareBps, resolved.args.rulingHash) == (6000, b"\x22" * 32)
    assert resolved.args.toBuyer == to_buyer
    assert (resolved.args.toSeller, resolved.args.platformFee, resolved.args.carrierFee) == split(
        remaining - to_buyer, t
    )
    assert w.state(t) == State.RESOLVED
    owed = credits(w, t)
    assert owed[w.buyer.address] == to_buyer
    assert sum(owed.values()) == t.amount


def test_seller_may_dispute_within_the_window_after_delivery(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    devnet.increase_time(DAY)
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.seller)
    with reverts("EscrowInvalidState", current=State.DISPUTED, expected=State.DELIVERED):
        w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    w.send("resolveDispute", t.as_tuple(), 0, b"\x02" * 32, sender=w.arbitrator)
    assert w.credit(w.usd, w.seller.address) == split(t.amount, t)[0]


def test_dispute_reverts_after_the_dispute_window(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms(dispute_window=2 * DAY))
    w.deliver(t)
    delivered_at = w.order(t)[2]
    devnet.increase_time(2 * DAY + 1)
    with reverts("EscrowDisputeWindowClosed", orderId=t.order_id, closedAt=delivered_at + 2 * DAY):
        w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)


def test_dispute_reverts_when_caller_is_not_a_party(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowNotParty", orderId=t.order_id, caller=w.outsider.address):
        w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.outsider)


def test_dispute_reverts_before_funding(w: EscrowWorld) -> None:
    t = w.terms()
    w.create(t)
    with reverts("EscrowInvalidState", current=State.CREATED, expected=State.FUNDED):
        w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)


def test_resolve_reverts_when_caller_is_not_arbitrator(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    with reverts("EscrowMissingRole", account=w.outsider.address):
        w.send("resolveDispute", t.as_tuple(), 5000, b"\x02" * 32, sender=w.outsider)


def test_resolve_reverts_when_not_disputed(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowInvalidState", current=State.FUNDED, expected=State.DISPUTED):
        w.send("resolveDispute", t.as_tuple(), 5000, b"\x02" * 32, sender=w.arbitrator)


def test_resolve_reverts_when_buyer_share_exceeds_everything(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    with reverts("EscrowInvalidSplit", buyerShareBps=10_001):
        w.send("resolveDispute", t.as_tuple(), 10_001, b"\x02" * 32, sender=w.arbitrator)


def test_unruled_dispute_before_delivery_times_out_to_a_buyer_refund_once_overdue(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    w.attest(t, 1)
    remaining = w.order(t)[4]
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.seller)
    opened_at = w.order(t)[2]
    with reverts("EscrowDisputeNotExpired", orderId=t.order_id, expiresAt=opened_at + DISPUTE_TIMEOUT):
        w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider)
    devnet.increase_time(t.deliver_by - w.now() + 1)  # past the timeout and deliver-by: never delivered
    with reverts("EscrowDisputeExpired", orderId=t.order_id, expiredAt=opened_at + DISPUTE_TIMEOUT):
        w.send("resolveDispute", t.as_tuple(), 0, b"\x02" * 32, sender=w.arbitrator)
    receipt = w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider)
    (event,) = w.events(receipt, "DisputeResolved")
    assert event.args.arbitrator == ZERO and event.args.buyerShareBps == BPS
    assert event.args.toBuyer == remaining
    owed = credits(w, t)
    assert owed[w.buyer.address] == remaining
    assert sum(owed.values()) == t.amount


def test_unruled_dispute_after_delivery_times_out_to_the_seller(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    remaining = w.order(t)[4]
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    devnet.increase_time(DISPUTE_TIMEOUT + 1)
    receipt = w.send("resolveExpiredDispute", t.as_tuple(), sender=w.buyer)
    (event,) = w.events(receipt, "DisputeResolved")
    assert event.args.buyerShareBps == 0 and event.args.toBuyer == 0
    assert (event.args.toSeller, event.args.platformFee, event.args.carrierFee) == split(remaining, t)
    assert w.state(t) == State.RESOLVED


def test_resolve_expired_reverts_when_not_disputed(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowInvalidState", current=State.FUNDED, expected=State.DISPUTED):
        w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider)


# ---- withdrawals ---------------------------------------------------------------------------------


def test_withdraw_to_another_address(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.send("cancelOrder", t.as_tuple(), sender=w.seller)
    w.send("withdraw", w.usd.address, w.outsider.address, sender=w.buyer)
    assert w.balance(w.usd, w.outsider.address) == t.amount


def test_withdraw_reverts_with_nothing_to_withdraw(w: EscrowWorld) -> None:
    with reverts("EscrowNothingToWithdraw", account=w.seller.address, token=w.usd.address):
        w.send("withdraw", w.usd.address, w.seller.address, sender=w.seller)


def test_withdraw_cannot_pay_twice(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.send("cancelOrder", t.as_tuple(), sender=w.seller)
    w.send("withdraw", w.usd.address, w.buyer.address, sender=w.buyer)
    with reverts("EscrowNothingToWithdraw", account=w.buyer.address):
        w.send("withdraw", w.usd.address, w.buyer.address, sender=w.buyer)


def test_withdraw_reverts_to_the_zero_address(w: EscrowWorld) -> None:
    with reverts("EscrowInvalidAccount", account=ZERO):
        w.send("withdraw", w.usd.address, ZERO, sender=w.seller)


# ---- unknown orders and terms --------------------------------------------------------------------


def test_calls_with_terms_of_no_order_revert(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    other = t.but(salt=99)
    with reverts("EscrowUnknownOrder", orderId=other.order_id):
        w.send("fund", other.as_tuple(), (b"\0\0\0", b"\0\0\0", 0, 0, 0, []), sender=w.buyer)
    with reverts("EscrowUnknownOrder", orderId=t.but(amount=t.amount - 1).order_id):
        w.attest(t.but(amount=t.amount - 1), 0)


def test_get_order_of_unknown_id_is_empty(w: EscrowWorld) -> None:
    assert w.view("getOrder", 12345) == (0, 0, 0, 0, 0)
