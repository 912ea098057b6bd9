"""ConsortiumRegistry's node directory, hosting, maximum reporting delay and verifier bundle, and
the ANCHORER role, against a real Anvil. Each "reverts if" of the interface is asserted by its
decoded error; the adversaries are members acting with their own accounts and timing."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from node.chain.client import ChainClient
from node.chain.consortium import MAX_NODE_URL_LENGTH, MAX_REPORTING_DELAY_LIMIT, node_url_problem
from waymark.devnet.anvil import AnvilControl
from tests.contracts.test_consortium_registry import (  # noqa: F401  (c is a fixture)
    ANCHORER,
    CARRIER,
    NO_KEY,
    Consortium,
    Kind,
    Status,
    c,
    deploy_registry,
    founder,
)
from tests.helpers import reverts

DAY = 24 * 3600
KEY = bytes(range(32))
BUNDLE = hashlib.sha256(b"scanner_web/dist/app.js").digest()


def record(c: Consortium, org_id: int) -> tuple[str, bytes, int]:
    url, key, updated_at = c.view("nodeRecord", org_id)
    return url, bytes(key), updated_at


def chain_time(c: Consortium) -> int:
    return int(c.chain.w3.eth.get_block("latest")["timestamp"])


# ---- node directory -----------------------------------------------------------------------------


def test_an_organisation_publishes_its_node_record_through_any_of_its_accounts(c: Consortium) -> None:
    assert record(c, 1) == ("", NO_KEY, 0)
    receipt = c.send("setNodeRecord", "https://node.lumen.example", KEY, sender=c.members[0])
    assert record(c, 1) == ("https://node.lumen.example", KEY, c.block_time(receipt))
    (event,) = c.events(receipt, "NodeRecordSet")
    assert (event.args.orgId, event.args.url, event.args.encryptionKey) == (1, "https://node.lumen.example", KEY)
    second = c.outsiders[0]
    c.link(second, by=c.members[0])
    receipt = c.send("setNodeRecord", "http://10.0.0.7:8600", NO_KEY, sender=second)
    assert record(c, 1) == ("http://10.0.0.7:8600", NO_KEY, c.block_time(receipt))


def test_another_organisations_account_can_only_set_its_own_record(c: Consortium) -> None:
    c.send("setNodeRecord", "https://node.lumen.example", KEY, sender=c.members[0])
    # The adversary (org 3) has no way to name org 1: its call sets org 3's record, never org 1's.
    receipt = c.send("setNodeRecord", "https://evil.example", b"\x66" * 32, sender=c.members[2])
    (event,) = c.events(receipt, "NodeRecordSet")
    assert event.args.orgId == 3
    assert record(c, 1)[:2] == ("https://node.lumen.example", KEY)
    assert record(c, 3)[:2] == ("https://evil.example", b"\x66" * 32)


def test_set_node_record_reverts_when_caller_is_no_member(c: Consortium) -> None:
    with reverts("RegistryNotActiveMember", account=c.outsiders[0].address):
        c.send("setNodeRecord", "https://node.example", KEY, sender=c.outsiders[0])


def test_set_node_record_reverts_when_organisation_is_suspended(c: Consortium) -> None:
    c.pass_proposal(Kind.SUSPEND, 3)
    with reverts("RegistryNotActiveMember", account=c.members[2].address):
        c.send("setNodeRecord", "https://node.example", KEY, sender=c.members[2])


def test_a_removed_account_can_no_longer_set_its_former_organisations_record(c: Consortium) -> None:
    former = c.outsiders[0]
    c.link(former, by=c.members[0])
    c.send("removeAccount", former.address, sender=c.members[0])
    with reverts("RegistryNotActiveMember", account=former.address):
        c.send("setNodeRecord", "https://stolen.example", KEY, sender=former)


BAD_URLS = [
    "ftp://node.example",
    "node.example",
    "http://",
    "https://",
    "http:/node.example",
    "HTTPS://NODE.EXAMPLE",
    "javascript:alert(1)",
    "https://node.example/",
    "https://node example",
    "https://node.example\n",
    "https://nöde.example",
    "https://" + "a" * (MAX_NODE_URL_LENGTH - len("https://") + 1),
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_set_node_record_reverts_when_url_is_invalid(c: Consortium, url: str) -> None:
    assert node_url_problem(url) is not None  # the CLI's check refuses the same URL before any transaction
    with reverts("RegistryInvalidNodeUrl", url=url):
        c.send("setNodeRecord", url, KEY, sender=c.members[0])


@pytest.mark.parametrize(
    "url", ["https://a", "http://127.0.0.1:8600", "https://n.example/waymark/v1?x=1", "https://" + "a" * (MAX_NODE_URL_LENGTH - 8), ""]
)
def test_set_node_record_accepts_urls_the_cli_accepts(c: Consortium, url: str) -> None:
    assert node_url_problem(url) is None
    c.send("setNodeRecord", url, KEY, sender=c.members[0])
    assert record(c, 1)[:2] == (url, KEY)


def test_an_organisation_without_a_node_publishes_only_its_key_and_may_clear_its_record(c: Consortium) -> None:
    c.send("setNodeRecord", "", KEY, sender=c.members[3])
    assert record(c, 4)[:2] == ("", KEY)
    c.send("setNodeRecord", "", NO_KEY, sender=c.members[3])
    assert record(c, 4)[:2] == ("", NO_KEY)


def test_node_record_reverts_when_organisation_is_unknown(c: Consortium) -> None:
    for org_id in (0, 5):
        with reverts("RegistryUnknownOrganisation", orgId=org_id):
            c.view("nodeRecord", org_id)


# ---- hosting --------------------------------------------------------------------------------------


def host(c: Consortium, hosted: int, by: int) -> None:
    """Org `hosted` asks org `by`, which accepts."""
    c.send("requestHost", by, sender=c.members[hosted - 1])
    c.send("acceptHosting", hosted, sender=c.members[by - 1])


def test_hosting_takes_effect_when_the_host_accepts_and_is_kept_in_history(c: Consortium, devnet: AnvilControl) -> None:
    receipt = c.send("requestHost", 1, sender=c.members[3])
    (requested,) = c.events(receipt, "HostingRequested")
    assert (requested.args.hostedOrgId, requested.args.hostOrgId) == (4, 1)
    assert c.view("hostRequestOf", 4) == 1 and c.view("hostOf", 4) == 0  # nothing changes before the host accepts
    requested_at = c.block_time(receipt)
    devnet.increase_time(60)
    receipt = c.send("acceptHosting", 4, sender=c.members[0])
    accepted_at = c.block_time(receipt)
    (changed,) = c.events(receipt, "HostingChanged")
    assert (changed.args.hostedOrgId, changed.args.hostOrgId) == (4, 1)
    assert c.view("hostOf", 4) == 1 and c.view("hostRequestOf", 4) == 0
    devnet.increase_time(60)
    receipt = c.send("endHosting", 4, sender=c.members[3])
    ended_at = c.block_time(receipt)
    (ended,) = c.events(receipt, "HostingChanged")
    assert (ended.args.hostedOrgId, ended.args.hostOrgId) == (4, 0)
    assert c.view("hostOf", 4) == 0
    at = {t: c.view("hostOfAt", 4, t) for t in (requested_at, accepted_at - 1, accepted_at, ended_at - 1, ended_at, 2**200)}
    assert at == {requested_at: 0, accepted_at - 1: 0, accepted_at: 1, ended_at - 1: 1, ended_at: 0, 2**200: 0}


def test_a_hosted_organisation_moves_to_another_host_when_that_host_accepts(c: Consortium, devnet: AnvilControl) -> None:
    host(c, 4, 1)
    moved = c.send("requestHost", 3, sender=c.members[3])
    assert c.view("hostOf", 4) == 1  # still hosted by org 1 until org 3 accepts
    devnet.increase_time(60)
    receipt = c.send("acceptHosting", 4, sender=c.members[2])
    assert c.view("hostOf", 4) == 3
    assert c.view("hostOfAt", 4, c.block_time(moved)) == 1 and c.view("hostOfAt", 4, c.block_time(receipt)) == 3


def test_either_side_may_end_a_hosting(c: Consortium) -> None:
    host(c, 4, 1)
    c.send("endHosting", 4, sender=c.members[0])
    assert c.view("hostOf", 4) == 0
    host(c, 4, 1)
    c.send("endHosting", 4, sender=c.members[3])
    assert c.view("hostOf", 4) == 0


def test_accept_hosting_reverts_when_nobody_asked(c: Consortium) -> None:
    # The adversary: org 3 declares itself the host of org 4, which never asked.
    with reverts("RegistryNoHostingRequest", hostedOrgId=4, hostOrgId=3):
        c.send("acceptHosting", 4, sender=c.members[2])
    assert c.view("hostOf", 4) == 0


def test_accept_hosting_reverts_when_the_request_named_another_host(c: Consortium) -> None:
    c.send("requestHost", 1, sender=c.members[3])
    with reverts("RegistryNoHostingRequest", hostedOrgId=4, hostOrgId=3):
        c.send("acceptHosting", 4, sender=c.members[2])


def test_accept_hosting_reverts_when_the_request_was_withdrawn(c: Consortium) -> None:
    c.send("requestHost", 1, sender=c.members[3])
    c.send("requestHost", 0, sender=c.members[3])
    assert c.view("hostRequestOf", 4) == 0
    with reverts("RegistryNoHostingRequest", hostedOrgId=4, hostOrgId=1):
        c.send("acceptHosting", 4, sender=c.members[0])


def test_accept_hosting_reverts_when_replayed(c: Consortium) -> None:
    host(c, 4, 1)
    c.send("endHosting", 4, sender=c.members[3])
    # The host cannot take the hosted organisation back with the request it already used.
    with reverts("RegistryNoHostingRequest", hostedOrgId=4, hostOrgId=1):
        c.send("acceptHosting", 4, sender=c.members[0])


def test_accept_hosting_reverts_when_the_hosted_organisation_was_suspended_since_it_asked(c: Consortium) -> None:
    c.send("requestHost", 1, sender=c.members[3])
    c.pass_proposal(Kind.SUSPEND, 4)
    with reverts("RegistryOrganisationNotActive", orgId=4):
        c.send("acceptHosting", 4, sender=c.members[0])


def test_request_host_reverts_when_asking_itself(c: Consortium) -> None:
    with reverts("RegistrySelfHosting", orgId=4):
        c.send("requestHost", 4, sender=c.members[3])


def test_request_host_reverts_when_host_is_unknown(c: Consortium) -> None:
    with reverts("RegistryUnknownOrganisation", orgId=9):
        c.send("requestHost", 9, sender=c.members[3])


def test_request_host_reverts_when_host_is_suspended(c: Consortium) -> None:
    c.pass_proposal(Kind.SUSPEND, 1, by=(1, 2, 3))
    with reverts("RegistryOrganisationNotActive", orgId=1):
        c.send("requestHost", 1, sender=c.members[3])


def test_suspended_organisations_can_neither_ask_nor_host_nor_end(c: Consortium) -> None:
    c.send("requestHost", 1, sender=c.members[3])
    c.pass_proposal(Kind.SUSPEND, 1, by=(1, 2, 3))
    with reverts("RegistryNotActiveMember", account=c.members[0].address):
        c.send("acceptHosting", 4, sender=c.members[0])
    with reverts("RegistryNotActiveMember", account=c.members[0].address):
        c.send("requestHost", 2, sender=c.members[0])
    c.pass_proposal(Kind.REINSTATE, 1, by=(1, 2))  # two of the three Active members
    c.send("acceptHosting", 4, sender=c.members[0])
    c.pass_proposal(Kind.SUSPEND, 1, by=(1, 2, 3))
    with reverts("RegistryNotActiveMember", account=c.members[0].address):
        c.send("endHosting", 4, sender=c.members[0])


def test_hosting_calls_revert_for_accounts_of_no_organisation(c: Consortium) -> None:
    outsider = c.outsiders[0]
    for fn in ("requestHost", "acceptHosting", "endHosting"):
        with reverts("RegistryNotActiveMember", account=outsider.address):
            c.send(fn, 1, sender=outsider)


def test_end_hosting_reverts_when_caller_is_on_neither_side(c: Consortium) -> None:
    host(c, 4, 1)
    with reverts("RegistryNotHosting", hostedOrgId=4, callerOrgId=3):
        c.send("endHosting", 4, sender=c.members[2])
    assert c.view("hostOf", 4) == 1


def test_end_hosting_reverts_when_not_hosted(c: Consortium) -> None:
    with reverts("RegistryNotHosting", hostedOrgId=4, callerOrgId=4):
        c.send("endHosting", 4, sender=c.members[3])


# ---- maximum reporting delay ----------------------------------------------------------------------


def test_the_reporting_delay_is_set_at_deployment(c: Consortium) -> None:
    delay = 7 * DAY
    assert c.view("maxReportingDelay") == delay
    # Events may predate the registry: before the deployment the deployment's delay applies.
    assert c.view("maxReportingDelayAt", 0) == delay and c.view("maxReportingDelayAt", c.deployed_at) == delay
    assert c.view("MAX_REPORTING_DELAY_LIMIT") == MAX_REPORTING_DELAY_LIMIT


def test_the_reporting_delay_changes_by_vote_and_keeps_its_history(c: Consortium, devnet: AnvilControl) -> None:
    devnet.increase_time(60)
    receipt = c.pass_proposal(Kind.SET_DELAY, 2 * DAY)
    changed_at = c.block_time(receipt)
    (event,) = c.events(receipt, "MaxReportingDelayChanged")
    assert (event.args.oldDelay, event.args.newDelay) == (7 * DAY, 2 * DAY)
    assert c.view("maxReportingDelay") == 2 * DAY
    assert c.view("maxReportingDelayAt", changed_at - 1) == 7 * DAY
    assert c.view("maxReportingDelayAt", changed_at) == 2 * DAY
    assert c.view("maxReportingDelayAt", 2**200) == 2 * DAY


def test_a_reporting_delay_proposal_needs_the_threshold(c: Consortium) -> None:
    proposal_id = c.propose(c.members[0], Kind.SET_DELAY, 1)
    c.vote(c.members[1], proposal_id)
    assert c.view("maxReportingDelay") == 7 * DAY  # two votes of the three needed
    c.vote(c.members[2], proposal_id)
    assert c.view("maxReportingDelay") == 1


@pytest.mark.parametrize("delay", [0, MAX_REPORTING_DELAY_LIMIT + 1])
def test_set_max_reporting_delay_reverts_when_delay_is_out_of_bounds(c: Consortium, delay: int) -> None:
    with reverts("RegistryInvalidReportingDelay", delaySeconds=delay):
        c.propose(c.members[0], Kind.SET_DELAY, delay)


@pytest.mark.parametrize("data", [abi_encode(["uint256"], [2**64]), abi_encode(["uint64", "uint64"], [1, 1]), b"\x01"])
def test_set_max_reporting_delay_reverts_when_data_is_malformed(c: Consortium, data: bytes) -> None:
    with reverts("RegistryMalformedProposal", kind=Kind.SET_DELAY, data=data):
        c.propose_raw(c.members[0], Kind.SET_DELAY, data)


def test_an_executed_delay_proposal_cannot_be_replayed(c: Consortium) -> None:
    proposal_id = c.propose(c.members[0], Kind.SET_DELAY, 3 * DAY)
    c.vote(c.members[1], proposal_id)
    c.vote(c.members[2], proposal_id)
    for fn in ("vote", "execute"):
        with reverts("RegistryProposalAlreadyExecuted", proposalId=proposal_id):
            c.send(fn, proposal_id, sender=c.members[3])


def test_the_constructor_reverts_when_the_reporting_delay_is_out_of_bounds(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    for delay in (0, MAX_REPORTING_DELAY_LIMIT + 1):
        with reverts("RegistryInvalidReportingDelay", delaySeconds=delay):
            deploy_registry(chain, accounts[0], [founder("A", b"DE", accounts[1], [])], 10_000, delay)


# ---- verifier bundle ------------------------------------------------------------------------------


def test_the_verifier_bundle_is_approved_by_vote(c: Consortium) -> None:
    assert c.view("verifierBundleHash") == NO_KEY
    receipt = c.pass_proposal(Kind.SET_BUNDLE, BUNDLE)
    (event,) = c.events(receipt, "VerifierBundleApproved")
    assert event.args.bundleHash == BUNDLE
    assert c.view("verifierBundleHash") == BUNDLE
    newer = hashlib.sha256(b"a newer bundle").digest()
    proposal_id = c.propose(c.members[2], Kind.SET_BUNDLE, newer)
    c.vote(c.members[3], proposal_id)
    assert c.view("verifierBundleHash") == BUNDLE  # not before the threshold is reached
    c.vote(c.members[0], proposal_id)
    assert c.view("verifierBundleHash") == newer


def test_set_verifier_bundle_reverts_when_hash_is_zero(c: Consortium) -> None:
    with reverts("RegistryInvalidBundleHash", bundleHash=NO_KEY):
        c.propose(c.members[0], Kind.SET_BUNDLE, NO_KEY)


def test_set_verifier_bundle_reverts_when_data_is_malformed(c: Consortium) -> None:
    data = BUNDLE + b"\0"
    with reverts("RegistryMalformedProposal", kind=Kind.SET_BUNDLE, data=data):
        c.propose_raw(c.members[0], Kind.SET_BUNDLE, data)


def test_an_executed_bundle_proposal_cannot_be_replayed_after_a_newer_one(c: Consortium) -> None:
    first = c.propose(c.members[0], Kind.SET_BUNDLE, BUNDLE)
    c.vote(c.members[1], first)
    c.vote(c.members[2], first)
    c.pass_proposal(Kind.SET_BUNDLE, hashlib.sha256(b"newer").digest())
    with reverts("RegistryProposalAlreadyExecuted", proposalId=first):
        c.send("execute", first, sender=c.members[0])
    assert c.view("verifierBundleHash") == hashlib.sha256(b"newer").digest()


# ---- ANCHORER -------------------------------------------------------------------------------------


def test_anchorer_is_granted_and_revoked_by_vote_with_its_history(c: Consortium, devnet: AnvilControl) -> None:
    account = c.members[2]
    assert not c.view("hasRole", account.address, ANCHORER)
    granted = c.pass_proposal(Kind.GRANT, 3, ANCHORER)
    devnet.increase_time(60)
    revoked = c.pass_proposal(Kind.REVOKE, 3, ANCHORER)
    g, r = c.block_time(granted), c.block_time(revoked)
    assert [c.view("hasRoleAt", account.address, ANCHORER, t) for t in (g - 1, g, r - 1, r)] == [False, True, True, False]
    assert c.view("ANCHORER_ROLE") == ANCHORER
    assert set(c.view("rolesOf", 3)) == {CARRIER}


# ---- founding -------------------------------------------------------------------------------------


def founders_with_nodes(accounts: list[LocalAccount]) -> list[Any]:
    return [
        founder("Maker", b"VN", accounts[1], [ANCHORER], others=[accounts[5].address], url="https://maker.example", key=KEY),
        founder("Inspector", b"SG", accounts[2], [], host=1),
        founder("Carrier", b"SG", accounts[3], [ANCHORER], url="http://127.0.0.1:8601"),
        founder("Courier", b"NL", accounts[4], [], host=3),
    ]


def test_the_founding_file_links_anchor_accounts_publishes_nodes_and_sets_hosts(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    receipt = deploy_registry(chain, accounts[0], founders_with_nodes(accounts), 5_001, 3 * DAY, BUNDLE)
    registry = chain.contract("ConsortiumRegistry", str(receipt["contractAddress"]))
    at = int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])

    def view(fn: str, *args: Any) -> Any:
        return chain.call(getattr(registry.functions, fn)(*args))

    assert view("accountsOf", 1) == [accounts[1].address, accounts[5].address]
    assert view("hasRole", accounts[5].address, ANCHORER)
    assert view("nodeRecord", 1) == ("https://maker.example", KEY, at)
    assert view("nodeRecord", 2) == ("", NO_KEY, 0)
    assert [view("hostOf", org) for org in (1, 2, 3, 4)] == [0, 1, 0, 3]
    assert view("hostOfAt", 2, at - 1) == 0 and view("hostOfAt", 2, at) == 1
    assert view("maxReportingDelay") == 3 * DAY and view("verifierBundleHash") == BUNDLE
    hosting = [(e.args.hostedOrgId, e.args.hostOrgId) for e in registry.events.HostingChanged().process_receipt(receipt, errors=DISCARD)]
    assert hosting == [(2, 1), (4, 3)]
    assert [e.args.orgId for e in registry.events.NodeRecordSet().process_receipt(receipt, errors=DISCARD)] == [1, 3]
    (delay,) = registry.events.MaxReportingDelayChanged().process_receipt(receipt, errors=DISCARD)
    assert (delay.args.oldDelay, delay.args.newDelay) == (0, 3 * DAY)
    assert [e.args.bundleHash for e in registry.events.VerifierBundleApproved().process_receipt(receipt, errors=DISCARD)] == [BUNDLE]
    assert view("organisation", 4)[4] == Status.ACTIVE


def test_the_constructor_reverts_when_a_founder_hosts_itself(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    founders = founders_with_nodes(accounts)
    founders[1] = founder("Inspector", b"SG", accounts[2], [], host=2)
    with reverts("RegistrySelfHosting", orgId=2):
        deploy_registry(chain, accounts[0], founders, 5_001)


def test_the_constructor_reverts_when_a_host_is_no_founder(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    founders = founders_with_nodes(accounts)
    founders[1] = founder("Inspector", b"SG", accounts[2], [], host=5)
    with reverts("RegistryUnknownOrganisation", orgId=5):
        deploy_registry(chain, accounts[0], founders, 5_001)


def test_the_constructor_reverts_when_an_anchor_account_is_anothers(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    founders = founders_with_nodes(accounts)
    founders[2] = founder("Carrier", b"SG", accounts[3], [ANCHORER], others=[accounts[5].address])
    with reverts("RegistryAccountTaken", account=accounts[5].address, orgId=1):
        deploy_registry(chain, accounts[0], founders, 5_001)


def test_the_constructor_reverts_when_a_node_url_is_invalid(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    founders = founders_with_nodes(accounts)
    founders[2] = founder("Carrier", b"SG", accounts[3], [ANCHORER], url="https://carrier.example/")
    with reverts("RegistryInvalidNodeUrl", url="https://carrier.example/"):
        deploy_registry(chain, accounts[0], founders, 5_001)
