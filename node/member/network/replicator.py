"""The replicator: every batch another organisation anchors is fetched, verified and imported.

It follows the `BatchAnchored` logs the indexer stores (so it sees what the indexer sees:
confirmed blocks, reorgs rolled back), and keeps its own state in the database
(`network_batches`, one row per batch it must hold), so a restarted replicator resumes where
it stopped: a batch is `waiting` until imported (`held`). Each due batch is fetched from the
URI its anchor names, then from every peer of the registry's node directory (those known to
hold it first), at most `concurrency` batches at a time; a bundle that fails verification is
recorded in `network_failures` (source, event, check) and the next source is tried. A batch no
source served within `withheld_after` seconds of being seen becomes `withheld` and is retried,
with exponential back-off, until one does.

Importing is one database transaction per batch: the batch row (anchored, with the chain's
transaction and block), then every event with its leaf index and proof. An event the node
already has (captured here, or imported with another batch) is never inserted twice: a pending
one is attached to the batch, an anchored one is left alone.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, func, insert, select, update

from node.db import Batch, ChainLog, Database, IndexCheckpoint
from node.db.event_rows import ANCHORED_EVENT_COLUMNS, event_rows
from node.db.locks import BATCHES_FEED, EVENTS_FEED, in_id_order
from node.db.models import NetworkBatch, NetworkFailure, NetworkHolder, NetworkPeerCursor
from node.db.upsert import insert_ignore, upsert
from node.member.ingest.capture import CheckedEvent
from node.member.ingest.roles import RoleMirror
from node.member.network.directory import Directory
from node.member.network.verify import Refusal, VerifiedBatch, verify_bundle
from node.protocol.attestation import AttestationDomain
from node.protocol.verification import Anchor

log = logging.getLogger(__name__)

WAITING = "waiting"
HELD = "held"
WITHHELD = "withheld"
CHECKPOINT = "network-replicator"
CONFIRMED = "confirmed"  # the status an imported batch gets: the indexer only stores confirmed logs


@dataclass(frozen=True)
class ReplicationSettings:
    concurrency: int = 4
    withheld_after: float = 300.0
    retry_base: float = 1.0
    retry_max: float = 60.0
    fetch_timeout: float = 30.0
    max_bundle_bytes: int = 1 << 30
    holders_interval: float = 1.0


@dataclass(frozen=True)
class WithheldBatch:
    """A batch no member node has served within the withheld timeout."""

    root: bytes
    org_id: int
    event_count: int
    block_number: int
    withheld_since_ms: int
    last_error: str | None


def now_ms() -> int:
    return int(time.time() * 1000)


class Replicator:
    def __init__(
        self,
        db: Database,
        *,
        chain_id: int,
        domain: AttestationDomain,
        roles: RoleMirror,
        directory: Directory,
        own_org: int | None,
        settings: ReplicationSettings = ReplicationSettings(),
        executor: Executor | None = None,
    ) -> None:
        self.db = db
        self.chain_id = chain_id
        self.domain = domain
        self.roles = roles
        self.directory = directory
        self.own_org = own_org
        self.settings = settings
        self.executor = executor
        self.http = httpx.Client(timeout=settings.fetch_timeout, follow_redirects=False)
        self._fetchers = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="replicator")
        self._holders_read_at = -1e9
        self._chain_time = 0

    def close(self) -> None:
        self._fetchers.shutdown(wait=True, cancel_futures=True)
        self.http.close()

    # ---- life cycle ----------------------------------------------------------------------

    def run(self, stop: threading.Event, poll: float = 0.5) -> None:
        failures = 0
        try:
            while not stop.is_set():
                try:
                    worked = self.step()
                    failures = 0
                except Exception:  # noqa: BLE001 - chain, database or a peer away: state is in the database, try again
                    failures += 1
                    log.exception("replication failed (%d in a row); retrying", failures)
                    worked = False
                    stop.wait(min(5.0, poll * 2**failures))
                if not worked:
                    stop.wait(poll)
        finally:
            self.close()

    def step(self) -> bool:
        """One round: new anchors, peers' held feeds, then the due batches. True if any was imported."""
        self.discover()
        if time.monotonic() - self._holders_read_at >= self.settings.holders_interval:
            self.poll_holders()
            self._holders_read_at = time.monotonic()
        return self.replicate_due() > 0

    # ---- following the chain -----------------------------------------------------------------

    def discover(self) -> int:
        """Record the BatchAnchored logs indexed since the last round; returns how many were new."""
        with self.db.session() as s:
            after = s.scalar(
                select(IndexCheckpoint.log_id).where(IndexCheckpoint.chain_id == self.chain_id, IndexCheckpoint.name == CHECKPOINT)
            ) or 0
            logs = s.execute(
                select(ChainLog.id, ChainLog.args, ChainLog.block_number, ChainLog.block_hash, ChainLog.block_time, ChainLog.tx_hash)
                .where(ChainLog.chain_id == self.chain_id, ChainLog.id > after, ChainLog.event == "BatchAnchored",
                       ChainLog.contract == "ProvenanceRegistry")
                .order_by(ChainLog.id)
                .limit(5000)
            ).all()
        if not logs:
            return 0
        now = now_ms()
        rows = []
        for _id, args_text, number, block_hash, block_time, tx_hash in logs:
            args = orjson.loads(args_text)
            org = int(args["orgId"])
            if org == self.own_org:
                continue  # this node anchored it: it holds it
            rows.append({
                "root": bytes.fromhex(args["root"][2:]), "org_id": org, "chain_id": self.chain_id,
                "event_count": int(args["eventCount"]), "uri": str(args["uri"]), "block_number": int(number),
                "block_hash": bytes(block_hash), "block_time": int(block_time), "tx_hash": bytes(tx_hash),
                "state": WAITING, "first_seen_ms": now, "attempts": 0, "next_attempt_ms": 0,
            })
        with self.db.connect(write=True) as conn:
            if rows:
                conn.execute(insert_ignore(conn, NetworkBatch.__table__, ["root", "org_id"]), rows)  # type: ignore[arg-type]
            conn.execute(
                upsert(conn, IndexCheckpoint.__table__, ["chain_id", "name"], ["log_id"]),  # type: ignore[arg-type]
                {"chain_id": self.chain_id, "name": CHECKPOINT, "log_id": int(logs[-1][0])},
            )
        return len(rows)

    # ---- holders -------------------------------------------------------------------------------

    def poll_holders(self) -> None:
        """Read each peer's held-batches feed from where this node stopped."""
        for peer in self.directory.peers(self.own_org):
            with self.db.session() as s:
                cursor = s.get(NetworkPeerCursor, peer.org_id)
            after = cursor.after if cursor is not None and cursor.url == peer.url else 0
            try:
                while True:
                    response = self.http.get(f"{peer.url}/batches/held", params={"after": after, "limit": 5000},
                                             timeout=min(2.0, self.settings.fetch_timeout))
                    if response.status_code != 200:
                        break
                    page = response.json()
                    batches, after = page["batches"], int(page["next"])
                    now = now_ms()
                    with self.db.connect(write=True) as conn:
                        if batches:
                            conn.execute(
                                insert_ignore(conn, NetworkHolder.__table__, ["root", "org_id"]),  # type: ignore[arg-type]
                                [{"root": bytes.fromhex(b["root"][2:]), "org_id": peer.org_id, "seen_at_ms": now} for b in batches],
                            )
                        conn.execute(
                            upsert(conn, NetworkPeerCursor.__table__, ["org_id"], ["url", "after"]),  # type: ignore[arg-type]
                            {"org_id": peer.org_id, "url": peer.url, "after": after},
                        )
                    if not batches:
                        break
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.debug("held feed of %s unreadable: %s", peer.url, exc)

    # ---- replicating -----------------------------------------------------------------------------

    def replicate_due(self) -> int:
        """Fetch, verify and import the batches that are due, `concurrency` at a time. Returns how many were imported."""
        with self.db.session() as s:
            due = s.scalars(
                select(NetworkBatch)
                .where(NetworkBatch.state.in_((WAITING, WITHHELD)), NetworkBatch.next_attempt_ms <= now_ms())
                .order_by(NetworkBatch.block_number, NetworkBatch.root)
                .limit(self.settings.concurrency * 4)
            ).all()
        if not due:
            return 0
        self.roles.refresh(force=True)  # roles granted moments ago are in the history the checks read
        self._chain_time = int(self.roles.w3.eth.get_block("latest")["timestamp"])
        return sum(self._fetchers.map(self.replicate, due))

    def sources(self, batch: NetworkBatch) -> list[str]:
        """Where to fetch a batch: its on-chain URI (when under a listed node URL), then the peers known
        to hold it, then the others."""
        with self.db.session() as s:
            holders = set(s.scalars(select(NetworkHolder.org_id).where(NetworkHolder.root == batch.root)))
        peers = sorted(self.directory.peers(self.own_org), key=lambda p: p.org_id not in holders)
        path = f"/batches/0x{batch.root.hex()}/bundle"
        # The on-chain URI is fetched only under a node URL the directory lists: any member writes
        # its own URIs, and must not make every node send requests to addresses of its choosing.
        urls = [batch.uri] if any(batch.uri.startswith(peer.url + "/") for peer in peers) else []
        urls += [peer.url + path for peer in peers]
        return list(dict.fromkeys(urls))

    def replicate(self, batch: NetworkBatch) -> int:
        """Try every source once; import the first bundle that verifies. 1 if imported."""
        anchor = Anchor(batch.root, batch.org_id, batch.block_number, batch.block_time, batch.event_count)
        errors = []
        for url in self.sources(batch):
            try:
                raw = self.fetch(url)
            except FetchFailed as exc:
                errors.append(f"{url}: {exc}")
                continue
            now = max(self._chain_time, batch.block_time)
            if self.executor is not None:  # the registry's history goes along: the check is a pure function
                result = self.executor.submit(verify_bundle, raw, anchor, self.domain, self.roles.snapshot(), now).result()
            else:
                result = verify_bundle(raw, anchor, self.domain, self.roles, now)
            if isinstance(result, Refusal):
                self._refused(batch.root, url, result)
                errors.append(f"{url}: refused: {result}")
                continue
            self.import_batch(batch, result, url)
            return 1
        self._missed(batch, "; ".join(errors) or "no source: no URI on chain and no peer in the directory")
        return 0

    def fetch(self, url: str) -> bytes:
        """The raw (gzip) bundle at `url`, at most `max_bundle_bytes` of it."""
        try:
            with self.http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise FetchFailed(f"HTTP {response.status_code}")
                chunks, size = [], 0
                for chunk in response.iter_raw():
                    size += len(chunk)
                    if size > self.settings.max_bundle_bytes:
                        raise FetchFailed(f"larger than {self.settings.max_bundle_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{type(exc).__name__}: {exc}") from None

    def _refused(self, root: bytes, source: str, refusal: Refusal) -> None:
        log.warning("bundle 0x%s from %s refused: %s", root.hex(), source, refusal)
        with self.db.connect(write=True) as conn:
            conn.execute(insert(NetworkFailure), {
                "root": root, "source": source, "event_id": refusal.event_id, "check": refusal.check,
                "reason": refusal.reason, "at_ms": now_ms(),
            })

    def _missed(self, batch: NetworkBatch, error: str) -> None:
        now = now_ms()
        attempts = batch.attempts + 1
        delay = min(self.settings.retry_max, self.settings.retry_base * 2 ** min(attempts - 1, 20))
        values: dict[str, Any] = {"attempts": attempts, "next_attempt_ms": now + int(delay * 1000), "last_error": error[:4000]}
        if batch.state == WAITING and now - batch.first_seen_ms >= self.settings.withheld_after * 1000:
            values.update(state=WITHHELD, withheld_since_ms=now)
            log.warning("batch 0x%s of organisation %d is withheld: %s", batch.root.hex(), batch.org_id, error)
        with self.db.connect(write=True) as conn:
            conn.execute(update(NetworkBatch).where(NetworkBatch.root == batch.root, NetworkBatch.org_id == batch.org_id)
                         .values(**values))

    # ---- importing -------------------------------------------------------------------------------

    def import_batch(self, batch: NetworkBatch, verified: VerifiedBatch, source: str) -> None:
        """Store a verified batch and its events as anchored, in one transaction, idempotently."""
        with self.db.connect(write=True) as conn:
            in_id_order(conn, BATCHES_FEED)  # peers read this node's batches by id (held_feed)
            in_id_order(conn, EVENTS_FEED)  # subscriptions deliver events by id
            now = now_ms()  # the events' record time, taken once they may be written: in commit order
            # a batch row with this root already (the same events anchored here too) holds them: nothing to add
            if conn.execute(select(Batch.id).where(Batch.root == batch.root)).first() is None:
                batch_id = int(conn.execute(insert(Batch).returning(Batch.id), {
                    "root": batch.root, "event_count": batch.event_count, "status": CONFIRMED, "created_at_ms": now,
                    "submitter": None, "tx_hash": batch.tx_hash, "block_number": batch.block_number,
                    "block_hash": batch.block_hash, "anchored_at_ms": now, "sends": 0,
                }).scalar_one())
                _store_events(conn, batch_id, verified, now)
            conn.execute(
                update(NetworkBatch).where(NetworkBatch.root == batch.root, NetworkBatch.org_id == batch.org_id)
                .values(state=HELD, imported_at_ms=now, source=source, last_error=None)
            )
        log.info("imported batch 0x%s of organisation %d (%d events) from %s",
                 batch.root.hex(), batch.org_id, batch.event_count, source)


