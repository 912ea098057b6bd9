"""Every kind of bad input at the oracle's and the node's HTTP edges, over real HTTP (uvicorn):
malformed, nested, huge, duplicate keys, unicode tricks, numbers, times, content types and
encodings, concurrent duplicates. No 5xx, each answer names the problem, the keep-alive
connection stays usable, and earlier data stays intact. What the oracle acknowledges, the
node stores (its submission's status says `accepted`)."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlparse

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, text

from oracle.app import create_app
from oracle.runtime import OracleRuntime
from tests.oracle.conftest import OracleFactory
from tests.oracle.journey import Journey, at
from tests.oracle.servers import NodeProcess, ServedApp
from tests.oracle.test_end_to_end import wait_delivered

LIMIT = 256 * 1024  # the oracle app's body limit in these tests


class KeepAlive:
    """One HTTP/1.1 connection, reused for every request: a server that drops it after an
    error makes the next request fail here."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
        self.conn.connect()
        self.sock = self.conn.sock

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        self.conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = self.conn.getresponse()
        raw = response.read()
        assert self.conn.sock is self.sock, "the server closed the connection"
        return response.status, orjson.loads(raw) if raw else {}

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        raw = response.read()
        assert self.conn.sock is self.sock, "the server closed the connection"
        return response.status, orjson.loads(raw) if raw else {}

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def served(make_oracle: OracleFactory) -> Iterator[tuple[OracleRuntime, str]]:
    runtime = make_oracle("manufacturer")
    with ServedApp(create_app(runtime, max_body_bytes=LIMIT)) as app:
        yield runtime, app.url


def node_rows(node: NodeProcess) -> list[tuple[bytes, str]]:
    engine = create_engine(node.db_url)
    with engine.connect() as conn:
        rows = [(bytes(r[0]), str(r[1])) for r in conn.execute(text("SELECT digest, body FROM events ORDER BY id"))]
    engine.dispose()
    return rows


def nested(depth: int) -> bytes:
    return b'{"runId": ' + b"[" * depth + b"1" + b"]" * depth + b"}"


def refused(answer: tuple[int, dict[str, Any]], status: int, *, field: str | None = None, says: str = "") -> dict[str, Any]:
    code, body = answer
    assert code == status, (code, body)
    assert body.get("code") and body.get("message"), body
    if field is not None:
        assert body.get("field") == field, body
    assert says.lower() in str(body["message"]).lower(), body
    return body


