"""The anchorer: batches by size and delay, proofs that verify on chain, recovery of unfinished
batches without anchoring twice, re-anchoring of batches the chain lost, one anchorer per database."""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import select

from node.member.anchorer import Anchorer, AnchorerAlreadyRunning, pending_count
from node.chain.client import ChainClient
from tests.chain.besu_limits import logs_limited
from node.db import Batch, Event
from waymark.devnet.anvil import AnvilControl, AnvilProcess
from node.member.ingest.capture import CaptureService
from node.protocol.merkle import leaf_hash
from node.member.runtime import NodeRuntime, build_anchorer, build_capture
from tests.node.story import CARRIER, MANUFACTURER, capture_document, lot_story, story_events


def _ingest(runtime: NodeRuntime, start: int, size: int = 4) -> CaptureService:
    capture = build_capture(runtime)
    capture.capture(orjson.dumps(capture_document(story_events(lot_story(start, size)), runtime.domain)))
    return capture


def _anchorer(runtime: NodeRuntime, batch_size: int = 500, max_delay: float = 0.2) -> Anchorer:
    runtime.node.batch_size, runtime.node.max_batch_delay = batch_size, max_delay
    return build_anchorer(runtime, MANUFACTURER)


def _anchored_logs(runtime: NodeRuntime) -> list[bytes]:
    registry = runtime.client.contract("ProvenanceRegistry", runtime.registry_address)
    logs = registry.events.BatchAnchored().get_logs(from_block=runtime.deployment.start_block)
    return [bytes(entry["args"]["root"]) for entry in logs]


def _settle_in_flight(anchorer: Anchorer) -> None:
    """Wait for every in-flight anchor's receipt, then let the anchorer record them: even by
    automine a receipt may appear a moment after the send returned (seen on a loaded machine)."""
    for flight in list(anchorer._in_flight.values()):
        anchorer.client.w3.eth.wait_for_transaction_receipt(flight.sent.tx_hash, timeout=30, poll_latency=0.01)
    anchorer.collect()
    assert anchorer.in_flight == 0


def _assert_all_anchored_once(runtime: NodeRuntime) -> None:
    registry = runtime.client.contract("ProvenanceRegistry", runtime.registry_address)
    with runtime.db.session() as s:
        batches = s.scalars(select(Batch)).all()
        events = s.scalars(select(Event)).all()
    roots = _anchored_logs(runtime)
    assert sorted(roots) == sorted(bytes(b.root) for b in batches)  # each batch once on chain
    assert sum(b.event_count for b in batches) == len(events)
    for event in events:
        assert event.batch_id is not None
        batch = next(b for b in batches if b.id == event.batch_id)
        proof = bytes(event.proof or b"")
        siblings = [proof[i : i + 32] for i in range(0, len(proof), 32)]
        assert registry.functions.verifyLeaf(bytes(batch.root), siblings, bytes(event.digest), event.signer).call()


def test_anchors_in_batches_of_the_configured_size(runtime: NodeRuntime, chain_now: int) -> None:
    _ingest(runtime, chain_now)  # 12 events
    anchorer = _anchorer(runtime, batch_size=5)
    anchorer.drain()
    with runtime.db.session() as s:
        sizes = [b.event_count for b in s.scalars(select(Batch).order_by(Batch.id))]
        gas = [b.gas_used for b in s.scalars(select(Batch))]
    assert sizes == [5, 5, 2]
    assert all(g and g < 100_000 for g in gas)
    assert pending_count(runtime.db) == 0
    _assert_all_anchored_once(runtime)


def test_waits_for_a_full_batch_or_the_maximum_delay(runtime: NodeRuntime, chain_now: int) -> None:
    _ingest(runtime, chain_now)
    anchorer = _anchorer(runtime, batch_size=100, max_delay=0.3)
    assert anchorer.form_batch() is None  # 12 < 100 and young
    time.sleep(0.35)
    formed = anchorer.form_batch()
    assert formed is not None and formed[2] == 12


def test_a_steady_stream_forms_at_most_one_partial_batch_per_interval(runtime: NodeRuntime, chain_now: int) -> None:
    clock = [1000.0]
    runtime.node.anchor_interval = 5.0
    anchorer = _anchorer(runtime, batch_size=100, max_delay=0)  # every pending event is overdue
    anchorer.clock = lambda: clock[0]
    _ingest(runtime, chain_now)
    lot = pending_count(runtime.db)
    assert (first := anchorer.form_batch()) is not None and first[2] == lot  # after a quiet spell: at once
    _ingest(runtime, chain_now + 1000)
    clock[0] += 4.9
    assert anchorer.form_batch() is None  # partial, and the previous batch is 4.9 s old
    clock[0] += 0.1
    assert (second := anchorer.form_batch()) is not None and second[2] == lot
    anchorer.batch_size = lot + 1
    _ingest(runtime, chain_now + 2000)
    _ingest(runtime, chain_now + 3000)
    assert (full := anchorer.form_batch()) is not None and full[2] == lot + 1  # a full batch goes at once
    assert anchorer.form_batch() is None  # what is left is a partial batch again
    clock[0] += 5.0
    assert (rest := anchorer.form_batch()) is not None and rest[2] == lot - 1


