"""Feeds read by id never skip a row: what a node appends to a feed that peers, clients or its own
services read with `after=<last id>` commits in the order of its ids (node.db.locks.in_id_order).

PostgreSQL only: it draws a row's id at the insert, so without the lock a writer that drew a
higher id could commit while one with a lower id is still open, a reader would move past the
lower id, and that row would never be read. (SQLite has one writer at a time: nothing to order.)

Each test opens a transaction that has appended to a feed, as another process of the node would,
and runs the real code path under test beside it: it must wait for that transaction, so that a
reader meanwhile sees neither row, and afterwards both, the open transaction's first."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, insert, select, text, update

from api.readmodel.scans import ScanLog
from api.readmodel.clone_rules import CloneRules
from node.db import Batch, ChainLog, Database, Event
from node.db.documents import DocumentFeedEntry
from node.db.event_rows import EVENT_COLUMNS, event_rows
from node.db.locks import ALERTS_FEED, BATCHES_FEED, CHAIN_LOGS_FEED, DOCUMENT_FEED, EVENTS_FEED, in_id_order
from node.db.models import NetworkBatch
from node.db.scans import ScanAlert
from node.documents import DocumentStore, FileBlobStore
from node.member.network.holders import held_feed
from node.member.network.verify import VerifiedBatch
from node.member.runtime import NodeRuntime, build_indexer, build_replicator
from node.protocol.merkle import build_tree
from tests.node.story import MANUFACTURER
from tests.node.test_anchorer import _anchorer, _ingest

WAIT = 20.0  # seconds: bound of the waits below (each ends as soon as its condition holds)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest) -> str:
    """This module's tests run on PostgreSQL only (the module docstring says why)."""
    return str(request.param)


def waiting_for(db: Database, feed: tuple[str, int]) -> bool:
    """Whether a transaction waits for `feed`'s lock in the database's schema."""
    with db.engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = CAST(:key AS oid) AND objid = CAST(hashtext(current_schema()) AS oid)"
        ), {"key": feed[1]}).scalar())


