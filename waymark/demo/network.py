"""The demo network on this machine: Anvil, the deployment, and node, relayer and API processes.

Everything lives under one folder (`var/demo/` for `waymark demo`, a temporary folder in the
tests): the chain state, the deployment record, the shared SQLite database (node, relayer and
API), the oracles' queues and the logs. Ports are given, so the demo can run beside a
developer's devnet (or another demo) on other ports.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from node.chain.build import build
from node.chain.client import ChainClient
from node.chain.deploy import Deployment, deploy, waymark_steps
from node.devnet.anvil import DEVNET_CHAIN_ID, AnvilProcess, free_port
from node.devnet.consortium import DEPLOYER_INDEX, demo_consortium, devnet_account
from node.devnet.escrow import devnet_token_steps, setup_devnet_escrow
from node.paths import PROJECT_ROOT
from waymark.demo.processes import Child, PortTaken, Supervisor, port_free

# Dev accounts that send transactions from the services (none of them sends anything else in the
# story, so nonces never race): the anchorer signs as the inspector's account (an ORACLE member),
# the relayer pays with an account of no organisation.
ANCHOR_ACCOUNT = 2
RELAYER_ACCOUNT = 16
ORACLE_COUNT = 8  # demo members whose oracles the story uses (see simulation.build_plan)


@dataclass(frozen=True)
class Ports:
    rpc: int = 8545
    node: int = 8600
    api: int = 8700
    oracles: int = 8710  # the first of ORACLE_COUNT consecutive ports
    relayer: int = 8720

    @classmethod
    def free(cls) -> "Ports":
        """Ports nobody listens on (tests); the oracles get free ports of their own (base 0)."""
        return cls(free_port(), free_port(), free_port(), 0, free_port())

    def check_free(self) -> None:
        for what, port, option in (("chain RPC", self.rpc, "--rpc-port"), ("node", self.node, "--node-port"),
                                   ("scan API", self.api, "--api-port"), ("relayer", self.relayer, "--relayer-port")):
            if not port_free(port):
                raise PortTaken(what, port, option)
        for offset in range(ORACLE_COUNT if self.oracles else 0):
            if not port_free(self.oracles + offset):
                raise PortTaken("oracles", self.oracles + offset, "--oracle-port")


@dataclass(frozen=True)
class Network:
    """Where the running demo network answers, and its deployment."""

    root: Path
    ports: Ports
    deployment: Deployment
    deployed_now: bool
    public_url: str | None = None
    """Base URL the QR codes and printed links use (a phone's way to the scan API); the loopback API URL when None."""

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.rpc}"

    @property
    def node_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.node}"

    @property
    def relayer_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.relayer}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def public_base(self) -> str:
        return (self.public_url or self.api_url).rstrip("/")

    @property
    def chain_id(self) -> int:
        return DEVNET_CHAIN_ID

    @property
    def db_url(self) -> str:
        return database_url(self.root)

    @property
    def deployment_file(self) -> Path:
        return deployments_dir(self.root) / f"{DEVNET_CHAIN_ID}.json"

    def client(self) -> ChainClient:
        return ChainClient(self.rpc_url, expected_chain_id=self.chain_id)


def database_url(root: Path) -> str:
    return f"sqlite:///{root / 'waymark.sqlite3'}"


def deployments_dir(root: Path) -> Path:
    return root / "deployments"


def _service(name: str, root: Path, args: list[str], port: int, env: dict[str, str]) -> Child:
    # The services run this checkout's code (`-m waymark` from the project root), whichever
    # checkout an editable install points at.
    return Child(
        name, [sys.executable, "-m", "waymark", *args], root / "logs" / f"{name}.log",
        health_url=f"http://127.0.0.1:{port}/health", cwd=PROJECT_ROOT,
        env={"PYTHONPATH": str(PROJECT_ROOT), "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(deployments_dir(root)), **env},
    )


def start_network(root: Path, ports: Ports, supervisor: Supervisor, say: Callable[[str], None],
                  block_time: float | None = None, public_url: str | None = None) -> Network:
    """Start Anvil (chain state in `root/chain`; a block every `block_time` seconds, else one per
    transaction), deploy unless the recorded deployment is current, then the node and, once it answers, the
    relayer and the API, as child processes of `supervisor`. Returns once all answer.

    With a `public_url` (a phone's way to this machine) the scan API listens on every interface and
    its links and QR codes use that URL; without one it listens on 127.0.0.1 only."""
    ports.check_free()
    root.mkdir(parents=True, exist_ok=True)
    if build():
        say("contracts compiled")
    state = root / "chain" / "state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    resumed = state.exists()
    anvil = AnvilProcess(port=ports.rpc, state_file=state, block_time=block_time)
    rpc_url = anvil.rpc_url
    supervisor.start(Child("anvil", anvil.command(), root / "logs" / "anvil.log", health_url=rpc_url), timeout=30)
    client = ChainClient(rpc_url, expected_chain_id=DEVNET_CHAIN_ID)
    say(f"chain       Anvil on {rpc_url} (chain id {client.chain_id}, {'resumed from' if resumed else 'state saved to'} {state})")
    deployer = devnet_account(DEPLOYER_INDEX)
    steps = waymark_steps(demo_consortium()) + devnet_token_steps(client.chain_id, deployer.address)
    deployment, fresh = deploy(client, deployer, steps, deployments_dir(root) / f"{client.chain_id}.json")
    setup_devnet_escrow(client, deployment, minter=deployer)
    say(f"deployment  {'deployed now' if fresh else 'resumed'}: " + ", ".join(
        f"{name} {c.address}" for name, c in deployment.contracts.items() if not name.startswith("DevStablecoin")))
    db = database_url(root)
    documents = {"WAYMARK_DOCUMENTS_BLOB_DIR": str(root / "documents")}  # the demo's documents stay under its root
    api_public = (public_url or f"http://127.0.0.1:{ports.api}").rstrip("/")
    api_host = ["--host", "0.0.0.0"] if public_url else []
    chain = ["--rpc-url", rpc_url, "--chain-id", str(DEVNET_CHAIN_ID)]
    supervisor.start(
        _service("node", root, ["node", "run", "--port", str(ports.node), "--db", db, *chain], ports.node, {
            "WAYMARK_NODE_ANCHOR_DEVNET_ACCOUNT": str(ANCHOR_ACCOUNT),
            "WAYMARK_NODE_PUBLIC_URL": f"http://127.0.0.1:{ports.node}",
            "WAYMARK_NODE_MAX_BATCH_DELAY": "0.5",
            **documents,
        }),
    )
    # The node creates and migrates the database before it answers; the relayer and the API open
    # that database (the API refuses a missing one rather than create an empty file), so they
    # start once the node is up.
    supervisor.start(
        _service("relayer", root, ["escrow", "relayer", "run", "--port", str(ports.relayer), "--db", db, *chain], ports.relayer, {
            "WAYMARK_RELAYER_DEVNET_ACCOUNT": str(RELAYER_ACCOUNT),
            "WAYMARK_RELAYER_SWEEP_INTERVAL": "0.5",
        }),
        _service("api", root, ["api", "run", "--port", str(ports.api), "--public-url", api_public, *api_host,
                               "--database-url", db, "--log-level", "warning", *chain], ports.api, {
            "WAYMARK_API_DEVICE_SALT_FILE": str(root / "api-device-salt"),
            **documents,
        }),
    )
    network = Network(root, ports, deployment, fresh, public_url)
    say(f"services    node {network.node_url}, relayer {network.relayer_url}, scan API {network.api_url} (logs in {root / 'logs'})")
    return network
