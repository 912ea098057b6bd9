"""Which anchor counts for an event (node.protocol.verification): the one by the attester's organisation at
the event time, or by the organisation hosting it at the anchor time. A rival that anchors a root
first takes nothing away, and its anchor counts for nobody."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import orjson
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from sqlalchemy import event, select

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Batch
from tests.chain.besu_limits import logs_limited
from waymark.devnet.anvil import AnvilProcess
from waymark.devnet.consortium import devnet_account
from api.readmodel.chain_view import ChainView
from api.readmodel.passport import PassportBuilder
from node.paths import PROJECT_ROOT
from node.member.proofs import ChainRegistry
from node.member.runtime import NodeRuntime, build_anchorer, build_capture, build_indexer
from node.protocol.verification import counted_anchor
from tests.api.world import register_product
from tests.node.story import CARRIER, CUSTOMS, INSPECTOR, MANUFACTURER, Story, capture_document, lot_story, story_events

RIVAL = devnet_account(5)  # the operator: a member whose node anchors (ANCHORER), org 5, with no event in the story
VERIFY_CLI = PROJECT_ROOT / "tests" / "scanner_web" / "verify_cli.mjs"


def test_the_attester_organisations_or_its_hosts_anchor_counts_and_a_rivals_counts_for_nobody(
    chain: ChainClient, deployment: Deployment
) -> None:
    writer = chain.contract("ProvenanceRegistry", deployment.address("ProvenanceRegistry"))
    lookups = ChainRegistry(chain.w3, deployment.address("ProvenanceRegistry"))
    root = keccak(text="the manufacturer's batch")
    # The rival anchors the manufacturer's root first, claiming 999 events.
    chain.transact(writer.functions.anchorBatch(root, 999, "evil://"), sender=RIVAL)
    ours = chain.transact(writer.functions.anchorBatch(root, 5, "waymark://"), sender=MANUFACTURER)
    now = int(chain.w3.eth.get_block("latest")["timestamp"])

    def counted(account: LocalAccount, on: bytes = root) -> tuple[int, int, int] | None:
        anchor = counted_anchor(lookups, lookups.anchor_of, on, lookups.organisation_at(account.address, now), now, now)
        return (anchor.org_id, anchor.block_number, anchor.event_count) if anchor else None

    assert counted(MANUFACTURER) == (1, ours["blockNumber"], 5)
    # The inspector (org 2) is hosted by the manufacturer's node (the demo consortium): the host's anchor counts.
    assert lookups.host_of_at(2, now) == 1 and counted(INSPECTOR) == (1, ours["blockNumber"], 5)
    # The carrier (org 3) runs its own node: neither the manufacturer's anchor nor the rival's is its own.
    assert counted(CARRIER) is None
    assert counted(MANUFACTURER, keccak(text="never anchored")) is None


def _anchor_as(runtime: NodeRuntime, events: list[tuple[dict[str, Any], LocalAccount]], anchorer: LocalAccount) -> None:
    build_capture(runtime).capture(orjson.dumps(capture_document(events, runtime.domain)))
    build_anchorer(runtime, anchorer).drain()


def _front_run(runtime: NodeRuntime, chain_now: int) -> tuple[Story, bytes, int, int]:
    """A lot whose events each organisation's node anchors (the inspector's by its host, the
    manufacturer); the manufacturer's batch root a rival member (the operator, org 5, an anchorer
    with no event in the batch) anchors first, claiming 999 events, and the node anchors it after.
    Returns the story, the manufacturer's root, its anchor's block and the rival's."""
    register_product(runtime.client, runtime.deployment)  # so that a passport can say genuine
    story = lot_story(chain_now, size=1)
    events = story_events(story)
    by = {MANUFACTURER.address: MANUFACTURER, INSPECTOR.address: MANUFACTURER, CARRIER.address: CARRIER,
          CUSTOMS.address: CUSTOMS}
    made = [(e, s) for e, s in events if s is MANUFACTURER]
    build_capture(runtime).capture(orjson.dumps(capture_document(made, runtime.domain)))
    anchorer = build_anchorer(runtime, MANUFACTURER)
    formed = anchorer.form_batch(force=True)
    assert formed is not None
    _batch_id, root, _count = formed
    writer = runtime.client.contract("ProvenanceRegistry", runtime.deployment.address("ProvenanceRegistry"))
    rival = runtime.client.transact(writer.functions.anchorBatch(root, 999, "evil://"), sender=RIVAL)
    anchorer.drain()  # settles the prepared batch: the rival's anchor is not ours, so it sends its own
    with runtime.db.connect() as conn:
        ours = conn.execute(select(Batch.block_number).where(Batch.root == root)).scalar_one()
    assert ours is not None and ours > int(rival["blockNumber"])
    for signer in (INSPECTOR, CARRIER, CUSTOMS):
        _anchor_as(runtime, [(e, s) for e, s in events if s is signer], by[signer.address])
    return story, root, int(ours), int(rival["blockNumber"])


