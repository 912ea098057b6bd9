"""TradeEscrow's k-of-n EIP-712 attestations and the buyer's signed confirmation: replayed,
expired, wrong-domain, wrong-role, conflicted, duplicated and unsorted signatures are refused."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from node.chain.client import ChainClient
from waymark.devnet.anvil import AnvilControl
from tests.contracts.escrow_world import (
    CARRIER,
    CUSTOMS,
    DAY,
    DOMAIN_TYPE,
    TYPES,
    UNIT6,
    ZERO,
    EscrowWorld,
    State,
    Terms,
    deploy_world,
    link_account,
    schedule,
    signer_key,
)
from tests.helpers import reverts

GRANT_ROLE, REVOKE_ROLE, SUSPEND_ORGANISATION, APPROVE_CONTRACT_SIGNER = 3, 4, 1, 7


@pytest.fixture
def w(chain: ChainClient, accounts: list[LocalAccount]) -> EscrowWorld:
    return deploy_world(chain, accounts)


def registry_vote(w: EscrowWorld, kind: int, types: list[str], values: list[object]) -> None:
    w.govern(kind, abi_encode(types, values))


def submit(
    w: EscrowWorld, t: Terms, milestone: int, sigs: list[tuple[str, int, bytes]], duty: int = 0, payee: str = ZERO
) -> TxReceipt:
    return w.send("attestMilestone", t.as_tuple(), milestone, duty, payee, sigs, sender=w.outsider)


# ---- what is accepted ------------------------------------------------------------------------------


def test_anyone_may_relay_a_bundle_and_extra_signatures_are_fine(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    receipt = w.attest(t, 0, signers=w.carriers, sender=w.seller)
    assert w.events(receipt, "MilestoneReached")[0].args.milestone == 0


def test_contract_account_of_a_member_may_sign_through_erc1271(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    owner = w.carriers[2]
    wallet = w.chain.deploy("MockContractSigner", owner.address, sender=w.deployer)
    w.give_eth(owner.address)
    w.chain.transact(w.registry.functions.addAccount(wallet.address), sender=owner)
    accept = w.registry.functions.acceptAccount(w.org_of[owner.address])._encode_transaction_data()
    w.chain.transact(wallet.functions.execute(w.registry.address, accept), sender=owner)
    registry_vote(w, APPROVE_CONTRACT_SIGNER, ["uint64", "address", "address"], [w.org_of[owner.address], wallet.address, owner.address])
    w.org_of[wallet.address] = w.org_of[owner.address]
    message = {"orderId": t.order_id, "milestone": 0, "duty": 0, "dutyPayee": ZERO}
    first = w.bundle([w.carriers[0]], "MilestoneAttestation", message)
    deadline = w.deadline()
    by_wallet = (wallet.address, deadline, w.sign(owner, "MilestoneAttestation", {**message, "deadline": deadline}))
    submit(w, t, 0, first + [by_wallet])
    assert w.order(t)[1] == 1


def test_digest_view_matches_eip712_hashing_off_chain(w: EscrowWorld) -> None:
    """The domain half of every digest; the type half (each typehash) is held to the same
    strings by every test whose signatures, made off chain, the contract accepts."""

    def typed(primary: str, message: dict[str, Any]) -> Any:
        full = {
            "types": {"EIP712Domain": DOMAIN_TYPE, primary: TYPES[primary]},
            "primaryType": primary,
            "domain": w.domain(),
            "message": message,
        }
        return encode_typed_data(full_message=copy.deepcopy(full))

    payee = w.customs[0].address
    for primary, message in (
        ("MilestoneAttestation", {"orderId": 7, "milestone": 1, "duty": 5, "dutyPayee": payee, "deadline": 99}),
        ("CustomsReturn", {"orderId": 7, "milestone": 1, "deadline": 99}),
        ("DeliveryConfirmation", {"orderId": 7, "deadline": 99}),
        ("FxRate", {"orderId": 7, "base": b"EUR", "quote": b"USD", "rate": 3, "issuedAt": 4, "expiresAt": 5,
                    "deadline": 99}),
    ):
        signable = typed(primary, message)
        assert w.view("typedDataDigest", signable.body) == bytes(_hash_eip191_message(signable))
    fields, name, version, chain_id, contract, _, _ = w.view("eip712Domain")
    assert (name, version, chain_id, contract) == ("Waymark Escrow", "1", w.chain.chain_id, w.escrow.address)


# ---- replay ------------------------------------------------------------------------------------------


def test_replayed_bundle_for_a_reached_milestone_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    sigs = w.milestone_bundle(t, 0, w.carriers[:2])
    submit(w, t, 0, sigs)
    with reverts("EscrowMilestoneAlreadyReached", orderId=t.order_id, milestone=0):
        submit(w, t, 0, sigs)


def test_bundle_for_one_order_does_not_work_for_another(w: EscrowWorld) -> None:
    a = w.open(w.terms(salt=1))
    b = w.open(w.terms(salt=2))
    sigs = w.milestone_bundle(a, 0, w.carriers[:2])
    first = min(w.carriers[:2], key=lambda k: w.org_of[k.address])
    with reverts("EscrowInvalidSignature", signer=first.address):
        submit(w, b, 0, sigs)


def test_bundle_for_one_milestone_does_not_work_for_the_next(w: EscrowWorld) -> None:
    t = w.open(w.terms(milestones=schedule(0, 5000, 5000)))
    w.attest(t, 0)
    sigs = w.milestone_bundle(t, 0, w.customs[:2])
    with reverts("EscrowInvalidSignature"):
        submit(w, t, 1, sigs)


def test_milestones_must_be_reached_in_order(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowMilestoneNotNext", orderId=t.order_id, milestone=1, next=0):
        w.attest(t, 1)
    with reverts("EscrowMilestoneNotNext", milestone=9, next=0):
        submit(w, t, 9, [])


def test_attestation_reverts_once_every_milestone_is_reached(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    with reverts("EscrowInvalidState", current=State.DELIVERED, expected=State.FUNDED):
        w.attest(t, 2)


def test_attestation_reverts_before_funding(w: EscrowWorld) -> None:
    t = w.terms()
    w.create(t)
    with reverts("EscrowInvalidState", current=State.CREATED, expected=State.FUNDED):
        w.attest(t, 0)


# ---- expiry and deadlines ------------------------------------------------------------------------------


def test_expired_signature_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    past = w.now() - 1
    sigs = w.milestone_bundle(t, 0, w.carriers[:2], deadline=past)
    with reverts("EscrowSignatureExpired", signer=sigs[0][0], deadline=past):
        submit(w, t, 0, sigs)


def test_shipped_after_ship_by_reverts(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms())
    devnet.increase_time(t.ship_by - w.now() + 1)
    with reverts("EscrowDeadlinePassed", orderId=t.order_id, deadline=t.ship_by):
        w.attest(t, 0, deadline=w.now() + DAY)


def test_delivered_after_deliver_by_reverts(w: EscrowWorld, devnet: AnvilControl) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    w.attest(t, 1)
    devnet.increase_time(t.deliver_by - w.now() + 1)
    with reverts("EscrowDeadlinePassed", orderId=t.order_id, deadline=t.deliver_by):
        w.attest(t, 2, deadline=w.now() + DAY)


# ---- domain and message ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain",
    [{"chainId": 1}, {"name": "Waymark"}, {"version": "2"}, {"verifyingContract": "0x" + "12" * 20}],
    ids=["chain-id", "name", "version", "contract"],
)
def test_signature_from_another_domain_reverts(w: EscrowWorld, domain: dict[str, Any]) -> None:
    t = w.open(w.terms())
    sigs = w.milestone_bundle(t, 0, w.carriers[:2], **domain)
    with reverts("EscrowInvalidSignature", signer=sigs[0][0]):
        submit(w, t, 0, sigs)


def test_signature_claimed_for_another_signer_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    sigs = w.milestone_bundle(t, 0, w.carriers[:2])
    forged = [(sigs[0][0], sigs[0][1], sigs[1][2]), sigs[1]]
    with reverts("EscrowInvalidSignature", signer=sigs[0][0]):
        submit(w, t, 0, forged)


def test_customs_signers_must_agree_on_the_duty(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    payee = w.customs[0].address
    a = w.milestone_bundle(t, 1, [w.customs[0]], duty=10 * UNIT6, payee=payee)
    b = w.milestone_bundle(t, 1, [w.customs[1]], duty=20 * UNIT6, payee=payee)
    with reverts("EscrowInvalidSignature", signer=w.customs[1].address):
        submit(w, t, 1, a + b, duty=10 * UNIT6, payee=payee)


def test_duty_on_a_milestone_other_than_customs_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowNotCustomsMilestone", orderId=t.order_id, milestone=0):
        w.attest(t, 0, duty=1, payee=w.customs[0].address)


def test_duty_without_payee_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    with reverts("EscrowInvalidDutyPayee", payee=ZERO):
        w.attest(t, 1, duty=1, payee=ZERO)


# ---- quorum, roles, conflicts, ordering --------------------------------------------------------------------


def test_too_few_signatures_revert(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowQuorumNotMet", provided=1, required=2):
        w.attest(t, 0, signers=w.carriers[:1])


def test_signer_with_the_wrong_role_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    signers = [w.carriers[0], w.customs[0]]
    with reverts("EscrowMissingRole", account=w.customs[0].address, role=CARRIER):
        w.attest(t, 0, signers=signers)


def test_customs_milestone_needs_customs_role(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    with reverts("EscrowMissingRole", role=CUSTOMS):
        w.attest(t, 1, signers=w.carriers[:2])


def test_signer_outside_the_consortium_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    stranger = signer_key("stranger")
    with reverts("EscrowMissingRole", account=stranger.address, role=CARRIER):
        w.attest(t, 0, signers=[w.carriers[0], stranger], sort=False)


def test_signer_whose_role_was_revoked_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    registry_vote(w, REVOKE_ROLE, ["uint64", "bytes32"], [w.org_of[w.carriers[1].address], CARRIER])
    with reverts("EscrowMissingRole", account=w.carriers[1].address, role=CARRIER):
        w.attest(t, 0, signers=w.carriers[:2])


def test_signer_of_a_suspended_organisation_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    registry_vote(w, SUSPEND_ORGANISATION, ["uint64"], [w.org_of[w.carriers[0].address]])
    with reverts("EscrowMissingRole", account=w.carriers[0].address):
        w.attest(t, 0, signers=w.carriers[:2])


def test_signer_of_the_sellers_organisation_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    with reverts("EscrowConflictOfInterest", orderId=t.order_id, account=w.seller_org_signer.address):
        w.attest(t, 0, signers=[w.seller_org_signer, w.carriers[0]])


def make_buyer_a_member_of(w: EscrowWorld, member: LocalAccount) -> None:
    w.give_eth(member.address)
    link_account(w.chain, w.registry, w.buyer, member, w.deployer)


def test_signer_of_the_buyers_organisation_may_attest_what_only_pays_the_seller(w: EscrowWorld) -> None:
    make_buyer_a_member_of(w, w.carriers[2])
    t = w.open(w.terms())
    w.attest(t, 0, signers=[w.carriers[0], w.carriers[2]])
    assert w.order(t)[1] == 1


def other_customs(w: EscrowWorld, *excluded: LocalAccount) -> tuple[int, int, int]:
    """The world's customs organisations but those of `excluded`, as customs authorities."""
    left = sorted(w.org_of[a.address] for a in w.customs if a not in excluded)
    return cast(tuple[int, int, int], tuple(left + [0] * (3 - len(left))))


