"""The demo network on this machine: Anvil, the deployment, and the member nodes, the relayer and
the scan APIs as processes.

Four members run a node each (MEMBER_NODES: manufacturer, carrier, customs, marketplace
operator), each its own process with its own SQLite database and its own scan API; every
organisation's oracles post to its own organisation's node, or to its host's (the inspector is
hosted by the manufacturer's node, forwarder and courier by the carrier's, broker and port by
the customs node). The nodes replicate each other's anchored batches; the relayer runs on the
operator's node's database.

Everything lives under one folder (`var/demo/` for `waymark demo`, a temporary folder in the
tests): the chain state, the deployment record, each node's database and documents
(`nodes/<member>/`, the operator's at the root), the oracles' queues and the logs. Ports are
given, so the demo can run beside a developer's devnet (or another demo) on other ports.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from eth_utils.abi import event_abi_to_log_topic

from api.page_bundle import PageAnchors, build_page
from node.chain.build import build
from node.chain.client import ChainClient
from node.chain.deploy import Deployment, deploy, waymark_steps
from node.chain.logs import LogPager
from node.db import Database
from waymark.devnet.anvil import DEVNET_CHAIN_ID, AnvilProcess
from waymark.devnet.consortium import DEPLOYER_INDEX, demo_consortium, demo_member, devnet_account
from waymark.devnet.escrow import devnet_token_steps, setup_devnet_escrow
from waymark.devnet.governance import approve_verifier_bundle, publish_document_keys
from node.errors import WaymarkError
from node.paths import PROJECT_ROOT
from waymark.demo.layout import MEMBER_NODES, REGION_HEADER, RELAYER_ACCOUNT, RELAYER_NODE, RESOLVER_NODE, Ports
from waymark.demo.processes import Child, Supervisor


@dataclass(frozen=True)
class MemberNode:
    """One member's node: its own database, anchorer, indexer and scan API."""

    member: str
    """The organisation running it (a DEMO_MEMBERS key)."""
    organisations: tuple[str, ...]
    """Its own organisation and those it hosts: their oracles post to this node."""
    home: Path
    """Its database, documents and scan-API salt."""
    node_port: int
    api_port: int
    public_url: str | None = None
    """Base URL of its scan API for phones (only the resolver's has one); None: loopback only."""
    public_host: str | None = None
    """Host (and scheme) other machines reach this one at, when the demo is public."""

    @property
    def node_url(self) -> str:
        return f"http://127.0.0.1:{self.node_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def published_node_url(self) -> str:
        """The node's URL in the registry's node directory (and in its batches' URIs)."""
        return f"{self.public_host}:{self.node_port}" if self.public_host else self.node_url

    @property
    def db_path(self) -> Path:
        return self.home / "waymark.sqlite3"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"


@dataclass(frozen=True)
class Network:
    """Where the running demo network answers, and its deployment."""

    root: Path
    ports: Ports
    deployment: Deployment
    deployed_now: bool
    nodes: dict[str, MemberNode]
    """The member nodes by the member running each (MEMBER_NODES order)."""
    public_url: str | None = None
    """Base URL the QR codes and printed links use (a phone's way to the resolver's scan API); the
    loopback URL of that API when None."""

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.rpc}"

    @property
    def relayer_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.relayer}"

    @property
    def resolver(self) -> MemberNode:
        """The node whose scan API the QR codes point at (the story's scans go there)."""
        return self.nodes[RESOLVER_NODE]

    @property
    def api_url(self) -> str:
        return self.resolver.api_url

    @property
    def public_base(self) -> str:
        return (self.public_url or self.api_url).rstrip("/")

    @property
    def chain_id(self) -> int:
        return DEVNET_CHAIN_ID

    @property
    def db_path(self) -> Path:
        """The database of the relayer's node (the marketplace operator's): the one the CLI is pointed at."""
        return self.nodes[RELAYER_NODE].db_path

    @property
    def db_url(self) -> str:
        return self.nodes[RELAYER_NODE].db_url

    @property
    def deployment_file(self) -> Path:
        return deployments_dir(self.root) / f"{DEVNET_CHAIN_ID}.json"

    def node_of(self, organisation: str) -> MemberNode:
        """The node an organisation's oracles post to: its own, or its host's."""
        return next(node for node in self.nodes.values() if organisation in node.organisations)

    def client(self) -> ChainClient:
        return ChainClient(self.rpc_url, expected_chain_id=self.chain_id)


