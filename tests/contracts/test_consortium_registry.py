"""ConsortiumRegistry against a real Anvil: membership and roles change only by m-of-n votes,
and role history answers "did this account hold this role at that time"."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from node.chain.client import ChainClient
from node.devnet.anvil import AnvilControl
from tests.helpers import reverts

ZERO_ADDRESS = "0x" + "00" * 20
VOTING_PERIOD = 7 * 24 * 3600


def role(name: str) -> bytes:
    return keccak(text=name)


MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS, ORACLE, ARBITRATOR, AUDITOR, OPERATOR = (
    role(n)
    for n in ("MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE", "ARBITRATOR", "AUDITOR", "OPERATOR")
)
UNKNOWN_ROLE = role("JANITOR")


class Kind(IntEnum):
    ADMIT = 0
    SUSPEND = 1
    REINSTATE = 2
    GRANT = 3
    REVOKE = 4
    THRESHOLD = 5


class Status(IntEnum):
    NONE = 0
    ACTIVE = 1
    SUSPENDED = 2


ARG_TYPES: dict[Kind, list[str]] = {
    Kind.ADMIT: ["string", "bytes2", "bytes32", "address", "bytes32[]"],
    Kind.SUSPEND: ["uint64"],
    Kind.REINSTATE: ["uint64"],
    Kind.GRANT: ["uint64", "bytes32"],
    Kind.REVOKE: ["uint64", "bytes32"],
    Kind.THRESHOLD: ["uint256"],
}


def encode(kind: Kind, *args: Any) -> bytes:
    return abi_encode(ARG_TYPES[kind], list(args))


def founder(name: str, country: bytes, account: LocalAccount, roles: list[bytes]) -> tuple[Any, ...]:
    return (name, country, keccak(text=f"meta:{name}"), account.address, roles)


@dataclass
class Consortium:
    """Four founders (org ids 1..4), threshold 2. members[i] is the first account of org i + 1."""

    chain: ChainClient
    registry: Contract
    members: list[LocalAccount]
    outsiders: list[LocalAccount]
    deployer: LocalAccount
    deployed_at: int

    def propose_raw(self, sender: LocalAccount, kind: Kind, data: bytes) -> tuple[int, TxReceipt]:
        receipt = self.chain.transact(self.registry.functions.propose(int(kind), data), sender=sender)
        (created,) = self.registry.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)
        return int(created.args.proposalId), receipt

    def propose(self, sender: LocalAccount, kind: Kind, *args: Any) -> int:
        return self.propose_raw(sender, kind, encode(kind, *args))[0]

    def vote(self, sender: LocalAccount, proposal_id: int) -> TxReceipt:
        return self.chain.transact(self.registry.functions.vote(proposal_id), sender=sender)

    def pass_proposal(self, kind: Kind, *args: Any, by: tuple[int, int] = (0, 1)) -> TxReceipt:
        """Propose by one member and vote by another: with threshold 2 the vote executes it."""
        proposal_id = self.propose(self.members[by[0]], kind, *args)
        return self.vote(self.members[by[1]], proposal_id)

    def view(self, name: str, *args: Any) -> Any:
        return self.chain.call(getattr(self.registry.functions, name)(*args))

    def send(self, fn: str, *args: Any, sender: LocalAccount) -> TxReceipt:
        return self.chain.transact(getattr(self.registry.functions, fn)(*args), sender=sender)

    def events(self, receipt: TxReceipt, name: str) -> list[Any]:
        return list(getattr(self.registry.events, name)().process_receipt(receipt, errors=DISCARD))

    def block_time(self, receipt: TxReceipt) -> int:
        return int(self.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def deploy_registry(chain: ChainClient, deployer: LocalAccount, founders: list[Any], threshold: int) -> TxReceipt:
    return chain.deploy_receipt("ConsortiumRegistry", founders, threshold, sender=deployer)


@pytest.fixture
def c(chain: ChainClient, accounts: list[LocalAccount]) -> Consortium:
    members = accounts[1:5]
    founders = [
        founder("Lumen Ceramics Co.", b"VN", members[0], [MANUFACTURER, ORACLE]),
        founder("Meridian Inspection Services", b"SG", members[1], [INSPECTOR]),
        founder("Bluewater Ocean Freight", b"SG", members[2], [CARRIER]),
        founder("Fjord Assurance AS", b"NO", members[3], [AUDITOR]),
    ]
    receipt = deploy_registry(chain, accounts[0], founders, 2)
    registry = chain.contract("ConsortiumRegistry", str(receipt["contractAddress"]))
    consortium = Consortium(chain, registry, members, accounts[5:], accounts[0], 0)
    consortium.deployed_at = consortium.block_time(receipt)
    return consortium


# ---- construction ---------------------------------------------------------------------------


def test_constructor_admits_founders_active_with_their_roles_and_accounts(c: Consortium) -> None:
    assert c.view("organisationCount") == 4
    assert c.view("activeMemberCount") == 4
    assert c.view("threshold") == 2
    org = c.view("organisation", 1)
    assert org == (1, "Lumen Ceramics Co.", b"VN", keccak(text="meta:Lumen Ceramics Co."), Status.ACTIVE)
    assert set(c.view("rolesOf", 1)) == {MANUFACTURER, ORACLE}
    assert c.view("accountsOf", 1) == [c.members[0].address]
    assert c.view("organisationOf", c.members[2].address) == 3
    assert c.view("hasRole", c.members[0].address, MANUFACTURER)
    assert not c.view("hasRole", c.members[1].address, MANUFACTURER)
    assert c.view("orgHasRole", 2, INSPECTOR)


def test_constructor_emits_what_the_indexer_mirrors(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    receipt = deploy_registry(chain, accounts[0], [founder("Solo Works", b"DE", accounts[1], [CUSTOMS])], 1)
    registry = chain.contract("ConsortiumRegistry", str(receipt["contractAddress"]))
    (admitted,) = registry.events.OrganisationAdmitted().process_receipt(receipt, errors=DISCARD)
    assert admitted.args.orgId == 1 and admitted.args.firstAccount == accounts[1].address
    (granted,) = registry.events.RoleGranted().process_receipt(receipt, errors=DISCARD)
    assert granted.args.role == CUSTOMS
    (added,) = registry.events.AccountAdded().process_receipt(receipt, errors=DISCARD)
    assert added.args.account == accounts[1].address and added.args.addedBy == ZERO_ADDRESS
    (changed,) = registry.events.ThresholdChanged().process_receipt(receipt, errors=DISCARD)
    assert (changed.args.oldThreshold, changed.args.newThreshold) == (0, 1)


def test_role_ids_are_keccak_of_their_names(c: Consortium) -> None:
    for name in ("MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE", "ARBITRATOR", "AUDITOR", "OPERATOR"):
        assert c.view(f"{name}_ROLE") == role(name)
    assert c.view("VOTING_PERIOD") == VOTING_PERIOD


def test_constructor_reverts_when_threshold_is_zero(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    with reverts("RegistryInvalidThreshold", threshold=0, activeMembers=1):
        deploy_registry(chain, accounts[0], [founder("A", b"DE", accounts[1], [])], 0)


def test_constructor_reverts_when_threshold_exceeds_founders(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    with reverts("RegistryInvalidThreshold", threshold=2, activeMembers=1):
        deploy_registry(chain, accounts[0], [founder("A", b"DE", accounts[1], [])], 2)


def test_constructor_reverts_when_founders_share_an_account(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    founders = [founder("A", b"DE", accounts[1], []), founder("B", b"FR", accounts[1], [])]
    with reverts("RegistryAccountTaken", account=accounts[1].address, orgId=1):
        deploy_registry(chain, accounts[0], founders, 1)


def test_constructor_reverts_when_founder_country_is_invalid(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    with reverts("RegistryInvalidCountry", country=b"de"):
        deploy_registry(chain, accounts[0], [founder("A", b"de", accounts[1], [])], 1)


def test_deployer_has_no_privilege(c: Consortium) -> None:
    with reverts("RegistryNotActiveMember", account=c.deployer.address):
        c.propose(c.deployer, Kind.THRESHOLD, 1)
    with reverts("RegistryNotActiveMember", account=c.deployer.address):
        c.send("addAccount", c.outsiders[0].address, sender=c.deployer)


# ---- proposals and votes ----------------------------------------------------------------------


def test_proposal_below_threshold_does_nothing(c: Consortium) -> None:
    proposal_id = c.propose(c.members[1], Kind.GRANT, 1, CUSTOMS)
    assert not c.view("orgHasRole", 1, CUSTOMS)
    kind, proposer_org, votes, created, deadline, executed, data = c.view("proposal", proposal_id)
    assert (kind, proposer_org, votes, executed) == (Kind.GRANT, 2, 1, False)
    assert deadline == created + VOTING_PERIOD
    assert data == encode(Kind.GRANT, 1, CUSTOMS)
    assert c.view("hasVoted", proposal_id, 2) and not c.view("hasVoted", proposal_id, 3)


def test_proposal_executes_in_the_vote_that_reaches_threshold(c: Consortium) -> None:
    proposal_id = c.propose(c.members[1], Kind.GRANT, 1, CUSTOMS)
    receipt = c.vote(c.members[2], proposal_id)
    assert c.view("orgHasRole", 1, CUSTOMS)
    assert c.view("hasRole", c.members[0].address, CUSTOMS)
    assert c.view("proposal", proposal_id)[5] is True
    (voted,) = c.events(receipt, "Voted")
    assert (voted.args.orgId, voted.args.voter, voted.args.votes) == (3, c.members[2].address, 2)
    (granted,) = c.events(receipt, "RoleGranted")
    assert (granted.args.orgId, granted.args.role) == (1, CUSTOMS)
    (executed,) = c.events(receipt, "ProposalExecuted")
    assert (executed.args.proposalId, executed.args.kind) == (proposal_id, Kind.GRANT)


def test_threshold_of_one_executes_inside_propose(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    receipt = deploy_registry(chain, accounts[0], [founder("Solo Works", b"DE", accounts[1], [])], 1)
    registry = chain.contract("ConsortiumRegistry", str(receipt["contractAddress"]))
    chain.transact(registry.functions.propose(Kind.GRANT, encode(Kind.GRANT, 1, OPERATOR)), sender=accounts[1])
    assert registry.functions.orgHasRole(1, OPERATOR).call()


def test_admit_organisation_by_vote(c: Consortium) -> None:
    newcomer = c.outsiders[0]
    meta = keccak(text="meta:Rotterdam")
    receipt = c.pass_proposal(Kind.ADMIT, "Customs Office Rotterdam", b"NL", meta, newcomer.address, [CUSTOMS, ORACLE])
    assert c.view("organisationCount") == 5
    assert c.view("activeMemberCount") == 5
    assert c.view("organisation", 5) == (5, "Customs Office Rotterdam", b"NL", meta, Status.ACTIVE)
    assert c.view("organisationOf", newcomer.address) == 5
    assert set(c.view("rolesOf", 5)) == {CUSTOMS, ORACLE}
    assert c.view("hasRole", newcomer.address, CUSTOMS)
    (admitted,) = c.events(receipt, "OrganisationAdmitted")
    assert (admitted.args.orgId, admitted.args.name, admitted.args.country) == (5, "Customs Office Rotterdam", b"NL")
    assert len(c.events(receipt, "RoleGranted")) == 2
    # The newcomer is a voting member straight away.
    proposal_id = c.propose(newcomer, Kind.THRESHOLD, 3)
    c.vote(c.members[0], proposal_id)
    assert c.view("threshold") == 3


def test_suspend_and_reinstate_by_vote(c: Consortium) -> None:
    receipt = c.pass_proposal(Kind.SUSPEND, 4)
    assert c.view("organisation", 4)[4] == Status.SUSPENDED
    assert c.view("activeMemberCount") == 3
    assert not c.view("hasRole", c.members[3].address, AUDITOR)
    assert c.view("orgHasRole", 4, AUDITOR)  # the role stays with the organisation
    (changed,) = c.events(receipt, "OrganisationStatusChanged")
    assert (changed.args.orgId, changed.args.status) == (4, Status.SUSPENDED)

    c.pass_proposal(Kind.REINSTATE, 4)
    assert c.view("organisation", 4)[4] == Status.ACTIVE
    assert c.view("activeMemberCount") == 4
    assert c.view("hasRole", c.members[3].address, AUDITOR)


def test_change_threshold_by_vote(c: Consortium) -> None:
    receipt = c.pass_proposal(Kind.THRESHOLD, 4)
    assert c.view("threshold") == 4
    (changed,) = c.events(receipt, "ThresholdChanged")
    assert (changed.args.oldThreshold, changed.args.newThreshold) == (2, 4)
    # Now three votes do nothing and the fourth executes.
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    c.vote(c.members[1], proposal_id)
    c.vote(c.members[2], proposal_id)
    assert not c.view("orgHasRole", 2, ORACLE)
    c.vote(c.members[3], proposal_id)
    assert c.view("orgHasRole", 2, ORACLE)


def test_revoke_role_by_vote(c: Consortium) -> None:
    receipt = c.pass_proposal(Kind.REVOKE, 1, ORACLE, by=(1, 2))
    assert set(c.view("rolesOf", 1)) == {MANUFACTURER}
    (revoked,) = c.events(receipt, "RoleRevoked")
    assert (revoked.args.orgId, revoked.args.role) == (1, ORACLE)


def test_execute_runs_a_proposal_that_has_enough_votes_after_threshold_was_lowered(c: Consortium) -> None:
    c.pass_proposal(Kind.THRESHOLD, 4)
    waiting = c.propose(c.members[0], Kind.GRANT, 3, ORACLE)
    c.vote(c.members[1], waiting)
    c.vote(c.members[2], waiting)  # 3 of 4: waits
    lower = c.propose(c.members[0], Kind.THRESHOLD, 2)
    c.vote(c.members[1], lower)
    c.vote(c.members[2], lower)
    c.vote(c.members[3], lower)
    assert c.view("threshold") == 2 and not c.view("orgHasRole", 3, ORACLE)
    c.send("execute", waiting, sender=c.members[3])
    assert c.view("orgHasRole", 3, ORACLE)


def test_execute_reverts_when_votes_are_below_threshold(c: Consortium) -> None:
    proposal_id = c.propose(c.members[0], Kind.GRANT, 3, ORACLE)
    with reverts("RegistryBelowThreshold", proposalId=proposal_id, votes=1, threshold=2):
        c.send("execute", proposal_id, sender=c.members[1])


def test_propose_reverts_when_caller_is_not_a_member(c: Consortium) -> None:
    with reverts("RegistryNotActiveMember", account=c.outsiders[0].address):
        c.propose(c.outsiders[0], Kind.GRANT, 1, CUSTOMS)


def test_propose_reverts_when_member_is_suspended(c: Consortium) -> None:
    c.pass_proposal(Kind.SUSPEND, 4)
    with reverts("RegistryNotActiveMember", account=c.members[3].address):
        c.propose(c.members[3], Kind.GRANT, 1, CUSTOMS)


def test_vote_reverts_when_member_is_suspended(c: Consortium) -> None:
    c.pass_proposal(Kind.SUSPEND, 4)
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    with reverts("RegistryNotActiveMember", account=c.members[3].address):
        c.vote(c.members[3], proposal_id)


def test_vote_reverts_when_caller_is_not_a_member(c: Consortium) -> None:
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    with reverts("RegistryNotActiveMember", account=c.outsiders[0].address):
        c.vote(c.outsiders[0], proposal_id)


def test_vote_reverts_when_organisation_already_voted(c: Consortium) -> None:
    c.pass_proposal(Kind.THRESHOLD, 3)
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    with reverts("RegistryAlreadyVoted", proposalId=proposal_id, orgId=1):
        c.vote(c.members[0], proposal_id)  # the proposer's organisation voted when proposing
    c.vote(c.members[1], proposal_id)
    # Another account of the same organisation does not get a second vote.
    c.send("addAccount", c.outsiders[0].address, sender=c.members[1])
    with reverts("RegistryAlreadyVoted", proposalId=proposal_id, orgId=2):
        c.vote(c.outsiders[0], proposal_id)


def test_vote_reverts_when_proposal_is_unknown(c: Consortium) -> None:
    with reverts("RegistryUnknownProposal", proposalId=7):
        c.vote(c.members[0], 7)
    with reverts("RegistryUnknownProposal", proposalId=0):
        c.view("proposal", 0)


def test_vote_reverts_when_proposal_has_expired(c: Consortium, devnet: AnvilControl) -> None:
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    deadline = c.view("proposal", proposal_id)[4]
    devnet.set_next_block_timestamp(deadline + 1)
    devnet.mine()
    with reverts("RegistryProposalExpired", proposalId=proposal_id, deadline=deadline):
        c.vote(c.members[1], proposal_id)


def test_vote_is_accepted_at_the_deadline_itself(c: Consortium, devnet: AnvilControl) -> None:
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    deadline = c.view("proposal", proposal_id)[4]
    devnet.set_next_block_timestamp(deadline)
    c.vote(c.members[1], proposal_id)
    assert c.view("orgHasRole", 2, ORACLE)


def test_vote_reverts_when_proposal_already_executed(c: Consortium) -> None:
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    c.vote(c.members[1], proposal_id)
    with reverts("RegistryProposalAlreadyExecuted", proposalId=proposal_id):
        c.vote(c.members[2], proposal_id)


def test_vote_reverts_when_the_change_no_longer_applies(c: Consortium) -> None:
    first = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    second = c.propose(c.members[2], Kind.GRANT, 2, ORACLE)
    c.vote(c.members[1], first)
    with reverts("RegistryRoleAlreadyHeld", orgId=2, role=ORACLE):
        c.vote(c.members[1], second)


# ---- validation of proposal data ---------------------------------------------------------------


def test_propose_reverts_when_data_is_malformed(c: Consortium) -> None:
    for kind, data in [
        (Kind.ADMIT, b"\x01\x02\x03"),
        (Kind.SUSPEND, b""),
        (Kind.GRANT, encode(Kind.SUSPEND, 1)),
        (Kind.REINSTATE, (2**64).to_bytes(32, "big")),
        (Kind.THRESHOLD, encode(Kind.GRANT, 1, CUSTOMS)),
    ]:
        with reverts("RegistryMalformedProposal", kind=kind, data=data):
            c.propose_raw(c.members[0], kind, data)


def test_propose_reverts_when_role_is_unknown(c: Consortium) -> None:
    with reverts("RegistryUnknownRole", role=UNKNOWN_ROLE):
        c.propose(c.members[0], Kind.GRANT, 2, UNKNOWN_ROLE)
    with reverts("RegistryUnknownRole", role=UNKNOWN_ROLE):
        c.propose(c.members[0], Kind.ADMIT, "New Co", b"FR", b"\0" * 32, c.outsiders[0].address, [UNKNOWN_ROLE])


def test_propose_reverts_when_admission_repeats_a_role(c: Consortium) -> None:
    with reverts("RegistryDuplicateRole", role=CARRIER):
        c.propose(c.members[0], Kind.ADMIT, "New Co", b"FR", b"\0" * 32, c.outsiders[0].address, [CARRIER, CARRIER])


@pytest.mark.parametrize("country", [b"nl", b"N1", b"\0\0", b"N "])
def test_propose_reverts_when_country_is_invalid(c: Consortium, country: bytes) -> None:
    with reverts("RegistryInvalidCountry", country=country):
        c.propose(c.members[0], Kind.ADMIT, "New Co", country, b"\0" * 32, c.outsiders[0].address, [])


@pytest.mark.parametrize("name", ["", "x" * 129])
def test_propose_reverts_when_name_is_empty_or_too_long(c: Consortium, name: str) -> None:
    with reverts("RegistryInvalidName", name=name):
        c.propose(c.members[0], Kind.ADMIT, name, b"FR", b"\0" * 32, c.outsiders[0].address, [])


def test_propose_reverts_when_first_account_is_zero(c: Consortium) -> None:
    with reverts("RegistryInvalidAccount", account=ZERO_ADDRESS):
        c.propose(c.members[0], Kind.ADMIT, "New Co", b"FR", b"\0" * 32, ZERO_ADDRESS, [])


def test_propose_reverts_when_first_account_belongs_to_a_member(c: Consortium) -> None:
    with reverts("RegistryAccountTaken", account=c.members[2].address, orgId=3):
        c.propose(c.members[0], Kind.ADMIT, "New Co", b"FR", b"\0" * 32, c.members[2].address, [])


def test_propose_reverts_when_organisation_is_unknown(c: Consortium) -> None:
    for kind, args in [(Kind.SUSPEND, (9,)), (Kind.REINSTATE, (9,)), (Kind.GRANT, (9, ORACLE)), (Kind.REVOKE, (0, ORACLE))]:
        with reverts("RegistryUnknownOrganisation", orgId=args[0]):
            c.propose(c.members[0], kind, *args)
    with reverts("RegistryUnknownOrganisation", orgId=9):
        c.view("organisation", 9)


def test_suspend_reverts_when_organisation_is_not_active(c: Consortium) -> None:
    c.pass_proposal(Kind.SUSPEND, 4)
    with reverts("RegistryOrganisationNotActive", orgId=4):
        c.propose(c.members[0], Kind.SUSPEND, 4)


def test_reinstate_reverts_when_organisation_is_not_suspended(c: Consortium) -> None:
    with reverts("RegistryOrganisationNotSuspended", orgId=4):
        c.propose(c.members[0], Kind.REINSTATE, 4)


def test_suspend_reverts_when_threshold_would_become_unreachable(c: Consortium) -> None:
    c.pass_proposal(Kind.THRESHOLD, 4)
    with reverts("RegistryInvalidThreshold", threshold=4, activeMembers=3):
        c.propose(c.members[0], Kind.SUSPEND, 4)


def test_change_threshold_reverts_when_zero_or_above_active_members(c: Consortium) -> None:
    with reverts("RegistryInvalidThreshold", threshold=0, activeMembers=4):
        c.propose(c.members[0], Kind.THRESHOLD, 0)
    with reverts("RegistryInvalidThreshold", threshold=5, activeMembers=4):
        c.propose(c.members[0], Kind.THRESHOLD, 5)


def test_grant_reverts_when_role_is_already_held(c: Consortium) -> None:
    with reverts("RegistryRoleAlreadyHeld", orgId=1, role=MANUFACTURER):
        c.propose(c.members[1], Kind.GRANT, 1, MANUFACTURER)


def test_revoke_reverts_when_role_is_not_held(c: Consortium) -> None:
    with reverts("RegistryRoleNotHeld", orgId=1, role=CUSTOMS):
        c.propose(c.members[1], Kind.REVOKE, 1, CUSTOMS)


def test_decode_admission_returns_the_proposal_arguments(c: Consortium) -> None:
    args = ("New Co", b"FR", b"\x11" * 32, c.outsiders[0].address, [CARRIER])
    assert tuple(c.view("decodeAdmission", encode(Kind.ADMIT, *args))) == args


# ---- accounts -----------------------------------------------------------------------------------


def test_member_rotates_its_key(c: Consortium) -> None:
    old, new = c.members[1], c.outsiders[0]
    receipt = c.send("addAccount", new.address, sender=old)
    (added,) = c.events(receipt, "AccountAdded")
    assert (added.args.orgId, added.args.account, added.args.addedBy) == (2, new.address, old.address)
    assert c.view("organisationOf", new.address) == 2
    assert c.view("hasRole", new.address, INSPECTOR)

    receipt = c.send("removeAccount", old.address, sender=new)
    (removed,) = c.events(receipt, "AccountRemoved")
    assert (removed.args.orgId, removed.args.account, removed.args.removedBy) == (2, old.address, new.address)
    assert c.view("accountsOf", 2) == [new.address]
    assert c.view("organisationOf", old.address) == 0
    assert not c.view("hasRole", old.address, INSPECTOR)
    # The new key votes for the organisation; the old one no longer can.
    proposal_id = c.propose(new, Kind.GRANT, 2, ORACLE)
    assert c.view("proposal", proposal_id)[1] == 2
    with reverts("RegistryNotActiveMember", account=old.address):
        c.vote(old, proposal_id)


def test_member_removes_its_own_account_when_another_remains(c: Consortium) -> None:
    c.send("addAccount", c.outsiders[0].address, sender=c.members[0])
    c.send("removeAccount", c.members[0].address, sender=c.members[0])
    assert c.view("accountsOf", 1) == [c.outsiders[0].address]


def test_removed_account_may_join_another_organisation(c: Consortium) -> None:
    spare = c.outsiders[0]
    c.send("addAccount", spare.address, sender=c.members[0])
    c.send("removeAccount", spare.address, sender=c.members[0])
    c.send("addAccount", spare.address, sender=c.members[2])
    assert c.view("organisationOf", spare.address) == 3


def test_add_account_reverts_when_account_belongs_to_an_organisation(c: Consortium) -> None:
    with reverts("RegistryAccountTaken", account=c.members[2].address, orgId=3):
        c.send("addAccount", c.members[2].address, sender=c.members[0])
    with reverts("RegistryAccountTaken", account=c.members[0].address, orgId=1):
        c.send("addAccount", c.members[0].address, sender=c.members[0])


def test_add_account_reverts_when_account_is_zero(c: Consortium) -> None:
    with reverts("RegistryInvalidAccount", account=ZERO_ADDRESS):
        c.send("addAccount", ZERO_ADDRESS, sender=c.members[0])


def test_add_account_reverts_when_member_is_suspended(c: Consortium) -> None:
    c.pass_proposal(Kind.SUSPEND, 4)
    with reverts("RegistryNotActiveMember", account=c.members[3].address):
        c.send("addAccount", c.outsiders[0].address, sender=c.members[3])


def test_remove_account_reverts_when_account_is_in_another_organisation(c: Consortium) -> None:
    with reverts("RegistryAccountNotInOrganisation", account=c.members[2].address, orgId=1):
        c.send("removeAccount", c.members[2].address, sender=c.members[0])


def test_remove_account_reverts_when_it_is_the_last_account(c: Consortium) -> None:
    with reverts("RegistryLastAccount", orgId=1, account=c.members[0].address):
        c.send("removeAccount", c.members[0].address, sender=c.members[0])


def test_remove_account_reverts_when_caller_is_not_a_member(c: Consortium) -> None:
    with reverts("RegistryNotActiveMember", account=c.outsiders[0].address):
        c.send("removeAccount", c.members[0].address, sender=c.outsiders[0])


# ---- roles over time ------------------------------------------------------------------------------


def has_role_at(c: Consortium, account: LocalAccount, role_id: bytes, timestamp: int) -> bool:
    return bool(c.view("hasRoleAt", account.address, role_id, timestamp))


def test_has_role_at_answers_before_and_after_a_revoke(c: Consortium, devnet: AnvilControl) -> None:
    lumen = c.members[0]
    devnet.increase_time(3600)
    receipt = c.pass_proposal(Kind.REVOKE, 1, MANUFACTURER, by=(1, 2))
    revoked_at = c.block_time(receipt)
    assert revoked_at > c.deployed_at

    assert not has_role_at(c, lumen, MANUFACTURER, c.deployed_at - 1)  # before the registry existed
    assert has_role_at(c, lumen, MANUFACTURER, c.deployed_at)
    assert has_role_at(c, lumen, MANUFACTURER, revoked_at - 1)
    assert not has_role_at(c, lumen, MANUFACTURER, revoked_at)  # a revocation at T applies at T
    assert not has_role_at(c, lumen, MANUFACTURER, revoked_at + 10**6)
    assert not c.view("hasRole", lumen.address, MANUFACTURER)
    assert has_role_at(c, lumen, ORACLE, revoked_at)  # the other role is untouched


def test_has_role_at_follows_a_grant(c: Consortium, devnet: AnvilControl) -> None:
    devnet.increase_time(60)
    receipt = c.pass_proposal(Kind.GRANT, 3, CUSTOMS)
    granted_at = c.block_time(receipt)
    assert not has_role_at(c, c.members[2], CUSTOMS, granted_at - 1)
    assert has_role_at(c, c.members[2], CUSTOMS, granted_at)


def test_has_role_at_follows_suspension_and_reinstatement(c: Consortium, devnet: AnvilControl) -> None:
    auditor = c.members[3]
    devnet.increase_time(60)
    suspended_at = c.block_time(c.pass_proposal(Kind.SUSPEND, 4))
    devnet.increase_time(60)
    reinstated_at = c.block_time(c.pass_proposal(Kind.REINSTATE, 4))
    assert has_role_at(c, auditor, AUDITOR, suspended_at - 1)
    assert not has_role_at(c, auditor, AUDITOR, suspended_at)
    assert not has_role_at(c, auditor, AUDITOR, reinstated_at - 1)
    assert has_role_at(c, auditor, AUDITOR, reinstated_at)


def test_has_role_at_follows_account_links(c: Consortium, devnet: AnvilControl) -> None:
    spare = c.outsiders[0]
    devnet.increase_time(60)
    added_at = c.block_time(c.send("addAccount", spare.address, sender=c.members[2]))
    devnet.increase_time(60)
    removed_at = c.block_time(c.send("removeAccount", spare.address, sender=c.members[2]))
    assert not has_role_at(c, spare, CARRIER, added_at - 1)
    assert has_role_at(c, spare, CARRIER, added_at)
    assert has_role_at(c, spare, CARRIER, removed_at - 1)
    assert not has_role_at(c, spare, CARRIER, removed_at)
    assert c.view("organisationOfAt", spare.address, added_at) == 3
    assert c.view("organisationOfAt", spare.address, removed_at) == 0


def test_has_role_reverts_when_role_is_unknown(c: Consortium) -> None:
    with reverts("RegistryUnknownRole", role=UNKNOWN_ROLE):
        c.view("hasRole", c.members[0].address, UNKNOWN_ROLE)
    with reverts("RegistryUnknownRole", role=UNKNOWN_ROLE):
        c.view("hasRoleAt", c.members[0].address, UNKNOWN_ROLE, c.deployed_at)
    with reverts("RegistryUnknownRole", role=UNKNOWN_ROLE):
        c.view("orgHasRole", 1, UNKNOWN_ROLE)


def test_organisation_with_any_role(c: Consortium) -> None:
    attesting = [MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS, ORACLE]
    assert c.view("organisationWithAnyRole", c.members[2].address, attesting) == 3
    assert c.view("organisationWithAnyRole", c.members[3].address, attesting) == 0  # auditor
    assert c.view("organisationWithAnyRole", c.outsiders[0].address, attesting) == 0
    c.pass_proposal(Kind.SUSPEND, 3)
    assert c.view("organisationWithAnyRole", c.members[2].address, attesting) == 0
    with reverts("RegistryUnknownRole", role=UNKNOWN_ROLE):
        c.view("organisationWithAnyRole", c.members[2].address, [UNKNOWN_ROLE])
