"""Passports on PostgreSQL: a checkout asks the server nothing, and a build checks out a few
connections, not one per query; a build after the server closed every pooled connection (as a restart
does) succeeds on new ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text

from api.main import build_services
from api.services import Services
from node.chain.build import build
from tests.api.world import World, api_settings, build_world
from tests.network.harness import postgres_database
from tests.node.conftest import POSTGRES_URL
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with postgres_database() as url:
        if url is None:
            pytest.skip("PostgreSQL unreachable (reason printed above)")
        build()
        anvil = AnvilProcess(port=free_port()).start()
        try:
            world = build_world(anvil, tmp_path_factory.mktemp("world"), lots={"genuine": "genuine"}, lot_size=2, db_url=url)
            yield world
            world.db.dispose()
        finally:
            anvil.stop()


@pytest.fixture
def services(world: World, tmp_path: Path) -> Iterator[Services]:
    """The API's services as it runs them (its own Database and pool)."""
    built = build_services(api_settings(world, tmp_path), world.chain_settings, world.database)
    yield built
    built.db.dispose()


def pooled_backends(services: Services) -> set[int]:
    """The server processes behind every connection of the pool (holding pool_size at once)."""
    held = [services.db.engine.connect() for _ in range(services.db.engine.pool.size())]  # type: ignore[attr-defined]
    try:
        return {int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()) for conn in held}
    finally:
        for conn in held:
            conn.close()


def test_a_passport_build_costs_no_round_trip_per_checkout(world: World, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    checkouts: list[object] = []
    pings: list[object] = []
    event.listen(services.db.engine, "checkout", lambda *args: checkouts.append(args))

    def ping(conn: object) -> bool:
        pings.append(conn)
        return True

    monkeypatch.setattr(services.db.engine.dialect, "do_ping", ping)
    assert services.builder.build(world.unit("genuine")) is not None
    assert services.builder.build(world.unit("genuine", 1)) is not None
    # A build's reads share one checkout (Database.snapshot); the order index takes its own:
    # a few per build, not one per query (about ten each before), and none of them pings.
    assert 2 <= len(checkouts) <= 8 and pings == []


def test_a_passport_builds_after_the_server_closed_every_pooled_connection(world: World, services: Services) -> None:
    unit = world.unit("genuine")
    before = services.builder.build(unit)
    assert before is not None and before.verdict == "genuine"
    old = pooled_backends(services)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # Our own connections only; the second argument waits (ms) until each has gone.
            ended = [conn.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar_one() for pid in sorted(old)]
    finally:
        admin.dispose()
    assert ended == [True] * len(old)
    after = services.builder.build(unit)
    assert after is not None and after.body == before.body
    assert pooled_backends(services).isdisjoint(old)