def test_terms_naming_the_buyers_organisation_as_customs_authority_revert(w: EscrowWorld) -> None:
    make_buyer_a_member_of(w, w.customs[1])
    t = w.terms()
    with reverts("EscrowInvalidCustomsAuthority", index=1, orgId=w.org_of[w.customs[1].address]):
        w.create(t)


def test_signer_of_the_buyers_organisation_cannot_attest_a_duty(w: EscrowWorld) -> None:
    """Behind the authority check: a customs signer of the buyer's organisation is refused as
    a conflict even before it is found not to be one of the order's authorities."""
    make_buyer_a_member_of(w, w.customs[1])
    t = w.open(w.terms(customs_authorities=other_customs(w, w.customs[1])))
    w.attest(t, 0)
    with reverts("EscrowConflictOfInterest", orderId=t.order_id, account=w.customs[1].address):
        w.attest(t, 1, signers=w.customs[:2], duty=UNIT6, payee=w.customs[0].address)


def test_signer_of_the_buyers_organisation_cannot_return_goods(w: EscrowWorld) -> None:
    make_buyer_a_member_of(w, w.customs[0])
    t = w.open(w.terms(customs_authorities=other_customs(w, w.customs[0])))
    w.attest(t, 0)
    with reverts("EscrowConflictOfInterest", orderId=t.order_id, account=w.customs[0].address):
        w.customs_return(t, 1, signers=w.customs[:2])