def started(write: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """`write` running in a thread of its own, and the list its exception (if any) goes to."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, failure


def wait_until_waiting(db: Database, feed: tuple[str, int], writer: threading.Thread, failure: list[BaseException]) -> None:
    """Return once `writer` waits for `feed`'s lock; fail if it finished (or failed) instead."""
    deadline = time.monotonic() + WAIT
    while not waiting_for(db, feed):
        assert writer.is_alive() and not failure, f"the second writer did not wait for the open one: {failure}"
        assert time.monotonic() < deadline, "the second writer neither waited nor finished"
        time.sleep(0.01)


def finished(writer: threading.Thread, failure: list[BaseException]) -> None:
    """Wait for `writer` (started by `started`) to end; fail if it did not, or failed."""
    writer.join(WAIT)
    assert not writer.is_alive() and not failure, failure


def first_and_last(db: Database, id_column: Any) -> list[int]:
    """The lowest and the highest id of a table (none: an empty list)."""
    with db.session() as s:
        ids = [int(i) for i in s.scalars(select(id_column).order_by(id_column))]
    return ids[:1] + ids[-1:] if ids else []


def appended_beside_an_open_writer(db: Database, feed: tuple[str, int], open_writer_appends: Callable[[Connection], None],
                                   append: Callable[[], object], read: Callable[[], list[int]]) -> list[int]:
    """Run `append` while a transaction that appended to `feed` (`open_writer_appends`) is open;
    check that it waits and that a reader sees nothing until that transaction commits. The ids
    read at the end."""
    with db.write_engine.connect() as conn:
        with conn.begin():
            in_id_order(conn, feed)
            open_writer_appends(conn)
            second, failure = started(append)
            wait_until_waiting(db, feed, second, failure)
            assert read() == [], "a reader saw a row while an earlier id was still uncommitted"
    finished(second, failure)
    ids = read()
    assert len(ids) == 2 and ids == sorted(ids)
    return ids


def test_a_sealed_document_imported_beside_an_open_writer_enters_the_feed_after_it(db: Database, tmp_path: Path) -> None:
    store = DocumentStore(db, FileBlobStore(tmp_path / "blobs"))
    content = b"sealed bytes"
    digest = hashlib.sha256(b"the document").digest()
    entry = {
        "digest": "sha256:" + digest.hex(), "ciphertext": base64.b64encode(content).decode(), "keys": {"7": base64.b64encode(b"k" * 80).decode()},
        "policy": {"organisations": [], "roles": []}, "documentType": "inspection_report", "mediaType": "application/pdf",
        "size": len(content), "ownerOrg": 7, "uploadedBy": MANUFACTURER.address, "createdAtMs": 1, "upload": {"account": MANUFACTURER.address},
    }

    def read() -> list[int]:
        with db.session() as s:
            return [int(seq) for seq in s.scalars(select(DocumentFeedEntry.seq).order_by(DocumentFeedEntry.seq))]

    def other_change(conn: Connection) -> None:
        conn.execute(insert(DocumentFeedEntry), {"digest": b"\x01" * 32})

    _first, second = appended_beside_an_open_writer(db, DOCUMENT_FEED, other_change, lambda: store.import_sealed(entry), read)
    with db.session() as s:
        assert bytes(s.scalars(select(DocumentFeedEntry.digest).where(DocumentFeedEntry.seq == second)).one()) == digest


def _other_batch(conn: Connection) -> None:
    conn.execute(insert(Batch), {"root": b"\x02" * 32, "event_count": 1, "status": "confirmed", "created_at_ms": 1, "sends": 0})


def _held(db: Database) -> list[int]:
    return [int(b["seq"]) for b in held_feed(db, 0)["batches"]]


def test_a_batch_the_anchorer_forms_beside_an_open_writer_follows_it_in_the_held_feed(
    runtime: NodeRuntime, chain_now: int
) -> None:
    _ingest(runtime, chain_now)
    anchorer = _anchorer(runtime)
    formed: list[int] = []

    def form_and_anchor() -> None:
        batch = anchorer.form_batch(force=True)
        assert batch is not None
        formed.append(batch[0])
        with runtime.db.connect(write=True) as conn:  # as its anchoring would: the held feed lists anchored batches
            conn.execute(update(Batch).where(Batch.id == batch[0]).values(status="anchored"))

    _first, second = appended_beside_an_open_writer(runtime.db, BATCHES_FEED, _other_batch, form_and_anchor, lambda: _held(runtime.db))
    assert formed == [second]


def test_a_batch_the_replicator_imports_beside_an_open_writer_follows_it_in_the_held_feed(runtime: NodeRuntime) -> None:
    replicator = build_replicator(runtime)
    batch = NetworkBatch(
        root=b"\x03" * 32, org_id=9, chain_id=runtime.client.chain_id, event_count=0, uri="", block_number=1,
        block_hash=b"\x04" * 32, block_time=1, tx_hash=b"\x05" * 32, state="waiting", first_seen_ms=1, attempts=0, next_attempt_ms=0,
    )
    with runtime.db.write() as s:
        s.add(batch)
    verified = VerifiedBatch([], build_tree([(b"\x06" * 32, MANUFACTURER.address)]))
    try:
        _first, second = appended_beside_an_open_writer(
            runtime.db, BATCHES_FEED, _other_batch, lambda: replicator.import_batch(batch, verified, "http://peer.example"),
            lambda: _held(runtime.db),
        )
    finally:
        replicator.close()
    with runtime.db.session() as s:
        assert bytes(s.scalars(select(Batch.root).where(Batch.id == second)).one()) == b"\x03" * 32


def test_an_alert_written_beside_an_open_writer_follows_it_in_the_alerts_feed(db: Database) -> None:
    log = ScanLog(db, CloneRules(max_devices=1))
    unit = "https://id.gs1.org/01/09521234543213/21/FEED1"
    for device in (b"a" * 16, b"b" * 16):  # two devices where one is allowed: an alert
        log.record(unit, device=device, region=None, region_source="proxy", gtin="09521234543213", org_id=4)

    def other_alert(conn: Connection) -> None:
        conn.execute(insert(ScanAlert), {"org_id": 4, "gtin": "09521234543213", "unit_key": unit + "0", "rule": "too_many_devices",
                                          "detail": "", "day": 1, "created_at_ms": 1, "evidence": orjson.dumps({}).decode()})

    def read() -> list[int]:
        with db.session() as s:
            return [int(i) for i in s.scalars(select(ScanAlert.id).order_by(ScanAlert.id))]

    appended_beside_an_open_writer(db, ALERTS_FEED, other_alert, log.flush, read)


def test_logs_the_indexer_stores_beside_an_open_writer_follow_its_logs(runtime: NodeRuntime) -> None:
    """A second indexer on the same database (its logs read by id: the replicator's and the order
    index's checkpoints) waits for the open one; the indexer here stores the deployment's logs."""
    indexer = build_indexer(runtime)

    def other_log(conn: Connection) -> None:
        conn.execute(insert(ChainLog), {
            "chain_id": runtime.client.chain_id + 1, "block_number": 1, "block_hash": b"\x07" * 32, "block_time": 1, "tx_hash": b"\x08" * 32,
            "log_index": 0, "address": "0x" + "00" * 20, "contract": "ProvenanceRegistry", "event": "BatchAnchored", "key": None, "args": "{}",
        })

    # read: the other writer's log, and the last this indexer stored
    first, last = appended_beside_an_open_writer(runtime.db, CHAIN_LOGS_FEED, other_log, indexer.step,
                                                 lambda: first_and_last(runtime.db, ChainLog.id))
    with runtime.db.session() as s:
        assert s.scalar(select(ChainLog.chain_id).where(ChainLog.id == first)) == runtime.client.chain_id + 1
        assert s.scalar(select(ChainLog.chain_id).where(ChainLog.id == last)) == runtime.client.chain_id


def _other_event(conn: Connection, received_at_ms: int = 1) -> None:
    with event_rows(conn) as stored:
        stored.insert(EVENT_COLUMNS, [(b"\x0a" * 32, "ObjectEvent", "OBSERVE", None, 1, 1000, b"\x0b" * 32, MANUFACTURER.address,
                                       b"\x0c" * 65, "MANUFACTURER", "{}", received_at_ms, None, None, None)])


def test_events_captured_beside_an_open_writer_follow_its_events(runtime: NodeRuntime, chain_now: int) -> None:
    """EPCIS query subscriptions deliver events up to an id: events another capture (or an
    import) is still writing must not be passed over."""
    # read: the other writer's event, and the last one captured
    first, last = appended_beside_an_open_writer(runtime.db, EVENTS_FEED, _other_event, lambda: _ingest(runtime, chain_now),
                                                 lambda: first_and_last(runtime.db, Event.id))
    with runtime.db.session() as s:
        assert bytes(s.scalars(select(Event.digest).where(Event.id == first)).one()) == b"\x0a" * 32
        assert bytes(s.scalars(select(Event.digest).where(Event.id == last)).one()) != b"\x0a" * 32


def test_a_capture_that_waited_records_its_events_after_the_writer_it_waited_for(runtime: NodeRuntime, chain_now: int) -> None:
    """EPCIS clients poll by record time (GE_recordTime from the last one seen): a capture that
    waited for another writer takes its record time once it may write, not before it waited, so
    record times follow commit order."""
    with runtime.db.write_engine.connect() as conn:
        with conn.begin():
            in_id_order(conn, EVENTS_FEED)
            waiting, captured = started(lambda: _ingest(runtime, chain_now))
            wait_until_waiting(runtime.db, EVENTS_FEED, waiting, captured)
            time.sleep(0.005)  # the other writer records a later millisecond than any taken before the capture waited
            recorded = int(time.time() * 1000)
            _other_event(conn, recorded)
    finished(waiting, captured)
    with runtime.db.session() as s:
        times = s.scalars(select(Event.received_at_ms).where(Event.digest != b"\x0a" * 32)).all()
    assert times and min(times) >= recorded
