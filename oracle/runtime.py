"""Assembling an oracle from settings: its account, the chain's addresses, queue, state,
adapters, delivery worker, CSV drop folder and escrow agent. Entry points (the CLI, the app
factory, the simulator) build an `OracleRuntime` here."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from node.chain.deploy import Deployment, load_deployment
from node.chain.devnet_keys import DEVNET_CHAIN_ID, devnet_account
from node.chain.keystore import load_keystore, refuse_devnet_key
from node.documents import ChainMembership
from node.escrow.signing import EscrowDomain
from node.member.ingest.roles import RoleMirror
from node.protocol.attestation import AttestationDomain
from node.settings import ChainSettings
from oracle.adapters.base import FxObservation
from oracle.csv_drop import CsvDropFolder
from oracle.delivery import Delivery, EscrowSink, NodeClient
from oracle.errors import OracleMisconfigured
from oracle.escrow import EscrowAgent, fx_signer
from oracle.queue import DurableQueue
from oracle.service import Oracle, RoleAt, load_products
from oracle.settings import OracleSettings
from oracle.state import OracleState

log = logging.getLogger(__name__)


@dataclass
class OracleRuntime:
    settings: OracleSettings
    account: LocalAccount
    chain_id: int
    oracle: Oracle
    queue: DurableQueue
    state: OracleState
    delivery: Delivery
    csv: CsvDropFolder | None
    escrow: EscrowSink | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Run the delivery worker (and the CSV folder watcher) in background threads."""
        self._stop.clear()
        self._threads = [threading.Thread(target=self.delivery.run, args=(self._stop,), name="oracle-delivery", daemon=True)]
        if self.csv is not None:
            self._threads.append(threading.Thread(
                target=self.csv.run, args=(self._stop, self.settings.csv_poll), name="oracle-csv", daemon=True
            ))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.wake()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

    def close(self) -> None:
        self.stop()
        self.delivery.node.close()
        closer = getattr(getattr(self.escrow, "relayer", None), "close", None)
        if closer is not None:
            closer()
        self.queue.close()
        self.state.close()


def signing_account(settings: OracleSettings, chain_id: int) -> LocalAccount:
    """The organisation's account: the keystore, or on the devnet a dev account by index."""
    if settings.devnet_account is not None:
        if chain_id != DEVNET_CHAIN_ID:
            raise OracleMisconfigured("devnet_account", f"works only on the devnet (chain {DEVNET_CHAIN_ID}), not on chain {chain_id}")
        return devnet_account(settings.devnet_account)
    if settings.keystore is None:
        raise OracleMisconfigured("keystore", "the oracle signs as its organisation: set WAYMARK_ORACLE_KEYSTORE (+ password file)")
    return refuse_devnet_key(load_keystore(settings.keystore, settings.resolved_password()), chain_id)


def organisation_roles(client: ChainClient, consortium_registry: str, account: str) -> frozenset[str] | None:
    """The roles of the account's organisation now, or None if the chain cannot tell us."""
    try:
        member = ChainMembership(client, consortium_registry, ttl=0).membership(account)
    except Exception as exc:  # noqa: BLE001 - the oracle runs without the early role check
        log.warning("cannot read the roles of %s (%s); events are checked by the node only", account, exc)
        return None
    if member is None or not member.active:
        raise OracleMisconfigured("account", f"{account} is not an account of an active member organisation")
    return member.roles


class RoleHistory:
    """`hasRoleAt` from the registry's event history (node.member.ingest.roles.RoleMirror, what the node
    itself checks). Read again at most every `refresh` seconds, and once more before saying no
    (a role granted a moment ago); None while the chain cannot be read."""

    def __init__(self, client: ChainClient, consortium_registry: str, start_block: int, refresh: float = 5.0) -> None:
        self.mirror = RoleMirror(client.w3, consortium_registry, start_block=start_block, refresh_interval=refresh)

    def __call__(self, account: str, roles: Sequence[str], at: int) -> bool | None:
        try:
            if self.mirror.any_role_at(account, roles, at) is not None:
                return True
            self.mirror.refresh(force=True)
            return self.mirror.any_role_at(account, roles, at) is not None
        except Exception as exc:  # noqa: BLE001 - the chain is down: the node checks, the oracle cannot
            log.warning("cannot read the registry's role history (%s); the node will check the role", exc)
            return None


