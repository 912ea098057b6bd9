"""Passports built in worker processes (api.build_pool): the same passport as a build in the API
process, for every kind of unit; the API serves scans with them; a worker that dies is replaced;
and no worker outlives the API, even one killed by SIGKILL."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from fastapi.testclient import TestClient

from api.build_pool import BuildPool, PoolClosed
from api.readmodel.passport import BuildAsk
from api.main import build_services, create_app
from api.services import Services
from node.chain.build import build
from node.paths import PROJECT_ROOT
from node.protocol.gs1 import Identifier, UnitId
from tests.api.world import World, api_settings, build_world
from waymark.demo.processes import await_answer, process_stats
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port

JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    build()
    anvil = AnvilProcess(port=free_port()).start()
    try:
        yield build_world(anvil, tmp_path_factory.mktemp("world"), lots={"genuine": "genuine", "tampered": "tampered", "pending": "pending"},
                          lot_size=2)
    finally:
        anvil.stop()


@pytest.fixture(scope="module")
def services(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    built = build_services(api_settings(world, tmp_path_factory.mktemp("api")), world.chain_settings, world.database)
    yield built
    built.db.dispose()


@pytest.fixture(scope="module")
def pool(world: World, services: Services) -> Iterator[BuildPool]:
    started = BuildPool(2, services.settings, world.chain_settings, world.database)
    started.start()
    yield started
    started.close()


def workers() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.is_alive()]


def identifiers(world: World) -> list[Identifier]:
    story = world.lots["genuine"]
    return [world.unit("genuine"), world.unit("genuine", 1), world.unit("tampered"), world.unit("pending"), story.case, story.container, story.stray]


def test_a_build_process_builds_the_same_passport_core_as_the_api_process(world: World, services: Services, pool: BuildPool) -> None:
    verdicts = set()
    for identifier in identifiers(world):
        ask = BuildAsk(order_checkpoint=0, window_since=0)
        built_here, built_there = services.builder.build_core(identifier, ask), asyncio.run(pool.build(identifier, ask))
        assert built_here is not None and built_there is not None, identifier.canonical_uri
        here, there = built_here.core, built_there.core
        # what the API process asked for besides: the unit's escrow orders and scan window, read in the build's snapshot
        assert built_there.orders is not None and built_there.window is not None
        assert (built_there.orders, built_there.window) == (built_here.orders, built_here.window)
        assert (there.body, there.verdict, there.reasons, there.pending, there.containers) == \
            (here.body, here.verdict, here.reasons, here.pending, here.containers), identifier.canonical_uri
        verdicts.add(there.verdict)
    assert {"genuine", "unverified", "suspicious"} & verdicts and len(verdicts) >= 2  # kinds of passports, not one
    assert asyncio.run(pool.build(UnitId(world.unit("genuine").gtin, "NEVER-MADE", "LOT1"))) is None


def test_build_processes_that_die_are_replaced_and_the_build_is_done_again(world: World, pool: BuildPool, caplog: pytest.LogCaptureFixture) -> None:
    assert asyncio.run(pool.build(world.unit("genuine"))) is not None
    before = workers()
    assert len(before) == 2
    for process in before:  # every worker: the build can only be done on a new one
        os.kill(process.pid or 0, signal.SIGKILL)
        process.join(timeout=10)
    built = asyncio.run(pool.build(world.unit("genuine", 1)))
    assert built is not None and built.core.verdict == "genuine"
    assert "a passport build process died; building" in caplog.text
    assert asyncio.run(pool.build(world.unit("tampered"))) is not None  # the new workers go on building
    assert len(workers()) == 2 and not {p.pid for p in workers()} & {p.pid for p in before}


def test_builds_at_once_each_come_back_to_their_caller_and_a_failing_build_raises_its_error(world: World, pool: BuildPool) -> None:
    async def many() -> list[Any]:
        units = [world.unit("genuine"), world.unit("genuine", 1), world.unit("tampered"), world.unit("pending")] * 5
        return list(await asyncio.gather(*(pool.build(unit, BuildAsk(order_checkpoint=0, window_since=0)) for unit in units),
                                         pool.build(None, BuildAsk()), return_exceptions=True))  # type: ignore[arg-type]

    *built, failed = asyncio.run(many())
    assert [b.core.verdict for b in built[:4]] * 5 == [b.core.verdict for b in built]
    assert isinstance(failed, AttributeError)  # the build's own error, raised in the API process
    assert asyncio.run(pool.build(world.unit("genuine"))) is not None  # the worker that raised goes on building

    async def cancelled_then_another() -> Any:
        first = asyncio.ensure_future(pool.build(world.unit("genuine")))
        await asyncio.sleep(0)
        first.cancel()  # its scan went away: the answer that comes later is dropped
        return await pool.build(world.unit("tampered"))

    after_cancel, again = asyncio.run(cancelled_then_another()), asyncio.run(pool.build(world.unit("tampered")))
    assert after_cancel is not None and again is not None and after_cancel.core.verdict == again.core.verdict


def test_a_build_waiting_when_the_pool_closes_fails_and_no_worker_is_started_after(world: World, services: Services) -> None:
    pool = BuildPool(1, services.settings, world.chain_settings, world.database)
    pool.start()
    started = {p.pid for p in workers()}

    async def build_then_close() -> None:
        waiting = asyncio.ensure_future(pool.build(world.unit("genuine")))
        await asyncio.sleep(0)  # sent, not answered yet
        pool.close()
        with pytest.raises(PoolClosed):
            await waiting
        with pytest.raises(PoolClosed):
            await pool.build(world.unit("genuine"))

    asyncio.run(build_then_close())
    assert {p.pid for p in workers()} <= started  # closed: its worker ended, none took its place


def test_the_api_serves_scans_from_build_processes_and_stops_them_when_it_stops(world: World, tmp_path: Path) -> None:
    already = {p.pid for p in workers()}
    settings = api_settings(world, tmp_path, public_url="https://scan.example", passport_build_processes=2)
    with TestClient(create_app(settings, world.chain_settings, world.database), base_url="https://scan.example") as client:
        started = [p for p in workers() if p.pid not in already]
        assert len(started) == 2
        services = client.app.state.services  # type: ignore[attr-defined]
        reads: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and any(t in statement for t in ("escrow_orders", "scans", "ownership_claims", "unit_states")):
                reads.append(statement)

        sa_event.listen(services.db.engine, "before_cursor_execute", count)
        try:
            answer = client.get(world.unit("genuine").uri("https://scan.example").removeprefix("https://scan.example"), headers={**JSON, "Waymark-Device": "d1"})
        finally:
            sa_event.remove(services.db.engine, "before_cursor_execute", count)
        assert answer.status_code == 200 and answer.json()["verdict"] == "genuine"
        assert len(answer.json()["timeline"]) >= 5
        assert services.passports.builds >= 1
        # The unit's escrow orders and scan window were read by the build process, in its build's
        # snapshot: the API process read neither for this cold scan.
        assert reads == [] and services.scans.is_loaded(world.unit("genuine").canonical_uri)
    for process in started:
        process.join(timeout=10)
        assert not process.is_alive()


def children_of(parent: int) -> list[int]:
    return [pid for pid, fields in process_stats() if int(fields[1]) == parent]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_no_build_process_outlives_an_api_killed_by_sigkill(world: World, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WAYMARK_API_PORT": str(port), "WAYMARK_API_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WAYMARK_API_DEVICE_SALT_FILE": str(tmp_path / "device-salt"), "WAYMARK_API_PASSPORT_BUILD_PROCESSES": "2",
        "WAYMARK_CHAIN_RPC_URL": world.chain_settings.rpc_url, "WAYMARK_CHAIN_CHAIN_ID": str(world.chain_settings.chain_id),
        "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(world.chain_settings.deployments_dir), "WAYMARK_DB_URL": world.database.url,
    }
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "api.main:app_from_environment", "--host", "127.0.0.1",
                            "--port", str(port), "--log-level", "warning"], env=env, cwd=PROJECT_ROOT)
    try:
        assert await_answer(f"http://127.0.0.1:{port}/health/live", 60, running=lambda: api.poll() is None,
                            ready=lambda r: r.status_code == 200) is not None
        children = children_of(api.pid)
        assert len(children) >= 2  # the build processes (and multiprocessing's resource tracker)
    finally:
        api.kill()
        api.wait(timeout=10)
    deadline = time.monotonic() + 15
    while (left := [pid for pid in children if Path(f"/proc/{pid}").exists()]) and time.monotonic() < deadline:
        time.sleep(0.1)
    described = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for pid in left}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert described == {}, "build processes outlived the API"
