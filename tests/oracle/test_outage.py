"""Outage: the node is killed while the oracles keep receiving data (and one oracle restarts
too); after the node returns, every event arrives exactly once and is anchored."""

from __future__ import annotations

import time

import httpx
from fastapi.testclient import TestClient

from oracle.app import create_app
from tests.oracle.conftest import OracleFactory
from tests.oracle.journey import Journey
from tests.oracle.servers import NodeProcess
from tests.oracle.test_end_to_end import post, wait_delivered
from tests.oracle.test_rejections import node_event_count


def wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_events_received_during_a_node_outage_arrive_exactly_once(make_oracle: OracleFactory, node: NodeProcess, chain_now: int) -> None:
    journeys = [Journey(chain_now + 5, tag=t) for t in range(1, 8)]
    manufacturer, inspector = make_oracle("manufacturer"), make_oracle("inspector")
    accepted: list[str] = []
    documents: list[str] = []

    with TestClient(create_app(manufacturer)) as app:
        accepted += post(app, "production", journeys[0].production())["eventIds"]
        wait_delivered(manufacturer)
    assert node_event_count(node) == 1

    node.stop(kill=True)  # abrupt: no graceful shutdown
    with TestClient(create_app(manufacturer)) as app, TestClient(create_app(inspector)) as inspecting:
        for j in journeys[1:4]:
            accepted += post(app, "production", j.production())["eventIds"]
        answer = post(inspecting, "inspection", journeys[1].inspection(b"%PDF report written while the node was down"))
        accepted += answer["eventIds"]
        documents += answer["documents"]
        # The oracle tried, failed, and is backing off; nothing was lost or given up.
        last = accepted[-2]
        def attempts() -> int:
            job = manufacturer.queue.info(last)
            assert job is not None, f"job {last} not queued"
            return job.attempts or 0

        wait_for(lambda: attempts() >= 2, "retries against the stopped node")
        info = manufacturer.queue.info(last)
        assert info is not None and info.status == "pending" and "unreachable" in (info.last_error or "")
        assert manufacturer.queue.pending("event") == 3 and inspector.queue.pending("document") == 1

    # The manufacturer's oracle restarts too, on the same data folder, and keeps taking data.
    data_dir = manufacturer.settings.data_dir
    manufacturer.close()
    restarted = make_oracle("manufacturer", data_dir=data_dir)
    assert restarted.queue.pending("event") == 3
    with TestClient(create_app(restarted)) as app:
        for j in journeys[4:]:
            accepted += post(app, "production", j.production())["eventIds"]
        again = post(app, "production", journeys[2].production())  # a source system resending
        assert again["accepted"] == 0
        assert restarted.queue.pending("event") == 6

        node.start()  # same port, same database
        inspector.start()
        wait_delivered(restarted)
        wait_delivered(inspector)
        inspector.stop()

    node.wait_anchored(accepted)
    assert len(accepted) == len(set(accepted)) == 8
    assert node_event_count(node) == 8
    for digest in documents:
        assert httpx.get(f"{node.url}/documents/{digest}/status", timeout=5).json()["status"] == "available"
    assert restarted.queue.counts()["event"] == {"delivered": 7}
