"""Every member node tells the buyer the same: the passport of a vase, asked of each member's own
scan API (manufacturer, carrier, customs, marketplace operator: separate processes, separate
databases), is the same passport apart from what belongs to the scan itself, once every node holds
every batch. Each node anchored only what its own organisation's oracles (and its hosted
organisations') posted to it, so what a node shows of the others came to it by replication."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from waymark.devnet.consortium import DEMO_MEMBERS, demo_member
from tests.e2e.world import replicated
from waymark.demo.story import Story

# What belongs to one answer of one node, not to the unit: the link on this resolver, when the
# answer was made, the scans this node has logged, whether this device claimed the unit.
PER_SCAN = ("link", "generatedAt", "scans")


def comparable(passport: dict[str, Any]) -> dict[str, Any]:
    """The passport without what belongs to one answer of one node. Besides PER_SCAN: an event's
    confirmations (counted from the chain's head when the answer was made) and the prose of each
    check (the signature check says when this node accepted the event); the checks' names and
    outcomes, the signer, its organisation and role, the Merkle proof and the anchor stay. A
    document's availability is this node's own store (documents are not replicated yet): its
    type, digest and event stay."""
    kept = {key: value for key, value in passport.items() if key not in PER_SCAN}
    kept["ownership"] = {key: value for key, value in passport["ownership"].items() if key != "byThisDevice"}
    kept["documents"] = [{key: value for key, value in d.items() if key != "status"} for d in passport["documents"]]
    kept["timeline"] = []
    for event in passport["timeline"]:
        verification = dict(event["verification"])
        verification["checks"] = [{"name": c["name"], "status": c["status"]} for c in verification["checks"]]
        if verification.get("anchor"):
            verification["anchor"] = {k: v for k, v in verification["anchor"].items() if k != "confirmations"}
        kept["timeline"].append({**event, "verification": verification})
    return kept


def passport_from(api_url: str, link: str) -> dict[str, Any]:
    answer = httpx.get(f"{api_url}/api/v1/passport", params={"uri": link}, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def passports_once_agreed(story: Story, link: str, bound: float = 60.0) -> dict[str, dict[str, Any]]:
    """Each member node's passport of `link`, once they agree apart from the per-scan fields (each
    node learns from its peers' feeds which of them hold which events, a moment after it imports
    a batch itself), or as they are after `bound` seconds."""
    deadline = time.monotonic() + bound
    while True:
        passports = {member: passport_from(node.api_url, link) for member, node in story.network.nodes.items()}
        if len({json.dumps(comparable(p), sort_keys=True) for p in passports.values()}) == 1 or time.monotonic() > deadline:
            return passports
        time.sleep(0.5)


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (paths), for a failure message that says what."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b)) for d in differences(a.get(key), b.get(key), f"{path}.{key}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"[:300]]


def anchoring_organisations(story: Story) -> set[str]:
    """The names of the organisations that anchored the story's batches (from the chain)."""
    registry = story.client.contract("ProvenanceRegistry", story.network.deployment.address("ProvenanceRegistry"))
    consortium = story.client.contract("ConsortiumRegistry", story.network.deployment.address("ConsortiumRegistry"))
    orgs = {log["args"]["orgId"] for log in registry.events.BatchAnchored().get_logs(from_block=0)}
    return {story.client.call(consortium.functions.organisation(org))[1] for org in orgs}


def test_a_vase_has_the_same_passport_from_every_member_nodes_scan_api(delivered: Story) -> None:
    story = delivered
    batches = replicated(story)
    assert len(story.network.nodes) >= 4 and len(batches) >= 4
    for link in (story.record.demo_unit, story.shipment.canonical(story.shipment.container)):
        passports = passports_once_agreed(story, link)
        resolver = passports[story.network.resolver.member]
        assert resolver["verdict"] == "genuine", resolver["reasons"]
        assert len(resolver["timeline"]) >= 5
        for member, passport in passports.items():
            assert comparable(passport) == comparable(resolver), (
                f"the {member} node's passport of {link} differs from the {story.network.resolver.member}'s: "
                + "; ".join(differences(comparable(passport), comparable(resolver))[:10]))
        # Each answer names the resolver it came from.
        assert {p["link"].split("/01/")[0].split("/00/")[0] for p in passports.values()} == {
            node.api_url for node in story.network.nodes.values()}
    # The vase's history holds events posted to every node that takes events (the manufacturer's
    # with the inspector's, the carriers', the customs parties'), and each of those nodes anchored
    # them itself: what the others show of them came by replication, no node holds the only copy.
    timeline = passport_from(story.network.api_url, story.record.demo_unit)["timeline"]
    members = {m.name: m.key for m in DEMO_MEMBERS}
    posted_to = {story.network.node_of(members[event["verification"]["signerOrg"]["name"]]).member for event in timeline}
    assert posted_to == {"manufacturer", "carrier", "customs"}
    assert anchoring_organisations(story) == {demo_member(key).name for key in posted_to}