class RolesOnChain:
    """The organisation's roles, read again from the registry at most every `ttl` seconds (a
    role granted or revoked is seen without a restart); the last answer while the chain is down."""

    def __init__(self, client: ChainClient, consortium_registry: str, account: str, ttl: float = 30.0) -> None:
        self.client, self.registry, self.account, self.ttl = client, consortium_registry, account, ttl
        self._read_at = -ttl
        self._roles: frozenset[str] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> frozenset[str] | None:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                try:
                    fresh = organisation_roles(self.client, self.registry, self.account)
                except OracleMisconfigured:
                    if self._read_at < 0:
                        raise  # at start: not a member at all
                    fresh = frozenset()  # suspended or removed since: it may attest nothing now
                if fresh is not None:
                    self._roles = fresh
                self._read_at = time.monotonic()
            return self._roles


def build_runtime(
    settings: OracleSettings,
    account: LocalAccount,
    *,
    chain_id: int,
    provenance_registry: str,
    consortium_registry: str,
    roles: frozenset[str] | Callable[[], frozenset[str] | None] | None = None,
    escrow: Callable[[OracleState], EscrowSink] | None = None,
    fx_signer: Callable[[FxObservation], dict[str, Any]] | None = None,
    csv: bool = True,
    role_at: RoleAt | None = None,
) -> OracleRuntime:
    """`escrow` builds the escrow agent from the oracle's state (it reads the FX rates attested)."""
    queue = DurableQueue(settings.queue_path(), base_delay=settings.retry_base, max_delay=settings.retry_max)
    state = OracleState(settings.queue_path())
    sink = escrow(state) if escrow is not None else None
    node = NodeClient(
        settings.node_url, account, chain_id, consortium_registry, timeout=settings.request_timeout, audience=settings.node_audience
    )
    oracle = Oracle(
        account,
        AttestationDomain(chain_id, provenance_registry),
        queue,
        state,
        products=load_products(settings.products_file),
        adapters=settings.adapters,
        roles=roles,
        document_readers=settings.document_readers,
        fx_signer=fx_signer,
        role_at=role_at,
        max_future_skew=settings.max_future_skew,
        node_future_skew=node.max_future_skew,
    )
    delivery = Delivery(queue, node, sink, batch=settings.deliver_batch, base_delay=settings.retry_base, max_delay=settings.retry_max,
                        max_poison_tries=settings.max_poison_tries)
    folder = CsvDropFolder(oracle, settings.csv_dir(), min_age=settings.csv_min_age, max_tries=settings.max_poison_tries) if csv else None
    return OracleRuntime(settings, account, chain_id, oracle, queue, state, delivery, folder, sink)


def load_runtime(
    settings: OracleSettings | None = None,
    chain: ChainSettings | None = None,
    deployment_file: Path | None = None,
    account: LocalAccount | None = None,
) -> OracleRuntime:
    """An oracle as its settings say: connects to the chain for the addresses and the roles."""
    settings = settings or OracleSettings()
    chain = chain or ChainSettings()
    client = ChainClient(chain.rpc_url, expected_chain_id=chain.chain_id)
    deployment: Deployment = load_deployment(deployment_file or chain.deployment_file)
    account = account or signing_account(settings, client.chain_id)
    consortium = deployment.address("ConsortiumRegistry")
    roles = RolesOnChain(client, consortium, account.address)
    roles()  # an account of no active member organisation stops the oracle here
    return build_runtime(
        settings, account, chain_id=client.chain_id, provenance_registry=deployment.address("ProvenanceRegistry"),
        consortium_registry=consortium, roles=roles, escrow=escrow_factory(settings, client, deployment, account),
        fx_signer=fx_signer_for(settings, client, deployment, account),
        role_at=RoleHistory(client, consortium, deployment.start_block),
    )


def escrow_factory(
    settings: OracleSettings, client: ChainClient, deployment: Deployment, account: LocalAccount
) -> Callable[[OracleState], EscrowSink] | None:
    """The escrow agent's builder when the deployment has a TradeEscrow and a relayer is configured."""
    if settings.relayer_url is None or "TradeEscrow" not in deployment.contracts:
        if settings.relayer_url is not None:
            log.warning("no TradeEscrow in the deployment: escrow facts are kept, not attested")
        return None
    return lambda state: EscrowAgent.from_deployment(settings, client, deployment, account, state)


def fx_signer_for(
    settings: OracleSettings, client: ChainClient, deployment: Deployment, account: LocalAccount
) -> Callable[[FxObservation], dict[str, Any]] | None:
    """Signs FX rates in the deployment's TradeEscrow domain (None without a TradeEscrow)."""
    if "TradeEscrow" not in deployment.contracts:
        return None
    def chain_time() -> int:
        return int(client.w3.eth.get_block("latest")["timestamp"])

    return fx_signer(account, EscrowDomain(client.chain_id, deployment.address("TradeEscrow")), settings.escrow_signature_ttl,
                     chain_time)
