"""ConsortiumRegistry against a real Anvil: membership and roles change only by votes of a share
of the active members, accounts are linked only with their own consent, and role history answers
"did this account hold this role at that time".

One concern: the registry contract's specification, one test per "reverts if" line and per rule of
its governance; split across files, the shared world and helpers would be written twice."""

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
from node.chain.consortium import DEFAULT_MAX_REPORTING_DELAY
from waymark.devnet.anvil import AnvilControl
from tests.helpers import reverts

ZERO_ADDRESS = "0x" + "00" * 20
NO_KEY = b"\0" * 32
VOTING_PERIOD = 7 * 24 * 3600


def role(name: str) -> bytes:
    return keccak(text=name)


MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS, ORACLE, ARBITRATOR, AUDITOR, OPERATOR, ANCHORER = (
    role(n)
    for n in ("MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE", "ARBITRATOR", "AUDITOR", "OPERATOR", "ANCHORER")
)
UNKNOWN_ROLE = role("JANITOR")


class Kind(IntEnum):
    ADMIT = 0
    SUSPEND = 1
    REINSTATE = 2
    GRANT = 3
    REVOKE = 4
    THRESHOLD = 5
    PREFIX = 6
    CONTRACT_SIGNER = 7
    SET_DELAY = 8
    SET_BUNDLE = 9


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
    Kind.PREFIX: ["uint64", "uint64", "uint8"],
    Kind.CONTRACT_SIGNER: ["uint64", "address", "address"],
    Kind.SET_DELAY: ["uint64"],
    Kind.SET_BUNDLE: ["bytes32"],
}


def encode(kind: Kind, *args: Any) -> bytes:
    return abi_encode(ARG_TYPES[kind], list(args))


def founder(
    name: str, country: bytes, account: LocalAccount, roles: list[bytes], prefixes: list[str] | None = None, *,
    others: list[str] | None = None, url: str = "", key: bytes = NO_KEY, host: int = 0,
) -> tuple[Any, ...]:
    return (name, country, keccak(text=f"meta:{name}"), account.address, roles, [(int(p), len(p)) for p in prefixes or []],
            others or [], url, key, host)


@dataclass
class Consortium:
    """Four founders (org ids 1..4), threshold 50.01%: more than half, 3 of 4. members[i] is the first
    account of org i + 1."""

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

    def pass_proposal(self, kind: Kind, *args: Any, by: tuple[int, ...] = (0, 1, 2)) -> TxReceipt:
        """Propose by members[by[0]], then vote by the others in `by`, in turn, until the vote that
        reaches the threshold executes it: 3 of the fixture's 4 at 50.01%, 2 once one of them is
        suspended. Fails if `by` runs out first. Returns the receipt of the executing transaction."""
        proposal_id, receipt = self.propose_raw(self.members[by[0]], kind, encode(kind, *args))
        for voter in by[1:]:
            if self.events(receipt, "ProposalExecuted"):
                break
            receipt = self.vote(self.members[voter], proposal_id)
        assert self.events(receipt, "ProposalExecuted"), f"members {by} did not reach the threshold"
        return receipt

    def view(self, name: str, *args: Any) -> Any:
        return self.chain.call(getattr(self.registry.functions, name)(*args))

    def send(self, fn: str, *args: Any, sender: LocalAccount) -> TxReceipt:
        return self.chain.transact(getattr(self.registry.functions, fn)(*args), sender=sender)

    def events(self, receipt: TxReceipt, name: str) -> list[Any]:
        return list(getattr(self.registry.events, name)().process_receipt(receipt, errors=DISCARD))

    def block_time(self, receipt: TxReceipt) -> int:
        return int(self.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])

    def link(self, account: LocalAccount, by: LocalAccount) -> TxReceipt:
        """Links `account` to `by`'s organisation: `by` offers, the account accepts. Returns the acceptance."""
        self.send("addAccount", account.address, sender=by)
        return self.send("acceptAccount", self.view("organisationOf", by.address), sender=account)


def deploy_registry(
    chain: ChainClient, deployer: LocalAccount, founders: list[Any], threshold_bps: int,
    delay: int = DEFAULT_MAX_REPORTING_DELAY, bundle: bytes = NO_KEY,
) -> TxReceipt:
    return chain.deploy_receipt("ConsortiumRegistry", founders, threshold_bps, delay, bundle, sender=deployer)


