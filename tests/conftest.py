"""Shared fixtures: a real Anvil started by the tests, a chain client, dev accounts, time control.

The chain is snapshotted before each test and reverted after it, so tests never depend on
each other or on the order they run in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.chain.build import build
from node.chain.deploy import Deployment
from node.chain.client import ChainClient
from waymark.devnet.anvil import DEVNET_ACCOUNTS, DEVNET_MNEMONIC, AnvilControl, AnvilProcess, free_port

Account.enable_unaudited_hdwallet_features()


@pytest.fixture(scope="session")
def contracts_built() -> None:
    build()


@pytest.fixture(scope="session")
def anvil(contracts_built: None) -> Iterator[AnvilProcess]:
    process = AnvilProcess(port=free_port()).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def accounts() -> list[LocalAccount]:
    return [
        Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        for i in range(DEVNET_ACCOUNTS)
    ]


@pytest.fixture
def devnet(anvil: AnvilProcess) -> Iterator[AnvilControl]:
    control = AnvilControl(anvil.rpc_url)
    snapshot = control.snapshot()
    try:
        yield control
    finally:
        control.revert(snapshot)


@pytest.fixture
def chain(anvil: AnvilProcess, devnet: AnvilControl) -> ChainClient:
    """A fresh client per test (its nonce cache must not outlive the snapshot revert)."""
    return ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)


@pytest.fixture
def deployment(chain: ChainClient, accounts: list[LocalAccount], tmp_path: Path) -> Deployment:
    """Waymark deployed with the demo consortium on the test chain (reverted after the test)."""
    from node.chain.deploy import deploy, waymark_steps
    from waymark.devnet.consortium import DEPLOYER_INDEX, demo_consortium

    deployed, _ = deploy(chain, accounts[DEPLOYER_INDEX], waymark_steps(demo_consortium()), tmp_path / "deployment.json")
    return deployed
