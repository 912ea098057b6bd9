"""Escrow orders by the shipment they cover, kept current from TradeEscrow's logs.

The indexer stores every TradeEscrow log in `chain_logs`; `OrderIndex.sync` reads the ones
stored since its checkpoint (a bounded batch per step, in chain order) and keeps one row per
order in `escrow_orders`: its shipment key (`OrderTerms.shipmentRef`), buyer, seller and the
state its logs put it in, exactly as TradeEscrow moves it:

| log | state |
|---|---|
| OrderCreated | Created |
| OrderFunded | Funded |
| MilestoneReached | Delivered after the last milestone of its terms if Funded, else unchanged (Funded, or Disputed: a dispute's order stays Disputed) |
| DisputeOpened | Disputed |
| DisputeLapsed | Funded (nobody ruled in time and the order was within its deadlines) |
| OrderReleased / OrderRefunded / OrderCancelled / DisputeResolved | Released / Refunded / Cancelled / Resolved |

A log never overwrites the state set by a later one (rows remember the block and log index
that set them), so two processes syncing at once agree. If the chain reorganised under the
checkpoint (the indexer deleted the log it names), the index is rebuilt from the start.

Which order a unit belongs to (`order_of`): the orders are looked up by the unit's keys, most
specific first — its own id, its lot, then each container it travelled in, innermost first —
and the first key that names any order decides. Among that key's orders, cancelled ones are
ignored while another exists. If what remains belongs to one buyer, the newest of those
orders is the unit's; if it belongs to several buyers (two buyers' orders naming one
container), the passport cannot tell whose goods the unit is and shows no order rather than
another buyer's.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Table, and_, bindparam, delete, or_, select, update
from web3 import Web3

from node.db import ChainLog, Database, EscrowOrderRow, IndexCheckpoint
from node.db.plain import PlainSelect, side_by_side
from node.db.upsert import insert_ignore, upsert
from node.periodic import Periodic

log = logging.getLogger(__name__)

CHECKPOINT = "escrow_orders"
_SHIPMENT_REF, _MILESTONES = 9, 15  # indexes in the OrderTerms tuple when decoded as a list
_FINAL = {
    "OrderFunded": "Funded",
    "DisputeOpened": "Disputed",
    "DisputeLapsed": "Funded",
    "OrderReleased": "Released",
    "OrderRefunded": "Refunded",
    "OrderCancelled": "Cancelled",
    "DisputeResolved": "Resolved",
}


_NEWER_LOG = PlainSelect(  # per passport build (`fresh`): built once
    select(ChainLog.id)
    .where(ChainLog.chain_id == bindparam("chain_id"), ChainLog.contract == "TradeEscrow", ChainLog.id > bindparam("checkpoint"))
    .limit(1)
)
_ORDER_COLUMNS = (
    EscrowOrderRow.order_id, EscrowOrderRow.shipment_ref, EscrowOrderRow.buyer, EscrowOrderRow.seller,
    EscrowOrderRow.state, EscrowOrderRow.created_block, EscrowOrderRow.created_time,
)
_BY_REFS = PlainSelect(
    select(*_ORDER_COLUMNS)
    .where(EscrowOrderRow.chain_id == bindparam("chain_id"), EscrowOrderRow.shipment_ref.in_(bindparam("refs", expanding=True)))
)
# A passport build's read (`read_orders`) in one round trip: the newer-log probe beside the keys'
# orders (none: the order columns NULL).
_by_refs = _BY_REFS.statement.subquery("orders")
_ORDERS_AT_CHECKPOINT = PlainSelect(
    select(_NEWER_LOG.statement.scalar_subquery().label("newer"), *_by_refs.c).select_from(side_by_side(_by_refs))
)


@dataclass(frozen=True)
class IndexedOrder:
    order_id: int
    shipment_ref: bytes
    buyer: str
    seller: str
    state: str
    created_block: int
    created_time: int


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _order_key(order_id: int) -> str:
    return f"0x{order_id:064x}"


def _terms_field(terms: Any, name: str, index: int) -> Any:
    if isinstance(terms, Mapping):
        return terms.get(name)
    if isinstance(terms, list) and len(terms) > index:
        return terms[index]
    return None


@dataclass(frozen=True)
class OrderRead:
    """The orders of some shipment keys as one snapshot of the database held them, when it held
    no TradeEscrow log past `checkpoint` (what a passport build process hands the API's index)."""

    checkpoint: int
    orders: dict[bytes, tuple[IndexedOrder, ...]]


def read_orders(db: Database, chain_id: int, checkpoint: int, keys: Iterable[bytes]) -> OrderRead | None:
    """The orders naming each key, read as an index at `checkpoint` would hold them; None if a
    TradeEscrow log past the checkpoint is stored (the index must sync before it answers).
    One statement (a passport build's snapshot), so the probe and the orders see one state."""
    wanted = list(dict.fromkeys(keys))
    with db.connect() as conn:
        rows = _ORDERS_AT_CHECKPOINT.rows(conn, {"chain_id": chain_id, "checkpoint": checkpoint, "refs": wanted})
    if rows[0][0] is not None:
        return None
    return OrderRead(checkpoint, _grouped(wanted, [row[1:] for row in rows if row[1] is not None]))


def _orders_by_key(conn: Connection, chain_id: int, keys: Sequence[bytes]) -> dict[bytes, tuple[IndexedOrder, ...]]:
    """Each key's orders from `escrow_orders`, oldest first (a key naming no order: empty)."""
    return _grouped(keys, _BY_REFS.rows(conn, {"chain_id": chain_id, "refs": list(keys)}) if keys else [])


def _grouped(keys: Sequence[bytes], rows: Iterable[Sequence[Any]]) -> dict[bytes, tuple[IndexedOrder, ...]]:
    """Rows in the column order of `_ORDER_COLUMNS` as each key's orders, oldest first."""
    loaded: dict[bytes, list[IndexedOrder]] = {k: [] for k in keys}
    for order_id, ref, buyer, seller, state, created_block, created_time in rows:
        loaded[bytes(ref)].append(IndexedOrder(int(order_id, 16), bytes(ref), buyer, seller, state, int(created_block), int(created_time)))
    return {key: tuple(sorted(orders, key=lambda o: (o.created_block, o.order_id))) for key, orders in loaded.items()}


class OrderIndex:
    """The `escrow_orders` table: fed by `sync`, read by `orders_for` and `order_of`."""

    def __init__(self, db: Database, chain_id: int, *, batch: int = 1000, cache_size: int = 16_384) -> None:
        self.db = db
        self.chain_id = chain_id
        self.batch = batch
        # Shipment keys (units, cases, pallets, containers) and their orders, least recently used
        # leaving first. Most keys name no order; each unit ever scanned added one, so 100,000
        # grew for hours. Containers' keys, shared by many units, stay.
        self.cache_size = cache_size
        self._by_key: OrderedDict[bytes, tuple[IndexedOrder, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self.checkpoint = 0
        self._syncer = Periodic("escrow-order-index sync", self.sync)

    # ---- feeding -------------------------------------------------------------------------------

    def sync(self) -> int:
        """Apply the TradeEscrow logs stored since the checkpoint; returns how many were read.
        Reads at most `batch` logs per round and loops until none are left."""
        total = 0
        with self._sync_lock:
            while True:
                done = self._sync_once()
                total += done
                if done < self.batch:
                    return total

    def fresh(self) -> None:
        """Sync if the node stored TradeEscrow logs past the checkpoint (one indexed read), so an
        order indexed just before a passport's first build is already there. (A time-based skip
        missed an order indexed right after a background sync.)"""
        with self.db.connect() as conn:
            newer = _NEWER_LOG.rows(conn, {"chain_id": self.chain_id, "checkpoint": self.checkpoint})
        if newer:
            self.sync()

    def _sync_once(self) -> int:
        touched: set[bytes] = set()
        with self.db.connect(write=True) as conn:
            checkpoint = conn.execute(
                select(IndexCheckpoint.log_id).where(IndexCheckpoint.chain_id == self.chain_id, IndexCheckpoint.name == CHECKPOINT)
            ).scalar() or 0
            if checkpoint and conn.execute(select(ChainLog.id).where(ChainLog.id == checkpoint)).scalar() is None:
                log.warning("the log under the escrow order checkpoint is gone (chain reorganised): rebuilding the index")
                conn.execute(delete(EscrowOrderRow).where(EscrowOrderRow.chain_id == self.chain_id))
                checkpoint = 0
                with self._lock:
                    self._by_key.clear()
            rows = conn.execute(
                select(ChainLog.id, ChainLog.event, ChainLog.block_number, ChainLog.block_time, ChainLog.log_index, ChainLog.args)
                .where(ChainLog.chain_id == self.chain_id, ChainLog.contract == "TradeEscrow", ChainLog.id > checkpoint)
                .order_by(ChainLog.id)
                .limit(self.batch)
            ).all()
            for row in sorted(rows, key=lambda r: (r.block_number, r.log_index)):
                ref = self._apply(conn, row.event, int(row.block_number), int(row.block_time), int(row.log_index), orjson.loads(row.args))
                if ref is not None:
                    touched.add(ref)
            if rows:
                checkpoint = max(int(r.id) for r in rows)
                conn.execute(
                    upsert(conn, _table(IndexCheckpoint), ["chain_id", "name"], ["log_id"]),
                    {"chain_id": self.chain_id, "name": CHECKPOINT, "log_id": checkpoint},
                )
        self.checkpoint = checkpoint
        if touched:
            with self._lock:
                for ref in touched:
                    self._by_key.pop(ref, None)
        return len(rows)

    def _apply(self, conn: Any, event: str, block: int, block_time: int, log_index: int, args: dict[str, Any]) -> bytes | None:
        """Apply one log; returns the shipment key whose orders changed (None if none did)."""
        if "orderId" not in args:
            return None
        order_id = _order_key(int(args["orderId"]))
        newer = or_(
            EscrowOrderRow.last_block < block,
            and_(EscrowOrderRow.last_block == block, EscrowOrderRow.last_log_index < log_index),
        )
        where = and_(EscrowOrderRow.chain_id == self.chain_id, EscrowOrderRow.order_id == order_id)
        if event == "OrderCreated":
            terms = args.get("terms")
            ref = _terms_field(terms, "shipmentRef", _SHIPMENT_REF)
            milestones = _terms_field(terms, "milestones", _MILESTONES)
            if not (isinstance(ref, str) and ref.startswith("0x") and len(ref) == 66):
                return None
            shipment = bytes.fromhex(ref[2:])
            conn.execute(
                insert_ignore(conn, _table(EscrowOrderRow), ["chain_id", "order_id"]),
                {
                    "chain_id": self.chain_id, "order_id": order_id, "shipment_ref": shipment,
                    "buyer": Web3.to_checksum_address(args["buyer"]), "seller": Web3.to_checksum_address(args["seller"]),
                    "milestones": len(milestones) if isinstance(milestones, list) else 0, "state": "Created",
                    "created_block": block, "created_time": block_time, "last_block": block, "last_log_index": log_index,
                },
            )
            return shipment
        found = conn.execute(select(EscrowOrderRow.shipment_ref, EscrowOrderRow.milestones, EscrowOrderRow.state).where(where)).first()
        if found is None:
            return None  # an order created before the indexer's start block
        if event == "MilestoneReached":
            if int(args.get("milestone", -1)) + 1 != int(found.milestones) or found.state == "Disputed":
                return None
            state = "Delivered"
        elif event in _FINAL:
            state = _FINAL[event]
        else:
            return None
        conn.execute(update(EscrowOrderRow).where(where, newer).values(state=state, last_block=block, last_log_index=log_index))
        return bytes(found.shipment_ref)

    def start(self, interval: float = 0.5) -> None:
        """Sync every `interval` seconds in a thread of its own until `stop`."""
        self._syncer.start(interval)

    def stop(self) -> None:
        self._syncer.stop()

    # ---- reading -------------------------------------------------------------------------------

    def orders_for(self, keys: Iterable[bytes]) -> dict[bytes, tuple[IndexedOrder, ...]]:
        """The orders naming each key (one indexed read for the keys not in memory)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[bytes, tuple[IndexedOrder, ...]] = {}
        with self._lock:
            for key in wanted:
                hit = self._by_key.get(key)
                if hit is not None:
                    found[key] = hit
        missing = [k for k in wanted if k not in found]
        if missing:
            with self.db.connect() as conn:
                loaded = _orders_by_key(conn, self.chain_id, missing)
            with self._lock:
                self._remember(loaded, replace=True)
            found.update(loaded)
        return found

    def take(self, read: OrderRead | None) -> bool:
        """Keep the orders a passport build read in its own snapshot (`read_orders`) if the index
        has not moved since the checkpoint that read was checked against; True if it kept them.
        In memory only: otherwise the caller brings them in with `refresh`."""
        with self._lock:
            if read is None or read.checkpoint != self.checkpoint:
                return False
            # No TradeEscrow log past the checkpoint was stored when the build read, and no sync
            # has applied one since: the rows it read are the index's rows now. (A sync drops the
            # keys it touched after it moves the checkpoint, so what is put here from an older
            # read is dropped again.)
            self._remember(read.orders, replace=False)
            return True

    def refresh(self, keys: Iterable[bytes]) -> None:
        """Bring the index up to date (`fresh`) and the orders of `keys` into memory, from the database."""
        self.fresh()
        self.orders_for(keys)

    def _remember(self, orders: Mapping[bytes, tuple[IndexedOrder, ...]], *, replace: bool) -> None:
        """Keep `orders` in memory, least recently used leaving first beyond `cache_size`. Caller holds the lock."""
        for key, value in orders.items():
            if replace or key not in self._by_key:
                self._by_key[key] = value
            self._by_key.move_to_end(key)
        while len(self._by_key) > self.cache_size:
            self._by_key.popitem(last=False)

    def order_of(self, levels: Sequence[Sequence[bytes]]) -> IndexedOrder | None:
        """The order a unit belongs to, given its keys by level (see the module's rule)."""
        orders = self.orders_for(k for level in levels for k in level)
        for level in levels:
            candidates = [o for key in level for o in orders.get(key, ())]
            if not candidates:
                continue
            live = [o for o in candidates if o.state != "Cancelled"] or candidates
            if len({o.buyer for o in live}) != 1:
                return None  # several buyers' orders name this key: not showing someone else's
            return max(live, key=lambda o: (o.created_block, o.order_id))
        return None