@pytest.fixture
def c(chain: ChainClient, accounts: list[LocalAccount]) -> Consortium:
    members = accounts[1:5]
    founders = [
        founder("Lumen Ceramics Co.", b"VN", members[0], [MANUFACTURER, ORACLE]),
        founder("Meridian Inspection Services", b"SG", members[1], [INSPECTOR]),
        founder("Bluewater Ocean Freight", b"SG", members[2], [CARRIER]),
        founder("Fjord Assurance AS", b"NO", members[3], [AUDITOR]),
    ]
    receipt = deploy_registry(chain, accounts[0], founders, 5_001)
    registry = chain.contract("ConsortiumRegistry", str(receipt["contractAddress"]))
    consortium = Consortium(chain, registry, members, accounts[5:], accounts[0], 0)
    consortium.deployed_at = consortium.block_time(receipt)
    return consortium


# ---- construction ---------------------------------------------------------------------------


def test_constructor_admits_founders_active_with_their_roles_and_accounts(c: Consortium) -> None:
    assert c.view("organisationCount") == 4
    assert c.view("activeMemberCount") == 4
    assert c.view("threshold") == 3 and c.view("thresholdBps") == 5_001
    org = c.view("organisation", 1)
    assert org == (1, "Lumen Ceramics Co.", b"VN", keccak(text="meta:Lumen Ceramics Co."), Status.ACTIVE)
    assert set(c.view("rolesOf", 1)) == {MANUFACTURER, ORACLE}
    assert c.view("accountsOf", 1) == [c.members[0].address]
    assert c.view("organisationOf", c.members[2].address) == 3
    assert c.view("hasRole", c.members[0].address, MANUFACTURER)
    assert not c.view("hasRole", c.members[1].address, MANUFACTURER)
    assert c.view("orgHasRole", 2, INSPECTOR)


