"""The anchorer: pending events -> Merkle batches -> `anchorBatch` transactions.

Crash safety rests on three facts:

1. A batch (its root and member events, each with its leaf index and proof) is committed to
   the database, in one transaction, *before* its transaction is sent. An event belongs to
   at most one batch, so it can never be anchored under two roots.
2. The contract anchors a root at most once per organisation (`ProvenanceRootExists`), so sending a batch
   again can never anchor it twice.
3. Whatever state a batch is in, the chain says what happened to it: `anchorOfOrganisation(root, own org)`
   (another organisation's anchor of the same root is not ours).

Only events this node captured are ever pending, and capture takes only events of the node's own
organisation and of those it hosts (node.member.network.scope): batches imported from other members'
nodes arrive anchored and are never re-checked or re-sent here. The account must hold ANCHORER.

So a restarted anchorer (after a SIGKILL at any instant) first lets the transactions its
predecessor left in the node's pool be mined (bounded wait), then takes every batch that is not
known to be anchored, asks the chain, and either records where it was anchored or sends it.

Anchoring is pipelined: up to `max_in_flight` anchor transactions are sent, with consecutive
nonces counted by the chain client, before the first is mined, so a chain with 1-5 s blocks
takes many batches per block. Each round collects the receipts that arrived; a transaction not
mined after `stuck_after` seconds is replaced (the same nonce sent again if the node forgot it,
else with raised fees). A batch is recorded anchored only from its receipt or from the chain.
Anchored batches are watched: when the block holding an anchor no longer has the recorded
hash (a reorg, or a devnet restarted from older state), the chain is asked again and a
batch whose anchor vanished is sent again under the same root (same events, same proofs).
Only one anchorer may run against a database; a lock makes a second one fail at start.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import func, insert, select, update
from web3.exceptions import BlockNotFound

from node.chain.client import ChainClient, SentTransaction
from node.chain.errors import ContractRevert
from node.db import Batch, Database, Event
from node.db.event_rows import event_rows
from node.db.locks import ANCHORER_LOCK, BATCHES_FEED, LockHeld, hold, in_id_order
from node.db.models import NetworkBatch
from node.errors import WaymarkError
from node.protocol.merkle import build_tree

log = logging.getLogger(__name__)

PREPARED = "prepared"
ANCHORED = "anchored"
CONFIRMED = "confirmed"


class AnchorerError(WaymarkError):
    code = "anchorer_error"


class AnchorerAlreadyRunning(AnchorerError):
    def __init__(self, where: str) -> None:
        super().__init__(f"another anchorer already runs against {where}")


class NotAnAnchorer(AnchorerError):
    def __init__(self, account: str) -> None:
        super().__init__(f"{account} cannot anchor: it is not an account of an Active organisation holding the ANCHORER role")


@dataclass(frozen=True)
class AnchoredBatch:
    batch_id: int
    root: bytes
    event_count: int
    tx_hash: bytes
    block_number: int
    gas_used: int | None


@dataclass
class _InFlight:
    batch_id: int
    root: bytes
    count: int
    sent: SentTransaction


def now_ms() -> int:
    return int(time.time() * 1000)


class Anchorer:
    def __init__(
        self,
        db: Database,
        client: ChainClient,
        registry_address: str,
        account: LocalAccount,
        *,
        batch_size: int = 2000,
        max_delay: float = 1.0,
        confirmations: int = 0,
        uri_prefix: str = "",
        max_in_flight: int = 8,
        stuck_after: float = 30.0,
        min_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.client = client
        self.registry = client.contract("ProvenanceRegistry", registry_address)
        self.account = account
        self.batch_size = batch_size
        self.max_delay_ms = int(max_delay * 1000)
        self.confirmations = confirmations
        self.uri_prefix = uri_prefix
        self.max_in_flight = max_in_flight
        self.stuck_after = stuck_after
        self.min_interval = min_interval
        self.clock = clock
        self._last_formed = -math.inf  # clock() when this anchorer last formed a batch
        self._in_flight: dict[int, _InFlight] = {}
        self._watched_head: tuple[int, bytes] | None = None  # the chain head the last check_anchored saw whole
        self._lock_handle: Any = None
        self._org_id: int | None = None

    # ---- life cycle ----------------------------------------------------------------------

    def run(self, stop: threading.Event, poll: float = 0.05) -> None:
        """Recover, then anchor until `stop` is set. After a round with nothing to do it waits
        `poll` seconds, twice as long after each further idle round, up to 4 x `poll` (an idle
        node should not ask the chain and its database twenty times a second)."""
        with self.exclusive():
            recovered = False
            failures = 0
            idle_wait = poll
            while not stop.is_set():
                try:
                    if not recovered:
                        self.recover()
                        recovered = True
                    worked = self.step()
                    failures = 0
                except Exception:  # noqa: BLE001 - chain or database away: nothing is lost, try again
                    failures += 1
                    log.exception("anchoring failed (%d in a row); retrying", failures)
                    worked = False
                    stop.wait(min(5.0, poll * 2**failures))
                if worked:
                    idle_wait = poll
                else:
                    stop.wait(idle_wait)
                    idle_wait = min(idle_wait * 2, poll * 4)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the one-anchorer-per-database lock (released by the OS if the process dies)."""
        with ExitStack() as held:
            try:
                held.enter_context(hold(self.db, ANCHORER_LOCK))
            except LockHeld as taken:
                raise AnchorerAlreadyRunning(taken.where) from None
            yield

    def recover(self, pool_wait: float = 60.0) -> None:
        """Settle every batch left unfinished by a previous run, and re-check anchored ones.

        Anchor transactions a killed predecessor left in the node's pool are waited for first
        (at most `pool_wait` seconds), so the chain, not a guess, says which batches they anchored.
        """
        self._in_flight.clear()
        self._await_own_pool(pool_wait)
        self.check_anchored(full=True)
        for batch_id, root, count in self._batches(PREPARED):
            if self._settle_from_chain(batch_id, root):
                log.warning("recovery: batch %d (0x%s) was already anchored; recorded", batch_id, root.hex())
            else:
                log.warning("recovery: batch %d (0x%s) is not on chain; sending", batch_id, root.hex())
                self._settle_or_send(batch_id, root, count)

    def step(self) -> bool:
        """One round: watch anchors, collect receipts, send batches while there is room. True if
        anything was sent or settled."""
        self.check_anchored()
        settled = self.collect()
        sent = self._fill(force=False)
        if sent:
            settled = self.collect() or settled  # on a chain that mines at once, they are in already
        return sent or settled

    def drain(self, timeout: float = 60.0) -> None:
        """Anchor until nothing is pending or in flight (tests and benchmarks); ignores the batch delay."""
        deadline = time.monotonic() + timeout
        self.recover()
        while time.monotonic() < deadline:
            self.check_anchored()
            self.collect()
            self._fill(force=True)
            if not self._in_flight and not self._batches(PREPARED) and pending_count(self.db) == 0:
                return
            if len(self._in_flight) >= self.max_in_flight or not self._fill(force=True):
                time.sleep(0.005)  # waiting for blocks
        raise AnchorerError(f"events still pending after {timeout:.0f}s")

    def _fill(self, force: bool) -> bool:
        """Send prepared batches, then new ones, while fewer than `max_in_flight` are in flight. True if any was."""
        sent = False
        for batch_id, root, count in self._batches(PREPARED):  # e.g. re-opened by check_anchored
            if batch_id not in self._in_flight and len(self._in_flight) < self.max_in_flight:
                self._settle_or_send(batch_id, root, count)
                sent = True
        while len(self._in_flight) < self.max_in_flight:
            formed = self.form_batch(force=force)
            if formed is None:
                break
            self._settle_or_send(*formed)
            sent = True
        return sent

    @property
    def in_flight(self) -> int:
        """Anchor transactions sent and not yet settled."""
        return len(self._in_flight)

    def _await_own_pool(self, timeout: float) -> None:
        """Wait until no transaction of this anchorer's account waits in the node's pool."""
        eth = self.client.w3.eth
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            pending = int(eth.get_transaction_count(self.account.address, "pending"))
            mined = int(eth.get_transaction_count(self.account.address, "latest"))
            if pending <= mined:
                return
            if time.monotonic() >= deadline:
                log.warning("recovery: %d transactions of %s still in the pool after %.0fs; going on",
                            pending - mined, self.account.address, timeout)
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    # ---- forming batches ----------------------------------------------------------------

    def form_batch(self, force: bool = False) -> tuple[int, bytes, int] | None:
        """Commit the next batch (root, leaves, proofs) if one is due. Returns (id, root, count).

        The pending events are read and the tree is built outside the write transaction (ingest
        keeps writing meanwhile): only this anchorer assigns events to batches (see `exclusive`)
        and ingest never changes a stored event, so what was read is still pending.
        """
        with self.db.connect() as conn, event_rows(conn) as queue:
            if not force:
                # Whether a batch is due, counted by the database: most rounds under a steady stream
                # find a partial batch not due yet, and reading its rows each round cost 3-4 times
                # as much (8-11 ms against 2.4-3.0 ms at 3,000 pending events on SQLite).
                count, oldest_ms = queue.next_batch(self.batch_size)
                if not count or (count < self.batch_size and not self._partial_batch_due(oldest_ms or 0)):
                    return None
            rows = queue.pending(self.batch_size)
        if not rows:
            return None
        tree = build_tree([(digest, signer) for _id, digest, signer in rows])
        root = tree.root
        proof = tree.proof
        with self.db.connect(write=True) as conn:
            in_id_order(conn, BATCHES_FEED)  # peers read this node's batches by id (held_feed)
            batch_id = int(
                conn.execute(
                    insert(Batch).returning(Batch.id),
                    {"root": root, "event_count": len(rows), "status": PREPARED, "created_at_ms": now_ms(), "sends": 0},
                ).scalar_one()
            )
            with event_rows(conn) as events:
                updated = events.batch_pending(batch_id, [r[0] for r in rows], [b"".join(proof(i)) for i in range(len(rows))])
            if updated != len(rows):  # only if a second anchorer ignored the lock
                raise AnchorerError(f"batch {batch_id}: {updated} of {len(rows)} events were still pending")
        self._last_formed = self.clock()
        return batch_id, root, len(rows)

    def _partial_batch_due(self, oldest_received_ms: int) -> bool:
        """A batch smaller than `batch_size` goes once its oldest event waited `max_delay`, and
        not sooner than `min_interval` after the previous batch: each anchor is a transaction every
        validator keeps for good, so a steady stream costs one per interval, while an event after a
        quiet spell still waits only `max_delay`."""
        return (now_ms() - oldest_received_ms >= self.max_delay_ms
                and self.clock() - self._last_formed >= self.min_interval)

    # ---- sending and settling -----------------------------------------------------------

    def _settle_or_send(self, batch_id: int, root: bytes, count: int) -> None:
        """Record the batch if the chain has it, else send its anchor transaction (not waiting)."""
        if self._settle_from_chain(batch_id, root):
            return
        # where the batch bundle is served (node/member/network/BUNDLE.md): <public url>/batches/<root>/bundle
        uri = f"{self.uri_prefix}0x{root.hex()}/bundle" if self.uri_prefix else ""
        with self.db.connect(write=True) as conn:
            conn.execute(update(Batch).where(Batch.id == batch_id).values(sends=Batch.sends + 1))
        try:
            tx = self.client.prepare(self.registry.functions.anchorBatch(root, count, uri), sender=self.account)
        except ContractRevert as revert:
            if revert.error_name == "ProvenanceRootExists" and self._settle_from_chain(batch_id, root):
                return  # a copy sent before a crash got there first
            if revert.error_name == "ProvenanceNotAnchorer":
                raise NotAnAnchorer(self.account.address) from None
            raise
        sent = self.client.send_nowait(tx, self.account)
        self._in_flight[batch_id] = _InFlight(batch_id, root, count, sent)

    def collect(self) -> bool:
        """Record the in-flight batches whose transaction was mined; replace stuck ones. True if any settled.

        Receipts are asked in nonce order and only up to the first transaction not mined: an
        account's transactions are mined in nonce order, so none after it can be (on a chain with
        2 s blocks and 8 in flight, one receipt asked per round instead of eight)."""
        settled = False
        blocked = False  # an earlier nonce is not mined yet
        for batch_id, flight in sorted(self._in_flight.items(), key=lambda item: item[1].sent.nonce):
            receipt = None if blocked else self.client.receipt_of(flight.sent)
            if receipt is None:
                blocked = True
                if time.monotonic() - flight.sent.sent_at > self.stuck_after:
                    log.warning("anchor of batch %d (nonce %d) not mined after %.0fs; replacing it",
                                batch_id, flight.sent.nonce, self.stuck_after)
                    flight.sent = self.client.replace(flight.sent)
                continue
            del self._in_flight[batch_id]
            settled = True
            if receipt["status"] == 1:
                self._record(batch_id, receipt["transactionHash"], int(receipt["blockNumber"]), receipt["blockHash"],
                             int(receipt["gasUsed"]))
                continue
            failure = self.client.failure(flight.sent, receipt)
            if isinstance(failure, ContractRevert) and failure.error_name == "ProvenanceRootExists" \
                    and self._settle_from_chain(batch_id, flight.root):
                continue  # a copy sent earlier (before a crash or a replacement) got there first
            if isinstance(failure, ContractRevert) and failure.error_name == "ProvenanceNotAnchorer":
                raise NotAnAnchorer(self.account.address)
            raise failure  # the batch stays prepared: the next round asks the chain and sends it again
        return settled

    def _own_org(self) -> int:
        """The organisation this anchorer's account anchors for (anchors are kept per organisation)."""
        if self._org_id is None:
            consortium = self.client.contract("ConsortiumRegistry", self.client.call(self.registry.functions.registry()))
            self._org_id = int(self.client.call(consortium.functions.organisationOf(self.account.address)))
        return self._org_id

    def _settle_from_chain(self, batch_id: int, root: bytes) -> bool:
        """If the chain has `root` anchored by this organisation, record where; True if it does.
        Another organisation's anchor of the same root is not ours and is ignored."""
        org = self._own_org()
        anchor = self.client.call(self.registry.functions.anchorOfOrganisation(root, org))
        org_id, block_number = int(anchor[0]), int(anchor[1])
        if org_id == 0:
            return False
        event = self.registry.events.BatchAnchored()
        topics = [str(event.topic), "0x" + root.hex(), "0x" + org.to_bytes(32, "big").hex()]
        raw = self.client.logs.get_logs({"address": self.registry.address, "topics": topics}, block_number, block_number)
        if not raw:
            return False  # the block moved under us; try again next round
        entry = event.process_log(raw[0])
        receipt = self.client.w3.eth.get_transaction_receipt(entry["transactionHash"])
        self._record(batch_id, entry["transactionHash"], block_number, entry["blockHash"], int(receipt["gasUsed"]))
        return True

    def _record(self, batch_id: int, tx_hash: Any, block_number: int, block_hash: Any, gas_used: int) -> None:
        self._watched_head = None  # a new anchor to watch, even if the head has not moved since the last check
        with self.db.connect(write=True) as conn:
            conn.execute(
                update(Batch)
                .where(Batch.id == batch_id)
                .values(
                    status=ANCHORED,
                    tx_hash=bytes(HexBytes(tx_hash)),
                    block_number=block_number,
                    block_hash=bytes(HexBytes(block_hash)),
                    gas_used=gas_used,
                    anchored_at_ms=now_ms(),
                )
            )

    # ---- watching anchors -----------------------------------------------------------------

    def check_anchored(self, full: bool = False) -> None:
        """Confirm anchors deep enough; re-open batches whose anchor the chain lost.

        Nothing to do while the chain's head is the one the last check saw (number and hash: a
        same-height reorg counts). Newest first: once a recorded block still has its hash, every
        older block does too (each block commits to its parent), so only the anchored batches and
        the newest confirmed one are looked at, unless `full` (recovery) checks every block.
        """
        latest = self.client.w3.eth.get_block("latest")
        head = (int(latest["number"]), bytes(latest["hash"]))
        if not full and head == self._watched_head:
            return
        checked_blocks: dict[int, bool] = {}
        lost = False
        for batch_id, root, status, number, block_hash in self._anchored_rows(full):
            number = int(number or 0)  # anchored batches always have a block
            if number not in checked_blocks:
                checked_blocks[number] = self._block_hash(number) == block_hash
            if checked_blocks[number]:
                if status == ANCHORED and head[0] - number >= self.confirmations:
                    self._set_status(batch_id, CONFIRMED)
                if status == CONFIRMED and not full:
                    break
                continue
            log.warning("anchor of batch %d (block %d) is no longer on the chain; checking", batch_id, number)
            if not self._settle_from_chain(batch_id, root):
                self._set_status(batch_id, PREPARED)
                lost = True
        if lost:
            # The chain went back: nonces this client counted up were never used there.
            self._reconnect()
        else:
            self._watched_head = head

    def _anchored_rows(self, full: bool) -> list[Any]:
        """Batches of ours on chain (imported ones are not ours to re-send), newest first: every
        one if `full`, else the anchored ones and the newest confirmed one."""
        columns = select(Batch.id, Batch.root, Batch.status, Batch.block_number, Batch.block_hash).where(
            Batch.root.not_in(select(NetworkBatch.root))
        )
        newest_first = (Batch.block_number.desc(), Batch.id.desc())
        with self.db.session() as s:
            if full:
                return list(s.execute(columns.where(Batch.status.in_((ANCHORED, CONFIRMED))).order_by(*newest_first)).all())
            anchored = s.execute(columns.where(Batch.status == ANCHORED)).all()
            newest_confirmed = s.execute(columns.where(Batch.status == CONFIRMED).order_by(*newest_first).limit(1)).all()
        return sorted([*anchored, *newest_confirmed], key=lambda row: (row[3] or 0, row[0]), reverse=True)

    def _reconnect(self) -> None:
        self._in_flight.clear()  # sent on a branch the chain left; the batches are prepared again
        self.client = ChainClient(self.client.rpc_url, expected_chain_id=self.client.chain_id,
                                  max_log_range=self.client.logs.max_range)
        self.registry = self.client.contract("ProvenanceRegistry", self.registry.address)

    def _block_hash(self, number: int) -> bytes | None:
        try:
            return bytes(self.client.w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            return None

    def _set_status(self, batch_id: int, status: str) -> None:
        with self.db.connect(write=True) as conn:
            conn.execute(update(Batch).where(Batch.id == batch_id).values(status=status))

    def _batches(self, status: str) -> list[tuple[int, bytes, int]]:
        with self.db.session() as s:
            return [
                (int(i), bytes(r), int(c))
                for i, r, c in s.execute(
                    select(Batch.id, Batch.root, Batch.event_count).where(Batch.status == status).order_by(Batch.id)
                )
            ]


def pending_count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Event).where(Event.batch_id.is_(None))) or 0)