def test_signer_of_the_sellers_organisation_cannot_return_goods_either(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.attest(t, 0)
    # The seller's organisation holds CUSTOMS as well in this test.
    registry_vote(w, GRANT_ROLE, ["uint64", "bytes32"], [w.org_of[w.seller.address], CUSTOMS])
    with reverts("EscrowConflictOfInterest", orderId=t.order_id, account=w.seller_org_signer.address):
        w.customs_return(t, 1, signers=[w.seller_org_signer, w.customs[0]])


def test_the_same_signer_twice_counts_once_and_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    signer = w.carriers[0]
    org = w.org_of[signer.address]
    with reverts("EscrowSignersUnsorted", signer=signer.address, orgId=org, previousOrgId=org):
        w.attest(t, 0, signers=[signer, signer])


def test_two_accounts_of_one_organisation_count_once_and_revert(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    first = w.carriers[0]
    colleague = signer_key("carrier0-colleague")
    w.give_eth(first.address)
    link_account(w.chain, w.registry, colleague, first, w.deployer)
    w.org_of[colleague.address] = w.org_of[first.address]
    with reverts("EscrowSignersUnsorted", signer=colleague.address, orgId=w.org_of[first.address]):
        w.attest(t, 0, signers=[first, colleague], sort=False)


def test_signers_out_of_organisation_order_revert(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    low, high = w.carriers[0], w.carriers[1]
    with reverts(
        "EscrowSignersUnsorted", signer=low.address, orgId=w.org_of[low.address], previousOrgId=w.org_of[high.address]
    ):
        w.attest(t, 0, signers=[high, low], sort=False)


# ---- buyer confirmation by signature ------------------------------------------------------------------------


def test_expired_confirmation_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    deadline, signature = w.confirmation(t, deadline=w.now() - 1)
    with reverts("EscrowSignatureExpired", signer=w.buyer.address, deadline=deadline):
        w.send("confirmDeliveryBySig", t.as_tuple(), deadline, signature, sender=w.outsider)


def test_confirmation_signed_by_someone_else_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    deadline, signature = w.confirmation(t, key=w.seller)
    with reverts("EscrowInvalidSignature", signer=w.buyer.address):
        w.send("confirmDeliveryBySig", t.as_tuple(), deadline, signature, sender=w.seller)


def test_confirmation_from_another_domain_reverts(w: EscrowWorld) -> None:
    t = w.open(w.terms())
    w.deliver(t)
    deadline, signature = w.confirmation(t, chainId=1)
    with reverts("EscrowInvalidSignature", signer=w.buyer.address):
        w.send("confirmDeliveryBySig", t.as_tuple(), deadline, signature, sender=w.outsider)