def test_constructor_emits_what_the_indexer_mirrors(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    receipt = deploy_registry(chain, accounts[0], [founder("Solo Works", b"DE", accounts[1], [CUSTOMS], ["9521234"])], 10_000)
    registry = chain.contract("ConsortiumRegistry", str(receipt["contractAddress"]))
    (admitted,) = registry.events.OrganisationAdmitted().process_receipt(receipt, errors=DISCARD)
    assert admitted.args.orgId == 1 and admitted.args.firstAccount == accounts[1].address
    (granted,) = registry.events.RoleGranted().process_receipt(receipt, errors=DISCARD)
    assert granted.args.role == CUSTOMS
    (added,) = registry.events.AccountAdded().process_receipt(receipt, errors=DISCARD)
    assert added.args.account == accounts[1].address and added.args.addedBy == ZERO_ADDRESS
    (changed,) = registry.events.ThresholdChanged().process_receipt(receipt, errors=DISCARD)
    assert (changed.args.oldThresholdBps, changed.args.newThresholdBps) == (0, 10_000)
    (prefix,) = registry.events.CompanyPrefixAssigned().process_receipt(receipt, errors=DISCARD)
    assert (prefix.args.orgId, prefix.args.value, prefix.args.digits) == (1, 9521234, 7)


def test_role_ids_are_keccak_of_their_names(c: Consortium) -> None:
    for name in ("MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE", "ARBITRATOR", "AUDITOR", "OPERATOR", "ANCHORER"):
        assert c.view(f"{name}_ROLE") == role(name)
    assert c.view("VOTING_PERIOD") == VOTING_PERIOD


def test_constructor_reverts_when_threshold_is_zero(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    with reverts("RegistryInvalidThreshold", thresholdBps=0):
        deploy_registry(chain, accounts[0], [founder("A", b"DE", accounts[1], [])], 0)


def test_constructor_reverts_when_threshold_exceeds_all_members(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    with reverts("RegistryInvalidThreshold", thresholdBps=10_001):
        deploy_registry(chain, accounts[0], [founder("A", b"DE", accounts[1], [])], 10_001)


def test_constructor_reverts_when_threshold_is_half_of_the_members(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    founders = [founder("A", b"DE", accounts[1], []), founder("B", b"FR", accounts[2], [])]
    with reverts("RegistryInvalidThreshold", thresholdBps=5_000):
        deploy_registry(chain, accounts[0], founders, 5_000)


def test_constructor_reverts_when_founders_overlap_in_company_prefixes(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    founders = [founder("A", b"DE", accounts[1], [], ["952123"]), founder("B", b"FR", accounts[2], [], ["9521234"])]
    with reverts("RegistryCompanyPrefixTaken", value=9521234, digits=7):
        deploy_registry(chain, accounts[0], founders, 5_001)


def test_constructor_reverts_when_founders_share_an_account(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    founders = [founder("A", b"DE", accounts[1], []), founder("B", b"FR", accounts[1], [])]
    with reverts("RegistryAccountTaken", account=accounts[1].address, orgId=1):
        deploy_registry(chain, accounts[0], founders, 5_001)


def test_constructor_reverts_when_founder_country_is_invalid(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    with reverts("RegistryInvalidCountry", country=b"de"):
        deploy_registry(chain, accounts[0], [founder("A", b"de", accounts[1], [])], 10_000)


def test_deployer_has_no_privilege(c: Consortium) -> None:
    with reverts("RegistryNotActiveMember", account=c.deployer.address):
        c.propose(c.deployer, Kind.THRESHOLD, 10_000)
    with reverts("RegistryNotActiveMember", account=c.deployer.address):
        c.propose(c.deployer, Kind.PREFIX, 1, 9521234, 7)
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
    c.vote(c.members[3], proposal_id)
    assert not c.view("orgHasRole", 1, CUSTOMS)  # 2 of the 3 votes
    receipt = c.vote(c.members[2], proposal_id)
    assert c.view("orgHasRole", 1, CUSTOMS)
    assert c.view("hasRole", c.members[0].address, CUSTOMS)
    assert c.view("proposal", proposal_id)[5] is True
    (voted,) = c.events(receipt, "Voted")
    assert (voted.args.orgId, voted.args.voter, voted.args.votes) == (3, c.members[2].address, 3)
    (granted,) = c.events(receipt, "RoleGranted")
    assert (granted.args.orgId, granted.args.role) == (1, CUSTOMS)
    (executed,) = c.events(receipt, "ProposalExecuted")
    assert (executed.args.proposalId, executed.args.kind) == (proposal_id, Kind.GRANT)


def test_threshold_of_one_executes_inside_propose(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    receipt = deploy_registry(chain, accounts[0], [founder("Solo Works", b"DE", accounts[1], [])], 5_001)
    registry = chain.contract("ConsortiumRegistry", str(receipt["contractAddress"]))
    assert registry.functions.threshold().call() == 1  # more than half of one member is one vote
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
    # The newcomer is a voting member straight away, and the threshold grew with the membership.
    assert c.view("threshold") == 3  # 50.01% of 5, rounded up
    proposal_id = c.propose(newcomer, Kind.THRESHOLD, 6_000)
    c.vote(c.members[0], proposal_id)
    assert c.view("thresholdBps") == 5_001
    c.vote(c.members[1], proposal_id)
    assert c.view("thresholdBps") == 6_000 and c.view("threshold") == 3


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
    receipt = c.pass_proposal(Kind.THRESHOLD, 10_000)
    assert c.view("threshold") == 4
    (changed,) = c.events(receipt, "ThresholdChanged")
    assert (changed.args.oldThresholdBps, changed.args.newThresholdBps) == (5_001, 10_000)
    # Now three votes do nothing and the fourth executes.
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    c.vote(c.members[1], proposal_id)
    c.vote(c.members[2], proposal_id)
    assert not c.view("orgHasRole", 2, ORACLE)
    c.vote(c.members[3], proposal_id)
    assert c.view("orgHasRole", 2, ORACLE)


def test_revoke_role_by_vote(c: Consortium) -> None:
    receipt = c.pass_proposal(Kind.REVOKE, 1, ORACLE, by=(1, 2, 3))
    assert set(c.view("rolesOf", 1)) == {MANUFACTURER}
    (revoked,) = c.events(receipt, "RoleRevoked")
    assert (revoked.args.orgId, revoked.args.role) == (1, ORACLE)


def test_execute_runs_a_proposal_that_has_enough_votes_after_threshold_was_lowered(c: Consortium) -> None:
    c.pass_proposal(Kind.THRESHOLD, 10_000)
    waiting = c.propose(c.members[0], Kind.GRANT, 3, ORACLE)
    c.vote(c.members[1], waiting)
    c.vote(c.members[2], waiting)  # 3 of 4: waits
    lower = c.propose(c.members[0], Kind.THRESHOLD, 5_001)
    c.vote(c.members[1], lower)
    c.vote(c.members[2], lower)
    c.vote(c.members[3], lower)
    assert c.view("threshold") == 3 and not c.view("orgHasRole", 3, ORACLE)
    c.send("execute", waiting, sender=c.members[3])
    assert c.view("orgHasRole", 3, ORACLE)


def test_execute_reverts_when_votes_are_below_threshold(c: Consortium) -> None:
    proposal_id = c.propose(c.members[0], Kind.GRANT, 3, ORACLE)
    c.vote(c.members[1], proposal_id)
    with reverts("RegistryBelowThreshold", proposalId=proposal_id, votes=2, threshold=3):
        c.send("execute", proposal_id, sender=c.members[2])


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
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    with reverts("RegistryAlreadyVoted", proposalId=proposal_id, orgId=1):
        c.vote(c.members[0], proposal_id)  # the proposer's organisation voted when proposing
    c.vote(c.members[1], proposal_id)  # 2 of the 3 votes: the proposal stays open
    # Another account of the same organisation does not get a second vote.
    c.link(c.outsiders[0], by=c.members[1])
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
    c.vote(c.members[1], proposal_id)
    deadline = c.view("proposal", proposal_id)[4]
    devnet.set_next_block_timestamp(deadline)
    c.vote(c.members[2], proposal_id)  # the third vote, at the deadline, executes it
    assert c.view("orgHasRole", 2, ORACLE)


def test_vote_reverts_when_proposal_already_executed(c: Consortium) -> None:
    proposal_id = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    c.vote(c.members[1], proposal_id)
    c.vote(c.members[2], proposal_id)
    with reverts("RegistryProposalAlreadyExecuted", proposalId=proposal_id):
        c.vote(c.members[3], proposal_id)


def test_vote_reverts_when_the_change_no_longer_applies(c: Consortium) -> None:
    first = c.propose(c.members[0], Kind.GRANT, 2, ORACLE)
    second = c.propose(c.members[2], Kind.GRANT, 2, ORACLE)
    c.vote(c.members[1], second)  # 2 of the 3 votes
    c.vote(c.members[1], first)
    c.vote(c.members[3], first)  # the first executes
    with reverts("RegistryRoleAlreadyHeld", orgId=2, role=ORACLE):
        c.vote(c.members[3], second)  # the vote that would execute the second


# ---- validation of proposal data ---------------------------------------------------------------


def test_propose_reverts_when_data_is_malformed(c: Consortium) -> None:
    for kind, data in [
        (Kind.ADMIT, b"\x01\x02\x03"),
        (Kind.SUSPEND, b""),
        (Kind.GRANT, encode(Kind.SUSPEND, 1)),
        (Kind.REINSTATE, (2**64).to_bytes(32, "big")),
        (Kind.THRESHOLD, encode(Kind.GRANT, 1, CUSTOMS)),
        (Kind.PREFIX, encode(Kind.GRANT, 1, CUSTOMS)),
        (Kind.PREFIX, abi_encode(["uint64", "uint256", "uint8"], [1, 2**64, 7])),
        (Kind.PREFIX, abi_encode(["uint64", "uint64", "uint256"], [1, 9521234, 256])),
        (Kind.CONTRACT_SIGNER, abi_encode(["uint64", "uint256", "address"], [1, 2**160, ZERO_ADDRESS])),
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


def test_suspend_reverts_when_it_would_leave_no_active_member(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    receipt = deploy_registry(chain, accounts[0], [founder("Solo Works", b"DE", accounts[1], [])], 10_000)
    registry = chain.contract("ConsortiumRegistry", str(receipt["contractAddress"]))
    with reverts("RegistryLastActiveMember", orgId=1):
        chain.transact(registry.functions.propose(Kind.SUSPEND, encode(Kind.SUSPEND, 1)), sender=accounts[1])


def test_change_threshold_reverts_when_half_or_less_or_above_all_members(c: Consortium) -> None:
    for bps in (0, 1, 2_500, 5_000, 10_001):
        with reverts("RegistryInvalidThreshold", thresholdBps=bps):
            c.propose(c.members[0], Kind.THRESHOLD, bps)
    assert c.view("thresholdBps") == 5_001


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
    receipt = c.link(new, by=old)
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
    c.link(c.outsiders[0], by=c.members[0])
    c.send("removeAccount", c.members[0].address, sender=c.members[0])
    assert c.view("accountsOf", 1) == [c.outsiders[0].address]


def test_removed_account_may_join_another_organisation(c: Consortium) -> None:
    spare = c.outsiders[0]
    c.link(spare, by=c.members[0])
    c.send("removeAccount", spare.address, sender=c.members[0])
    c.link(spare, by=c.members[2])
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
    receipt = c.pass_proposal(Kind.REVOKE, 1, MANUFACTURER, by=(1, 2, 3))
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
    added_at = c.block_time(c.link(spare, by=c.members[2]))
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


def test_organisation_with_role_answers_the_active_organisation_holding_it(c: Consortium) -> None:
    assert c.view("organisationWithRole", c.members[2].address, CARRIER) == 3
    assert c.view("organisationWithRole", c.members[2].address, MANUFACTURER) == 0
    assert c.view("organisationWithRole", c.outsiders[0].address, CARRIER) == 0
    c.pass_proposal(Kind.SUSPEND, 3)
    assert c.view("organisationWithRole", c.members[2].address, CARRIER) == 0


def test_organisation_with_role_reverts_when_role_is_unknown(c: Consortium) -> None:
    with reverts("RegistryUnknownRole", role=UNKNOWN_ROLE):
        c.view("organisationWithRole", c.members[2].address, UNKNOWN_ROLE)


def test_organisation_with_any_role(c: Consortium) -> None:
    assert c.view("organisationWithAnyRole", c.members[3].address) == 4  # the auditor: any role counts
    assert c.view("organisationWithAnyRole", c.outsiders[0].address) == 0
    c.pass_proposal(Kind.REVOKE, 4, AUDITOR)
    assert c.view("organisationWithAnyRole", c.members[3].address) == 0  # a member without roles
    c.pass_proposal(Kind.GRANT, 4, ANCHORER)
    assert c.view("organisationWithAnyRole", c.members[3].address) == 4  # ANCHORER is a role too
    c.pass_proposal(Kind.SUSPEND, 4)
    assert c.view("organisationWithAnyRole", c.members[3].address) == 0


# ---- consent of accounts (the adversary: a member linking someone else's account) -------------------


def test_an_offer_alone_links_nothing(c: Consortium) -> None:
    newcomer = c.outsiders[0]
    receipt = c.send("addAccount", newcomer.address, sender=c.members[0])
    (offered,) = c.events(receipt, "AccountOffered")
    assert (offered.args.orgId, offered.args.account, offered.args.offeredBy) == (1, newcomer.address, c.members[0].address)
    assert not c.events(receipt, "AccountAdded")
    assert c.view("organisationOf", newcomer.address) == 0 and c.view("isOffered", newcomer.address, 1)
    assert not c.view("hasRole", newcomer.address, MANUFACTURER)


def test_member_cannot_capture_a_newcomers_first_account_to_block_its_admission(c: Consortium) -> None:
    adversary, newcomer = c.members[0], c.outsiders[0]
    # The admission is proposed; the adversary tries to link the newcomer's account to itself first.
    admission = c.propose(c.members[1], Kind.ADMIT, "Customs Office Rotterdam", b"NL", b"\0" * 32, newcomer.address, [CUSTOMS])
    c.send("addAccount", newcomer.address, sender=adversary)
    assert c.view("organisationOf", newcomer.address) == 0
    # The vote still passes, and the adversary's offer can never take the account.
    c.vote(c.members[2], admission)
    c.vote(c.members[3], admission)
    assert c.view("organisationOf", newcomer.address) == 5
    assert c.view("accountsOf", 1) == [adversary.address]
    with reverts("RegistryAccountTaken", account=newcomer.address, orgId=5):
        c.send("acceptAccount", 1, sender=newcomer)


def test_accept_account_reverts_without_an_offer(c: Consortium) -> None:
    c.send("addAccount", c.outsiders[0].address, sender=c.members[0])
    with reverts("RegistryNoOffer", account=c.outsiders[0].address, orgId=2):
        c.send("acceptAccount", 2, sender=c.outsiders[0])
    with reverts("RegistryNoOffer", account=c.outsiders[1].address, orgId=1):
        c.send("acceptAccount", 1, sender=c.outsiders[1])


def test_an_offer_is_used_once(c: Consortium) -> None:
    spare = c.outsiders[0]
    c.link(spare, by=c.members[0])
    c.send("removeAccount", spare.address, sender=c.members[0])
    with reverts("RegistryNoOffer", account=spare.address, orgId=1):
        c.send("acceptAccount", 1, sender=spare)


def test_accept_account_reverts_when_the_offering_organisation_was_suspended(c: Consortium) -> None:
    c.send("addAccount", c.outsiders[0].address, sender=c.members[3])
    c.pass_proposal(Kind.SUSPEND, 4)
    with reverts("RegistryOrganisationNotActive", orgId=4):
        c.send("acceptAccount", 4, sender=c.outsiders[0])


# ---- votes of suspended members, and a threshold that follows the membership ----------------------------


def test_vote_of_an_organisation_suspended_since_does_not_count(c: Consortium) -> None:
    # The adversary (org 4) proposes; it is suspended before a colleague (org 3) adds the second vote.
    adversary, colleague = c.members[3], c.members[2]
    grab = c.propose(adversary, Kind.GRANT, 4, ARBITRATOR)
    c.pass_proposal(Kind.SUSPEND, 4)
    assert c.view("countedVotes", grab) == 0
    receipt = c.vote(colleague, grab)
    assert not c.events(receipt, "ProposalExecuted")
    assert not c.view("orgHasRole", 4, ARBITRATOR)
    assert c.view("countedVotes", grab) == 1 and c.view("proposal", grab)[2] == 2
    with reverts("RegistryBelowThreshold", proposalId=grab, votes=1, threshold=2):
        c.send("execute", grab, sender=colleague)


def test_reinstated_organisation_may_vote_again_and_its_old_vote_stays_void(c: Consortium) -> None:
    proposal_id = c.propose(c.members[3], Kind.GRANT, 1, CUSTOMS)
    c.pass_proposal(Kind.SUSPEND, 4)
    c.pass_proposal(Kind.REINSTATE, 4)
    assert c.view("countedVotes", proposal_id) == 0  # the vote before the suspension is void
    receipt = c.vote(c.members[3], proposal_id)
    assert c.view("countedVotes", proposal_id) == 1 and not c.events(receipt, "ProposalExecuted")
    with reverts("RegistryAlreadyVoted", proposalId=proposal_id, orgId=4):
        c.vote(c.members[3], proposal_id)
    c.vote(c.members[0], proposal_id)
    assert not c.view("orgHasRole", 1, CUSTOMS)  # 2 of the 3 votes
    c.vote(c.members[1], proposal_id)
    assert c.view("orgHasRole", 1, CUSTOMS)
    assert c.view("proposal", proposal_id)[2] == 3  # organisations that voted, each once


def test_threshold_is_a_share_of_active_members_rounded_up(c: Consortium) -> None:
    assert c.view("threshold") == 3  # 50.01% of 4 is 2.0004: a majority of 4 is 3
    c.pass_proposal(Kind.SUSPEND, 4)
    assert c.view("activeMemberCount") == 3 and c.view("threshold") == 2  # 1.5003: a majority of 3 is 2
    c.pass_proposal(Kind.THRESHOLD, 6_667)
    assert c.view("threshold") == 3  # 66.67% of 3 is 2.0001


def test_three_colluders_cannot_pass_a_proposal_once_the_consortium_has_grown(c: Consortium) -> None:
    # At 50.01%, with 4 members three votes pass; the membership then grows to 6.
    for i, newcomer in enumerate(c.outsiders[:2]):
        c.pass_proposal(Kind.ADMIT, f"Newcomer {i}", b"FR", b"\0" * 32, newcomer.address, [CARRIER], by=(1, 2, 3))
    assert c.view("activeMemberCount") == 6 and c.view("threshold") == 4
    # The three colluders (orgs 1, 3 and 4) now fall short.
    grab = c.propose(c.members[0], Kind.GRANT, 4, ARBITRATOR)
    c.vote(c.members[2], grab)
    receipt = c.vote(c.members[3], grab)
    assert not c.events(receipt, "ProposalExecuted") and not c.view("orgHasRole", 4, ARBITRATOR)
    assert c.view("countedVotes", grab) == 3


def test_half_of_the_members_can_neither_pass_a_proposal_nor_vote_the_threshold_down(c: Consortium) -> None:
    # At 50% two coalitions sharing no member (orgs 1+2 and 3+4) could each suspend the other; now
    # both proposals stay pending.
    against_3 = c.propose(c.members[0], Kind.SUSPEND, 3)
    c.vote(c.members[1], against_3)
    against_1 = c.propose(c.members[2], Kind.SUSPEND, 1)
    c.vote(c.members[3], against_1)
    for proposal_id in (against_3, against_1):
        assert c.view("countedVotes", proposal_id) == 2 and c.view("proposal", proposal_id)[5] is False
    assert c.view("activeMemberCount") == 4
    # Two members alone cannot change the threshold: their two votes leave it pending.
    change = c.propose(c.members[0], Kind.THRESHOLD, 7_500)
    receipt = c.vote(c.members[1], change)
    assert not c.events(receipt, "ProposalExecuted") and c.view("proposal", change)[5] is False
    assert c.view("thresholdBps") == 5_001 and c.view("threshold") == 3
    # Nor can anyone propose half or less, the first step towards one member passing anything alone.
    for bps in (5_000, 2_500, 1):
        with reverts("RegistryInvalidThreshold", thresholdBps=bps):
            c.propose(c.members[0], Kind.THRESHOLD, bps)


# ---- GS1 company prefixes ----------------------------------------------------------------------------------


def gtin(body: str) -> int:
    """A GTIN from its digits without the check digit (any length up to 13)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return int(body + str((10 - total % 10) % 10))


def test_assign_company_prefix_by_vote(c: Consortium) -> None:
    receipt = c.pass_proposal(Kind.PREFIX, 1, 614141, 7)  # the U.P.C. Company Prefix 614141 as a GS1 prefix
    (assigned,) = c.events(receipt, "CompanyPrefixAssigned")
    assert (assigned.args.orgId, assigned.args.value, assigned.args.digits) == (1, 614141, 7)
    assert c.view("companyPrefixesOf", 1) == [(614141, 7)]
    assert c.view("companyPrefixesOf", 2) == []


@pytest.mark.parametrize(
    ("form", "number"),
    [
        ("GTIN-12 (U.P.C.)", gtin("61414100001")),
        ("GTIN-13 as 0 + GTIN-12", gtin("061414100001")),
        ("GTIN-14 of a case, indicator 1", gtin("1061414100001")),
        ("GTIN-14 of a pallet, indicator 8", gtin("8061414100001")),
    ],
)
def test_company_prefix_covers_every_form_of_a_gtin(c: Consortium, form: str, number: int) -> None:
    c.pass_proposal(Kind.PREFIX, 1, 614141, 7)
    assert c.view("companyPrefixOrganisation", number) == 1, form


def test_company_prefix_covers_nothing_outside_it(c: Consortium) -> None:
    c.pass_proposal(Kind.PREFIX, 1, 9521234, 7)
    assert c.view("companyPrefixOrganisation", gtin("952123454321")) == 1
    assert c.view("companyPrefixOrganisation", gtin("952123554321")) == 0  # 9521235: another company
    assert c.view("companyPrefixOrganisation", gtin("95212345432")) == 0  # 09521234...: not 9521234...
    assert c.view("companyPrefixOrganisation", 10**14) == 0


def test_a_gtin8_is_covered_by_its_own_twelve_digit_prefix(c: Consortium) -> None:
    number = gtin("9638507")  # GTIN-8 96385074
    c.pass_proposal(Kind.PREFIX, 2, int("000009638507"), 12)
    assert c.view("companyPrefixOrganisation", number) == 2
    assert c.view("companyPrefixOrganisation", gtin("9638508")) == 0


def test_member_cannot_take_a_prefix_inside_or_around_anothers(c: Consortium) -> None:
    c.pass_proposal(Kind.PREFIX, 1, 9521234, 7)
    for value, digits in [(9521234, 7), (952123, 6), (95212345, 8), (9521234000, 10)]:
        with reverts("RegistryCompanyPrefixTaken", value=value, digits=digits):
            c.propose(c.members[3], Kind.PREFIX, 4, value, digits)
    c.pass_proposal(Kind.PREFIX, 4, 9521235, 7)  # a neighbour is fine
    assert c.view("companyPrefixOrganisation", gtin("952123554321")) == 4


def test_company_prefix_with_leading_zeros_differs_from_one_without(c: Consortium) -> None:
    c.pass_proposal(Kind.PREFIX, 1, 614141, 7)  # "0614141"
    c.pass_proposal(Kind.PREFIX, 2, 614141, 6)  # "614141": another prefix, another company
    assert c.view("companyPrefixOrganisation", gtin("061414100001")) == 1
    assert c.view("companyPrefixOrganisation", gtin("614141000012")) == 2


@pytest.mark.parametrize(("value", "digits"), [(952, 3), (1234567890123, 13), (10000, 4), (0, 0)])
def test_assign_company_prefix_reverts_when_it_is_not_4_to_12_digits(c: Consortium, value: int, digits: int) -> None:
    with reverts("RegistryInvalidCompanyPrefix", value=value, digits=digits):
        c.propose(c.members[0], Kind.PREFIX, 1, value, digits)


def test_assign_company_prefix_reverts_when_organisation_is_unknown(c: Consortium) -> None:
    with reverts("RegistryUnknownOrganisation", orgId=9):
        c.propose(c.members[0], Kind.PREFIX, 9, 9521234, 7)


# ---- contract signers ----------------------------------------------------------------------------------------


def deploy_wallet(c: Consortium, owner: LocalAccount) -> Contract:
    return c.chain.deploy("MockContractSigner", owner.address, sender=c.deployer)


def accept_as_wallet(c: Consortium, wallet: Contract, owner: LocalAccount, org_id: int) -> None:
    data = c.registry.functions.acceptAccount(org_id)._encode_transaction_data()
    c.chain.transact(wallet.functions.execute(c.registry.address, data), sender=owner)


def test_contract_signer_approved_by_vote(c: Consortium) -> None:
    key = c.members[2]
    wallet = deploy_wallet(c, key)
    c.send("addAccount", wallet.address, sender=key)
    accept_as_wallet(c, wallet, key, 3)
    assert c.view("contractSignerKey", wallet.address) == ZERO_ADDRESS  # linked, not approved
    receipt = c.pass_proposal(Kind.CONTRACT_SIGNER, 3, wallet.address, key.address)
    (approved,) = c.events(receipt, "ContractSignerApproved")
    assert (approved.args.orgId, approved.args.wallet, approved.args.key) == (3, wallet.address, key.address)
    assert c.view("contractSignerKey", wallet.address) == key.address
    # Unlinking the key, or the wallet, ends the approval.
    spare = c.outsiders[0]
    c.link(spare, by=key)
    c.send("removeAccount", key.address, sender=spare)
    assert c.view("contractSignerKey", wallet.address) == ZERO_ADDRESS
    c.send("removeAccount", wallet.address, sender=spare)
    assert c.view("contractSignerKey", wallet.address) == ZERO_ADDRESS


def test_a_key_of_one_organisation_cannot_be_approved_for_anothers_wallet(c: Consortium) -> None:
    # The adversary (org 4) links a wallet that the key of org 3 controls, and asks to approve it.
    key, adversary = c.members[2], c.members[3]
    wallet = deploy_wallet(c, key)
    c.send("addAccount", wallet.address, sender=adversary)
    accept_as_wallet(c, wallet, key, 4)
    with reverts("RegistryAccountNotInOrganisation", account=key.address, orgId=4):
        c.propose(adversary, Kind.CONTRACT_SIGNER, 4, wallet.address, key.address)
    assert c.view("contractSignerKey", wallet.address) == ZERO_ADDRESS


def test_approve_contract_signer_reverts_when_wallet_is_not_a_contract_or_not_linked(c: Consortium) -> None:
    with reverts("RegistryNotAContract", wallet=c.outsiders[0].address):
        c.propose(c.members[0], Kind.CONTRACT_SIGNER, 1, c.outsiders[0].address, c.members[0].address)
    wallet = deploy_wallet(c, c.members[0])
    with reverts("RegistryAccountNotInOrganisation", account=wallet.address, orgId=1):
        c.propose(c.members[0], Kind.CONTRACT_SIGNER, 1, wallet.address, c.members[0].address)
