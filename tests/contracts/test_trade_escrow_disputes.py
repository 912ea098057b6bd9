"""TradeEscrow disputes against a party that disputes to delay: a dispute holds what remains for
an arbitrator, not the goods (milestones and customs returns are still attested, under the same
deadlines and with the same payouts; a delivery restarts the dispute's timeout), and a dispute
nobody rules on is decided by the attested facts as `release` and `refund` would: delivered,
paid; overdue, refunded; otherwise it lapses and the order goes on.

Before, a dispute froze the milestones too and the timeout refunded whatever was not delivered,
so a buyer who disputed while the goods were at sea got what remained back unless an arbitrator
ruled in time, goods received or not."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from node.chain.client import ChainClient
from waymark.devnet.anvil import AnvilControl
from tests.contracts.escrow_world import BPS, DAY, DISPUTE_TIMEOUT, ZERO, EscrowWorld, State, Terms, deploy_world
from tests.helpers import reverts


@pytest.fixture
def w(chain: ChainClient, accounts: list[LocalAccount]) -> EscrowWorld:
    return deploy_world(chain, accounts)


def seller_side(w: EscrowWorld, receipt: TxReceipt) -> int:
    """What the timeout rule's DisputeResolved gave the seller side (the seller and the fees)."""
    (resolved,) = w.events(receipt, "DisputeResolved")
    assert resolved.args.arbitrator == ZERO  # the timeout rule
    return int(resolved.args.toSeller + resolved.args.platformFee + resolved.args.carrierFee)


def test_a_buyer_who_disputes_while_the_goods_are_at_sea_gains_nothing_from_the_timeout(
    w: EscrowWorld, devnet: AnvilControl
) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)  # shipped: its share (0 in these terms) released
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    # Customs clears the goods with a duty (within the cap) and the carriers deliver them: the
    # authority and the seller side are paid as the terms say, the Delivered share is held.
    duty = t.amount // 20
    (cleared,) = w.events(w.attest(t, 1, duty=duty, payee=w.customs[0].address), "MilestoneReached")
    assert cleared.args.duty == duty and cleared.args.toSeller > 0
    w.attest(t, 2)
    state, reached, _, _, remaining = w.order(t)
    assert (state, reached) == (State.DISPUTED, 3)
    assert w.view("dutyPaid", t.order_id) == duty
    devnet.increase_time(DISPUTE_TIMEOUT + 1)
    receipt = w.send("resolveExpiredDispute", t.as_tuple(), sender=w.buyer)
    (resolved,) = w.events(receipt, "DisputeResolved")
    assert (resolved.args.buyerShareBps, resolved.args.toBuyer) == (0, 0)
    assert seller_side(w, receipt) == remaining
    assert w.state(t) == State.RESOLVED
    assert w.credit(w.usd, w.buyer.address) == 0


def cleared_and_disputed_a_day_before_deliver_by(w: EscrowWorld, devnet: AnvilControl, by: LocalAccount) -> tuple[Terms, int]:
    """An order shipped and cleared, disputed by `by` a day before its deliver-by (so that the
    dispute times out after it); and what it holds then."""
    t = w.open(w.terms())
    w.attest(t, 0)
    w.attest(t, 1)
    devnet.increase_time(t.deliver_by - w.now() - DAY)
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=by)
    return t, w.order(t)[4]


def test_a_dispute_opened_just_before_deliver_by_does_not_stop_the_delivery(w: EscrowWorld, devnet: AnvilControl) -> None:
    t, remaining = cleared_and_disputed_a_day_before_deliver_by(w, devnet, w.buyer)
    w.attest(t, 2)  # delivered in time, during the dispute
    devnet.increase_time(DISPUTE_TIMEOUT + 1)
    receipt = w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider)
    assert seller_side(w, receipt) == remaining
    assert w.credit(w.usd, w.buyer.address) == 0


def test_a_delivery_during_a_dispute_restarts_its_timeout_for_the_arbitrator(w: EscrowWorld, devnet: AnvilControl) -> None:
    # The seller disputes, then has the delivery attested once the timeout has passed: the
    # dispute cannot be decided at once, without the buyer's review; the arbitrator has a full timeout.
    t = w.open(w.terms())
    w.attest(t, 0)
    w.attest(t, 1)
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.seller)
    devnet.increase_time(DISPUTE_TIMEOUT + 10)
    w.attest(t, 2)
    delivered_at = w.now()
    with reverts("EscrowDisputeNotExpired", orderId=t.order_id, expiresAt=delivered_at + DISPUTE_TIMEOUT):
        w.send("resolveExpiredDispute", t.as_tuple(), sender=w.seller)
    devnet.increase_time(DISPUTE_TIMEOUT - DAY)
    w.send("resolveDispute", t.as_tuple(), BPS, b"\x02" * 32, sender=w.arbitrator)  # the goods were broken
    assert w.state(t) == State.RESOLVED and w.credit(w.usd, w.buyer.address) > 0


