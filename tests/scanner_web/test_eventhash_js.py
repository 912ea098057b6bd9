"""The page's JavaScript CBV 2.0 event hash (scanner_web/src/eventhash.js) under Node agrees with
the published test vectors and with node/protocol/event_hash.py, so that the browser's
"event hash" check means what the server's does."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

from node.member.ingest.roles import roles_for_bizstep
from node.paths import PROJECT_ROOT
from node.protocol import epcis
from node.protocol.attestation import AttestationDomain, sign_attestation
from node.protocol.event_hash import EventHashError, event_hash, hash_from_digest, prehash, primary_object_id, record_digest, unix_seconds
from tests.protocol import record_vectors
from tests.protocol.random_events import a_time, random_event, serial

VECTORS = PROJECT_ROOT / "tests" / "protocol" / "data" / "cbv_vectors"
CLI = Path(__file__).parent / "eventhash_cli.mjs"
GS1_EXAMPLES = PROJECT_ROOT / "tests" / "epcis_rest" / "data" / "gs1"
_OBJECT_FIELDS = (
    "epcList", "parentID", "childEPCs", "inputEPCList", "outputEPCList",
    "quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList",
)


def run_js(payload: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(["node", str(CLI)], input=json.dumps(payload), capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_published_cbv_vectors_are_reproduced_in_javascript() -> None:
    files = sorted(p for p in VECTORS.iterdir() if p.suffix in (".json", ".jsonld"))
    out = run_js({"documents": [json.loads(p.read_text()) for p in files]})
    for path, hashes in zip(files, out["documents"]):
        assert hashes == path.with_suffix(".hashes").read_text().split(), path.name


def test_javascript_and_python_agree_on_random_events() -> None:
    r = random.Random(20251123)
    events = [random_event(r) for _ in range(300)]
    out = run_js({"events": [[e, None] for e in events]})["events"]
    for event, js in zip(events, out):
        assert js.get("prehash") == prehash(event), json.dumps(event)
        assert js["subject"] == primary_object_id(event)
        assert js["time"] == unix_seconds(event["eventTime"])


def test_javascript_and_python_agree_on_waymark_events() -> None:
    from tests.api.world import journey
    from tests.node.story import lot_story

    events = [event for event, _signer in journey(lot_story(1_700_000_000))]
    out = run_js({"events": [[e, None] for e in events]})["events"]
    for event, js in zip(events, out):
        assert js.get("prehash") == prehash(event)
        assert js["subject"] == primary_object_id(event)


def test_javascript_vocabularies_match_the_python_ones() -> None:
    script = (
        "import * as h from './scanner_web/src/eventhash.js';"
        "console.log(JSON.stringify({b: h.BIZ_STEPS, d: h.DISPOSITIONS, t: h.BIZ_TRANSACTION_TYPES, s: h.SOURCE_DESTINATION_TYPES,"
        " m: h.MEASUREMENT_TYPES, e: h.SENSOR_EXCEPTIONS, c: h.SENSOR_COMPONENTS, p: h.STANDARD_PREFIXES}))"
    )
    done = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    js = json.loads(done.stdout)
    assert set(js["b"]) == set(epcis.BIZ_STEPS)
    assert set(js["d"]) == set(epcis.DISPOSITIONS)
    assert set(js["t"]) == set(epcis.BIZ_TRANSACTION_TYPES)
    assert set(js["s"]) == set(epcis.SOURCE_DESTINATION_TYPES)
    assert set(js["m"]) == set(epcis.MEASUREMENT_TYPES)
    assert set(js["e"]) == set(epcis.SENSOR_EXCEPTIONS)
    assert set(js["c"]) == set(epcis.SENSOR_COMPONENTS)
    assert js["p"] == epcis.STANDARD_PREFIXES


def _subject_or_none(event: dict[str, Any], context: Any = None) -> str | None:
    try:
        return primary_object_id(event, context)
    except EventHashError:
        return None


def test_record_vectors_are_reproduced_in_javascript() -> None:
    """Error declarations (record digest with the declaration) and sensor-only events (a place
    as subject): the page derives the same record id and subject as Python wrote in the vectors."""
    vectors = record_vectors.load()
    assert len(vectors) == len(record_vectors.CASES)
    out = run_js({"events": [[v["event"], v["context"]] for v in vectors]})["events"]
    for vector, js in zip(vectors, out):
        assert "error" not in js, (vector["name"], js["error"])
        assert js["hash"] == vector["eventHash"], vector["name"]
        assert js["recordHash"] == vector["recordHash"], vector["name"]
        assert js["subject"] == vector["subject"], vector["name"]
        assert js["time"] == vector["time"], vector["name"]


def test_javascript_and_python_agree_on_random_corrections_and_objectless_events() -> None:
    r = random.Random(20261205)
    events = []
    for _ in range(200):
        event = random_event(r)
        if r.random() < 0.5:  # an error declaration, its extension fields taken from another random event
            declaration: dict[str, Any] = {"declarationTime": a_time(r)}
            if r.random() < 0.7:
                declaration["reason"] = r.choice(["incorrect_data", "did_not_occur", "https://ref.gs1.org/cbv/ER-incorrect_data", "ex:" + serial(r, 5)])
            if r.random() < 0.6:
                declaration["correctiveEventIDs"] = [event_hash(random_event(r)) for _ in range(r.randint(0, 3))]
            if r.random() < 0.5:
                declaration.update((k, v) for k, v in random_event(r).items() if k.startswith("ex:"))
            event["errorDeclaration"] = declaration
        if r.random() < 0.5:  # no object: the readPoint, else the bizLocation, else nothing is the subject
            for key in _OBJECT_FIELDS:
                event.pop(key, None)
        events.append(event)
    out = run_js({"events": [[e, {"ex": "https://ns.example.com/ex/"}] for e in events]})["events"]
    context = {"ex": "https://ns.example.com/ex/"}
    for event, js in zip(events, out):
        assert js["recordHash"] == hash_from_digest(record_digest(event, context)), json.dumps(event)
        assert js["subject"] == _subject_or_none(event, context), json.dumps(event)
    assert sum(1 for e in events if "errorDeclaration" in e) > 50
    assert sum(1 for e, js in zip(events, out) if not any(e.get(k) for k in _OBJECT_FIELDS) and js["subject"]) > 50


def _document_events(document: dict[str, Any]) -> list[dict[str, Any]]:
    body = document.get("epcisBody", {})
    if "queryResults" in body:
        body = body["queryResults"]["resultsBody"]
    return body.get("eventList") or ([body["event"]] if "event" in body else [])


def test_javascript_and_python_agree_on_the_gs1_example_documents() -> None:
    """GS1's own examples, with their error declarations and sensor-only events."""
    pairs = []
    for path in sorted(GS1_EXAMPLES.rglob("*.jsonld")):
        document = json.loads(path.read_text())
        pairs += [(path.name, event, document.get("@context")) for event in _document_events(document)]
    out = run_js({"events": [[event, context] for _name, event, context in pairs]})["events"]
    for (name, event, context), js in zip(pairs, out):
        assert js["recordHash"] == hash_from_digest(record_digest(event, context)), name
        assert js["subject"] == _subject_or_none(event, context), name
    assert sum(1 for _n, e, _c in pairs if "errorDeclaration" in e) >= 2
    assert sum(1 for _n, e, _c in pairs if not any(e.get(k) for k in _OBJECT_FIELDS)) >= 2


