"""The checks a posted signature passes before the relayer stores it (each as the escrow
contract will check it, so that an oracle learns of a bad signature while it can still act):
the milestone exists and takes what is signed, the signature is the signer's (ECDSA, or
ERC-1271 for a contract account), the signer gains nothing from it, a duty goes to a customs
authority's account within the order's cap."""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from node.escrow.client import EscrowClient
from node.escrow.signing import (
    BadSignature,
    customs_return_digest,
    customs_return_document,
    milestone_digest,
    milestone_document,
    recover_signer,
)
from node.escrow.terms import Milestone, MilestoneKind, Order, OrderTerms
from node.relayer.errors import (
    DutyAboveCap,
    DutyWithoutPayee,
    InvalidDutyPayee,
    NoSuchMilestone,
    NotCustomsAuthority,
    SignatureMismatch,
    SignerConflict,
    WrongMilestoneKind,
)
from node.relayer.model import Kind, SignatureIn

ERC1271_MAGIC = bytes.fromhex("1626ba7e")
ERC1271_ABI = [{
    "type": "function", "name": "isValidSignature", "stateMutability": "view",
    "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
    "outputs": [{"name": "", "type": "bytes4"}],
}]


def milestone_of(terms: OrderTerms, sig: SignatureIn) -> Milestone:
    """The order's milestone the signature is for, if it takes this kind of signature (and duty)."""
    count = len(terms.milestones)
    if not 0 <= sig.milestone < count:
        raise NoSuchMilestone(terms.order_id, sig.milestone, count)
    step = terms.milestones[sig.milestone]
    if sig.kind is Kind.CUSTOMS_RETURN and step.kind is not MilestoneKind.CUSTOMS_CLEARED:
        raise WrongMilestoneKind(sig.milestone, step.kind, "customs returns")
    if sig.duty != 0:
        if step.kind is not MilestoneKind.CUSTOMS_CLEARED:
            raise WrongMilestoneKind(sig.milestone, step.kind, "a duty")
        if int(sig.duty_payee, 16) == 0:
            raise DutyWithoutPayee(sig.duty)
    return step


def check_signature(escrow: EscrowClient, sig: SignatureIn, signer: str) -> None:
    """SignatureMismatch unless `signer` signed exactly this order, milestone, duty and deadline."""
    domain = escrow.domain
    if sig.kind is Kind.MILESTONE:
        document = milestone_document(domain, sig.order_id, sig.milestone, sig.duty, sig.duty_payee, sig.deadline)
    else:
        document = customs_return_document(domain, sig.order_id, sig.milestone, sig.deadline)
    try:
        recovered: str | None = recover_signer(document, sig.signature)
    except BadSignature:
        recovered = None
    if recovered == signer:
        return
    w3 = escrow.client.w3
    if w3.eth.get_code(signer):  # type: ignore[arg-type]
        # As the contract: a member's contract account counts only where governance approved
        # it, and only with its approved key's own signature (so one key never counts twice).
        if escrow.organisation_of(signer) != 0:
            key = escrow.client.call(escrow.registry.functions.contractSignerKey(signer))
            if int(str(key), 16) == 0 or recovered is None or recovered.lower() != str(key).lower():
                raise SignatureMismatch(signer, "it is not signed by the key governance approved for this contract account")
        if sig.kind is Kind.MILESTONE:
            digest = milestone_digest(domain, sig.order_id, sig.milestone, sig.duty, sig.duty_payee, sig.deadline)
        else:
            digest = customs_return_digest(domain, sig.order_id, sig.milestone, sig.deadline)
        wallet = w3.eth.contract(address=signer, abi=ERC1271_ABI)  # type: ignore[call-overload]
        try:
            if bytes(wallet.functions.isValidSignature(digest, sig.signature).call()) == ERC1271_MAGIC:
                return
        except Exception:  # noqa: BLE001 - any failure of the wallet's check means "not valid"
            pass
        raise SignatureMismatch(signer, "the signer contract does not accept it (ERC-1271)")
    detail = "it cannot be recovered" if recovered is None else f"it recovers to {recovered}"
    raise SignatureMismatch(signer, detail)


def check_signer_organisation(terms: OrderTerms, step: Milestone, sig: SignatureIn, signer: str, org: int) -> None:
    """As the contract: the seller gains from every milestone; the buyer from a duty's payee
    choice and from a customs return (their organisations are those fixed in the terms); a
    customs clearance is signed by one of the order's customs authorities."""
    parties = [("seller", terms.seller_org)]
    if sig.duty != 0 or sig.kind is Kind.CUSTOMS_RETURN:
        parties.append(("buyer", terms.buyer_org))
    for name, party_org in parties:
        if party_org == org:
            raise SignerConflict(signer, name)
    if step.kind is MilestoneKind.CUSTOMS_CLEARED and org not in terms.customs_authorities:
        raise NotCustomsAuthority(signer, org)


def check_duty(escrow: EscrowClient, terms: OrderTerms, order: Order, sig: SignatureIn) -> None:
    """As the contract: the payee is an account of a customs authority of the order, and the
    duty is within what the order's cap leaves after its earlier duties (a larger one needs the
    buyer, not the relayer)."""
    payee = to_checksum_address(sig.duty_payee)
    if payee in (escrow.address, terms.buyer, terms.seller) or \
            escrow.organisation_of(payee) not in [a for a in terms.customs_authorities if a]:
        raise InvalidDutyPayee(payee)
    allowed = escrow.duty_allowance(terms, order)
    if sig.duty > allowed:
        raise DutyAboveCap(sig.duty, allowed)
