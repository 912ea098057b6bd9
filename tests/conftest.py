"""Shared fixtures: a real Anvil started by the tests, a chain client, dev accounts, time control.

The chain is snapshotted before each test and reverted after it, so tests never depend on
each other or on the order they run in.

Also the order the two xdist workers take the modules in (scripts/run-tests.sh runs
`--dist loadfile --no-loadscope-reorder`: a module is one unit of work, its module-scoped world
built once, and the e2e stories that share a world are one unit together): the slowest modules first, so that no worker is left alone with a long module at the
end while the other idles. (xdist's default order, most tests first, leaves the one-test e2e
stories, demo runs and property tests for last.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from xdist.scheduler import LoadFileScheduling

from node.chain.build import build
from node.chain.deploy import Deployment
from node.chain.client import ChainClient
from waymark.devnet.anvil import DEVNET_ACCOUNTS, DEVNET_MNEMONIC, AnvilControl, AnvilProcess
from waymark.ports import free_port

Account.enable_unaudited_hdwallet_features()

# The modules that take longest (minutes on a loaded 2-core machine: demo networks, browsers,
# schemathesis, CLI subprocesses, per-test worlds), longest first, from `--durations` of the whole
# suite and the e2e worlds' start-up (one to two minutes each). Only the order: a module missing here runs after these, in collection order.
SLOWEST_FIRST = (
    "tests/e2e/test_run_command.py",
    "tests/e2e/test_4_audit.py",
    "tests/e2e/test_1_trade.py",  # stories 1-3 and 5 share one world: one unit of work (ModuleScheduling)
    "tests/e2e/test_2_dispute.py",
    "tests/e2e/test_3_counterfeit.py",
    "tests/e2e/test_5_every_node.py",
    "tests/cli/test_readme_commands.py",
    "tests/api/test_schemathesis.py",
    "tests/cli/test_cli.py",
    "tests/scanner_web/test_trust_anchors.py",
    "tests/scanner_web/test_scanner_page.py",
    "tests/audit/test_verify.py",
    "tests/contracts/test_escrow_properties.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest modules first (a stable sort: each module's tests keep their order)."""
    rank = {module: index for index, module in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


# The e2e stories that share one world (tests/e2e/conftest.py, `delivered`): one unit of work, so
# that one worker builds it (a demo network, minutes of CPU) instead of each worker its own.
SHARED_E2E_WORLD = ("tests/e2e/test_1_trade.py", "tests/e2e/test_2_dispute.py", "tests/e2e/test_3_counterfeit.py",
                    "tests/e2e/test_5_every_node.py")


class ModuleScheduling(LoadFileScheduling):  # type: ignore[misc]  # (xdist ships no types)
    """`--dist loadfile` (a module is a unit of work), but the modules of SHARED_E2E_WORLD are one unit."""

    def _split_scope(self, nodeid: str) -> str:
        module = super()._split_scope(nodeid)
        return "the e2e stories' shared world" if module in SHARED_E2E_WORLD else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadFileScheduling | None:
    return ModuleScheduling(config, log) if config.getoption("dist") == "loadfile" else None


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
