"""Assembling the node's services from settings: database, chain, deployment, role mirror,
capture, anchorer, indexer, replicator (and the node directory it reads). Entry points (the CLI, `python -m node.member.run_anchorer`, the HTTP app)
build a `NodeRuntime` here; library code receives its parts as arguments."""

from __future__ import annotations

from concurrent.futures import Executor, ProcessPoolExecutor
import logging
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from eth_account.signers.local import LocalAccount

from node.member.anchorer import Anchorer
from node.chain.client import ChainClient
from node.chain.deploy import Deployment, load_deployment
from node.chain.devnet_keys import DEVNET_CHAIN_ID, devnet_account
from node.chain.keystore import load_keystore, refuse_devnet_key
from node.db import Database
from node.errors import WaymarkError
from node.member.indexer import Indexer, followed_contracts
from node.member.network.directory import Directory, publish_node_record
from node.member.network.replicator import ReplicationSettings, Replicator
from node.member.network.scope import ScopedCapture
from node.strict_json import JsonLimits
from node.member.ingest.capture import CaptureService
from node.member.ingest.roles import RoleMirror, base_from_database
from node.protocol.attestation import AttestationDomain
from node.member.settings import NodeSettings
from node.settings import ChainSettings, DatabaseSettings, SignerSettings


log = logging.getLogger(__name__)


class NoAnchorAccount(WaymarkError):
    code = "no_anchor_account"

    def __init__(self) -> None:
        super().__init__(
            "the anchorer needs an account: WAYMARK_SIGNER_KEYSTORE (+ password), "
            "or on the devnet WAYMARK_NODE_ANCHOR_DEVNET_ACCOUNT"
        )


class DevnetAccountOutsideDevnet(WaymarkError):
    code = "devnet_key_refused"

    def __init__(self, chain_id: int) -> None:
        super().__init__(f"WAYMARK_NODE_ANCHOR_DEVNET_ACCOUNT works only on the devnet (chain {DEVNET_CHAIN_ID}), not on chain {chain_id}")


class OrganisationMismatch(WaymarkError):
    code = "organisation_mismatch"

    def __init__(self, configured: int, derived: int, account: str) -> None:
        super().__init__(f"WAYMARK_NODE_ORGANISATION is {configured}, but the anchor account {account} belongs to organisation {derived}")


class AnchorAccountWithoutOrganisation(WaymarkError):
    code = "anchor_account_without_organisation"

    def __init__(self, account: str) -> None:
        super().__init__(f"the anchor account {account} belongs to no organisation in the registry")


@dataclass
class NodeRuntime:
    node: NodeSettings
    chain: ChainSettings
    db: Database
    client: ChainClient
    deployment: Deployment
    signer: SignerSettings = field(default_factory=SignerSettings)
    organisation: int | None = None
    """The node's organisation (`resolve_organisation`); None: not known, capture is not scoped."""

    @property
    def registry_address(self) -> str:
        return self.deployment.address("ProvenanceRegistry")

    @property
    def domain(self) -> AttestationDomain:
        return AttestationDomain(self.client.chain_id, self.registry_address)


def load_runtime(
    node: NodeSettings | None = None,
    chain: ChainSettings | None = None,
    database: DatabaseSettings | None = None,
    signer: SignerSettings | None = None,
    deployment_file: Path | None = None,
    migrate: bool = True,
) -> NodeRuntime:
    """Connect to the chain and the database (migrating it) as the settings say."""
    node = node or NodeSettings()
    chain = chain or ChainSettings()
    database = database or DatabaseSettings()
    client = ChainClient(chain.rpc_url, expected_chain_id=chain.chain_id, max_log_range=chain.max_log_range)
    deployment = load_deployment(deployment_file or chain.deployment_file)
    db = Database(database.url)
    if migrate:
        db.migrate()
    return NodeRuntime(node, chain, db, client, deployment, signer or SignerSettings())


def anchor_account(runtime: NodeRuntime) -> LocalAccount:
    chain_id = runtime.client.chain_id
    if runtime.node.anchor_devnet_account is not None:
        if chain_id != DEVNET_CHAIN_ID:
            raise DevnetAccountOutsideDevnet(chain_id)
        return devnet_account(runtime.node.anchor_devnet_account)
    if runtime.signer.keystore is None:
        raise NoAnchorAccount()
    return refuse_devnet_key(load_keystore(runtime.signer.keystore, runtime.signer.resolved_password()), chain_id)


def has_anchor_account(runtime: NodeRuntime) -> bool:
    return runtime.node.anchor_devnet_account is not None or runtime.signer.keystore is not None


def build_directory(runtime: NodeRuntime) -> Directory:
    return Directory(runtime.client, runtime.deployment.address("ConsortiumRegistry"), ttl=runtime.node.directory_ttl)


