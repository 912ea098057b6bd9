"""The indexer: follows the Waymark contracts' events into the database.

Uses only standard JSON-RPC (`eth_blockNumber`, `eth_getLogs`, `eth_getBlockByNumber`), so
it runs the same against Anvil and Besu. Each log is stored once per
(chain_id, tx_hash, log_index). Blocks are indexed only once they have `confirmations`
blocks on top. The hash of every block logs were taken from, and of the cursor block,
is kept: when the chain no longer has the cursor block, the newest stored block the chain
still has is the common ancestor; everything above it is deleted and indexed again from
the new chain. The cursor is in the database, so a restarted indexer resumes where it stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import Connection, Table, bindparam, delete, select
from web3 import Web3
from web3.contract.contract import ContractEvent
from web3.exceptions import BlockNotFound
from web3.types import LogReceipt

from node.chain.build import load_artifact
from node.chain.logs import LogPager
from node.db import ChainBlock, ChainCursor, ChainLog, Database
from node.db.locks import CHAIN_LOGS_FEED, in_id_order
from node.db.upsert import insert_ignore, upsert
from node.errors import WaymarkError
from node.protocol.verification import Anchor

log = logging.getLogger(__name__)

CURSOR_NAME = "indexer"


class IndexerError(WaymarkError):
    code = "indexer_error"


class UnknownContractAddress(IndexerError):
    def __init__(self, address: str) -> None:
        super().__init__(f"log from {address}, which is not one of the followed contracts")


@dataclass(frozen=True)
class DecodedLog:
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    address: str
    contract: str
    event: str
    key: str | None
    args: dict[str, Any]


@dataclass(frozen=True)
class StepResult:
    """What one `step` did: logs stored, blocks rolled back, the new cursor."""

    logs: int
    rolled_back_to: int | None
    cursor: int


def _json_value(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, HexBytes)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        return str(value)  # JSON readers lose precision past 2^53
    return value


class LogDecoder:
    """Decodes the logs of the followed contracts by topic, from their compiled ABIs.

    Each event is decoded by web3's own contract event (`process_log`), made once per
    (contract, topic) from a one-event ABI, so that overloaded event names need no resolving.
    """

    def __init__(self, w3: Web3, contracts: Mapping[str, str]) -> None:
        self.w3 = w3
        self.names = {to_checksum_address(a): n for n, a in contracts.items()}
        self._events: dict[tuple[str, bytes], ContractEvent] = {}
        for name, address in contracts.items():
            checksummed = to_checksum_address(address)
            for item in load_artifact(name).abi:
                if item.get("type") == "event" and not item.get("anonymous"):
                    event = w3.eth.contract(address=checksummed, abi=[item]).events[str(item["name"])]()
                    self._events[(checksummed, event_abi_to_log_topic(item))] = event  # type: ignore[arg-type]

    @property
    def addresses(self) -> list[str]:
        return list(self.names)

    def event_of(self, raw: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
        """(contract name, event name, arguments as the ABI decodes them) of a followed
        contract's log; None for a log we do not know (e.g. from a newer contract version)."""
        topics = raw["topics"]
        if not topics:
            return None
        address = to_checksum_address(raw["address"])
        event = self._events.get((address, bytes(HexBytes(topics[0]))))
        if event is None:
            return None
        data = event.process_log(raw)
        return self.names[address], str(data["event"]), dict(data["args"])

    def decode(self, raw: Mapping[str, Any]) -> DecodedLog | None:
        found = self.event_of(raw)
        if found is None:
            return None
        contract, event, args = found
        topics = raw["topics"]
        return DecodedLog(
            block_number=int(raw["blockNumber"]),
            block_hash=bytes(HexBytes(raw["blockHash"])),
            tx_hash=bytes(HexBytes(raw["transactionHash"])),
            log_index=int(raw["logIndex"]),
            address=to_checksum_address(raw["address"]),
            contract=contract,
            event=event,
            key="0x" + bytes(HexBytes(topics[1])).hex() if len(topics) > 1 else None,
            args=_json_value(args),
        )


