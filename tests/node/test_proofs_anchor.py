"""Which anchor counts for an event when several organisations anchored the same root: the
attester's organisation's, so a rival that anchors a root first takes nothing away."""

from __future__ import annotations

import json
import subprocess

import orjson
from eth_utils.crypto import keccak
from sqlalchemy import select
from web3 import Web3

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Batch
from node.devnet.consortium import devnet_account
from node.passport import ChainView, PassportBuilder
from node.paths import PROJECT_ROOT
from node.proofs import CONSORTIUM_ABI, PROVENANCE_ABI, counted_anchor
from node.service import NodeRuntime, build_anchorer, build_capture
from tests.api.world import register_product
from tests.node.story import CARRIER, INSPECTOR, MANUFACTURER, Story, capture_document, lot_story, story_events

RIVAL = devnet_account(5)  # the operator: a member whose node anchors (ANCHORER), org 5, with no event in the story
VERIFY_CLI = PROJECT_ROOT / "tests" / "scanner_web" / "verify_cli.mjs"


def test_the_attester_organisations_anchor_counts_not_a_rivals_earlier_one(chain: ChainClient, deployment: Deployment) -> None:
    address = deployment.address("ProvenanceRegistry")
    writer = chain.contract("ProvenanceRegistry", address)
    provenance = chain.w3.eth.contract(address=Web3.to_checksum_address(address), abi=PROVENANCE_ABI)
    consortium = chain.w3.eth.contract(address=provenance.functions.registry().call(), abi=CONSORTIUM_ABI)
    root = keccak(text="the manufacturer's batch")
    # The rival (the carrier organisation, org 3) anchors the manufacturer's root first, claiming 999 events.
    chain.transact(writer.functions.anchorBatch(root, 999, "evil://"), sender=CARRIER)
    ours = chain.transact(writer.functions.anchorBatch(root, 5, "waymark://"), sender=MANUFACTURER)
    now = int(chain.w3.eth.get_block("latest")["timestamp"])

    org_id, block_number, _ts, count = counted_anchor(provenance, consortium, root, MANUFACTURER.address, now)
    assert (org_id, block_number, count) == (1, ours["blockNumber"], 5)
    # An attester whose organisation did not anchor the root (a batch a shared node anchored) gets the first anchor.
    assert counted_anchor(provenance, consortium, root, INSPECTOR.address, now)[0::3] == (3, 999)
    assert counted_anchor(provenance, consortium, keccak(text="never anchored"), MANUFACTURER.address, now)[0] == 0


def _front_run(runtime: NodeRuntime, chain_now: int) -> tuple[Story, bytes, int, int]:
    """A lot captured by the manufacturer's node, whose batch root a rival member (the operator,
    org 5, an anchorer with no event in the batch) anchors first, claiming 999 events; the node
    anchors it after. Returns the story, the root, our anchor's block and the rival's."""
    register_product(runtime.client, runtime.deployment)  # so that a passport can say genuine
    story = lot_story(chain_now, size=1)
    build_capture(runtime).capture(orjson.dumps(capture_document(story_events(story), runtime.domain)))
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
    return story, root, int(ours), int(rival["blockNumber"])


def test_a_passport_names_the_anchor_the_proofs_count_not_a_front_runners(runtime: NodeRuntime, chain_now: int) -> None:
    story, root, ours, rivals = _front_run(runtime, chain_now)
    builder = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r", browser_rpc_url="http://b")
    core = builder.build(story.units[0])
    assert core is not None
    assert core.verdict == "genuine", core.reasons
    timeline = core.body["timeline"]
    provenance = runtime.client.w3.eth.contract(address=Web3.to_checksum_address(runtime.deployment.address("ProvenanceRegistry")), abi=PROVENANCE_ABI)
    consortium = runtime.client.w3.eth.contract(address=provenance.functions.registry().call(), abi=CONSORTIUM_ABI)
    shown = [(item["verification"]["anchor"]["orgId"], item["verification"]["anchor"]["blockNumber"]) for item in timeline]
    counted = [counted_anchor(provenance, consortium, root, item["verification"]["signer"], item["eventTimeUnix"])[:2] for item in timeline]
    assert shown == counted
    manufacturers = [a for item, a in zip(timeline, shown) if item["verification"]["signerOrg"]["id"] == 1]
    assert manufacturers and set(manufacturers) == {(1, ours)}
    # The inspector and customs organisations anchored nothing: the root's first anchor counts for them (the rule's fallback).
    assert {a for item, a in zip(timeline, shown) if item["verification"]["signerOrg"]["id"] in (2, 4)} == {(5, rivals)}


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
