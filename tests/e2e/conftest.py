"""The e2e stories' world: a demo network of the tests' own (Anvil, node, relayer, scan API as
processes on free ports, the database and chain state in a temporary folder, never var/ or the
devnet's ports), with the demo story (waymark/demo/story.py) on it.

One world serves every story of the session (starting it and shipping the container takes about
a minute); each story acts on its own order or codes, and each chapter of the story does only what
is not done yet, so the stories pass in any order and on their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from waymark.demo.network import Network, Ports, start_network
from waymark.demo.processes import Supervisor
from waymark.demo.story import Story

DAY_SECONDS = 0.25  # the 32 days of the voyage in 8 seconds


def narrate(line: str) -> None:
    print(line, flush=True)


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    supervisor = Supervisor(narrate)
    try:
        yield start_network(tmp_path_factory.mktemp("e2e-network"), Ports.free(), supervisor, narrate)
    finally:
        supervisor.stop_all()


@pytest.fixture(scope="session")
def story(network: Network) -> Iterator[Story]:
    played = Story(network, narrate, day_seconds=DAY_SECONDS, units=24)
    try:
        yield played
    finally:
        played.close()


@pytest.fixture(scope="session")
def delivered(story: Story) -> Story:
    """The manufacturer has registered the vase, both buyers have paid into escrow, and the lot has
    been made, inspected, packed, shipped, cleared and delivered: both orders stand at Delivered."""
    story.register_product()
    story.place_orders()
    story.ship()
    story.wait_delivered()
    return story
