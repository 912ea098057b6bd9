"""PostgreSQL connections: pooled ones that the server closed are replaced at checkout without
asking the server, and idle ones probe their peer (TCP keepalives) so that a server gone
silently is noticed too."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from node.db import Database
from tests.node.conftest import POSTGRES_URL, make_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Database]:
    database = make_database("postgres", tmp_path)
    try:
        yield database
    finally:
        database.drop_schema()
        database.dispose()


def backend(database: Database) -> int:
    with database.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_pooled_connection_the_server_ended_is_replaced_at_checkout(pg: Database) -> None:
    first = backend(pg)
    assert backend(pg) == first  # pooled, reused
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": first}).scalar_one()
    finally:
        admin.dispose()
    second = backend(pg)
    assert second != first and backend(pg) == second


def test_connections_to_the_server_send_tcp_keepalives(pg: Database) -> None:
    with pg.engine.connect() as conn:
        fd = conn.connection.dbapi_connection.fileno()  # type: ignore[union-attr]
        probe = socket.socket(fileno=socket.dup(fd))  # a duplicate: closing it leaves the connection open
        try:
            if probe.family == socket.AF_UNIX:
                pytest.skip("the test server is reached over a Unix socket: no TCP to keep alive")
            assert probe.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        finally:
            probe.close()
