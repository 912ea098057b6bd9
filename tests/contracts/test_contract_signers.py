"""ERC-1271 contract signers in TradeEscrow, as a hostile member would use them: one key must
never count for two organisations, and a permissive wallet must let nobody else sign. A member's
contract account counts only where governance approved it, with its approved key's signature."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.types import TxReceipt

from node.chain.client import ChainClient
from tests.contracts.escrow_world import ZERO, EscrowWorld, Terms, deploy_world, signer_key
from tests.helpers import reverts

APPROVE_CONTRACT_SIGNER = 7


@pytest.fixture
def w(chain: ChainClient, accounts: list[LocalAccount]) -> EscrowWorld:
    return deploy_world(chain, accounts)


def linked_wallet(w: EscrowWorld, owner: LocalAccount, member: LocalAccount) -> Contract:
    """A wallet `owner` controls, offered by `member`'s organisation and accepted by the wallet itself."""
    wallet = w.chain.deploy("MockContractSigner", owner.address, sender=w.deployer)
    for account in (owner, member):
        if w.chain.w3.eth.get_balance(account.address) == 0:
            w.give_eth(account.address)
    org = w.org_of[member.address]
    w.chain.transact(w.registry.functions.addAccount(wallet.address), sender=member)
    accept = w.registry.functions.acceptAccount(org)._encode_transaction_data()
    w.chain.transact(wallet.functions.execute(w.registry.address, accept), sender=owner)
    w.org_of[wallet.address] = org
    return wallet


def approve(w: EscrowWorld, org: int, wallet: str, key: str, proposer: LocalAccount) -> TxReceipt:
    data = abi_encode(["uint64", "address", "address"], [org, wallet, key])
    return w.govern(APPROVE_CONTRACT_SIGNER, data, proposer)


def shipped(w: EscrowWorld, t: Terms, first: LocalAccount, wallet: str, signed_by: LocalAccount | None, raw: bytes = b"") -> TxReceipt:
    """Milestone 0 attested by `first` (an EOA) and by `wallet` with `signed_by`'s signature (or `raw`)."""
    message = {"orderId": t.order_id, "milestone": 0, "duty": 0, "dutyPayee": ZERO}
    deadline = w.deadline()
    own = (first.address, deadline, w.sign(first, "MilestoneAttestation", {**message, "deadline": deadline}))
    by_wallet = (wallet, deadline, raw or w.sign(signed_by or first, "MilestoneAttestation", {**message, "deadline": deadline}))
    sigs = sorted([own, by_wallet], key=lambda s: w.org_of[s[0]])
    return w.send("attestMilestone", t.as_tuple(), 0, 0, ZERO, sigs, sender=w.outsider)


def test_one_key_cannot_count_for_two_organisations_through_a_wallet(w: EscrowWorld) -> None:
    # The key of carrier 0 also controls a wallet that carrier 1's organisation (the accomplice) links.
    key, accomplice = w.carriers[0], w.carriers[1]
    wallet = linked_wallet(w, key, accomplice)
    t = w.open(w.terms())
    with reverts("RegistryAccountNotInOrganisation", account=key.address, orgId=w.org_of[accomplice.address]):
        approve(w, w.org_of[accomplice.address], wallet.address, key.address, accomplice)
    # One signature by the key, once as itself and once through the wallet: the wallet does not count.
    with reverts("EscrowInvalidSignature", signer=wallet.address):
        shipped(w, t, key, wallet.address, key)
    assert w.order(t)[1] == 0


def test_permissive_wallet_lets_nobody_else_sign_for_its_organisation(w: EscrowWorld) -> None:
    owner = w.carriers[1]
    wallet = linked_wallet(w, owner, owner)
    approve(w, w.org_of[owner.address], wallet.address, owner.address, w.operator)
    w.chain.transact(wallet.functions.setPermissive(True), sender=owner)
    t = w.open(w.terms())
    thief = signer_key("thief")
    with reverts("EscrowInvalidSignature", signer=wallet.address):
        shipped(w, t, w.carriers[0], wallet.address, thief)
    with reverts("EscrowInvalidSignature", signer=wallet.address):
        shipped(w, t, w.carriers[0], wallet.address, None, raw=b"\x01" * 65)
    assert w.order(t)[1] == 0
    # The approved key's own signature still counts through the wallet.
    shipped(w, t, w.carriers[0], wallet.address, owner)
    assert w.order(t)[1] == 1


def test_wallet_of_a_member_counts_only_once_governance_approved_it(w: EscrowWorld) -> None:
    owner = w.carriers[2]
    wallet = linked_wallet(w, owner, owner)
    t = w.open(w.terms())
    with reverts("EscrowInvalidSignature", signer=wallet.address):
        shipped(w, t, w.carriers[0], wallet.address, owner)
    approve(w, w.org_of[owner.address], wallet.address, owner.address, w.operator)
    assert w.chain.call(w.registry.functions.contractSignerKey(wallet.address)) == owner.address
    shipped(w, t, w.carriers[0], wallet.address, owner)
    assert w.order(t)[1] == 1
