"""Fixtures of the node tests: a database per test on each backend, a fresh Waymark deployment.

`db` is parametrised over SQLite (always) and PostgreSQL (a schema of its own per test on
the server at WAYMARK_TEST_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test);
the PostgreSQL case is skipped, with the reason printed, only if that server cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import create_engine, text

from node.chain.client import ChainClient
from node.chain.deploy import Deployment, deploy, waymark_steps
from node.db import Database
from waymark.devnet.anvil import AnvilProcess
from waymark.devnet.consortium import demo_consortium
from node.member.runtime import NodeRuntime
from tests.helpers import fast_node_settings
from node.settings import ChainSettings

POSTGRES_URL = os.environ.get("WAYMARK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@cache
def postgres_unreachable() -> str | None:
    """None if the test server answers, else why not."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means: skip, and say why
        return f"PostgreSQL at {POSTGRES_URL} unreachable: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def make_database(backend: str, tmp_path: Path) -> Database:
    if backend == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'node.sqlite3'}")
    reason = postgres_unreachable()
    if reason is not None:
        print(f"SKIP postgres: {reason}")
        pytest.skip(reason)
    return Database(POSTGRES_URL, schema=f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(db_backend: str, tmp_path: Path) -> Iterator[Database]:
    database = make_database(db_backend, tmp_path)
    database.migrate()
    try:
        yield database
    finally:
        database.drop_schema()
        database.dispose()


@pytest.fixture
def deployment(chain: ChainClient, accounts: list[LocalAccount], tmp_path: Path) -> Deployment:
    record = tmp_path / "deployments" / f"{chain.chain_id}.json"
    deployed, _ = deploy(chain, accounts[0], waymark_steps(demo_consortium()), record)
    return deployed


@pytest.fixture
def runtime(db: Database, chain: ChainClient, deployment: Deployment, anvil: AnvilProcess) -> NodeRuntime:
    """A node on the test chain and database. Event times in tests follow the chain's clock,
    which earlier tests may have moved ahead of the wall clock: the future-skew check is relaxed."""
    settings = fast_node_settings()
    return NodeRuntime(settings, ChainSettings(rpc_url=anvil.rpc_url, chain_id=anvil.chain_id), db, chain, deployment)


@pytest.fixture
def chain_now(chain: ChainClient, deployment: Deployment) -> int:
    """The latest block's timestamp: events dated after it are after every founding role grant."""
    return int(chain.w3.eth.get_block("latest")["timestamp"])
