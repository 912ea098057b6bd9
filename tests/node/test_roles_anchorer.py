"""ANCHORER in the ingest's role mirror: mirrored with its history like every role, and never a
role that lets an account attest an event."""

from __future__ import annotations

from web3 import Web3

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from waymark.devnet.anvil import AnvilControl
from waymark.devnet.consortium import demo_member, devnet_account
from waymark.devnet.governance import demo_voters, pass_proposal
from node.chain.consortium import ATTESTING_ROLES
from node.member.ingest.roles import RoleMirror
from node.protocol.roles import BIZSTEP_ROLES, roles_for_bizstep
from node.chain.registry import ProposalKind, RegistryClient, role_data


def test_the_mirror_follows_anchorer_grants_and_revocations_as_the_registry_does(
    chain: ChainClient, deployment: Deployment, devnet: AnvilControl
) -> None:
    registry = RegistryClient(chain, deployment)
    anchor_index = demo_member("carrier").anchor_account_index
    assert anchor_index is not None
    carrier_anchor = devnet_account(anchor_index)
    forwarder = devnet_account(8)  # hosted by the carrier: no ANCHORER
    voters = demo_voters(without=("inspector",))
    moments = [int(chain.w3.eth.get_block("latest")["timestamp"])]
    devnet.increase_time(100)
    pass_proposal(registry, ProposalKind.REVOKE_ROLE, role_data(3, "ANCHORER"), voters)
    devnet.increase_time(100)
    pass_proposal(registry, ProposalKind.GRANT_ROLE, role_data(8, "ANCHORER"), voters)
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    moments += [now - 150, now - 50, now]

    mirror = RoleMirror(chain.w3, deployment.address("ConsortiumRegistry"), start_block=deployment.start_block, refresh_interval=0)
    contract = registry.contract.functions
    seen = []
    for account in (carrier_anchor, forwarder):
        for moment in moments:
            expected = contract.hasRoleAt(account.address, Web3.keccak(text="ANCHORER"), moment).call()
            assert mirror.has_role_at(account.address, "ANCHORER", moment) == expected, (account.address, moment)
            seen.append(expected)
    assert seen == [True, True, False, False, False, False, False, True]


def test_anchorer_is_no_attesting_role() -> None:
    assert "ANCHORER" not in ATTESTING_ROLES
    assert all("ANCHORER" not in roles for roles in BIZSTEP_ROLES.values())
    for step in (None, "shipping", "urn:example:unknown-step"):
        assert "ANCHORER" not in roles_for_bizstep(step)
