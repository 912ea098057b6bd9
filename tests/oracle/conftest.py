"""Fixtures of the oracle tests: a real node process on the test chain (Anvil, Waymark deployed
with the demo consortium) and oracles of the demo member organisations talking to it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.chain.client import ChainClient
from node.chain.deploy import Deployment, deploy, waymark_steps
from node.db import Database
from node.escrow.client import EscrowClient
from node.escrow.store import TermsStore
from node.relayer.app import create_relayer_app
from node.relayer.service import Relayer
from oracle.runtime import OracleRuntime, RoleHistory, build_runtime, escrow_factory, fx_signer_for, organisation_roles
from oracle.settings import OracleSettings
from tests.documents.keys import OrgKeys, make_org_keys
from tests.oracle.servers import NodeProcess, ServedApp
from waymark.devnet.anvil import AnvilProcess
from waymark.devnet.consortium import DEMO_MEMBERS, DEPLOYER_INDEX, demo_consortium, devnet_account
from waymark.devnet.escrow import devnet_token_steps, setup_devnet_escrow

PRODUCTS = {
    "09521234543213": {"name": "Glazed stoneware vase, 30 cm", "temperature": {"min": -20, "max": 50}, "humidity": {"min": 10, "max": 85}},
}


@pytest.fixture
def deployment_file(deployment: Deployment, tmp_path: Path) -> Path:
    return tmp_path / "deployment.json"


@pytest.fixture
def org_keys(chain: ChainClient, deployment: Deployment, tmp_path: Path) -> OrgKeys:
    """Every demo organisation's document keystore, its public key published in the registry."""
    return make_org_keys(tmp_path / "org-keys", chain, deployment)


@pytest.fixture
def node(
    anvil: AnvilProcess, chain: ChainClient, deployment: Deployment, deployment_file: Path, tmp_path: Path, org_keys: OrgKeys
) -> Iterator[NodeProcess]:
    process = NodeProcess(anvil.rpc_url, anvil.chain_id, deployment_file, tmp_path / "node").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def chain_now(chain: ChainClient, deployment: Deployment) -> int:
    """The latest block's time: source data dated after it is after every founding role grant."""
    return int(chain.w3.eth.get_block("latest")["timestamp"])


OracleFactory = Callable[..., OracleRuntime]


@pytest.fixture
def make_oracle(chain: ChainClient, deployment: Deployment, node: NodeProcess, tmp_path: Path) -> Iterator[OracleFactory]:
    """Build the oracle of a demo member (by key: manufacturer, inspector, carrier, ...)."""
    made: list[OracleRuntime] = []
    products_file = tmp_path / "products.json"
    products_file.write_text(json.dumps(PRODUCTS))

    def build(member: str, *, data_dir: Path | None = None, relayer: str | None = None, **overrides: Any) -> OracleRuntime:
        """With `relayer` (its URL) the oracle attests escrow milestones and signs FX rates."""
        index = next(m.account_index for m in DEMO_MEMBERS if m.key == member)
        settings = OracleSettings(
            node_url=node.url, data_dir=data_dir or tmp_path / f"oracle-{member}", devnet_account=index,
            products_file=products_file, retry_base=0.05, retry_max=0.5, csv_min_age=0, csv_poll=0.1, relayer_url=relayer,
            **overrides,
        )
        account = devnet_account(index)
        consortium = deployment.address("ConsortiumRegistry")
        runtime = build_runtime(
            settings, account, chain_id=chain.chain_id, provenance_registry=deployment.address("ProvenanceRegistry"),
            consortium_registry=consortium, roles=organisation_roles(chain, consortium, account.address),
            escrow=escrow_factory(settings, chain, deployment, account), fx_signer=fx_signer_for(settings, chain, deployment, account),
            role_at=RoleHistory(chain, consortium, deployment.start_block, refresh=0.1),
        )
        made.append(runtime)
        return runtime

    yield build
    for runtime in made:
        runtime.close()


@pytest.fixture
def deployment(chain: ChainClient, accounts: list[Any], tmp_path: Path) -> Deployment:
    """Waymark with the demo consortium, and the devnet stablecoins allowlisted in the escrow."""
    steps = waymark_steps(demo_consortium()) + devnet_token_steps(chain.chain_id)
    deployed, _ = deploy(chain, accounts[DEPLOYER_INDEX], steps, tmp_path / "deployment.json")
    setup_devnet_escrow(chain, deployed)
    return deployed


RELAYER_ACCOUNT = 16  # a funded dev account of no organisation: pays for the relayer's submissions


def relayer_app(anvil: AnvilProcess, deployment: Deployment, workdir: Path) -> Any:
    """The real escrow relayer (node/relayer/) as an ASGI app, its database in `workdir`."""
    client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
    db = Database(f"sqlite:///{workdir / 'relayer.sqlite3'}")
    db.migrate()
    escrow = EscrowClient.from_deployment(client, deployment, TermsStore(workdir / "terms.json"))
    service = Relayer(db, escrow, devnet_account(RELAYER_ACCOUNT), min_lifetime=60, in_flight_wait=5)
    return create_relayer_app(service, sweep_interval=0.5)


@pytest.fixture
def relayer(anvil: AnvilProcess, deployment: Deployment, node: NodeProcess, tmp_path: Path) -> Iterator[ServedApp]:
    """The real escrow relayer serving its HTTP API on a free port."""
    with ServedApp(relayer_app(anvil, deployment, tmp_path)) as served:
        yield served