def resolve_organisation(runtime: NodeRuntime, account: LocalAccount | None = None) -> int | None:
    """The node's organisation, from its anchor account on chain (`account`, else the configured
    one if any), else WAYMARK_NODE_ORGANISATION; recorded on the runtime. With the anchor account,
    the organisation's directory entry is made to name this node's public URL (before the anchorer
    starts sending from that account)."""
    if account is None and has_anchor_account(runtime):
        account = anchor_account(runtime)
    configured = runtime.node.organisation
    if account is not None:
        derived = build_directory(runtime).organisation_of(account.address)
        if derived == 0:
            raise AnchorAccountWithoutOrganisation(account.address)
        if configured is not None and configured != derived:
            raise OrganisationMismatch(configured, derived, account.address)
        configured = derived
    runtime.organisation = configured
    if account is not None and configured is not None and runtime.node.publish_node_record:
        if publish_node_record(runtime.client, runtime.deployment.address("ConsortiumRegistry"), configured,
                               runtime.node.public_url, account):
            log.info("published %s as organisation %d's node in the registry's directory", runtime.node.public_url, configured)
    return configured


def build_anchorer(runtime: NodeRuntime, account: LocalAccount | None = None) -> Anchorer:
    return Anchorer(
        runtime.db,
        runtime.client,
        runtime.registry_address,
        account or anchor_account(runtime),
        batch_size=runtime.node.batch_size,
        max_delay=runtime.node.max_batch_delay,
        min_interval=runtime.node.anchor_interval,
        confirmations=runtime.node.confirmations,
        uri_prefix=runtime.node.public_url.rstrip("/") + "/batches/",
        max_in_flight=runtime.node.max_in_flight,
        stuck_after=runtime.node.stuck_after,
    )


def build_indexer(runtime: NodeRuntime) -> Indexer:
    return Indexer(
        runtime.db,
        runtime.client.w3,
        followed_contracts({n: c.address for n, c in runtime.deployment.contracts.items()}),
        chain_id=runtime.client.chain_id,
        start_block=runtime.deployment.start_block,
        confirmations=runtime.node.confirmations,
        pager=runtime.client.logs,
    )


def build_role_mirror(runtime: NodeRuntime) -> RoleMirror:
    address = runtime.deployment.address("ConsortiumRegistry")
    base, base_block = base_from_database(runtime.db, runtime.client.chain_id, address)
    return RoleMirror(
        runtime.client.w3,
        address,
        start_block=runtime.deployment.start_block,
        refresh_interval=runtime.node.role_refresh_interval,
        base_logs=base,
        base_block=base_block,
        pager=runtime.client.logs,
    )


def build_capture(runtime: NodeRuntime, roles: RoleMirror | None = None, executor: Executor | None = None) -> CaptureService:
    """Capture; scoped to the node's organisation and those it hosts when the organisation is known."""
    if runtime.organisation is not None:
        return ScopedCapture(
            runtime.db,
            runtime.domain,
            roles or build_role_mirror(runtime),
            own_org=runtime.organisation,
            directory=build_directory(runtime),
            max_events=runtime.node.max_events_per_document,
            max_future_skew=runtime.node.max_future_skew,
            executor=executor,
            limits=JsonLimits(max_bytes=runtime.node.max_body_bytes),
        )
    return CaptureService(
        runtime.db,
        runtime.domain,
        roles or build_role_mirror(runtime),
        max_events=runtime.node.max_events_per_document,
        max_future_skew=runtime.node.max_future_skew,
        executor=executor,
        limits=JsonLimits(max_bytes=runtime.node.max_body_bytes),
    )


def build_replicator(runtime: NodeRuntime, roles: RoleMirror | None = None, executor: Executor | None = None) -> Replicator:
    node = runtime.node
    return Replicator(
        runtime.db,
        chain_id=runtime.client.chain_id,
        domain=runtime.domain,
        roles=roles or build_role_mirror(runtime),
        directory=build_directory(runtime),
        own_org=runtime.organisation,
        settings=ReplicationSettings(
            concurrency=node.replication_concurrency,
            withheld_after=node.withheld_after,
            retry_base=node.replication_retry_base,
            retry_max=node.replication_retry_max,
            fetch_timeout=node.replication_fetch_timeout,
            max_bundle_bytes=node.max_bundle_bytes,
            holders_interval=node.holders_poll,
        ),
        executor=executor,
    )


def _warm_up() -> None:
    """Nothing to do: a worker process finds this function by importing this module, and with it
    what the workers run (capture checks, bundle verification): those imports are most of a
    worker's start-up."""


def check_pool(processes: int) -> ProcessPoolExecutor:
    """Worker processes for capture checks, started (spawn: no state shared with threads) and warmed up."""
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn"))
    for future in [pool.submit(_warm_up) for _ in range(processes)]:
        future.result()
    return pool