def test_the_page_recovers_the_signer_of_python_attestations_of_corrections_and_sensor_events() -> None:
    """verify.js's signature check over what Python signs (sign_attestation: record digest, subject,
    time); a correction whose declaration was altered no longer recovers to the signer."""
    key = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
    domain = AttestationDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    vectors = [v for v in record_vectors.load() if v["subject"] is not None]
    signed = [sign_attestation(key, domain, v["event"], v["context"]) for v in vectors]
    tampered = []
    for vector, attestation in zip(vectors, signed):
        if "errorDeclaration" in vector["event"] and vector["event"]["errorDeclaration"] is not None:
            event = json.loads(json.dumps(vector["event"]))
            event["errorDeclaration"]["declarationTime"] = "2030-01-01T00:00:00.000Z"
            tampered.append((event, vector["context"], attestation))
    assert len(tampered) >= 8
    request = [
        {"event": event, "context": context, "chainId": domain.chain_id, "contract": domain.verifying_contract, "signature": a.signature_hex}
        for event, context, a in [(v["event"], v["context"], a) for v, a in zip(vectors, signed)] + tampered
    ]
    out = run_js({"attestations": request})["attestations"]
    for vector, attestation, js in zip(vectors, signed, out):
        assert js == {"signer": attestation.attester}, vector["name"]
    for (_event, _context, attestation), js in zip(tampered, out[len(vectors):]):
        assert "signer" in js and js["signer"] != attestation.attester


def test_javascript_allows_the_roles_python_does_for_every_bizstep() -> None:
    """A step outside the role table may be attested by any attesting role, in the page as in the node."""
    steps: list[tuple[str | None, Any]] = [
        (None, None), ("", None), ("shipping", None), ("sensor_reporting", None), ("cbv:BizStep-inspecting", None),
        ("https://ref.gs1.org/cbv/BizStep-packing", None), ("urn:epcglobal:cbv:bizstep:receiving", None),
        ("https://ref.gs1.org/cbv/BizStep-not_in_cbv", None), ("https://ns.example.com/steps/tasting", None),
        ("ex:tasting", {"ex": "https://ns.example.com/steps/"}), ("wmc:cleared", {"wmc": "https://ns.waymark.example/customs/"}),
        ("https://ns.waymark.example/customs/unknown", None), ("voiding", None),
    ]
    out = run_js({"roles": [[step, context] for step, context in steps]})["roles"]
    for (step, context), js in zip(steps, out):
        assert tuple(js) == roles_for_bizstep(step, context), step
