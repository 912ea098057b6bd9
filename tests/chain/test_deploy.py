"""Deployment: recorded, idempotent, redone when the chain lost the contracts."""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from node.chain.deploy import deploy, is_current, load_deployment, waymark_steps
from waymark.devnet.anvil import AnvilControl
from waymark.devnet.consortium import (
    DEMO_COMPANY_PREFIX,
    DEMO_MAX_REPORTING_DELAY,
    DEMO_MEMBERS,
    DEMO_THRESHOLD,
    DEMO_THRESHOLD_BPS,
    demo_consortium,
    demo_org_id,
    devnet_account,
)
from node.chain.registry import OrgStatus, RegistryClient


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
    assert manufacturer.roles == ("MANUFACTURER", "ORACLE", "ANCHORER")
    assert manufacturer.accounts == (accounts[1].address, accounts[20].address)  # its node's anchor account
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


def test_the_demo_deployment_gives_node_members_anchorer_and_anchor_accounts_and_hosts_the_others(
    chain: ChainClient, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    deployment, _ = deploy(chain, accounts[0], waymark_steps(demo_consortium()), tmp_path / "31337.json")
    registry = RegistryClient(chain, deployment)
    deployed_at = int(chain.w3.eth.get_block(deployment.contracts["ConsortiumRegistry"].block)["timestamp"])
    for member in DEMO_MEMBERS:
        org_id = demo_org_id(member.key)
        if member.anchor_account_index is not None:
            anchor = devnet_account(member.anchor_account_index).address
            assert registry.roles_at(anchor)["ANCHORER"], member.key
            assert chain.call(registry.contract.functions.organisationOf(anchor)) == org_id
        host = 0 if member.hosted_by is None else demo_org_id(member.hosted_by)
        assert registry.host_of(org_id) == host and registry.host_of_at(org_id, deployed_at) == host, member.key
        assert registry.host_of_at(org_id, deployed_at - 1) == 0  # nothing before the deployment
    nodes = {m.key for m in DEMO_MEMBERS if m.runs_node}
    assert nodes == {"manufacturer", "carrier", "customs", "operator"}
    hosted = {m.key: m.hosted_by for m in DEMO_MEMBERS if m.hosted_by}
    assert hosted == {"inspector": "manufacturer", "forwarder": "carrier", "courier": "carrier",
                      "broker": "customs", "port": "customs"}
    # The account the demo's single node anchors from today (the inspector's) may still anchor.
    assert registry.roles_at(accounts[2].address)["ANCHORER"]
    assert registry.max_reporting_delay() == DEMO_MAX_REPORTING_DELAY
    assert registry.max_reporting_delay_at(deployed_at - 3600) == DEMO_MAX_REPORTING_DELAY
    assert registry.verifier_bundle_hash() is None
    assert registry.node_directory() == []  # the nodes publish their URLs themselves


def test_node_urls_given_at_deployment_are_the_directory(
    chain: ChainClient, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    urls = {"manufacturer": "http://127.0.0.1:8601", "customs": "https://customs.example:8443/waymark"}
    deployment, _ = deploy(chain, accounts[0], waymark_steps(demo_consortium(urls)), tmp_path / "31337.json")
    directory = RegistryClient(chain, deployment).node_directory()
    assert [(r.org_id, r.url, r.encryption_key) for r in directory] == [
        (demo_org_id("manufacturer"), urls["manufacturer"], None), (demo_org_id("customs"), urls["customs"], None)]
    assert all(r.has_node and r.updated_at > 0 for r in directory)