class FetchFailed(Exception):
    """A source did not deliver a bundle (connection, status, size)."""


def _store_events(conn: Connection, batch_id: int, verified: VerifiedBatch, now: int) -> None:
    """Insert the batch's new events; attach pending ones the node already has; leave anchored ones alone.
    DB-API directly, as capture does: per-row ORM parameter handling would dominate."""
    events = verified.events
    proof = verified.tree.proof
    with event_rows(conn) as stored:
        known = stored.existing([e.digest for e in events])
        stored.attach_pending(batch_id, [(i, b"".join(proof(i)), e.digest) for i, e in enumerate(events)
                                         if e.digest in known and known[e.digest] is None])
        fresh = [(i, e) for i, e in enumerate(events) if e.digest not in known]
        ids = stored.insert(ANCHORED_EVENT_COLUMNS, [_row(e, now, batch_id, i, b"".join(proof(i))) for i, e in fresh])
        stored.insert_epcs([(ids[e.digest], epc, relation) for _i, e in fresh if e.digest in ids for epc, relation in e.epcs])


def _row(e: CheckedEvent, now: int, batch_id: int, leaf: int, proof: bytes) -> tuple[Any, ...]:
    return (e.digest, e.event_type, e.action, e.biz_step, e.event_time, e.event_time_ms, e.subject, e.signer, e.signature,
            e.role, e.body, now, e.corrects, e.org or None, now, batch_id, leaf, proof)


