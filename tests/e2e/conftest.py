"""Fixtures of the e2e stories (their world: tests/e2e/world.py).

One world serves stories 1-3 and the every-node passport test (starting its four member nodes and
shipping the container takes one to two minutes); each of them acts on its own order or codes, so
they pass in any order and on their own. The audit
ending (story 4) plays the whole story, every order included, so it has a world of its own.

WAYMARK_TEST_BLOCK_TIME=<seconds> runs the stories on a chain that mines a block every that many
seconds (as a Besu/QBFT consortium does) instead of one block per transaction; CI runs them both
ways (scripts/run-tests.sh).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.world import deliver, demo_world
from waymark.demo.story import Story


@pytest.fixture(scope="session")
def block_time() -> float | None:
    """Seconds between the e2e chain's blocks (WAYMARK_TEST_BLOCK_TIME), or None: a block per transaction."""
    value = os.environ.get("WAYMARK_TEST_BLOCK_TIME", "").strip()
    return float(value) if value else None


@pytest.fixture(scope="package")  # stopped once a worker leaves tests/e2e, not left running all session
def delivered(tmp_path_factory: pytest.TempPathFactory, block_time: float | None) -> Iterator[Story]:
    """The world of stories 1-3 and of the every-node test, delivered and replicated: each acts on
    its own order or codes, so they pass in any order."""
    with demo_world(tmp_path_factory.mktemp("e2e-network"), block_time) as story:
        yield deliver(story)
