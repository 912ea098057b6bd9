"""TradeEscrow against a hostile member (issue 11, points 1 to 4), each attack played with the
adversary's own accounts on a real Anvil: account links changed in the middle of an order, a
customs organisation the order does not name, an arbitrator the terms do not name, a duty cap
spent over several customs steps, a token that charges the sender on top, FX quotes that are
stale, foreign or replayed, and a token relisted with other decimals."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from node.chain.client import ChainClient
from waymark.devnet.anvil import AnvilControl
from tests.contracts.escrow_world import (
    BPS,
    DISPUTE_TIMEOUT,
    FX_MAX_VALIDITY,
    UNIT6,
    UNIT18,
    EscrowWorld,
    State,
    deploy_world,
    schedule,
    signer_key,
)
from tests.helpers import reverts

SUSPEND_ORGANISATION = 1


@pytest.fixture
def w(chain: ChainClient, accounts: list[LocalAccount]) -> EscrowWorld:
    return deploy_world(chain, accounts)


def colleague(w: EscrowWorld, member: LocalAccount, label: str) -> LocalAccount:
    """A new account that `member` links to its own organisation, with gas money."""
    key = signer_key(label)
    w.give_eth(member.address)
    w.give_eth(key.address)
    w.link(member, key)
    return key


def escrow_holdings(w: EscrowWorld, token: Contract) -> int:
    return w.balance(token, w.escrow.address)


# ---- 1. the parties' organisations are fixed when the order is created ---------------------------------------


def test_arbitrator_organisation_of_the_buyer_cannot_be_named_nor_rule_after_unlinking_it(w: EscrowWorld) -> None:
    # The arbitration house's account is the buyer when the order is made.
    w.give_eth(w.arbitrator.address)
    w.link(w.arbitrator, w.buyer)
    house = w.org_of[w.arbitrator.address]
    with reverts("EscrowInvalidArbitrator", index=0, orgId=house):
        w.create(w.terms(arbitrators=(house, 0, 0)))
    t = w.open(w.terms(arbitrators=(0, 0, 0)))
    assert t.buyer_org == house
    w.deliver(t)
    # Then it unlinks the buyer (no vote needed) and a colleague rules a full refund.
    judge = colleague(w, w.arbitrator, "arbitration-house-colleague")
    w.chain.transact(w.registry.functions.removeAccount(w.buyer.address), sender=w.arbitrator)
    assert w.organisation_of(w.buyer.address) == 0
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    with reverts("EscrowNotOrderArbitrator", orderId=t.order_id, account=judge.address, orgId=house):
        w.send("resolveDispute", t.as_tuple(), BPS, b"\x02" * 32, sender=judge)
    assert w.state(t) == State.DISPUTED
    assert w.credit(w.usd, w.buyer.address) == 0


def test_terms_cannot_name_a_partys_organisation_as_arbitrator(w: EscrowWorld) -> None:
    seller_org = w.org_of[w.seller.address]  # it holds the ARBITRATOR role too
    with reverts("EscrowInvalidArbitrator", index=0, orgId=seller_org):
        w.create(w.terms(arbitrators=(seller_org, 0, 0)))
    house = w.org_of[w.arbitrator.address]
    with reverts("EscrowInvalidArbitrator", index=1, orgId=house):  # repeated
        w.create(w.terms(arbitrators=(house, house, 0)))
    with reverts("EscrowInvalidArbitrator", index=2, orgId=house):  # after a zero
        w.create(w.terms(arbitrators=(0, 0, house)))


def test_only_an_arbitrator_the_terms_name_rules(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    # The seller's own organisation holds the ARBITRATOR role, but the terms name the house.
    with reverts("EscrowNotOrderArbitrator", orderId=t.order_id, account=w.seller.address, orgId=w.org_of[w.seller.address]):
        w.send("resolveDispute", t.as_tuple(), 0, b"\x02" * 32, sender=w.seller)
    w.send("resolveDispute", t.as_tuple(), 5000, b"\x02" * 32, sender=w.arbitrator)
    assert w.state(t) == State.RESOLVED


def test_without_arbitrators_no_one_rules_and_the_timeout_decides(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms(arbitrators=(0, 0, 0)))
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    with reverts("EscrowNotOrderArbitrator", orderId=t.order_id, account=w.arbitrator.address, orgId=w.org_of[w.arbitrator.address]):
        w.send("resolveDispute", t.as_tuple(), 0, b"\x02" * 32, sender=w.arbitrator)
    devnet.increase_time(DISPUTE_TIMEOUT + 1)
    w.send("resolveExpiredDispute", t.as_tuple(), sender=w.outsider)
    assert w.state(t) == State.RESOLVED
    assert w.credit(w.usd, w.buyer.address) == t.amount  # nothing was delivered: refunded


def test_a_party_linked_to_an_arbitration_house_after_the_order_cannot_rule_on_it(w: EscrowWorld) -> None:
    # The buyer is no member when the order is made; an arbitration house links it afterwards.
    t = w.open(w.terms())
    assert t.buyer_org == 0
    w.attest(t, 0)
    w.link(w.arbitrator, w.buyer)
    w.send("openDispute", t.as_tuple(), b"\x01" * 32, sender=w.buyer)
    with reverts("EscrowConflictOfInterest", orderId=t.order_id, account=w.buyer.address):
        w.send("resolveDispute", t.as_tuple(), BPS, b"\x02" * 32, sender=w.buyer)
    assert w.state(t) == State.DISPUTED
    assert w.credit(w.usd, w.buyer.address) == 0


def test_seller_organisation_that_unlinks_the_seller_cannot_attest_its_own_shipment(w: EscrowWorld) -> None:
    # Quorum 1, and the seller's organisation holds CARRIER.
    t = w.open(w.terms(milestones=schedule(2000, 0, 8000, quorum=1)))
    insider = w.seller_org_signer
    w.give_eth(insider.address)
    w.chain.transact(w.registry.functions.removeAccount(w.seller.address), sender=insider)
    assert w.organisation_of(w.seller.address) == 0
    with reverts("EscrowConflictOfInterest", orderId=t.order_id, account=insider.address):
        w.attest(t, 0, signers=[insider])
    assert w.order(t)[:2] == (State.FUNDED, 0)
    assert w.credit(w.usd, w.seller.address) == 0


def test_seller_naming_an_address_that_was_never_linked_cannot_create_an_order(w: EscrowWorld) -> None:
    stranger = w.outsider  # linked to no organisation
    t = w.terms(seller=stranger.address, milestones=schedule(2000, 0, 8000, quorum=1))
    assert t.seller_org == 0
    with reverts("EscrowPartyOrganisationMismatch", party=stranger.address, named=0, actual=0):
        w.create(t, sender=stranger)
    # Nor by claiming a member's organisation for it.
    claimed = t.but(seller_org=w.org_of[w.seller.address])
    with reverts("EscrowPartyOrganisationMismatch", party=stranger.address, named=claimed.seller_org, actual=0):
        w.create(claimed, sender=stranger)
    # Nor by having the buyer place it.
    with reverts("EscrowPartyOrganisationMismatch", party=stranger.address, named=0, actual=0):
        w.place(t)


def test_seller_of_a_suspended_organisation_cannot_create_an_order(w: EscrowWorld) -> None:
    org = w.org_of[w.seller.address]
    w.govern(SUSPEND_ORGANISATION, abi_encode(["uint64"], [org]))
    t = w.terms()
    with reverts("EscrowPartyOrganisationMismatch", party=w.seller.address, named=org, actual=0):
        w.create(t)


def test_terms_hiding_the_buyers_organisation_are_refused(w: EscrowWorld) -> None:
    w.give_eth(w.carriers[2].address)
    w.link(w.carriers[2], w.buyer)
    actual = w.org_of[w.carriers[2].address]
    t = w.terms(buyer_org=0)
    with reverts("EscrowPartyOrganisationMismatch", party=w.buyer.address, named=0, actual=actual):
        w.create(t)


def test_buyers_organisation_fixed_at_creation_still_cannot_attest_a_duty_after_unlinking(w: EscrowWorld) -> None:
    # A customs organisation trades as buyer, then unlinks the buyer and tries to clear with a duty.
    buying_customs = w.customs[2]
    w.give_eth(buying_customs.address)
    w.link(buying_customs, w.buyer)
    t = w.open(w.terms(customs_authorities=(w.org_of[w.customs[0].address], w.org_of[w.customs[1].address], 0)))
    w.attest(t, 0)
    w.chain.transact(w.registry.functions.removeAccount(w.buyer.address), sender=buying_customs)
    with reverts("EscrowConflictOfInterest", orderId=t.order_id, account=buying_customs.address):
        w.attest(t, 1, signers=[w.customs[0], buying_customs], duty=UNIT6, payee=w.customs[0].address)


# ---- 2. only the order's customs authority clears it, within the agreed duty -------------------------------


def one_customs_terms(w: EscrowWorld, **overrides: Any) -> Any:
    """Terms whose only customs authority is the first customs organisation (quorum 1)."""
    authority = w.org_of[w.customs[0].address]
    return w.terms(milestones=schedule(0, 3000, 7000, quorum=1), customs_authorities=(authority, 0, 0), **overrides)


def test_rogue_customs_organisation_cannot_clear_an_order_it_is_not_named_in(w: EscrowWorld) -> None:
    t = w.open(one_customs_terms(w))
    w.attest(t, 0)
    rogue = w.customs[2]
    before = escrow_holdings(w, w.usd)
    with reverts("EscrowNotCustomsAuthority", orderId=t.order_id, signer=rogue.address,
                 orgId=w.org_of[rogue.address]):
        w.attest(t, 1, signers=[rogue])
    # With a duty to itself it is stopped at the payee already.
    with reverts("EscrowInvalidDutyPayee", payee=rogue.address):
        w.attest(t, 1, signers=[rogue], duty=t.amount, payee=rogue.address)
    # Nor can it return the goods to the buyer.
    with reverts("EscrowNotCustomsAuthority", orderId=t.order_id, signer=rogue.address,
                 orgId=w.org_of[rogue.address]):
        w.customs_return(t, 1, signers=[rogue])
    assert w.order(t)[:2] == (State.FUNDED, 1)
    assert w.credit(w.usd, rogue.address) == 0
    assert escrow_holdings(w, w.usd) == before


def test_named_customs_cannot_pay_a_duty_to_the_escrow_a_party_or_another_organisation(w: EscrowWorld) -> None:
    t = w.open(one_customs_terms(w))
    w.attest(t, 0)
    officer = w.customs[0]
    for payee in (w.escrow.address, w.seller.address, w.buyer.address, w.customs[1].address, w.outsider.address):
        with reverts("EscrowInvalidDutyPayee", payee=payee):
            w.attest(t, 1, signers=[officer], duty=UNIT6, payee=payee)
    w.attest(t, 1, signers=[officer], duty=UNIT6, payee=officer.address)
    assert w.credit(w.usd, officer.address) == UNIT6


def test_duty_above_the_cap_needs_the_buyers_signature(w: EscrowWorld) -> None:
    t = w.open(one_customs_terms(w, max_duty_bps=500))  # at most 5% of the deposit
    w.attest(t, 0)
    cap = t.amount * 500 // BPS
    officer = w.customs[0]
    with reverts("EscrowDutyAboveCap", orderId=t.order_id, duty=cap + 1, allowed=cap):
        w.attest(t, 1, signers=[officer], duty=cap + 1, payee=officer.address)
    # The buyer's consent must be the buyer's own signature, last.
    message = {"orderId": t.order_id, "milestone": 1, "duty": cap + 1, "dutyPayee": officer.address}
    officer_sig = w.bundle([officer], "MilestoneAttestation", message)
    forged = (w.buyer.address, w.deadline(), w.sign(officer, "MilestoneAttestation", {**message, "deadline": w.deadline()}))
    with reverts("EscrowInvalidSignature", signer=w.buyer.address):
        w.send("attestMilestone", t.as_tuple(), 1, cap + 1, officer.address, officer_sig + [forged], sender=w.outsider)
    consent = w.bundle([w.buyer], "MilestoneAttestation", message, sort=False)
    receipt = w.send("attestMilestone", t.as_tuple(), 1, cap + 1, officer.address, officer_sig + consent,
                     sender=w.outsider)
    (event,) = w.events(receipt, "MilestoneReached")
    assert (event.args.duty, event.args.dutyPayee) == (cap + 1, officer.address)


def test_the_duty_cap_is_the_whole_orders_not_each_customs_steps(w: EscrowWorld) -> None:
    """Two customs steps, each with a duty of two thirds of the cap: the second is refused for
    more than the third left, and what is left is paid; never more than the cap in all."""
    officer = w.customs[0]
    t = w.open(w.terms(milestones=schedule(0, 3000, 3000, 4000, quorum=1), max_duty_bps=900,
                       customs_authorities=(w.org_of[officer.address], 0, 0)))
    w.attest(t, 0)
    cap = t.amount * 900 // BPS
    first = cap * 2 // 3
    w.attest(t, 1, signers=[officer], duty=first, payee=officer.address)
    assert w.view("dutyPaid", t.order_id) == first
    with reverts("EscrowDutyAboveCap", orderId=t.order_id, duty=first, allowed=cap - first):
        w.attest(t, 2, signers=[officer], duty=first, payee=officer.address)
    w.attest(t, 2, signers=[officer], duty=cap - first, payee=officer.address)
    assert w.view("dutyPaid", t.order_id) == cap == w.credit(w.usd, officer.address)


def test_a_duty_the_buyer_consented_to_above_the_cap_leaves_nothing_for_later_steps(w: EscrowWorld) -> None:
    officer = w.customs[0]
    t = w.open(w.terms(milestones=schedule(0, 3000, 3000, 4000, quorum=1), max_duty_bps=500,
                       customs_authorities=(w.org_of[officer.address], 0, 0)))
    w.attest(t, 0)
    cap = t.amount * 500 // BPS
    message = {"orderId": t.order_id, "milestone": 1, "duty": cap + 1, "dutyPayee": officer.address}
    signed = w.bundle([officer], "MilestoneAttestation", message) + w.bundle([w.buyer], "MilestoneAttestation", message, sort=False)
    w.send("attestMilestone", t.as_tuple(), 1, cap + 1, officer.address, signed, sender=w.outsider)
    with reverts("EscrowDutyAboveCap", orderId=t.order_id, duty=1, allowed=0):
        w.attest(t, 2, signers=[officer], duty=1, payee=officer.address)
    assert w.order(t)[1] == 2  # milestones reached: Shipped and the first customs step


def test_duty_at_the_cap_pays_without_further_consent(w: EscrowWorld) -> None:
    t = w.open(one_customs_terms(w, max_duty_bps=500))
    w.attest(t, 0)
    cap = t.amount * 500 // BPS
    w.attest(t, 1, signers=[w.customs[0]], duty=cap, payee=w.customs[0].address)
    assert w.credit(w.usd, w.customs[0].address) == cap


def test_terms_with_bad_customs_authorities_or_duty_cap_revert(w: EscrowWorld) -> None:
    a, b, c = w.customs_orgs()
    with reverts("EscrowInvalidCustomsAuthority", index=1, orgId=a):
        w.create(w.terms(customs_authorities=(b, a, 0)))
    with reverts("EscrowInvalidCustomsAuthority", index=2, orgId=c):
        w.create(w.terms(customs_authorities=(a, 0, c)))
    with reverts("EscrowInvalidCustomsAuthority", index=0, orgId=w.org_of[w.seller.address]):
        w.create(w.terms(customs_authorities=(w.org_of[w.seller.address], a, 0)))
    with reverts("EscrowInvalidQuorum", index=1):  # a customs quorum of 2 with one authority
        w.create(w.terms(customs_authorities=(a, 0, 0)))
    with reverts("EscrowInvalidDutyCap", maxDutyBps=BPS + 1):
        w.create(w.terms(max_duty_bps=BPS + 1))


# ---- 3. tokens that charge the sender on top ---------------------------------------------------------------


def listed(w: EscrowWorld, name: str, *args: Any, currency: bytes = b"USD") -> Contract:
    token = w.chain.deploy(name, *args, sender=w.deployer)
    w.chain.transact(w.escrow.functions.allowToken(token.address, currency), sender=w.operator)
    return token


def test_fee_on_top_token_is_refused_at_the_first_mismatch_and_every_credit_stays_payable(w: EscrowWorld) -> None:
    token = listed(w, "MockFeeOnTopToken", 0)  # fee-free when listed
    t = w.open(w.terms(token=token.address))
    w.deliver(t)
    w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    chain_fee = 100  # then the token starts charging senders 1% on top
    w.chain.transact(token.functions.setFeeBps(chain_fee), sender=w.deployer)
    parties = (w.seller, w.platform, w.carrier_payee)
    owed = {p.address: w.credit(token, p.address) for p in parties}
    assert sum(owed.values()) == escrow_holdings(w, token) == t.amount

    seller_credit = owed[w.seller.address]
    with reverts("EscrowTransferMismatch", token=token.address, expected=seller_credit,
                 actual=seller_credit + seller_credit * chain_fee // BPS):
        w.send("withdraw", token.address, w.seller.address, sender=w.seller)
    # Each creditor withdraws what its credit covers with the fee; the escrow's balance always
    # covers the credits that are left.
    for party in parties:
        credit = owed[party.address]
        amount = credit * BPS // (BPS + chain_fee)
        w.send("withdrawAmount", token.address, party.address, amount, sender=party)
        assert w.balance(token, party.address) == amount
        assert w.credit(token, party.address) == credit - amount - amount * chain_fee // BPS
        remaining_credits = sum(w.credit(token, p.address) for p in parties)
        assert escrow_holdings(w, token) >= remaining_credits
    assert w.view("tokenInfo", token.address)[0] is False
    with reverts("EscrowTokenRefused", token=token.address):
        w.chain.transact(w.escrow.functions.allowToken(token.address, b"USD"), sender=w.operator)
    with reverts("EscrowTokenNotAllowed", token=token.address):
        w.create(w.terms(token=token.address, salt=2))


def test_first_fee_on_top_withdrawal_emits_token_refused(w: EscrowWorld) -> None:
    token = listed(w, "MockFeeOnTopToken", 0)
    t = w.open(w.terms(token=token.address))
    w.deliver(t)
    w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    w.chain.transact(token.functions.setFeeBps(100), sender=w.deployer)
    credit = w.credit(token, w.seller.address)
    amount = credit // 2
    receipt = w.send("withdrawAmount", token.address, w.seller.address, amount, sender=w.seller)
    (event,) = w.events(receipt, "TokenRefused")
    assert (event.args.token, event.args.sent, event.args.debited) == (token.address, amount, amount + amount // 100)


def test_withdraw_amount_beyond_the_credit_or_of_nothing_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    credit = w.credit(w.usd, w.seller.address)
    with reverts("EscrowInvalidAmount", amount=credit + 1):
        w.send("withdrawAmount", w.usd.address, w.seller.address, credit + 1, sender=w.seller)
    with reverts("EscrowNothingToWithdraw", account=w.seller.address, token=w.usd.address):
        w.send("withdrawAmount", w.usd.address, w.seller.address, 0, sender=w.seller)
    w.send("withdrawAmount", w.usd.address, w.seller.address, credit - 1, sender=w.seller)
    assert w.credit(w.usd, w.seller.address) == 1


def test_fee_on_top_charged_to_the_buyer_at_funding_leaves_the_order_whole(w: EscrowWorld) -> None:
    token = listed(w, "MockFeeOnTopToken", 100)
    t = w.terms(token=token.address)
    w.create(t)
    w.chain.transact(token.functions.mint(w.buyer.address, 2 * t.amount), sender=w.deployer)
    w.chain.transact(token.functions.approve(w.escrow.address, t.amount), sender=w.buyer)
    receipt = w.send("fund", t.as_tuple(), (b"\0\0\0", b"\0\0\0", 0, 0, 0, []), sender=w.buyer)
    (funded,) = w.events(receipt, "OrderFunded")
    assert (funded.args.due, funded.args.deposited) == (t.amount, t.amount)
    assert w.balance(token, w.buyer.address) == 2 * t.amount - t.amount - t.amount // 100


# ---- 4. FX quotes: fresh, for this order, used once; decimals fixed per order --------------------------------


def fx_terms(w: EscrowWorld, **overrides: Any) -> Any:
    return w.terms(amount=1_000 * UNIT18, price_currency=b"EUR", **overrides)


def test_fx_quote_signed_for_another_order_is_refused(w: EscrowWorld) -> None:
    first, second = fx_terms(w, salt=1), fx_terms(w, salt=2)
    w.create(first)
    w.create(second)
    quote = w.fx_quote(first, b"EUR", b"USD", 10**18)
    with reverts("EscrowInvalidSignature", signer=quote[5][0][0]):
        w.fund(second, quote)
    w.fund(first, quote)
    # Replayed on the order it was for: that order is funded once.
    with reverts("EscrowInvalidState", orderId=first.order_id, current=State.FUNDED, expected=State.CREATED):
        w.fund(first, quote)


def test_stale_future_or_overlong_fx_quotes_are_refused(w: EscrowWorld) -> None:
    t = fx_terms(w)
    w.create(t)
    now = w.now()
    stale = w.fx_quote(t, b"EUR", b"USD", 10**18, issued_at=now - 700, expires_at=now - 100)
    with reverts("EscrowFxQuoteNotValid", issuedAt=now - 700, expiresAt=now - 100):
        w.fund(t, stale)
    future = w.fx_quote(t, b"EUR", b"USD", 10**18, issued_at=now + 600, expires_at=now + 900)
    with reverts("EscrowFxQuoteNotValid", issuedAt=now + 600, expiresAt=now + 900):
        w.fund(t, future)
    overlong = w.fx_quote(t, b"EUR", b"USD", 10**18, issued_at=now - 10, expires_at=now + FX_MAX_VALIDITY)
    with reverts("EscrowFxQuoteNotValid", issuedAt=now - 10, expiresAt=now + FX_MAX_VALIDITY):
        w.fund(t, overlong)
    w.fund(t, w.fx_quote(t, b"EUR", b"USD", 10**18, issued_at=now - 10, expires_at=now - 10 + FX_MAX_VALIDITY))
    assert w.state(t) == State.FUNDED


def test_relisting_a_token_with_other_decimals_does_not_change_what_a_pending_order_owes(w: EscrowWorld) -> None:
    token = listed(w, "MockFeeOnTopToken", 0)  # 6 decimals when listed
    t = fx_terms(w, token=token.address)
    assert t.token_decimals == 6
    w.create(t)
    w.chain.transact(token.functions.setDecimals(18), sender=w.deployer)
    w.chain.transact(w.escrow.functions.allowToken(token.address, b"USD"), sender=w.operator)
    assert w.view("tokenInfo", token.address)[2] == 18
    rate = 1_085_000_000_000_000_000
    receipt = w.fund(t, w.fx_quote(t, b"EUR", b"USD", rate))
    (funded,) = w.events(receipt, "OrderFunded")
    assert funded.args.due == 1_085 * UNIT6  # at the 6 decimals of the terms
    with reverts("EscrowTokenDecimalsMismatch", token=token.address, named=6, listed=18):
        w.create(t.but(salt=7))
