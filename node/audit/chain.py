"""The auditor's own replay of the chain, from the deployment block to the head.

Only standard JSON-RPC is used (eth_getLogs in block chunks, eth_getBlockByNumber,
eth_getTransactionByHash), so the replay runs against Besu as well as Anvil. Nothing is taken
from the node's indexer tables: the auditor trusts the chain, not the node.

What comes out (`ChainHistory`):
- the registry's history (`RoleState`, the same rule as `ConsortiumRegistry.hasRoleAt`: an
  account holds a role at T when at T it was linked to an Active organisation holding the role;
  a change at T applies from T on; with hosting and the maximum reporting delay), so "did A hold
  R at T" is a local lookup for any T: the `node.protocol.verification.Registry` the audit verifies with;
- every BatchAnchored of the ProvenanceRegistry (root, organisation, submitter, count, block,
  block time, transaction);
- every TradeEscrow log in chain order with its block time, and each order's terms (from
  OrderCreated, checked to hash to the order id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes

from node.chain.build import load_artifact
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.chain.logs import LogPager
from node.errors import WaymarkError
from node.escrow.terms import OrderTerms
from node.member.indexer import LogDecoder
from node.member.ingest.roles import RoleState

REGISTRY = "ConsortiumRegistry"
PROVENANCE = "ProvenanceRegistry"
ESCROW = "TradeEscrow"


class AuditError(WaymarkError):
    """Something that stops an audit (as opposed to a discrepancy, which is reported)."""

    code = "audit_error"


class ContractNotDeployed(AuditError):
    def __init__(self, name: str, address: str, chain_id: int) -> None:
        super().__init__(f"{name} at {address} has no code on chain {chain_id}: wrong RPC endpoint or deployment record")


class WrongChain(AuditError):
    def __init__(self, expected: int, found: int) -> None:
        super().__init__(f"the deployment record is for chain {expected}, the RPC endpoint serves chain {found}")


@dataclass(frozen=True)
class Anchor:
    root: bytes
    org_id: int
    submitter: str
    event_count: int
    block: int
    block_time: int
    tx_hash: bytes


@dataclass(frozen=True)
class ChainLog:
    """One decoded log of a followed contract."""

    contract: str
    event: str
    args: Mapping[str, Any]
    block: int
    block_time: int
    tx_hash: bytes
    log_index: int


@dataclass
class ChainHistory:
    chain_id: int
    from_block: int
    to_block: int
    head_time: int
    """Unix time of block `to_block`."""
    roles: RoleState = field(default_factory=RoleState)
    registry_changes: int = 0
    anchors: dict[bytes, Anchor] = field(default_factory=dict)
    """Root -> its first anchor. Anchors are kept per (root, organisation) on chain."""
    later_anchors: dict[bytes, list[Anchor]] = field(default_factory=dict)
    """Root -> anchors of the same root by other organisations, in chain order."""
    escrow_logs: list[ChainLog] = field(default_factory=list)
    orders: dict[int, OrderTerms] = field(default_factory=dict)
    """Order id -> terms, for orders whose OrderCreated terms hash to their id."""


def replay(client: ChainClient, deployment: Deployment, *, to_block: int | None = None,
           progress: Callable[[str, int, int], None] | None = None, chunk: int | None = None) -> ChainHistory:
    """Read the registry, provenance and escrow logs from the deployment block to `to_block` (head)."""
    w3 = client.w3
    if client.chain_id != deployment.chain_id:
        raise WrongChain(deployment.chain_id, client.chain_id)
    contracts = {n: deployment.contracts[n].address for n in (REGISTRY, PROVENANCE, ESCROW) if n in deployment.contracts}
    for name in (REGISTRY, PROVENANCE):
        if name not in contracts:
            raise AuditError(f"the deployment record of chain {deployment.chain_id} has no {name}")
    for name, address in contracts.items():
        if not w3.eth.get_code(to_checksum_address(address)):
            raise ContractNotDeployed(name, address, client.chain_id)
    head = int(w3.eth.block_number) if to_block is None else to_block
    first = min(c.block for n, c in deployment.contracts.items() if n in contracts)
    history = ChainHistory(client.chain_id, first, head, int(w3.eth.get_block(head)["timestamp"]))
    decoder = LogDecoder(w3, contracts)
    addresses = [to_checksum_address(a) for a in contracts.values()]
    block_times: dict[int, int] = {}

    def block_time(number: int) -> int:
        if number not in block_times:
            block_times[number] = int(w3.eth.get_block(number)["timestamp"])
        return block_times[number]

    pager = client.logs if chunk is None else LogPager(w3, chunk)
    for page in pager.pages({"address": addresses}, first, head):
        end = page.last
        for raw in sorted(page.logs, key=lambda r: (int(r["blockNumber"]), int(r["logIndex"]))):
            decoded = decoder.event_of(raw)
            if decoded is None:
                continue
            contract, event, args = decoded
            number = int(raw["blockNumber"])
            log = ChainLog(contract, event, args, number, block_time(number), bytes(HexBytes(raw["transactionHash"])),
                           int(raw["logIndex"]))
            _apply(history, log)
        if progress is not None:
            progress("chain", end - first + 1, head - first + 1)
    return history


_REGISTRY_EVENTS = frozenset({"OrganisationAdmitted", "OrganisationStatusChanged", "RoleGranted", "RoleRevoked",
                              "AccountAdded", "AccountRemoved", "HostingChanged", "MaxReportingDelayChanged"})


def _apply(history: ChainHistory, log: ChainLog) -> None:
    args = log.args
    if log.contract == REGISTRY:
        if log.event in _REGISTRY_EVENTS:
            history.registry_changes += 1
            plain = {k: ("0x" + bytes(v).hex() if isinstance(v, (bytes, bytearray)) else v) for k, v in args.items()}
            history.roles.apply(log.event, plain, log.block_time)
    elif log.contract == PROVENANCE:
        if log.event == "BatchAnchored":
            root = bytes(args["root"])
            anchor = Anchor(root, int(args["orgId"]), to_checksum_address(args["submitter"]),
                            int(args["eventCount"]), log.block, log.block_time, log.tx_hash)
            if root in history.anchors:  # another organisation anchored the same root: it takes nothing away
                history.later_anchors.setdefault(root, []).append(anchor)
            else:
                history.anchors[root] = anchor
    elif log.contract == ESCROW:
        history.escrow_logs.append(log)
        if log.event == "OrderCreated":
            terms = OrderTerms.from_abi(args["terms"])
            if terms.order_id == int(args["orderId"]):
                history.orders[int(args["orderId"])] = terms


@dataclass(frozen=True)
class Transaction:
    sender: str
    to: str | None
    input: bytes


def transaction(client: ChainClient, tx_hash: bytes) -> Transaction:
    tx = client.w3.eth.get_transaction(HexBytes(tx_hash))
    to = tx.get("to")
    return Transaction(to_checksum_address(tx["from"]), to_checksum_address(to) if to else None, bytes(HexBytes(tx["input"])))


class CallDecoder:
    """Decodes calls to one contract by selector (the calldata a transition came with)."""

    def __init__(self, name: str) -> None:
        self.functions: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in load_artifact(name).abi:
            if item.get("type") == "function":
                types = [_abi_type(i) for i in item["inputs"]]
                names = [str(i["name"]) for i in item["inputs"]]
                self.functions[function_abi_to_4byte_selector(item)] = (str(item["name"]), names, types)  # type: ignore[arg-type]

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]] | None:
        found = self.functions.get(data[:4])
        if found is None:
            return None
        name, names, types = found
        try:
            values = abi_decode(types, data[4:])
        except Exception:  # noqa: BLE001 - malformed calldata is a finding, not a crash
            return None
        return name, dict(zip(names, values))


def _abi_type(item: Mapping[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){kind[5:]}"
    return kind


def organisation_at(roles: RoleState, account: str, at: int) -> int:
    """The organisation `account` was linked to at `at` (0 for none)."""
    history = roles.org_of.get(to_checksum_address(account))
    return int(history.at(at, 0)) if history else 0
