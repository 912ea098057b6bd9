"""GS1's published EPCIS 2.0 example documents through capture jobs and back out of the query
interface: every one accepted, each event's CBV 2.0 hash the same going in and coming out, and
every answer valid against GS1's official EPCIS 2.0 JSON schema.

The examples (tests/epcis_rest/data/gs1, see its README) date their events 2005-2020, before
the test consortium's roles were granted, so each event's `eventTime` is moved to the chain's
present before it is signed (nothing else is changed); the hashes compared are those of the
events as captured.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from node.protocol.roles import roles_for_bizstep
from node.protocol.epcis import document_events
from node.protocol.epcis_validation import schema_problems
from node.protocol.event_hash import event_hash
from node.member.runtime import NodeRuntime
from tests.node.story import CARRIER, CUSTOMS, INSPECTOR, MANUFACTURER, attested, iso

DATA = Path(__file__).parent / "data" / "gs1"
EXAMPLES = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*.jsonld"))
SIGNER_OF_ROLE = {"MANUFACTURER": MANUFACTURER, "INSPECTOR": INSPECTOR, "CARRIER": CARRIER, "CUSTOMS": CUSTOMS, "ORACLE": CARRIER}


def signer_for(event: dict[str, Any]) -> LocalAccount:
    return SIGNER_OF_ROLE[roles_for_bizstep(event.get("bizStep"), event.get("@context"))[0]]


def signed_document(document: dict[str, Any], runtime: NodeRuntime, times: dict[str, str], start: int) -> tuple[dict[str, Any], list[str]]:
    """The document with its events re-dated (the same published time always to the same new
    time, `start` + n seconds, so that an error declaration still names its original) and
    attested; the events' hashes."""
    signed = copy.deepcopy(document)
    events = document_events(signed)
    body = signed["epcisBody"]
    holder = body["queryResults"]["resultsBody"] if signed["type"] == "EPCISQueryDocument" else body
    hashes, out = [], []
    for event in events:
        event["eventTime"] = times.setdefault(event["eventTime"], iso(start + len(times)))
        hashes.append(event_hash(event))
        out.append(attested(event, signer_for(event), runtime.domain))
    holder["eventList"] = out
    return signed, hashes


def finished_job(client: TestClient, location: str) -> dict[str, Any]:
    for _ in range(500):  # a bounded poll; capture of one small document takes milliseconds
        job: dict[str, Any] = client.get(location).json()
        if not job["running"]:
            return job
        time.sleep(0.01)
    raise AssertionError(f"capture job {location} still running")


def assert_schema_valid(document: dict[str, Any]) -> None:
    problems = schema_problems(document)
    assert not problems, [str(p) for p in problems[:3]]


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_every_gs1_example_goes_through_capture_and_comes_back_unchanged(client: TestClient, runtime: NodeRuntime, chain_now: int) -> None:
    start = chain_now + 10
    times: dict[str, str] = {}
    expected: dict[str, str] = {}
    for name in EXAMPLES:
        published = orjson.loads((DATA / name).read_bytes())
        assert_schema_valid(published)
        document, hashes = signed_document(published, runtime, times, start)
        answer = client.post("/epcis/capture", content=orjson.dumps(document), headers={"Content-Type": "application/ld+json"})
        assert answer.status_code == 202, (name, answer.text)
        assert answer.headers["GS1-EPCIS-Version"] == "2.0.0"
        job = finished_job(client, answer.headers["Location"])
        assert job["success"] and job["errors"] == [], (name, job["errors"])
        assert len(job["eventIDs"]) == len(hashes)
        expected.update({h: name for h in hashes})
    seen: dict[str, int] = {}
    for event_id, name in expected.items():
        answer = client.get(f"/epcis/events/{quote(event_id, safe='')}")
        assert answer.status_code == 200, (name, answer.text)
        document = answer.json()
        assert_schema_valid(document)
        returned = document_events(document)
        assert returned and all(event_hash(e) == event_id for e in returned), name
        assert all(e["eventID"] == event_id or e.get("eventID") for e in returned)
        seen[event_id] = len(returned)
    # the error-declaration examples: the declaration is kept beside the original, not dropped
    assert any(count > 1 for count in seen.values())
    listing = client.get("/epcis/events", params={"perPage": "1000"})
    assert listing.status_code == 200
    assert_schema_valid(listing.json())
    listed = {event_hash(e): e for e in document_events(listing.json())}
    assert set(listed) == set(expected), orjson.dumps([listed[h] for h in set(listed) - set(expected)]).decode()
