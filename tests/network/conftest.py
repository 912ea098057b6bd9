"""Fixtures of the network tests: node runtimes on one Anvil, each with a database of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Database
from waymark.devnet.anvil import AnvilProcess
from node.member.runtime import NodeRuntime
from tests.helpers import fast_node_settings
from node.settings import ChainSettings
from tests.node.conftest import make_database


def node_runtime(db: Database, chain: ChainClient, deployment: Deployment, anvil: AnvilProcess, **settings: object) -> NodeRuntime:
    """A node on the test chain; event times follow the chain's clock (future-skew check relaxed)."""
    node = fast_node_settings(withheld_after=1.0, replication_retry_base=0.1, replication_retry_max=0.5, **settings)
    return NodeRuntime(node, ChainSettings(rpc_url=anvil.rpc_url, chain_id=anvil.chain_id), db, chain, deployment)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def follower_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The following node's database, on each backend."""
    database = make_database(str(request.param), tmp_path / "follower")
    database.migrate()
    try:
        yield database
    finally:
        database.drop_schema()
        database.dispose()


@pytest.fixture
def origin_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'origin.sqlite3'}")
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()
