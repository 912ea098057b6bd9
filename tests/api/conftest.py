"""API tests: one real Anvil and one world per module (tests/api/world.py), the app run
in-process with its lifespan (TestClient) against them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from node.chain.build import build
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from tests.api.world import World, api_settings, build_world

LOTS = {"genuine": "genuine", "pending": "pending", "tampered": "tampered", "clones": "genuine", "claims": "genuine", "edges": "genuine"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    build()
    anvil = AnvilProcess(port=free_port()).start()
    try:
        yield build_world(anvil, tmp_path_factory.mktemp("world"), lots=LOTS, lot_size=8)
    finally:
        anvil.stop()


@pytest.fixture(scope="module")
def api_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api")


@pytest.fixture(scope="module")
def client(world: World, api_folder: Path) -> Iterator[TestClient]:
    app = create_app(api_settings(world, api_folder, public_url="https://scan.example"), world.chain_settings, world.database)
    with TestClient(app, base_url="https://scan.example", raise_server_exceptions=False) as test_client:
        yield test_client


def path_of(world: World, lot: str, index: int = 0) -> str:
    return world.unit(lot, index).uri("https://scan.example").removeprefix("https://scan.example")


JSON = {"Accept": "application/json"}
