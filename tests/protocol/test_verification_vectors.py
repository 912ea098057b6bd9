"""The verification core (node/protocol/verification.py) against its vectors, and the vectors against the core.

Each case's expected outcome is written out here by hand as well, so a change of the rule cannot
pass by regenerating the file: it fails here until this table says the same, and then fails the
browser's twin (tests/scanner_web/test_verification_vectors.py) until verify.js does."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from node.protocol.verification import Anchor, Head, Inclusion, Leaf, Mark, Status, verify_batch, verify_event
from tests.protocol.verification_vectors import DOMAIN, PATH, TableRegistry, anchors_lookup, build, dump
from node.member.ingest.roles import RoleState

VECTORS: dict[str, Any] = orjson.loads(PATH.read_bytes())

# name -> (status, failed check, marks, overdue, anchoring organisation)
EXPECTED_EVENTS: dict[str, tuple[str, str | None, set[str], bool, int | None]] = {
    "verified in a batch of two": ("verified", None, set(), False, 1),
    "verified alone in its batch: empty proof, leaf == root": ("verified", None, set(), False, 1),
    "event_hash: the body was edited": ("failed", "event_hash", set(), False, None),
    "signature: signed by another account than the attester named": ("failed", "signature", set(), False, None),
    "signature: malformed (v = 29)": ("failed", "signature", set(), False, None),
    "role: a carrier attests commissioning": ("failed", "role", set(), False, None),
    "merkle_proof: the proof does not lead to the root": ("failed", "merkle_proof", set(), False, None),
    "anchor: only a rival organisation anchored the root": ("failed", "anchor", set(), False, None),
    "anchor: the attester's own anchor counts, not a rival's earlier one": ("verified", None, set(), False, 1),
    "anchor: by the host while it hosted the attester's organisation": ("verified", None, set(), False, 1),
    "anchor: by the host before the hosting began": ("failed", "anchor", set(), False, None),
    "anchor: by the former host after the hosting ended": ("failed", "anchor", set(), False, None),
    "confirmations: fewer blocks than required on top of the anchor": ("pending", None, set(), False, 1),
    "pending: not anchored, inside the reporting delay": ("pending", None, set(), False, None),
    "never anchored: not anchored, past the reporting delay": ("pending", None, set(), True, None),
    "late: anchored after the reporting delay": ("verified", None, {"late"}, False, 1),
    "not late: anchored exactly at the reporting delay": ("verified", None, set(), False, 1),
    "signer_revoked: the role was revoked before the anchor": ("verified", None, {"signer_revoked"}, False, 3),
    "late and signer_revoked": ("verified", None, {"late", "signer_revoked"}, False, 3),
    "role: signed after the revocation": ("failed", "role", set(), False, None),
    "not late: the delay in force at the anchor time counts (raised since the event)": ("verified", None, set(), False, 8),
    "verified, carrier": ("verified", None, set(), False, 3),
}
# name -> (ok, failed check, index of the failed leaf or None, number of marked events)
EXPECTED_BATCHES: dict[str, tuple[bool, str | None, int | None, int]] = {
    "a whole batch": (True, None, None, 0),
    "a batch of one": (True, None, None, 0),
    "a batch with a hosted organisation's event": (True, None, None, 0),
    "a leaf dropped: fewer leaves than anchored": (False, "event_count", None, 0),
    "the anchored count differs": (False, "event_count", None, 0),
    "a leaf's body altered": (False, "event_hash", 0, 0),
    "leaves of another batch: the root does not rebuild": (False, "root", None, 0),
    "anchored by an organisation that neither is nor hosts the attester's": (False, "anchor", 0, 0),
    "a late event is marked, not refused": (True, None, None, 1),
}


def _b(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def _registry() -> TableRegistry:
    tables = VECTORS["registry"]
    return TableRegistry(
        roles=[(r["account"], r["role"], r["from"], r["until"]) for r in tables["roles"]],
        orgs=[(r["account"], r["org"], r["from"], r["until"]) for r in tables["orgs"]],
        hosts=[(r["org"], r["host"], r["from"], r["until"]) for r in tables["hosts"]],
        delays=[(r["from"], r["delay"]) for r in tables["delays"]],
    )


def _anchor(a: dict[str, Any]) -> Anchor:
    return Anchor(_b(a["root"]), a["orgId"], a["blockNumber"], a["timestamp"], a["eventCount"])


def test_the_vectors_file_is_what_the_core_answers_now() -> None:
    assert dump(build()) == PATH.read_bytes(), "run: .venv/bin/python -m tests.protocol.verification_vectors"


def test_the_vectors_cover_every_check_failing_and_every_mark() -> None:
    failed = {case["expect"]["failedCheck"] for case in VECTORS["events"]}
    assert {"event_hash", "signature", "role", "merkle_proof", "anchor"} <= failed
    marks = {m for case in VECTORS["events"] for m in case["expect"]["marks"]}
    assert marks == {m.value for m in Mark}
    assert any(case["expect"]["overdue"] for case in VECTORS["events"])
    assert {case["name"] for case in VECTORS["events"]} == set(EXPECTED_EVENTS)
    assert {case["name"] for case in VECTORS["batches"]} == set(EXPECTED_BATCHES)


@pytest.mark.parametrize("case", VECTORS["events"], ids=lambda c: c["name"])
def test_an_event_vector(case: dict[str, Any]) -> None:
    inclusion = case["inclusion"]
    result = verify_event(
        DOMAIN, case["event"], _b(case["eventId"]), case["attester"], _b(case["signature"]), _registry(),
        Inclusion(_b(inclusion["root"]), tuple(_b(p) for p in inclusion["proof"])) if inclusion else None,
        anchors_lookup([_anchor(a) for a in case["anchors"]]), Head(case["head"]["blockNumber"], case["head"]["timestamp"]),
        confirmations=case["confirmations"],
    )
    status, check, marks, overdue, anchor_org = EXPECTED_EVENTS[case["name"]]
    found = (result.status.value, result.failed_check, {m.value for m in result.marks}, result.overdue,
             result.anchor.org_id if result.anchor else None)
    assert found == (status, check, marks, overdue, anchor_org)
    assert [[o.check.value, o.status] for o in result.outcomes] == case["expect"]["checks"]
    assert result.genuine == (status == "verified" and not marks)
    assert (result.status is Status.FAILED) == (result.failure is not None)


@pytest.mark.parametrize("case", VECTORS["batches"], ids=lambda c: c["name"])
def test_a_batch_vector(case: dict[str, Any]) -> None:
    leaves = [Leaf(l["event"], _b(l["eventId"]), l["attester"], _b(l["signature"])) for l in case["leaves"]]
    result = verify_batch(DOMAIN, leaves, _anchor(case["anchor"]), _registry(), now=case["now"])
    ok, check, failed_index, marked = EXPECTED_BATCHES[case["name"]]
    assert (result.ok, result.failed_check, len(result.marks)) == (ok, check, marked)
    assert result.failed_event == (leaves[failed_index].event_id if failed_index is not None else None)
    assert bool(result.detail) == (not ok)


def test_the_replayed_registry_history_answers_hosting_and_the_reporting_delay_at_a_time() -> None:
    state = RoleState()
    state.apply("MaxReportingDelayChanged", {"oldDelay": 0, "newDelay": 86_400}, 100)
    state.apply("HostingChanged", {"hostedOrgId": 2, "hostOrgId": 1}, 200)
    state.apply("HostingChanged", {"hostedOrgId": 2, "hostOrgId": 0}, 300)
    state.apply("MaxReportingDelayChanged", {"oldDelay": 86_400, "newDelay": 3_600}, 400)
    assert [state.host_of_at(2, t) for t in (199, 200, 299, 300)] == [0, 1, 1, 0]
    # Before the deployment's setting, that setting applies (ConsortiumRegistry.maxReportingDelayAt).
    assert [state.max_reporting_delay_at(t) for t in (99, 100, 399, 400)] == [86_400, 86_400, 86_400, 3_600]
    assert RoleState().max_reporting_delay_at(100) is None  # a registry without the parameter
    assert state.host_of_at(5, 250) == 0