def test_a_passport_names_the_anchor_the_rule_counts_not_a_front_runners(runtime: NodeRuntime, chain_now: int) -> None:
    story, _root, ours, rivals = _front_run(runtime, chain_now)
    builder = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r", browser_rpc_url="http://b")
    core = builder.build(story.units[0])
    assert core is not None
    assert core.verdict == "genuine", core.reasons
    timeline = core.body["timeline"]
    shown = {item["verification"]["signerOrg"]["id"]: (item["verification"]["anchor"]["orgId"], item["verification"]["anchor"]["blockNumber"])
             for item in timeline}
    assert shown[1] == (1, ours) and rivals not in {block for _org, block in shown.values()}
    assert shown[2][0] == 1  # the inspector's events: anchored by its host
    assert (shown[3][0], shown[4][0]) == (3, 4)


def test_the_pages_verifier_counts_the_same_anchor_as_the_passport(runtime: NodeRuntime, chain_now: int) -> None:
    story, _root, ours, _rivals = _front_run(runtime, chain_now)
    builder = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r", browser_rpc_url=runtime.client.rpc_url)
    core = builder.build(story.units[0])
    assert core is not None
    done = subprocess.run(
        ["node", str(VERIFY_CLI)], input=orjson.dumps({"passport": core.body, "config": builder.chain_info}).decode(),
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "passed", out
    in_browser = [(r["anchor"]["orgId"], r["anchor"]["blockNumber"]) for r in out["results"]]
    on_passport = [(item["verification"]["anchor"]["orgId"], item["verification"]["anchor"]["blockNumber"]) for item in core.body["timeline"]]
    assert in_browser == on_passport
    assert {a for r, a in zip(out["results"], in_browser) if r["signerOrg"] == 1} == {(1, ours)}


def test_a_passport_reads_anchors_the_indexer_stored_and_asks_the_chain_only_while_the_index_lags_the_head(
    runtime: NodeRuntime, anvil: AnvilProcess, chain_now: int
) -> None:
    events = story_events(lot_story(chain_now, size=1))
    _anchor_as(runtime, [(e, s) for e, s in events if s is MANUFACTURER], MANUFACTURER)
    build_indexer(runtime).step()
    _anchor_as(runtime, [(e, s) for e, s in events if s is CARRIER], CARRIER)  # anchored after the indexer's step
    with runtime.db.session() as s:
        indexed_root, fresh_root = s.scalars(select(Batch.root).order_by(Batch.id)).all()
    from_chain = ChainView(runtime.client, runtime.deployment)  # no database: every anchor asked of the chain
    with logs_limited(anvil.rpc_url, max_logs_range=5_000) as node:
        view = ChainView(ChainClient(node.url, expected_chain_id=anvil.chain_id), runtime.deployment, db=runtime.db)
        node.methods.clear()
        indexed = view.anchor_of(indexed_root, 1)
        assert "eth_call" not in node.methods
        assert indexed is not None and indexed == from_chain.anchor_of(indexed_root, 1)
        fresh = view.anchor_of(fresh_root, 3)
        assert node.methods.count("eth_call") == 1
        assert fresh is not None and fresh == from_chain.anchor_of(fresh_root, 3)
        provenance = runtime.client.contract("ProvenanceRegistry", runtime.deployment.address("ProvenanceRegistry"))
        org, block_number, timestamp, count = runtime.client.call(provenance.functions.anchorOfOrganisation(fresh_root, 3))
        assert (fresh.org_id, fresh.block_number, fresh.timestamp, fresh.event_count) == (org, block_number, timestamp, count)
        # An organisation with no anchor of an indexed root, while the index lags the head: the chain says none.
        assert view.anchor_of(indexed_root, 3) is None and from_chain.anchor_of(indexed_root, 3) is None
        assert node.methods.count("eth_call") == 2
        # Once the indexer has stored every block up to the head, the index answers for the chain.
        build_indexer(runtime).step()
        caught_up = ChainView(ChainClient(node.url, expected_chain_id=anvil.chain_id), runtime.deployment, db=runtime.db)
        node.methods.clear()
        assert caught_up.anchor_of(fresh_root, 3) == fresh
        assert caught_up.anchor_of(indexed_root, 3) is None and caught_up.anchor_of(fresh_root, 1) is None
        assert "eth_call" not in node.methods


def test_a_passport_reads_the_anchors_of_all_its_batches_in_one_statement_and_shows_what_the_chain_says(
    runtime: NodeRuntime, chain_now: int
) -> None:
    story, _root, _ours, _rivals = _front_run(runtime, chain_now)  # four batches, one of them front-run
    build_indexer(runtime).step()  # up to the head: the index answers for the chain
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "chain_logs" in statement and "BatchAnchored" in str(parameters):
            reads.append(statement)

    indexed = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment, db=runtime.db), resolver_url="http://r", browser_rpc_url="http://b")
    event.listen(runtime.db.engine, "before_cursor_execute", count)
    try:
        core = indexed.build(story.units[0])
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", count)
    from_chain = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r", browser_rpc_url="http://b")
    expected = from_chain.build(story.units[0])
    assert core is not None and expected is not None
    assert len(reads) == 1
    assert core.verdict == expected.verdict == "genuine", core.reasons
    assert [item["verification"]["anchor"] for item in core.body["timeline"]] == [item["verification"]["anchor"] for item in expected.body["timeline"]]
    assert len({item["verification"]["merkle"]["root"] for item in core.body["timeline"]}) == 4