def test_a_batch_prepared_but_never_sent_is_sent_on_restart(runtime: NodeRuntime, chain_now: int) -> None:
    _ingest(runtime, chain_now)
    crashed = _anchorer(runtime)
    crashed.form_batch(force=True)  # ... and the process died here
    assert _anchored_logs(runtime) == []
    _anchorer(runtime).recover()
    _assert_all_anchored_once(runtime)


def test_a_root_another_organisation_anchored_first_is_still_anchored_as_ours(runtime: NodeRuntime, chain_now: int) -> None:
    _ingest(runtime, chain_now)
    anchorer = _anchorer(runtime)
    batch_id, root, count = anchorer.form_batch(force=True) or (0, b"", 0)
    # The adversary (the carrier organisation) sees the root and anchors it first, with its own count and uri.
    rival = anchorer.client.transact(anchorer.registry.functions.anchorBatch(root, 999, "evil://"), sender=CARRIER)
    anchorer._settle_or_send(batch_id, root, count)
    _settle_in_flight(anchorer)
    with runtime.db.session() as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None and batch.status in ("anchored", "confirmed") and batch.sends == 1
        ours = bytes(batch.tx_hash or b"")
    assert ours != bytes(rival["transactionHash"])
    (log,) = anchorer.registry.events.BatchAnchored().process_receipt(
        runtime.client.w3.eth.get_transaction_receipt(ours)  # type: ignore[arg-type]
    )
    assert (log.args.orgId, log.args.eventCount, log.args.submitter) == (1, count, MANUFACTURER.address)
    assert runtime.client.call(anchorer.registry.functions.anchorOfOrganisation(root, 1))[3] == count


def test_a_batch_sent_but_not_recorded_is_found_on_chain_not_sent_again(runtime: NodeRuntime, chain_now: int) -> None:
    _ingest(runtime, chain_now)
    crashed = _anchorer(runtime)
    batch_id, root, count = crashed.form_batch(force=True) or (0, b"", 0)
    crashed.client.transact(crashed.registry.functions.anchorBatch(root, count, ""), sender=MANUFACTURER)
    # ... the process died before recording the receipt
    restarted = _anchorer(runtime)
    restarted.client = ChainClient(runtime.client.rpc_url)
    restarted.recover()
    assert _anchored_logs(runtime) == [root]
    with runtime.db.session() as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None and batch.status in ("anchored", "confirmed") and batch.sends == 0
    _assert_all_anchored_once(runtime)


def test_a_batch_the_chain_lost_is_anchored_again(
    runtime: NodeRuntime, chain_now: int, devnet: AnvilControl, anvil: AnvilProcess
) -> None:
    _ingest(runtime, chain_now)
    snapshot = devnet.snapshot()
    anchorer = _anchorer(runtime)
    anchorer.drain()
    assert len(_anchored_logs(runtime)) == 1
    devnet.revert(snapshot)  # the chain restarts from an older state: the anchor is gone
    devnet.mine(2)
    assert _anchored_logs(runtime) == []
    anchorer.step()  # re-opens the batch and sends it again
    _settle_in_flight(anchorer)
    with runtime.db.session() as s:
        (batch,) = s.scalars(select(Batch)).all()
    assert batch.status in ("anchored", "confirmed") and batch.sends == 2
    _assert_all_anchored_once(runtime)


def test_confirmed_only_under_enough_blocks(runtime: NodeRuntime, chain_now: int, devnet: AnvilControl) -> None:
    _ingest(runtime, chain_now)
    anchorer = _anchorer(runtime)
    anchorer.confirmations = 3
    anchorer.drain()
    anchorer.check_anchored()
    with runtime.db.session() as s:
        assert s.scalar(select(Batch.status)) == "anchored"
    devnet.mine(3)
    anchorer.check_anchored()
    with runtime.db.session() as s:
        assert s.scalar(select(Batch.status)) == "confirmed"


def test_an_anchor_recorded_after_its_block_was_watched_is_still_confirmed(runtime: NodeRuntime, chain_now: int) -> None:
    # The anchor's receipt came late: the watch already saw its block as the head. On an idle
    # chain no new block comes, and the watch must not wait for one.
    _ingest(runtime, chain_now)
    anchorer = _anchorer(runtime)
    assert anchorer.form_batch(force=True) is not None
    anchorer._fill(force=True)
    for flight in list(anchorer._in_flight.values()):
        anchorer.client.w3.eth.wait_for_transaction_receipt(flight.sent.tx_hash, timeout=30, poll_latency=0.01)
    anchorer.check_anchored()  # sees the anchor's block as the head; nothing recorded yet
    _settle_in_flight(anchorer)
    with runtime.db.session() as s:
        assert s.scalar(select(Batch.status)) == "anchored"
    anchorer.check_anchored()  # the same head
    with runtime.db.session() as s:
        assert s.scalar(select(Batch.status)) == "confirmed"


