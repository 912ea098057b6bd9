"""Fixtures of the e2e stories (their world: tests/e2e/world.py).

One world serves stories 1-3 (starting it and shipping the container takes about a minute); each
of them acts on its own order or codes, so they pass in any order and on their own. The audit
ending (story 4) plays the whole story, every order included, so it has a world of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.world import deliver, demo_world
from waymark.demo.story import Story


@pytest.fixture(scope="session")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """The world of stories 1-3: each acts on its own order or codes, so they pass in any order."""
    with demo_world(tmp_path_factory.mktemp("e2e-network")) as story:
        yield deliver(story)
