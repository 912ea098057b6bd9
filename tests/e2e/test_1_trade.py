"""Story 1: a vase made in Vietnam reaches a shop in Amsterdam, and everybody is paid.

- The manufacturer, Lumen Ceramics (VN), registers the vase's GTIN, makes a lot of 24 vases and
  prints a QR code on each.
- Buyer 1, an Amsterdam design shop, orders a pallet of the vases through the Waymark marketplace
  (buyer 2 orders the other pallet) and pays into escrow: 20 % when shipped, 30 % at customs
  clearance (the duty is paid from escrow), 50 % on delivery; 1.5 % platform fee, 4 % to the
  ocean carrier.
- The inspector, Meridian (SG), samples 8 vases: conformant, report attached.
- The carrier, Bluewater Ocean Freight, ships the container from Ho Chi Minh City to Rotterdam;
  its data logger reports humidity above the vases' limit for a while in the Indian Ocean.
- Customs in Rotterdam clears the goods with 6 % duty; a courier delivers them in Utrecht.
  Each milestone is attested by 2 of 3 organisations through the relayer.
- Buyer 1 scans a vase: genuine, with its whole verified history, the customs clearance, the
  excursion and buyer 1's order (a vase of buyer 2's pallet shows buyer 2's); confirms receipt
  with a signed message the marketplace relays; the escrow releases.
- Seller, carrier, platform and customs withdraw what they were paid.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from node.escrow.terms import State
from tests.e2e.world import paid_out, withdrawn
from waymark.demo.story import Story, account, has_step

def test_a_vase_is_made_shipped_cleared_delivered_scanned_paid_for_and_everybody_withdraws(delivered: Story, tmp_path: Path) -> None:
    story = delivered
    terms = story.terms["happy"]

    # Buyer 1 scans the vase in the shop in Amsterdam: the scan API resolves its QR code.
    scan = story.buyer_scans()
    assert scan.status == 200
    passport = scan.passport
    assert scan.verdict == "genuine", passport["reasons"]
    assert passport["product"]["manufacturer"]["name"] == "Lumen Ceramics Co."
    assert passport["product"]["manufacturer"]["country"] == "VN"
    # Its history, each event verified (signature, the signer's role, Merkle proof, anchor):
    # made, inspected, packed, shipped, cleared by customs, delivered.
    for step in ("commissioning", "inspecting", "packing", "shipping", "cleared", "receiving"):
        assert has_step(passport, step), f"no {step} in the timeline"
    assert all(event["verification"]["status"] == "verified" for event in passport["timeline"])
    clearance = next(e for e in passport["timeline"] if str(e["bizStep"]).endswith("cleared"))
    assert clearance["verification"]["signerOrg"]["country"] == "NL"
    assert clearance["verification"]["signerRole"] == "CUSTOMS"
    assert clearance["via"], "customs cleared the container the vase travelled in"
    # The humidity excursion in the Indian Ocean is on the passport.
    assert [x["type"] for x in passport["sensorExcursions"]] and all("humidity" in x["type"].lower() for x in passport["sensorExcursions"])
    # The inspection report is held off chain, its hash on the passport.
    assert any(d["status"] == "available" for d in passport["documents"])
    # Each buyer's order names the pallet it bought (both travel in one container): the vase was
    # packed onto buyer 1's pallet, never onto buyer 2's, so its page shows buyer 1's order, as it
    # stands now: Delivered. A vase of buyer 2's pallet shows buyer 2's order, whatever story 2 has
    # made of it by now (Delivered, Disputed or Resolved).
    mine, theirs = story.goods["happy"], story.goods["dispute"]
    assert mine != theirs and story.terms["happy"].shipment_ref == keccak(text=story.shipment.canonical(mine))
    assert story.terms["dispute"].shipment_ref == keccak(text=story.shipment.canonical(theirs))
    assert_on_pallet(story, passport, mine, not_on=theirs)
    assert story.state("happy") is State.DELIVERED
    assert escrow_section_becomes(story, story.record.demo_unit, {"state": "Delivered"}) == {"state": "Delivered"}
    other_unit = next(link for link in story.links if story.shipment.pallet_of(link) == theirs
                      and link not in (story.record.demo_unit, story.record.cloned_unit))
    other = story.wait_genuine(other_unit)
    assert_on_pallet(story, other, theirs, not_on=mine)
    shown, on_chain = escrow_section_follows_chain(story, other_unit, "dispute")
    assert shown == on_chain

    # Buyer 1 confirms receipt with a signed message; the marketplace relays it; the escrow releases.
    story.buyer_confirms()
    assert story.state("happy") is State.RELEASED
    # Both pages follow the escrow (once the node has indexed the release log): the vase's order
    # reads Released, buyer 2's vase still shows buyer 2's order (the release did not touch it).
    assert escrow_section_becomes(story, story.record.demo_unit, {"state": "Released"}) == {"state": "Released"}
    assert story.state("dispute") is not State.RELEASED
    shown, on_chain = escrow_section_follows_chain(story, other_unit, "dispute")
    assert shown == on_chain

    # What the order paid out, from its escrow events: customs exactly the duty it assessed (EUR 55.44
    # in the EUR stablecoin), the carrier its 4 % and the platform its 1.5 % of what went to the
    # seller side (rounded per milestone), the seller the rest; nothing back to the buyer.
    paid = paid_out(story, "happy")
    duty = int(story.shipment.duty * Decimal(10) ** story.token.decimals)
    assert paid["duty"] == duty and paid["buyer"] == 0
    assert paid["duty"] + paid["seller"] + paid["platform"] + paid["carrier"] == terms.amount
    seller_side = terms.amount - duty
    assert abs(paid["carrier"] - seller_side * terms.carrier_fee_bps // 10_000) <= len(terms.milestones)
    assert abs(paid["platform"] - seller_side * terms.platform_fee_bps // 10_000) <= len(terms.milestones)

    # Everybody withdraws its whole credit (the seller's and the platform's include buyer 2's order):
    # nothing stays credited, every withdrawal reached its account, and customs and the carrier,
    # paid by the orders' milestones only, have withdrawn exactly what the orders paid them.
    parties = {"seller": account("manufacturer"), "carrier": account("carrier"), "platform": account("operator"),
               "customs": account("customs")}
    before = {name: token_balance(story, a.address) for name, a in parties.items()}
    got = story.everybody_withdraws()
    for name, party in parties.items():
        assert story.escrow.credit(story.token.address, party.address) == 0, f"{name} has credit left"
        assert token_balance(story, party.address) == before[name] + got.get(name, 0)
    other = paid_out(story, "dispute")
    assert withdrawn(story, parties["customs"].address) == duty + other["duty"]
    assert withdrawn(story, parties["carrier"].address) == paid["carrier"] + other["carrier"]

    # The labels: the QR codes the story scanned, as PNG and SVG.
    written = story.write_qr(tmp_path / "qr")
    assert written["demo-unit"].read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in written["demo-unit"].with_suffix(".svg").read_bytes()


def assert_on_pallet(story: Story, passport: dict[str, Any], pallet: str, *, not_on: str) -> None:
    """The unit's verified history reached it through `pallet`, and never through `not_on`."""
    via = {container for event in passport["timeline"] for container in event["via"]}
    assert story.shipment.canonical(pallet) in via, f"the unit never travelled on pallet {pallet}"
    assert story.shipment.canonical(not_on) not in via, f"the unit travelled on pallet {not_on}"


def escrow_section_becomes(story: Story, link: str, wanted: dict[str, str], bound: float = 30.0) -> Any:
    """The unit's order section once it reads `wanted`, or as it reads after `bound` seconds."""
    deadline = time.monotonic() + bound
    while (section := story.passport(link)["escrow"]) != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    return section


def escrow_section_follows_chain(story: Story, link: str, order: str, bound: float = 30.0) -> tuple[Any, Any]:
    """The unit's order section and the order's state on chain, once they agree (the page follows
    the escrow logs the node has indexed, a moment behind the chain), or as they are after
    `bound` seconds."""
    deadline = time.monotonic() + bound
    while True:
        on_chain = {"state": state_name(story.state(order))}
        shown = story.passport(link)["escrow"]
        if shown == on_chain or time.monotonic() >= deadline:
            return shown, on_chain
        time.sleep(0.2)


def state_name(state: State) -> str:
    """An order state as the passport names it (Delivered, Released, ...)."""
    return state.name.capitalize()


def token_balance(story: Story, holder: str) -> int:
    contract = story.client.contract("DevStablecoin", story.token.address)
    return int(story.client.call(contract.functions.balanceOf(holder)))