def test_a_second_anchorer_on_the_same_database_is_refused(runtime: NodeRuntime) -> None:
    first, second = _anchorer(runtime), _anchorer(runtime)
    with first.exclusive():
        with pytest.raises(AnchorerAlreadyRunning):
            with second.exclusive():
                pass
    with second.exclusive():
        pass  # free again once the first let go


def test_leaves_are_event_hash_and_signer(runtime: NodeRuntime, chain_now: int) -> None:
    _ingest(runtime, chain_now)
    _anchorer(runtime).drain()
    registry = runtime.client.contract("ProvenanceRegistry", runtime.registry_address)
    with runtime.db.session() as s:
        event = s.scalars(select(Event)).first()
    assert event is not None
    assert registry.functions.leafHash(bytes(event.digest), event.signer).call() == leaf_hash(bytes(event.digest), event.signer)


# ---- pipelining: several anchors in flight, stuck ones replaced -----------------------------


def _pool_size(runtime: NodeRuntime) -> int:
    eth = runtime.client.w3.eth
    return int(eth.get_transaction_count(MANUFACTURER.address, "pending")) - int(eth.get_transaction_count(MANUFACTURER.address, "latest"))


def test_several_anchor_transactions_are_in_flight_before_a_block_is_mined(
    runtime: NodeRuntime, chain_now: int, devnet: AnvilControl
) -> None:
    _ingest(runtime, chain_now)  # 12 events
    anchorer = _anchorer(runtime, batch_size=3, max_delay=0)
    devnet.set_automine(False)
    try:
        with logs_limited(runtime.client.rpc_url, max_logs_range=5_000) as node:
            anchorer.client = ChainClient(node.url, expected_chain_id=runtime.client.chain_id)
            anchorer.step()
            assert anchorer.in_flight == 4 and _pool_size(runtime) == 4  # four nonces in the pool at once
            assert _anchored_logs(runtime) == []
            node.methods.clear()
            assert anchorer.collect() is False
            # an account's transactions are mined in nonce order: the first one not mined answers
            # for the three after it
            assert node.methods.count("eth_getTransactionReceipt") == 1
            devnet.mine()
            node.methods.clear()
            anchorer.step()
            assert node.methods.count("eth_getTransactionReceipt") == 4
    finally:
        devnet.set_automine(True)
    assert anchorer.in_flight == 0
    with runtime.db.session() as s:
        blocks = set(s.scalars(select(Batch.block_number)).all())
    assert len(blocks) == 1  # all four batches in one block
    _assert_all_anchored_once(runtime)


def test_a_stuck_anchor_the_node_forgot_is_sent_again_under_its_nonce(
    runtime: NodeRuntime, chain_now: int, devnet: AnvilControl
) -> None:
    _ingest(runtime, chain_now)
    anchorer = _anchorer(runtime, max_delay=0)
    devnet.set_automine(False)
    try:
        anchorer.step()
        assert anchorer.in_flight == 1
        devnet.drop_all_transactions()  # the node forgot it
        assert _pool_size(runtime) == 0
        anchorer.stuck_after = 0
        anchorer.step()  # stuck: sent again, same nonce
        assert _pool_size(runtime) == 1
        devnet.mine()
        anchorer.step()
    finally:
        devnet.set_automine(True)
    with runtime.db.session() as s:
        (batch,) = s.scalars(select(Batch)).all()
    assert batch.status in ("anchored", "confirmed") and batch.sends == 1
    _assert_all_anchored_once(runtime)


def test_a_stuck_anchor_still_in_the_pool_is_replaced_with_higher_fees(
    runtime: NodeRuntime, chain_now: int, devnet: AnvilControl
) -> None:
    _ingest(runtime, chain_now)
    anchorer = _anchorer(runtime, max_delay=0)
    devnet.set_automine(False)
    try:
        anchorer.step()
        (first,) = [f.sent for f in anchorer._in_flight.values()]
        anchorer.stuck_after = 0
        anchorer.step()
        (second,) = [f.sent for f in anchorer._in_flight.values()]
        assert second.nonce == first.nonce and second.tx_hash != first.tx_hash
        assert int(second.tx["maxPriorityFeePerGas"]) > int(first.tx["maxPriorityFeePerGas"])
        assert _pool_size(runtime) == 1  # replaced, not added
        anchorer.stuck_after = 3600
        devnet.mine()
        anchorer.step()
    finally:
        devnet.set_automine(True)
    with runtime.db.session() as s:
        (batch,) = s.scalars(select(Batch)).all()
    assert bytes(batch.tx_hash or b"") == bytes(second.tx_hash)
    _assert_all_anchored_once(runtime)