def member_home(root: Path, member: str) -> Path:
    """A member node's folder. The relayer's node (the marketplace operator's) keeps its database
    at the root, `<root>/waymark.sqlite3`, the one the CLI's export line and the README name."""
    return root if member == RELAYER_NODE else root / "nodes" / member


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


def anchor_account(member: str) -> int:
    """The devnet account a member node anchors from (its organisation's own, linked at founding for
    that alone, so anchoring never races the organisation's other transactions)."""
    index = demo_member(member).anchor_account_index
    assert index is not None, f"{member} runs no node"
    return index


def start_network(root: Path, ports: Ports, supervisor: Supervisor, say: Callable[[str], None],
                  block_time: float | None = None, public_url: str | None = None) -> Network:
    """Start Anvil (chain state in `root/chain`; a block every `block_time` seconds, else one per
    transaction), deploy unless the recorded deployment is current, create and migrate each node's
    database, then start the member nodes, their scan APIs and the relayer together, as child
    processes of `supervisor`. Returns once all answer. Each node publishes its URL (the
    `published_node_url`) in the registry's node directory itself as it starts, from its anchor
    account, and finds its peers there.

    With a `public_url` (a phone's way to the resolver's scan API on this machine) the nodes and
    the scan APIs listen on every interface, the QR codes use that URL, and the node directory
    names each node at that URL's host; without one they listen on 127.0.0.1 only."""
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
    keystores = publish_document_keys(client, deployment, root / "keys")
    say(f"documents   each member's document-encryption key in {root / 'keys'}, its public key in the registry's node directory")
    page = root / "page"
    digest = build_page(PageAnchors.of(deployment, rpc_url), page)
    approved = approve_verifier_bundle(client, deployment, digest)
    say(f"page        scanner page built for this chain in {page} (sha-256 {digest.hex()[:16]}...), "
        + ("approved by the members' vote now" if approved else "the bundle the registry approved"))

    public_host = None
    if public_url:
        parts = urlsplit(public_url)
        public_host = f"{parts.scheme}://{parts.hostname}"
    nodes = {
        member: MemberNode(member, organisations, member_home(root, member), node_port, api_port,
                           public_url if member == RESOLVER_NODE else None, public_host)
        for (member, organisations), (node_port, api_port) in zip(MEMBER_NODES.items(), ports.member_ports().values())
    }
    listen = ["--host", "0.0.0.0"] if public_url else []
    chain = ["--rpc-url", rpc_url, "--chain-id", str(DEVNET_CHAIN_ID)]
    # The scan APIs refuse a missing database rather than create an empty file: each node's
    # database is created and migrated here first, so nodes, relayer and scan APIs start at once.
    for node in nodes.values():
        node.home.mkdir(parents=True, exist_ok=True)
        database = Database(node.db_url)
        database.migrate()
        database.dispose()
    relayer_db = nodes[RELAYER_NODE].db_url
    starting = time.monotonic()
    supervisor.start(
        *(_service(f"node-{node.member}", root, ["node", "run", "--port", str(node.node_port), *listen, "--db", node.db_url, *chain],
                   node.node_port, {
                       "WAYMARK_NODE_ANCHOR_DEVNET_ACCOUNT": str(anchor_account(node.member)),
                       "WAYMARK_NODE_PUBLIC_URL": node.published_node_url,
                       "WAYMARK_NODE_MAX_BATCH_DELAY": "0.5",
                       "WAYMARK_DOCUMENTS_BLOB_DIR": str(node.home / "documents"),
                       "WAYMARK_DOCUMENTS_ORG_KEYSTORE": str(keystores[node.member]),
                       "WAYMARK_DOCUMENTS_REPLICATE_INTERVAL": "1",
                   }) for node in nodes.values()),
        _service("relayer", root, ["escrow", "relayer", "run", "--port", str(ports.relayer), "--db", relayer_db, *chain], ports.relayer, {
            "WAYMARK_RELAYER_DEVNET_ACCOUNT": str(RELAYER_ACCOUNT),
            "WAYMARK_RELAYER_SWEEP_INTERVAL": "0.5",
        }),
        *(_service(f"api-{node.member}", root, [
            "api", "run", "--port", str(node.api_port), "--public-url", node.public_url or f"{node.public_host or 'http://127.0.0.1'}:{node.api_port}",
            *listen, "--database-url", node.db_url, "--log-level", "warning", *chain], node.api_port, {
                "WAYMARK_API_DEVICE_SALT_FILE": str(node.home / "api-device-salt"),
                "WAYMARK_DOCUMENTS_BLOB_DIR": str(node.home / "documents"),
                "WAYMARK_API_STATIC_DIR": str(page),
                # The story plays the operator's reverse proxy on loopback (story.Story.scan).
                "WAYMARK_API_TRUSTED_REGION_HEADER": REGION_HEADER,
                "WAYMARK_API_TRUSTED_PROXIES": '["127.0.0.1"]',
                "WAYMARK_API_BROWSER_RPC_URL": rpc_url,
            }) for node in nodes.values()),
    )
    network = Network(root, ports, deployment, fresh, nodes, public_url)
    for node in nodes.values():
        say(f"node        {node.member:<12} node {node.node_url} (in the registry's directory as {node.published_node_url}), "
            f"scan API {node.api_url}, database {node.db_path} (oracles of {', '.join(node.organisations)})")
    say(f"services    relayer {network.relayer_url} on the {RELAYER_NODE}'s database; nodes, scan APIs and relayer answering "
        f"{time.monotonic() - starting:.0f}s after their start (logs in {root / 'logs'})")
    return network


