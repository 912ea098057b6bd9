"""The ingest's local role mirror answers exactly as ConsortiumRegistry.hasRoleAt, through role
revocations, suspensions and new accounts, and sees a change after its refresh interval."""

from __future__ import annotations

from web3 import Web3

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from waymark.devnet.anvil import AnvilControl
from waymark.devnet.consortium import devnet_account
from waymark.devnet.governance import demo_voters, pass_proposal
from node.db import Database
from node.member.indexer import Indexer, followed_contracts
from node.chain.consortium import ATTESTING_ROLES
from node.member.ingest.roles import RoleMirror, base_from_database
from node.chain.registry import ProposalKind, RegistryClient, org_data, role_data


def _block_time(chain: ChainClient) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def test_mirror_matches_has_role_at_through_the_registry_history(
    chain: ChainClient, deployment: Deployment, devnet: AnvilControl
) -> None:
    registry = RegistryClient(chain, deployment)
    members = [devnet_account(i) for i in (1, 2, 3, 4)]
    newcomer = devnet_account(14)  # not a demo member
    mirror = RoleMirror(chain.w3, deployment.address("ConsortiumRegistry"), start_block=deployment.start_block, refresh_interval=0)
    moments = [_block_time(chain) - 5, _block_time(chain)]

    devnet.increase_time(100)
    pass_proposal(registry, ProposalKind.REVOKE_ROLE, role_data(3, "CARRIER"), demo_voters())  # the carrier loses CARRIER
    moments += [_block_time(chain) - 1, _block_time(chain)]
    devnet.increase_time(100)
    pass_proposal(registry, ProposalKind.SUSPEND, org_data(2), demo_voters(without=("inspector",)))  # the inspector is suspended
    moments += [_block_time(chain) - 1, _block_time(chain)]
    devnet.increase_time(100)
    registry.offer_account(newcomer.address, members[3])  # customs adds a clerk, who accepts
    registry.accept_account(4, newcomer)
    moments += [_block_time(chain) - 1, _block_time(chain), _block_time(chain) + 10_000]

    mirror.refresh(force=True)
    contract = registry.contract.functions
    for account in [*members, newcomer]:
        for role in ATTESTING_ROLES:
            for moment in moments:
                expected = contract.hasRoleAt(account.address, Web3.keccak(text=role), moment).call()
                assert mirror.has_role_at(account.address, role, moment) == expected, (account.address, role, moment)
    assert not mirror.has_role_at(members[2].address, "CARRIER", moments[-1])
    assert mirror.has_role_at(members[2].address, "CARRIER", moments[2])  # before the revocation
    assert mirror.has_role_at(newcomer.address, "CUSTOMS", moments[-1])


def test_mirror_sees_a_revocation_after_its_refresh_interval(
    chain: ChainClient, deployment: Deployment, devnet: AnvilControl
) -> None:
    mirror = RoleMirror(chain.w3, deployment.address("ConsortiumRegistry"), start_block=deployment.start_block, refresh_interval=3600)
    carrier = devnet_account(3)
    later = _block_time(chain) + 1000
    assert mirror.has_role_at(carrier.address, "CARRIER", later)
    devnet.increase_time(10)
    pass_proposal(RegistryClient(chain, deployment), ProposalKind.REVOKE_ROLE, role_data(3, "CARRIER"), demo_voters())
    assert mirror.has_role_at(carrier.address, "CARRIER", later)  # cached: within the interval
    mirror.refresh_interval = 0
    assert not mirror.has_role_at(carrier.address, "CARRIER", later)


def test_mirror_starts_from_the_indexed_history(
    db: Database, chain: ChainClient, deployment: Deployment, devnet: AnvilControl
) -> None:
    indexer = Indexer(db, chain.w3, followed_contracts({n: c.address for n, c in deployment.contracts.items()}),
                      chain_id=chain.chain_id, start_block=deployment.start_block)
    indexer.step()
    devnet.increase_time(10)
    pass_proposal(RegistryClient(chain, deployment), ProposalKind.REVOKE_ROLE, role_data(4, "CUSTOMS"), demo_voters(without=("carrier",)))
    address = deployment.address("ConsortiumRegistry")
    base, base_block = base_from_database(db, chain.chain_id, address)
    assert base and base_block is not None and base_block < chain.w3.eth.block_number
    mirror = RoleMirror(chain.w3, address, start_block=deployment.start_block, base_logs=base, base_block=base_block)
    now = _block_time(chain)
    customs = devnet_account(4).address
    assert mirror.has_role_at(customs, "CUSTOMS", now - 5)  # from the database
    assert not mirror.has_role_at(customs, "CUSTOMS", now)  # from the chain's newest blocks