def wait_settled(client: httpx.Client, status_url: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer: dict[str, Any] = client.get(status_url).json()
        if answer["status"] != "pending":
            return answer
        time.sleep(0.1)
    raise AssertionError(f"{status_url} still pending after {timeout}s")


def test_oracle_refuses_every_bad_body_by_name_keeps_the_connection_and_the_earlier_data(
    served: tuple[OracleRuntime, str], node: NodeProcess, chain_now: int
) -> None:
    runtime, url = served
    j = Journey(chain_now + 5, tag=3)
    http = KeepAlive(url)
    good = j.production()
    status, first = http.post("/webhooks/production", orjson.dumps(good))
    assert status == 202, first
    assert first["statusUrl"] == f"/submissions/{first['submission']}"
    wait_delivered(runtime)
    stored_before = node_rows(node)
    assert len(stored_before) == 1

    body = orjson.dumps(good)
    # -- malformed, nested, huge ---------------------------------------------------------------
    refused(http.post("/webhooks/production", b'{"runId": "PR-1", "gtin": '), 422, field="(body)", says="malformed JSON")
    refused(http.post("/webhooks/production", b""), 422, says="empty")
    refused(http.post("/webhooks/production", b"\xff\xfe{}"), 422, says="not UTF-8")
    refused(http.post("/webhooks/production", b"\xef\xbb\xbf" + body), 422, says="byte order mark")
    refused(http.post("/webhooks/production", nested(300)), 422, says="limit of 64 levels")
    refused(http.post("/webhooks/production", nested(5000)), 422, says="limit of 64 levels")
    refused(http.post("/webhooks/production", b'{"runId": "' + b"x" * (LIMIT + 10) + b'"}'), 413, says=f"limit of {LIMIT} bytes")
    # -- duplicate keys, unicode tricks ----------------------------------------------------------
    duplicated = body[:-1] + b', "gtin": "09521234543213"}'
    refused(http.post("/webhooks/production", duplicated), 422, field="gtin", says="appears twice")
    fullwidth = {**good, "gtin": "０９５２１２３４５４３２１３"}
    refused(http.post("/webhooks/production", orjson.dumps(fullwidth)), 422, field="gtin", says="not an ASCII character")
    refused(http.post("/webhooks/production", body.replace(b'"L2025', b'"\\ud800L2025', 1)),
            422, says="surrogate")
    # -- numbers -------------------------------------------------------------------------------
    refused(http.post("/webhooks/production", b'{"runId": NaN}'), 422, says="NaN is not a JSON number")
    refused(http.post("/webhooks/production", b'{"runId": 1.8e308}'), 422, says="out of the range of a double")
    refused(http.post("/webhooks/production", b'{"runId": ' + b"9" * 500 + b"}"), 422, says="at most 100")
    # -- times ---------------------------------------------------------------------------------
    for bad_time, says in (
        ("9999-12-31T23:59:59-05:00", "years 1-9999"), ("0001-01-01T00:00:00+01:00", "years 1-9999"),
        ("1969-12-31T23:59:59Z", "before 1970"), ("２０２５-07-01T08:30:00Z", "ISO 8601"),
    ):
        refused(http.post("/webhooks/production", orjson.dumps({**good, "producedAt": bad_time})), 422, field="producedAt", says=says)
    refused(http.post("/webhooks/production", orjson.dumps({**good, "runId": "FUT", "producedAt": "2999-01-01T00:00:00Z"})),
            422, field="events[0].eventTime", says="in the future")
    # Before this organisation held the MANUFACTURER role (granted at deployment): the node would refuse it.
    refused(http.post("/webhooks/production", orjson.dumps({**good, "runId": "OLD", "producedAt": "1999-01-01T00:00:00Z"})),
            422, field="events[0].eventTime", says="did not hold MANUFACTURER")
    # -- content types and encodings -------------------------------------------------------------
    refused(http.post("/webhooks/production", body, {"Content-Type": "image/png"}), 415, field="Content-Type", says="not JSON")
    refused(http.post("/webhooks/production", body, {"Content-Type": "text/plain"}), 415, field="Content-Type")
    refused(http.post("/webhooks/production", body, {"Content-Type": "application/json; charset=latin-1"}), 415, says="UTF-8")
    refused(http.post("/webhooks/production", body, {"Content-Encoding": "gzip"}), 422, field="Content-Encoding", says="not valid gzip")
    refused(http.post("/webhooks/production", gzip.compress(body), {"Content-Encoding": "br"}), 415, field="Content-Encoding")
    bomb = gzip.compress(b'{"runId": "' + b"0" * (LIMIT * 8) + b'"}')
    assert len(bomb) < LIMIT
    refused(http.post("/webhooks/production", bomb, {"Content-Encoding": "gzip"}), 413, says="gzip-decoded body exceeds")
    # -- schema-level numbers at the IoT adapter (a product range is known for the GTIN) ---------
    message = {**j.readings(), "gtin": "09521234543213"}
    for value, unit, says in ((True, "C", "valid number"), ("27", "C", "valid number"), (2**64, "C", "outside"),
                              (-1e308, "F", "outside"), (1.7e308, "K", "outside")):
        bad = json.loads(json.dumps(message))
        bad["readings"][0].update(value=value, unit=unit)
        refused(http.post("/webhooks/iot", json.dumps(bad).encode()), 422, says=says)
    early = orjson.loads(orjson.dumps(message))
    early["readings"][0]["time"] = "1969-12-31T23:59:59Z"
    refused(http.post("/webhooks/iot", orjson.dumps(early)), 422, field="readings[0].time", says="before 1970")
    # -- still usable, and gzip done right is accepted ---------------------------------------------
    status, again = http.post("/webhooks/production", gzip.compress(body), {"Content-Encoding": "gzip"})
    assert status == 202 and again["eventIds"] == first["eventIds"] and again["accepted"] == 0
    code, unknown = http.get("/submissions/nope")
    assert code == 404 and "nope" in unknown["message"]
    http.close()

    # Nothing refused reached the queue or the node; the earlier event is there once, unchanged.
    assert runtime.queue.counts() == {"event": {"delivered": 1}}
    assert node_rows(node) == stored_before
    with httpx.Client(base_url=url) as client:
        assert wait_settled(client, first["statusUrl"])["status"] == "accepted"


def test_concurrent_duplicates_are_acknowledged_alike_and_stored_once(
    served: tuple[OracleRuntime, str], node: NodeProcess, chain_now: int
) -> None:
    runtime, url = served
    j = Journey(chain_now + 5, tag=4)
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            response = client.post("/webhooks/production", json=j.production())
            assert response.status_code == 202, response.text
            with lock:
                answers.append(response.json())

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 8
    assert len({tuple(a["eventIds"]) for a in answers}) == 1 and len({a["submission"] for a in answers}) == 1
    assert sum(a["accepted"] for a in answers) == len(answers[0]["eventIds"]) == 1
    wait_delivered(runtime)
    with httpx.Client(base_url=url) as client:
        assert wait_settled(client, answers[0]["statusUrl"])["status"] == "accepted"
    assert len(node_rows(node)) == 1


def test_node_capture_refuses_bad_bodies_by_name_and_keeps_the_connection(
    make_oracle: OracleFactory, node: NodeProcess, chain_now: int
) -> None:
    runtime = make_oracle("manufacturer")  # not started: its queued event is taken from the queue here
    j = Journey(chain_now + 5, tag=5)
    runtime.oracle.accept("production", j.production())
    (job,) = runtime.queue.due("event")
    event = dict(job.payload["event"])
    context = event.pop("@context")
    event["wm:attestation"] = {"signer": job.payload["signer"], "signature": job.payload["signature"]}

    def document(*events: dict[str, Any]) -> dict[str, Any]:
        return {"@context": context, "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": at(chain_now, 0),
                "epcisBody": {"eventList": list(events)}}

    http = KeepAlive(node.url)
    status, stored = http.post("/capture", orjson.dumps(document(event)), {"Content-Type": "application/ld+json"})
    assert status == 201, stored
    before = node_rows(node)
    good = orjson.dumps(document(event))

    # A second bizStep in the signed event: refused, not resolved to the last one.
    twice = good.replace(b'"bizStep":', b'"bizStep":"receiving","bizStep":', 1)
    refused(http.post("/capture", twice), 422, field="bizStep", says="appears twice")
    refused(http.post("/capture", b'{"type": "EPCISDocument", "epcisBody": ' + b"[" * 400 + b"]" * 400 + b"}"), 422,
            says="limit of 64 levels")
    refused(http.post("/capture", good, {"Content-Type": "image/png"}), 415, field="Content-Type")
    refused(http.post("/capture", good, {"Content-Encoding": "deflate"}), 415, field="Content-Encoding")
    refused(http.post("/capture", good, {"Content-Encoding": "gzip"}), 422, says="not valid gzip")
    refused(http.post("/capture", good.replace(b'"eventTime":', b'"eventTime":NaN,"x":', 1)), 422, says="NaN")
    for bad_time, says in (("9999-12-31T23:59:59-05:00", "years 1-9999"), ("0001-01-01T00:00:00+01:00", "years 1-9999"),
                           ("1969-12-31T23:59:59Z", "before 1970")):
        changed = {**event, "eventTime": bad_time}
        refused(http.post("/capture", orjson.dumps(document(changed))), 422, field="epcisBody.eventList[0].eventTime", says=says)
    code, answer = http.get("/batches/zz")
    assert code == 422 and answer["field"] == "root" and "batch root" in answer["message"]
    # gzip done right: the same event again, a duplicate, on the same connection.
    status, again = http.post("/capture", gzip.compress(good), {"Content-Encoding": "gzip"})
    assert status == 200 and again["duplicates"] == 1
    code, found = http.get(f"/events/{quote(stored['eventIds'][0], safe='')}")
    assert code == 200 and found["event"]["bizStep"] == event["bizStep"]
    http.close()
    assert node_rows(node) == before