class NotReplicated(WaymarkError):
    def __init__(self, seconds: float, missing: dict[str, int], batches: int, anchoring: list[str]) -> None:
        lacking = ", ".join([f"{member} lacks {count}" for member, count in missing.items() if count]
                            + [f"{member} still has events to anchor" for member in anchoring])
        super().__init__(f"the member nodes did not all hold the {batches} anchored batches within {seconds:.0f}s ({lacking})")


def anchored_batches(network: Network) -> dict[str, int]:
    """Every batch anchored on the chain since the deployment: root (0x hex) -> event count."""
    client = network.client()
    registry = client.contract("ProvenanceRegistry", network.deployment.address("ProvenanceRegistry"))
    event = registry.events.BatchAnchored()
    criteria = {"address": registry.address, "topics": ["0x" + event_abi_to_log_topic(event.abi).hex()]}
    logs = LogPager(client.w3).get_logs(criteria, network.deployment.start_block, int(client.w3.eth.block_number))
    return {"0x" + bytes(entry["args"]["root"]).hex(): int(entry["args"]["eventCount"]) for entry in map(event.process_log, logs)}


def held_batches(node: MemberNode) -> set[str]:
    """The anchored batches a node holds, its own and those it imported (its held-batches feed,
    node/member/network/holders.py); empty while it does not answer."""
    held: set[str] = set()
    after = 0
    while True:
        try:
            page = httpx.get(f"{node.node_url}/batches/held", params={"after": after}, timeout=10).json()
        except (httpx.TransportError, ValueError):
            return held
        held.update(batch["root"] for batch in page["batches"])
        if not page["batches"]:
            return held
        after = page["next"]


def still_anchoring(node: MemberNode) -> bool:
    """The node holds events of its own (or its hosted members') not anchored yet, or does not answer."""
    try:
        health = httpx.get(f"{node.node_url}/health", timeout=10).json()
        return bool(health["pending"] or health["unanchoredBatches"])
    except (httpx.TransportError, ValueError, KeyError):
        return True


def wait_replicated(network: Network, timeout: float) -> dict[str, int]:
    """Until every member node has anchored every event it took in and holds every batch anchored
    (a node holds a batch only whole: the replicator imports it once its leaves rebuild the
    anchored root and count), so every node tells the same history; those batches. Raises
    NotReplicated, naming what each node lacks, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        anchoring = [member for member, node in network.nodes.items() if still_anchoring(node)]
        batches = anchored_batches(network)
        missing = {member: len(set(batches) - held_batches(node)) for member, node in network.nodes.items()}
        if not anchoring and not any(missing.values()):
            return batches
        if time.monotonic() > deadline:
            raise NotReplicated(timeout, missing, len(batches), anchoring)
        time.sleep(0.3)
