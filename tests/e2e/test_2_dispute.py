"""Story 2: a second buyer's vases arrive broken; the arbitrator splits what is left.

- Buyer 2, an Antwerp garden centre, orders a pallet of vases travelling in the same container
  (its order names that pallet) and pays into escrow: 30 % when shipped, 70 % on delivery (duty
  is settled outside this order), 1.5 % platform fee.
- The carriers attest shipment and delivery (2 of 3), so 30 % has gone to the seller side.
- Buyer 2 finds five vases broken and opens a dispute with the photos' hash: the order freezes.
- The arbitrator, Hanseatic Trade Arbitration (DE), rules 40 % of what remains to the buyer.
- Buyer 2 withdraws the refund; the seller and the platform withdraw the rest.
"""

from __future__ import annotations

from waymark.devnet.consortium import devnet_account
from node.escrow.terms import State
from waymark.demo.story import DISPUTE_BUYER_SHARE_BPS, SECOND_BUYER, Story, account


def test_a_dispute_over_broken_vases_ends_in_the_arbitrators_split_and_both_sides_withdraw(delivered: Story) -> None:
    story = delivered
    terms = story.terms["dispute"]
    order = story.escrow.order(terms.order_id)
    # Delivered: the Shipped share went to the seller side, the Delivered share waits for release.
    assert order.state is State.DELIVERED and order.milestones_reached == 2
    remaining = order.remaining
    assert remaining == terms.amount - terms.amount * terms.milestones[0].share_bps // 10_000

    # Buyer 2 opens a dispute within the dispute window: the order freezes.
    story.second_buyer_disputes()
    assert story.state("dispute") is State.DISPUTED

    # The arbitrator rules 40 % of what remains to the buyer.
    story.arbitrator_rules()
    assert story.state("dispute") is State.RESOLVED

    # Buyer 2 withdraws exactly its share of what remained; the seller side gets the rest.
    buyer = devnet_account(SECOND_BUYER)
    refund = remaining * DISPUTE_BUYER_SHARE_BPS // 10_000
    assert story.escrow.credit(story.token.address, buyer.address) == refund
    got = story.dispute_withdrawals()
    assert got["buyer 2"] == refund
    assert got["seller"] > 0 and got["platform"] > 0
    for party in (buyer, account("manufacturer"), account("operator")):
        assert story.escrow.credit(story.token.address, party.address) == 0