# ---- what the rest of the node reads (health, `waymark status`, the audit, passports) -------------


def withheld_batches(db: Database, chain_id: int) -> list[WithheldBatch]:
    """The batches this node has recorded as withheld (not served by any member node in time).
    The audit reports each as a `batch_withheld` discrepancy naming the anchoring organisation."""
    with db.session() as s:
        rows = s.scalars(
            select(NetworkBatch).where(NetworkBatch.chain_id == chain_id, NetworkBatch.state == WITHHELD)
            .order_by(NetworkBatch.block_number)
        ).all()
    return [WithheldBatch(r.root, r.org_id, r.event_count, r.block_number, int(r.withheld_since_ms or 0), r.last_error) for r in rows]


def replication_status(db: Database, chain_id: int) -> dict[str, Any]:
    """Counts by state and the withheld batches, for node health and `waymark status`."""
    with db.session() as s:
        counts = {str(state): int(n) for state, n in s.execute(
            select(NetworkBatch.state, func.count()).where(NetworkBatch.chain_id == chain_id).group_by(NetworkBatch.state)
        ).all()}
        refused = int(s.scalar(select(func.count()).select_from(NetworkFailure)) or 0)
    withheld = withheld_batches(db, chain_id)
    return {
        "held": int(counts.get(HELD, 0)),
        "waiting": int(counts.get(WAITING, 0)),
        "withheld": [{"root": "0x" + w.root.hex(), "orgId": w.org_id, "eventCount": w.event_count,
                      "since": w.withheld_since_ms} for w in withheld],
        "refusedBundles": refused,
    }