def test_milestones_during_a_dispute_keep_their_deadlines(w: EscrowWorld, devnet: AnvilControl) -> None:
    t, remaining = cleared_and_disputed_a_day_before_deliver_by(w, devnet, w.seller)
    devnet.increase_time(2 * DAY)
    with reverts("EscrowDeadlinePassed", orderId=t.order_id, deadline=t.deliver_by):
        w.attest(t, 2)
    devnet.increase_time(DISPUTE_TIMEOUT)
    receipt = w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider)
    (resolved,) = w.events(receipt, "DisputeResolved")
    assert (resolved.args.buyerShareBps, resolved.args.toBuyer) == (BPS, remaining)  # overdue: refunded


def test_an_unruled_dispute_within_the_deadlines_lapses_and_the_order_goes_on(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    remaining = w.order(t)[4]
    devnet.increase_time(DISPUTE_TIMEOUT + 1)  # before deliver-by (30 days)
    receipt = w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider)
    (lapsed,) = w.events(receipt, "DisputeLapsed")
    assert lapsed.args.orderId == t.order_id
    assert w.events(receipt, "DisputeResolved") == []
    assert w.order(t) == (State.FUNDED, 1, 0, t.amount, remaining)
    with reverts("EscrowInvalidState", current=State.FUNDED, expected=State.DISPUTED):
        w.send("resolveDispute", t.as_tuple(), BPS, b"\x02" * 32, sender=w.arbitrator)
    with reverts("EscrowDeadlineNotPassed", orderId=t.order_id, deadline=t.deliver_by):
        w.send("refund", t.as_tuple(), sender=w.buyer)
    # The order goes on as if undisputed: customs releases its share, the carriers deliver.
    (cleared,) = w.events(w.attest(t, 1), "MilestoneReached")
    assert cleared.args.toSeller > 0
    w.attest(t, 2)
    assert w.state(t) == State.DELIVERED
    # And it can be disputed again, within the window after delivery, and ruled on.
    w.send("openDispute", t.as_tuple(), b"\x03" * 32, sender=w.buyer)
    w.send("resolveDispute", t.as_tuple(), 2_500, b"\x04" * 32, sender=w.arbitrator)
    assert w.state(t) == State.RESOLVED


def test_a_dispute_before_shipping_lapses_while_ship_by_is_ahead(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms(ship_by=w.now() + 20 * DAY, deliver_by=w.now() + 40 * DAY))
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    devnet.increase_time(DISPUTE_TIMEOUT + 1)
    w.events(w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider), "DisputeLapsed")
    assert w.state(t) == State.FUNDED
    w.attest(t, 0)  # the seller ships after all
    assert w.order(t)[1] == 1


def test_while_disputed_what_remains_waits_for_the_ruling_or_the_timeout(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    with reverts("EscrowInvalidState", current=State.DISPUTED, expected=State.FUNDED):
        w.send("cancelOrder", t.as_tuple(), sender=w.seller)
    devnet.increase_time(t.deliver_by - w.now() + 1)
    with reverts("EscrowInvalidState", current=State.DISPUTED, expected=State.FUNDED):
        w.send("refund", t.as_tuple(), sender=w.buyer)
    with reverts("EscrowInvalidState", current=State.DISPUTED, expected=State.FUNDED):
        w.send("openDispute", t.as_tuple(), b"\x02" * 32, sender=w.seller)


def test_goods_customs_returned_during_a_dispute_are_refunded(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.seller)
    remaining = w.order(t)[4]
    (refunded,) = w.events(w.customs_return(t, 1), "OrderRefunded")
    assert refunded.args.amount == remaining and w.state(t) == State.REFUNDED


def test_a_dispute_moves_no_share_to_the_buyer_that_the_terms_give_the_seller(w: EscrowWorld, devnet: AnvilControl) -> None:
    # The buyer disputes after shipping; customs clears during the dispute; the delivery is late.
    # The seller side keeps the customs share, as it would without the dispute.
    t = w.open(w.terms())
    w.attest(t, 0)
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    before = w.order(t)[4]
    (cleared,) = w.events(w.attest(t, 1), "MilestoneReached")
    share = before * 3000 // 10_000
    assert cleared.args.toSeller + cleared.args.platformFee + cleared.args.carrierFee == share
    devnet.increase_time(t.deliver_by - w.now() + 1)
    receipt = w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider)
    assert w.events(receipt, "DisputeResolved")[0].args.toBuyer == before - share


def test_a_ruling_splits_what_remains_after_the_shares_released_during_the_dispute(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.seller)
    w.attest(t, 1)  # its 30 % share is released as the terms say
    remaining = w.order(t)[4]
    receipt = w.send("resolveDispute", t.as_tuple(), 4_000, b"\x02" * 32, sender=w.arbitrator)
    (resolved,) = w.events(receipt, "DisputeResolved")
    assert resolved.args.toBuyer == remaining * 4_000 // BPS
    assert resolved.args.toBuyer + resolved.args.toSeller + resolved.args.platformFee + resolved.args.carrierFee == remaining