class Indexer:
    """Follows `contracts` (name -> address) on one chain into `db`, from `start_block` on."""

    def __init__(
        self,
        db: Database,
        w3: Web3,
        contracts: Mapping[str, str],
        *,
        chain_id: int,
        start_block: int,
        confirmations: int = 0,
        max_range: int = 2_000,
        name: str = CURSOR_NAME,
        on_change: Callable[[StepResult], None] | None = None,
        pager: LogPager | None = None,
    ) -> None:
        self.db = db
        self.w3 = w3
        self.pager = pager or LogPager(w3, max_range)
        self.decoder = LogDecoder(w3, contracts)
        self.chain_id = chain_id
        self.start_block = start_block
        self.confirmations = confirmations
        self.max_range = max_range
        self.name = name
        self.on_change = on_change

    # ---- chain reads (standard JSON-RPC only) -----------------------------------------

    def _block(self, number: int) -> tuple[bytes, int] | None:
        """(hash, timestamp) of block `number`, or None if the chain does not have it."""
        block = self.w3.eth.get_block(number)
        if block is None:  # pragma: no cover - web3 raises BlockNotFound instead
            return None
        return bytes(block["hash"]), int(block["timestamp"])

    def _block_or_none(self, number: int) -> tuple[bytes, int] | None:
        try:
            return self._block(number)
        except BlockNotFound:
            return None

    # ---- state ----------------------------------------------------------------------------

    def cursor(self) -> tuple[int, bytes] | None:
        with self.db.session() as s:
            row = s.get(ChainCursor, (self.chain_id, self.name))
            return (row.block_number, row.block_hash) if row else None

    # ---- one poll --------------------------------------------------------------------------

    def step(self) -> StepResult:
        """Check for a reorg, then index every confirmed block past the cursor."""
        rolled_back_to = self._handle_reorg()
        head = int(self.w3.eth.block_number)
        target = head - self.confirmations
        cursor = self.cursor()
        position = cursor[0] if cursor else self.start_block - 1
        stored = 0
        if position < target:
            for page in self.pager.pages({"address": self.decoder.addresses}, position + 1, target):
                count = self._index_range(page.first, page.last, page.logs)
                if count is None:
                    break  # the chain changed under us; the next step sees the reorg
                stored += count
                position = page.last
        result = StepResult(stored, rolled_back_to, position)
        if self.on_change and (stored or rolled_back_to is not None):
            self.on_change(result)
        return result

    def run(self, stop: threading.Event, poll_interval: float = 0.5) -> None:
        """Poll until `stop` is set. RPC hiccups are logged and retried at the next poll."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a follower must survive a node restart
                log.exception("indexer step failed; retrying")
            stop.wait(poll_interval)

    def _index_range(self, first: int, last: int, raw_logs: Sequence[LogReceipt]) -> int | None:
        decoded = [d for d in (self.decoder.decode(r) for r in raw_logs) if d is not None]
        numbers = sorted({d.block_number for d in decoded} | {last})
        blocks: dict[int, tuple[bytes, int]] = {}
        for number in numbers:
            block = self._block_or_none(number)
            if block is None:
                return None
            blocks[number] = block
        if any(blocks[d.block_number][0] != d.block_hash for d in decoded):
            return None  # logs from a block that has since been replaced
        with self.db.connect(write=True) as conn:
            if decoded:
                in_id_order(conn, CHAIN_LOGS_FEED)  # read by id from checkpoints (a second indexer on this database)
                conn.execute(
                    insert_ignore(conn, _table(ChainLog), ["chain_id", "tx_hash", "log_index"]),
                    [
                        {
                            "chain_id": self.chain_id,
                            "block_number": d.block_number,
                            "block_hash": d.block_hash,
                            "block_time": blocks[d.block_number][1],
                            "tx_hash": d.tx_hash,
                            "log_index": d.log_index,
                            "address": d.address,
                            "contract": d.contract,
                            "event": d.event,
                            "key": d.key,
                            "args": orjson.dumps(d.args).decode(),
                        }
                        for d in decoded
                    ],
                )
            conn.execute(
                upsert(conn, _table(ChainBlock), ["chain_id", "number"], ["hash", "timestamp"]),
                [{"chain_id": self.chain_id, "number": n, "hash": h, "timestamp": t} for n, (h, t) in blocks.items()],
            )
            conn.execute(
                upsert(conn, _table(ChainCursor), ["chain_id", "name"], ["block_number", "block_hash"]),
                {"chain_id": self.chain_id, "name": self.name, "block_number": last, "block_hash": blocks[last][0]},
            )
        return len(decoded)

    # ---- reorgs ------------------------------------------------------------------------------

    def _handle_reorg(self) -> int | None:
        cursor = self.cursor()
        if cursor is None:
            return None
        number, expected = cursor
        now = self._block_or_none(number)
        if now is not None and now[0] == expected:
            return None
        ancestor = self._common_ancestor(number)
        self._roll_back(ancestor)
        log.warning("chain reorganised below block %d; rolled back to block %d", number, ancestor)
        return ancestor

    def _common_ancestor(self, below_or_at: int) -> int:
        """The newest stored block the chain still has, found by bisection (hashes chain, so a
        block that matches means all older ones match); start_block - 1 if none does."""
        with self.db.session() as s:
            stored: Sequence[tuple[int, bytes]] = s.execute(
                select(ChainBlock.number, ChainBlock.hash)
                .where(ChainBlock.chain_id == self.chain_id, ChainBlock.number <= below_or_at)
                .order_by(ChainBlock.number)
            ).all()
        lo, hi = 0, len(stored) - 1
        best = self.start_block - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            number, hash_ = stored[mid]
            block = self._block_or_none(number)
            if block is not None and block[0] == hash_:
                best = number
                lo = mid + 1
            else:
                hi = mid - 1
        return best

    def _roll_back(self, ancestor: int) -> None:
        with self.db.connect(write=True) as conn:
            conn.execute(delete(ChainLog).where(ChainLog.chain_id == self.chain_id, ChainLog.block_number > ancestor))
            conn.execute(delete(ChainBlock).where(ChainBlock.chain_id == self.chain_id, ChainBlock.number > ancestor))
            if ancestor < self.start_block:
                conn.execute(
                    delete(ChainCursor).where(ChainCursor.chain_id == self.chain_id, ChainCursor.name == self.name)
                )
                return
            hash_ = conn.execute(
                select(ChainBlock.hash).where(ChainBlock.chain_id == self.chain_id, ChainBlock.number == ancestor)
            ).scalar_one()
            conn.execute(
                upsert(conn, _table(ChainCursor), ["chain_id", "name"], ["block_number", "block_hash"]),
                {"chain_id": self.chain_id, "name": self.name, "block_number": ancestor, "block_hash": hash_},
            )


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def stored_logs(db: Database, chain_id: int, event: str | None = None, contract: str | None = None) -> list[ChainLog]:
    """Indexed logs in chain order, optionally of one event and/or one contract."""
    query = select(ChainLog).where(ChainLog.chain_id == chain_id)
    if event is not None:
        query = query.where(ChainLog.event == event)
    if contract is not None:
        query = query.where(ChainLog.contract == contract)
    with db.session() as s:
        return list(s.scalars(query.order_by(ChainLog.block_number, ChainLog.log_index)))


def followed_contracts(addresses: Mapping[str, str], names: Iterable[str] = ("ConsortiumRegistry", "ProvenanceRegistry", "TradeEscrow")) -> dict[str, str]:
    """The contracts of a deployment the indexer follows (TradeEscrow once it is deployed)."""
    return {n: addresses[n] for n in names if n in addresses}


# Roots' BatchAnchored logs of one ProvenanceRegistry, as indexed (ix_chain_logs_event_key).
_ANCHORED = (
    select(ChainLog.key, ChainLog.block_number, ChainLog.block_time, ChainLog.args)
    .where(ChainLog.event == "BatchAnchored", ChainLog.key.in_(bindparam("keys", expanding=True)), ChainLog.chain_id == bindparam("chain_id"),
           ChainLog.address == bindparam("address"))
    .order_by(ChainLog.id)
)


def indexed_anchors(conn: Connection, chain_id: int, registry: str, root: bytes) -> list[Anchor]:
    """The anchors of `root` whose BatchAnchored logs the indexer stored, the first anchor first
    (the contract keeps at most one anchor of a root per organisation)."""
    return indexed_anchors_of(conn, chain_id, registry, [root]).get(root, [])


def indexed_anchors_of(conn: Connection, chain_id: int, registry: str, roots: Iterable[bytes]) -> dict[bytes, list[Anchor]]:
    """`indexed_anchors` of several roots in one read, by root (roots with none left out)."""
    keys = {"0x" + root.hex(): root for root in roots}
    if not keys:
        return {}
    rows = conn.execute(_ANCHORED, {"chain_id": chain_id, "address": to_checksum_address(registry), "keys": list(keys)}).all()
    anchors: dict[bytes, list[Anchor]] = {}
    for key, block_number, block_time, args in rows:
        logged = orjson.loads(args)
        root = keys[str(key)]
        anchors.setdefault(root, []).append(Anchor(root, int(logged["orgId"]), int(block_number), int(block_time), int(logged["eventCount"])))
    return anchors


_INDEXED_THROUGH = select(ChainCursor.block_number).where(ChainCursor.chain_id == bindparam("chain_id"), ChainCursor.name == CURSOR_NAME)


def indexed_through(conn: Connection, chain_id: int) -> int | None:
    """The last block the node's indexer stored (its cursor), None before its first step: every
    log of the followed contracts up to it is in the index."""
    return conn.execute(_INDEXED_THROUGH, {"chain_id": chain_id}).scalar()
