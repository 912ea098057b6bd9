"""Deployment: recorded, idempotent, redone when the chain lost the contracts."""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from node.chain.deploy import deploy, is_current, load_deployment, waymark_steps
from node.devnet.anvil import AnvilControl
from node.devnet.consortium import DEMO_COMPANY_PREFIX, DEMO_MEMBERS, DEMO_THRESHOLD, DEMO_THRESHOLD_BPS, demo_consortium
from node.registry import OrgStatus, RegistryClient


def test_deploy_records_contracts_and_registers_the_demo_consortium(
    chain: ChainClient, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    record = tmp_path / "31337.json"
    deployment, fresh = deploy(chain, accounts[0], waymark_steps(demo_consortium()), record)
    assert fresh
    assert load_deployment(record).contracts == deployment.contracts
    orgs = RegistryClient(chain, deployment).organisations()
    assert [o.name for o in orgs] == [m.name for m in DEMO_MEMBERS]
    assert all(o.status is OrgStatus.ACTIVE for o in orgs)
    manufacturer = next(o for o in orgs if o.name == DEMO_MEMBERS[0].name)
    assert manufacturer.roles == ("MANUFACTURER", "ORACLE") and manufacturer.accounts == (accounts[1].address,)
    assert RegistryClient(chain, deployment).threshold() == DEMO_THRESHOLD
    assert RegistryClient(chain, deployment).threshold_bps() == DEMO_THRESHOLD_BPS
    # The manufacturer's founding GS1 Company Prefix covers the demo product, so it can register it.
    assert manufacturer.company_prefixes == (DEMO_COMPANY_PREFIX,)
    assert RegistryClient(chain, deployment).company_prefix_organisation("09521234543213") == manufacturer.id


def test_deploying_again_on_a_chain_with_matching_code_does_nothing(
    chain: ChainClient, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    record = tmp_path / "31337.json"
    first, _ = deploy(chain, accounts[0], waymark_steps(demo_consortium()), record)
    block = chain.w3.eth.block_number
    again, fresh = deploy(chain, accounts[0], waymark_steps(demo_consortium()), record)
    assert not fresh
    assert again.contracts == first.contracts
    assert chain.w3.eth.block_number == block  # no transaction was sent


def test_a_chain_that_lost_the_contracts_is_deployed_afresh(
    chain: ChainClient, devnet: AnvilControl, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    record = tmp_path / "31337.json"
    before = devnet.snapshot()
    first, _ = deploy(chain, accounts[0], waymark_steps(demo_consortium()), record)
    devnet.revert(before)  # the chain goes back to before the deployment
    chain = ChainClient(chain.rpc_url, expected_chain_id=chain.chain_id)
    assert not is_current(chain, first, list(first.contracts))
    second, fresh = deploy(chain, accounts[0], waymark_steps(demo_consortium()), record)
    assert fresh and is_current(chain, second, list(second.contracts))
