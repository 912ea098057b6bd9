"""Cold scans and unit histories on PostgreSQL as the data grows: a big data set and one 100
times smaller, loaded and measured in the same run.

    .venv/bin/python scripts/bench/scale.py [--units 1000000] [--small-factor 100] [--seconds 10]
        [--rounds 4] [--concurrency 50] [--workers 2] [--writers 3] [--keep NAME [--state-dir DIR]]
        [--phase both|load|measure] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

A big load takes hours on a small machine, so it can be kept and resumed: with `--keep NAME`
the big set lives in database NAME and its Anvil chain (state file) and progress in --state-dir
(default <tmp>/waymark-NAME), neither removed at the end; a run loads what is missing and goes
on. `--phase load` only loads (stop it with SIGTERM at any time; the next run resumes);
`--phase measure` measures the kept set as far as it was loaded (its --units is what was
loaded). Without --keep every database of the run is created for it and dropped at its end.

For each data set (big first, then small), in a database of its own on the PostgreSQL server:

* load: units in containers of 1,000 (10 pallets of 10 cases of 10 units). Each unit has five
  events of its own (commissioning, encoding, inspecting, receiving, retail_selling), each case
  its packing, each pallet its packing, each container its loading, shipping, arrival and
  unloading: about 5.1 events per unit. Every event is signed by the member holding its role
  and goes through the node's own capture: its document checks (`precheck_document`: EPCIS
  validation, event hash, signature), in --workers processes as `CaptureService` runs them
  with an executor, while the members' signing runs in the same processes; the role check and
  the storage with the verification record (`CaptureService.check_roles`, `.store`) in
  --writers threads; the node's anchorer (Merkle batches anchored on an Anvil) in a thread of
  its own, as the node runs it; then the node's indexer follows the chain into the database.
  Printed: events per second of the whole load, wall clock (signing included, summed over the
  runs that loaded a kept set), and bytes stored per event
  (every table and index of the database, `pg_database_size` after VACUUM, over the events).
* history: `node.member.history.unit_history` of random units, one after another, in this process:
  p50 and p99 in ms.
* cold scans: the sets share one chain, so first each set's indexer follows it up to the head
  again (a node's indexer runs all the time; the big set's would otherwise lag by the small
  set's anchors); then an API started afresh for each set (one uvicorn worker as `waymark api run` starts
  it, passports built by --build-processes processes, default one per core), both running; one unit outside the measured ones is scanned first (the process's
  start-up, not a passport); then, with no measured unit's passport cached, 50 concurrent
  clients each scanning random units nobody scanned before (each unit once), JSON answers, for
  --seconds per set, split into --rounds rounds that alternate between the sets (big, small,
  big, ...), so a drift of the machine's speed meets both alike: scans/s, p50, p99, and the
  CPU a cold scan took in each part (ms): the API process, its build processes, the PostgreSQL
  backends of the set's database (from /proc) and this load generator, which shows what grows
  with the data.

Targets (issue 15): cold scans of the big set at least 1,000/s with p99 at most 25 ms, and
within 20% of the small set. The machine's cores and load average are printed with them; the
load generator runs on the same machine. The last line printed is one JSON object.

A guard process started first kills every process this run started (Anvil, the API) and drops
the run's own databases (not a kept one) when the run ends in any way, SIGKILL included.

One concern: the scale benchmark of issue 15, whose load (resumable), measurements and report
share its data sets, chain and guard.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402

import scan as scan_bench  # noqa: E402
from node.chain.build import build  # noqa: E402
from node.chain.client import ChainClient  # noqa: E402
from node.chain.consortium import ConsortiumSpec  # noqa: E402
from node.chain.deploy import deploy, load_deployment, waymark_steps  # noqa: E402
from node.db import Database  # noqa: E402
from waymark.devnet.anvil import AnvilProcess  # noqa: E402
from waymark.ports import free_port  # noqa: E402
from waymark.demo.processes import process_stats  # noqa: E402
from waymark.devnet.consortium import DEPLOYER_INDEX, demo_consortium, demo_org_id, devnet_account  # noqa: E402
from node.member.history import unit_history  # noqa: E402
from node.member.ingest.capture import CheckedEvent, precheck_document  # noqa: E402
from node.protocol import epcis  # noqa: E402
from node.protocol.attestation import AttestationDomain  # noqa: E402
from node.protocol.gs1 import ContainerId, UnitId, make_sscc  # noqa: E402
from node.member.runtime import NodeRuntime, build_anchorer, build_capture, build_indexer  # noqa: E402
from node.member.settings import NodeSettings  # noqa: E402
from node.settings import ChainSettings, DatabaseSettings  # noqa: E402
from node.strict_json import JsonLimits  # noqa: E402
from guard import Guard  # noqa: E402
from tests.api.world import PRODUCT_MASTER, register_product  # noqa: E402
from api.readmodel.product_master import master_hash, store_master  # noqa: E402
from tests.node.story import CARRIER, GTIN, INSPECTOR, MANUFACTURER, attested, iso  # noqa: E402

TARGET_COLD_PER_S = 1000.0
TARGET_COLD_P99_MS = 25.0
TARGET_GROWTH = 0.20  # the big set's cold scans within 20% of the small set's
CONTAINER_UNITS = 1000

@dataclass
class DataSet:
    name: str
    units: int
    url: str
    database: str
    serials: list[str]
    figures: dict[str, Any]


def container_events(index: int, start: int, units: int) -> tuple[list[tuple[dict[str, Any], LocalAccount]], list[str]]:
    """One container's events in time order (each with the account that signs it), and its units' serials."""
    obj, agg = epcis.object_event, epcis.aggregation_event
    t = start + index * 20
    base = index * CONTAINER_UNITS
    serials = [f"B{base + i:010d}" for i in range(units)]
    lot = f"L{index:06d}"
    unit_ids = [UnitId(GTIN, s, lot) for s in serials]
    container = ContainerId(make_sscc("9521234", 1_000_000 + index))
    cases = [ContainerId(make_sscc("9521234", 10_000_000 + base // 10 + c)) for c in range((units + 9) // 10)]
    pallets = [ContainerId(make_sscc("9521234", 30_000_000 + base // 100 + p)) for p in range((len(cases) + 9) // 10)]
    events: list[tuple[dict[str, Any], LocalAccount]] = []
    for unit in unit_ids:
        events.append((obj(epcs=[unit], action="ADD", event_time=iso(t + 1), biz_step="commissioning", disposition="active"), MANUFACTURER))
        events.append((obj(epcs=[unit], action="OBSERVE", event_time=iso(t + 2), biz_step="encoding"), MANUFACTURER))
        events.append((obj(epcs=[unit], action="OBSERVE", event_time=iso(t + 3), biz_step="inspecting"), INSPECTOR))
    for c, case in enumerate(cases):
        events.append((agg(parent_id=case, child_epcs=unit_ids[c * 10:(c + 1) * 10], action="ADD", event_time=iso(t + 4), biz_step="packing"), MANUFACTURER))
    for p, pallet in enumerate(pallets):
        events.append((agg(parent_id=pallet, child_epcs=cases[p * 10:(p + 1) * 10], action="ADD", event_time=iso(t + 5), biz_step="packing"), CARRIER))
    events.append((agg(parent_id=container, child_epcs=pallets, action="ADD", event_time=iso(t + 6), biz_step="loading"), CARRIER))
    events.append((obj(epcs=[container], action="OBSERVE", event_time=iso(t + 7), biz_step="shipping"), CARRIER))
    events.append((obj(epcs=[container], action="OBSERVE", event_time=iso(t + 8), biz_step="arriving"), CARRIER))
    events.append((agg(parent_id=container, child_epcs=pallets, action="DELETE", event_time=iso(t + 9), biz_step="unloading"), CARRIER))
    for unit in unit_ids:
        events.append((obj(epcs=[unit], action="OBSERVE", event_time=iso(t + 10), biz_step="receiving"), CARRIER))
        events.append((obj(epcs=[unit], action="OBSERVE", event_time=iso(t + 11), biz_step="retail_selling"), MANUFACTURER))
    return events, [u.uri("http://x").removeprefix("http://x") for u in unit_ids]


def prepare_container(index: int, start: int, units: int, domain: AttestationDomain, max_future_skew: int) -> tuple[list[CheckedEvent], float, float]:
    """In a worker process: one container's events signed by their members as a capture document
    (what the members send), then the node's own capture checks that need no registry history
    (`precheck_document`: what `CaptureService.precheck` runs in its worker processes).
    Returns the checked events, the seconds spent signing and the seconds spent checking."""
    began = time.perf_counter()
    signed, _serials = container_events(index, start, units)
    document = epcis.epcis_document([e for e, _ in signed])
    document["epcisBody"]["eventList"] = [attested(e, signer, domain) for e, signer in signed]
    body = orjson.dumps(document)
    signing = time.perf_counter() - began
    began = time.perf_counter()
    checked = precheck_document(body, domain, len(signed), max_future_skew, JsonLimits(max_bytes=len(body) + 1))
    return checked, signing, time.perf_counter() - began


def container_serials(index: int, units: int) -> list[str]:
    """The unit paths (/01/<gtin>/21/<serial>/10/<lot>) of container `index`, as container_events names them."""
    base = index * CONTAINER_UNITS
    lot = f"L{index:06d}"
    return [UnitId(GTIN, f"B{base + i:010d}", lot).uri("http://x").removeprefix("http://x") for i in range(units)]


def bench_consortium() -> ConsortiumSpec:
    """The demo consortium with the carrier (and the members it hosts) hosted by the
    manufacturer's node: the one node this benchmark loads captures and anchors the events of all
    three organisations of its story, and an event counts only when anchored by its attester's
    organisation or the one hosting it (node.protocol.verification.counted_anchor)."""
    demo = demo_consortium()
    manufacturer, carrier = demo_org_id("manufacturer"), demo_org_id("carrier")
    members = tuple(replace(m, host=manufacturer) if i == carrier or m.host == carrier else m for i, m in enumerate(demo.members, start=1))
    return replace(demo, members=members)


def admin(url: str, statement: str) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(statement)


def database_exists(url: str, name: str) -> bool:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def database_url(server: str, name: str) -> str:
    return server.rsplit("/", 1)[0] + "/" + name


class Progress:
    """What a kept data set has loaded so far (a JSON file beside the kept chain state): a long
    load resumes where it stopped and its rate adds up over every run that loaded it. Containers
    are stored by several threads, so out of order: `containers` is the count stored without a
    gap, `stored` those stored past it."""

    def __init__(self, path: Path | None, start: int) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.values: dict[str, Any] = {"start": start, "containers": 0, "stored": [], "events": 0, "wall_seconds": 0.0,
                                       "signing_seconds": 0.0, "check_seconds": 0.0}
        if path is not None and path.exists():
            self.values.update(json.loads(path.read_text()))

    def began(self) -> None:
        """A run starts loading: its time from now adds to the load's."""
        self._base, self._began = float(self.values["wall_seconds"]), time.perf_counter()

    def stored(self, index: int, events: int, signing: float, checking: float) -> None:
        with self.lock:
            values = self.values
            values["wall_seconds"] = self._base + time.perf_counter() - self._began
            done = set(values["stored"]) | ({index} if index >= 0 else set())
            while values["containers"] in done:
                done.discard(values["containers"])
                values["containers"] += 1
            values["stored"] = sorted(done)
            values["events"] += events
            values["signing_seconds"] += signing
            values["check_seconds"] += checking
            self.save()

    def save(self) -> None:
        if self.path is not None:
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.values))
            temporary.replace(self.path)


def vacuum_as_autovacuum(url: str, stop: threading.Event) -> None:
    """When the server's autovacuum is off (a test server's setting), do its work until `stop`:
    vacuum a table once its dead rows pass its thresholds (node/db migration 0011 sets those of
    `events`), analyze it once its changes pass them. Without statistics the planner took a
    history's per-event probe of event_epcs for a sequential scan of the whole table (1.6 s
    instead of 4 ms at 500,000 events)."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SHOW autovacuum").fetchone() != ("off",):
            return
        print("  the server's autovacuum is off: this run vacuums and analyzes as autovacuum would", flush=True)
        while not stop.wait(20.0):
            tables = conn.execute(
                "SELECT s.relname, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze, coalesce(c.reloptions, '{}') "
                "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
            ).fetchall()
            for name, live, dead, changed, reloptions in tables:
                options = dict(o.split("=", 1) for o in reloptions)
                if dead > float(options.get("autovacuum_vacuum_threshold", 50)) + float(options.get("autovacuum_vacuum_scale_factor", 0.2)) * live:
                    conn.execute(f'VACUUM "{name}"')
                if changed > float(options.get("autovacuum_analyze_threshold", 50)) + float(options.get("autovacuum_analyze_scale_factor", 0.1)) * live:
                    conn.execute(f'ANALYZE "{name}"')


def load(data: DataSet, client: ChainClient, chain_settings: ChainSettings, deployment: Any, progress: Progress, workers: int,
         writers: int) -> None:
    """Load `data.units` units (resuming after what `progress` says is stored), the node's way:
    worker processes sign containers and run capture's document checks on them
    (`precheck_document`, what `CaptureService` runs in its worker processes); `writers` threads
    check roles and store them (`CaptureService.check_roles`, `.store`) while the node's
    anchorer anchors what is pending in a thread of its own, as the node runs it."""
    db = Database(data.url)
    db.migrate()
    # The manufacturer publishes the master data whose hash it registered (what its
    # PUT /api/v1/products/{gtin}/master stores): the passports show it verified, as a real product's do.
    store_master(db, GTIN, PRODUCT_MASTER, master_hash(PRODUCT_MASTER))
    settings = NodeSettings(max_future_skew=10**9, role_refresh_interval=5.0, batch_size=20_000, max_batch_delay=1.0)
    runtime = NodeRuntime(settings, chain_settings, db, client, deployment)
    domain = AttestationDomain(client.chain_id, deployment.address("ProvenanceRegistry"))
    capture = build_capture(runtime)
    anchorer = build_anchorer(runtime, MANUFACTURER)
    containers = (data.units + CONTAINER_UNITS - 1) // CONTAINER_UNITS
    values = progress.values
    todo = [i for i in range(int(values["containers"]), containers) if i not in set(values["stored"])]
    run_began = time.perf_counter()
    progress.began()
    counted = [0]
    stop = threading.Event()
    anchoring = threading.Thread(target=anchorer.run, args=(stop,), name="anchorer")
    anchoring.start()
    vacuuming = threading.Thread(target=vacuum_as_autovacuum, args=(data.url, stop), name="vacuum", daemon=True)
    vacuuming.start()
    with ProcessPoolExecutor(workers) as pool:
        ahead: deque[tuple[int, Future[tuple[list[CheckedEvent], float, float]]]] = deque()
        upcoming = iter(todo)
        take = threading.Lock()

        def next_container() -> tuple[int, Future[tuple[list[CheckedEvent], float, float]]] | None:
            with take:
                if failures or stop.is_set():  # a writer failed, or the run is being stopped
                    return None
                while len(ahead) < 2 * workers + writers and (following := next(upcoming, None)) is not None:
                    size = min(CONTAINER_UNITS, data.units - following * CONTAINER_UNITS)
                    ahead.append((following, pool.submit(prepare_container, following, values["start"], size, domain, capture.max_future_skew)))
                return ahead.popleft() if ahead else None

        failures: list[BaseException] = []

        def write() -> None:
            try:
                write_all()
            except BaseException as failure:  # re-raised below, once every writer stopped
                failures.append(failure)

        def write_all() -> None:
            while (job := next_container()) is not None:
                index, future = job
                checked, signing, checking = future.result()
                stored = capture.store(capture.check_roles(checked))
                progress.stored(index, stored.new, signing, checking)
                with progress.lock:
                    counted[0] += stored.new
                    done = int(values["containers"])
                    if index % 10 == 9:
                        print(f"  {data.name}: {done * CONTAINER_UNITS:,} units stored without a gap, {values['events']:,} events; "
                              f"{counted[0] / (time.perf_counter() - run_began):,.0f} events/s this run", flush=True)

        threads = [threading.Thread(target=write, name=f"writer-{i}") for i in range(writers)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if failures:
                raise failures[0]
        finally:
            stop.set()  # the writers finish the container they hold
            for thread in threads:
                thread.join()
            pool.shutdown(cancel_futures=True)
            anchoring.join()
    anchorer.drain(timeout=600)  # what the run stored last (and what an interrupted run left pending)
    build_indexer(runtime).step()  # the node's indexer follows the chain into the database: passports read anchors there
    progress.stored(-1, 0, 0.0, 0.0)  # the anchoring of the last containers counts too
    print(f"  {data.name}: {min(data.units, int(values['containers']) * CONTAINER_UNITS):,} units, {values['events']:,} events anchored; "
          f"{counted[0] / (time.perf_counter() - run_began):,.0f} events/s this run", flush=True)
    loaded = int(values["containers"])
    data.serials.extend(s for i in range(loaded) for s in container_serials(i, min(CONTAINER_UNITS, data.units - i * CONTAINER_UNITS)))
    db.dispose()


def follow_chain(data: DataSet, client: ChainClient, chain_settings: ChainSettings, deployment: Any) -> None:
    """One step of the data set's indexer, up to the head: as a node's running indexer keeps it."""
    db = Database(data.url)
    build_indexer(NodeRuntime(NodeSettings(), chain_settings, db, client, deployment)).step()
    db.dispose()


def measure_database(data: DataSet, progress: Progress) -> None:
    """Bytes stored per event and unit-history timings of the loaded data set."""
    admin(data.url, "VACUUM ANALYZE")
    with psycopg.connect(data.url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        size_bytes = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
        stored = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]
        anchored = int(conn.execute("SELECT count(*) FROM events WHERE batch_id IS NOT NULL").fetchone()[0])  # type: ignore[index]
    values = progress.values
    data.figures.update(
        units=len(data.serials), events=stored, anchored_events=anchored,
        load_events_per_s=round(values["events"] / max(values["wall_seconds"], 1e-9), 1),
        load_wall_seconds=round(values["wall_seconds"], 1),
        # seconds inside the worker processes (wall time there: on a loaded machine, not CPU time)
        signing_seconds=round(values["signing_seconds"], 1), check_seconds=round(values["check_seconds"], 1),
        bytes_per_event=round(size_bytes / max(1, stored), 1), database_bytes=size_bytes,
    )
    db = Database(data.url)
    samples = random.Random(1).sample(data.serials, min(300, len(data.serials)))
    timings = []
    for path in samples:
        began = time.perf_counter()
        history = unit_history(db, "https://id.gs1.org" + path)
        timings.append(time.perf_counter() - began)
        assert history, path
    timings.sort()
    data.figures["history_events"] = len(history)
    data.figures["history_p50_ms"] = round(1000 * timings[len(timings) // 2], 2)
    data.figures["history_p99_ms"] = round(1000 * timings[min(len(timings) - 1, int(len(timings) * 0.99))], 2)
    db.dispose()


def cpu_by_part(api_pid: int, server: str, database: str) -> dict[str, float]:
    """CPU seconds so far of what serves one data set's scans (Linux /proc): the API process, its
    passport build processes (the rest of its session), and the PostgreSQL backends connected to
    its database (the API's: nothing else is connected while it is measured)."""
    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        # Not this connection's own backend: it ends here, and its start-up is not a scan's.
        backends = {row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,))}
    seconds = {"api": 0.0, "build_processes": 0.0, "postgres": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for pid, fields in process_stats():
        used = (int(fields[11]) + int(fields[12])) / tick
        if pid == api_pid:
            seconds["api"] += used
        elif int(fields[3]) == api_pid:  # start_api makes the API a session leader
            seconds["build_processes"] += used
        elif pid in backends:
            seconds["postgres"] += used
    return seconds


@dataclass(frozen=True)
class ScanTarget:
    """One data set's API for the cold scans, and its measured units shared out over the rounds."""

    data: DataSet
    port: int
    api: subprocess.Popen[bytes]
    rounds: list[list[bytes]]


def cold_scans(sets: list[DataSet], folder: Path, chain_settings: ChainSettings, guard: Guard, concurrency: int,
               seconds: float, rounds: int, build_processes: int) -> None:
    """Cold scans of every data set, each behind an API of its own, in `rounds` alternating rounds
    (big, small, big, small, ...): the machine's speed drifts by a fifth within minutes here, and
    measured one after the other the two sets would meet different machines."""
    targets: list[ScanTarget] = []
    try:
        for data in sets:
            # One unit left out of the measured ones is scanned first: the process's own start-up
            # (its chain and registry caches) is not a cold passport; no measured unit is cached.
            # Each run draws other units: a kept set measured again with the same draw met its
            # units scanned by a new device every run, until the clone rules suspected them.
            spare, *measured = random.sample(data.serials, len(data.serials))
            paths = [p.encode() for p in measured]
            port = free_port()
            world = type("World", (), {"chain_settings": chain_settings, "database": DatabaseSettings(url=data.url)})()
            api = scan_bench.start_api(folder, world, port, {"WAYMARK_API_PASSPORT_BUILD_PROCESSES": str(build_processes)})
            guard.watch(api.pid)
            targets.append(ScanTarget(data, port, api, [paths[r::rounds] for r in range(rounds)]))  # each unit in one round only
            first = requests.get(f"http://127.0.0.1:{port}{spare}", headers={"Accept": "application/json"}, timeout=300)
            if first.status_code != 200:
                raise SystemExit(f"the first scan answered {first.status_code}: {first.text[:300]}")
            data.figures["verdict"] = first.json().get("verdict")
            data.figures["passport_bytes"] = len(first.content)
        runs: dict[str, list[scan_bench.LoadRun]] = {target.data.name: [] for target in targets}
        # Where a cold scan's CPU goes, per part, summed over the set's rounds: what grows with the data.
        used: dict[str, dict[str, float]] = {target.data.name: {} for target in targets}
        for r in range(rounds):
            for target in targets:
                before = cpu_by_part(target.api.pid, target.data.url, target.data.database)
                runs[target.data.name].append(asyncio.run(scan_bench.run_load(
                    target.port, target.rounds[r], concurrency, seconds / rounds, True, target.api.pid, cold=True, reached=[])))
                after = cpu_by_part(target.api.pid, target.data.url, target.data.database)
                for part in after:
                    used[target.data.name][part] = used[target.data.name].get(part, 0.0) + after[part] - before.get(part, 0.0)
        for target in targets:
            figures = target.data.figures["cold_scans"] = scan_bench.summary(runs[target.data.name])
            scans = max(1, int(figures["requests"]))
            client = sum(run.client_cpu for run in runs[target.data.name])
            target.data.figures["cold_scan_cpu_ms"] = {
                part: round(1000 * value / scans, 2) for part, value in {**used[target.data.name], "load_generator": client}.items()}
    finally:
        for target in targets:
            target.api.terminate()
            target.api.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=1_000_000, help="units of the big data set")
    parser.add_argument("--small-factor", type=int, default=100, help="the small data set has this many times fewer units")
    parser.add_argument("--seconds", type=float, default=10.0, help="most seconds of cold scans per data set (all rounds)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of cold scans (big, small, big, ...) the seconds are split into")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--build-processes", type=int, default=os.cpu_count() or 1,
                        help="the API's passport build processes (WAYMARK_API_PASSPORT_BUILD_PROCESSES; 0: its own threads)")
    parser.add_argument("--workers", type=int, default=2, help="processes signing and checking containers ahead of the store")
    parser.add_argument("--writers", type=int, default=3, help="threads storing checked containers")
    parser.add_argument("--keep", metavar="NAME", help="keep the big data set in database NAME (and its chain state in "
                        "--state-dir) across runs: a run resumes its load where the last one stopped")
    parser.add_argument("--state-dir", type=Path, help="where a kept data set's chain state lives (default: <tmp>/waymark-<NAME>)")
    parser.add_argument("--phase", choices=("both", "load", "measure"), default="both",
                        help="load: load the big set (resumable with --keep) and stop; measure: measure what --keep holds")
    parser.add_argument("--postgres", default=os.environ.get("WAYMARK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
                        help="a database on the server; the run creates and drops databases of its own beside it")
    args = parser.parse_args()
    if args.units < args.small_factor:
        parser.error("--units must be at least --small-factor")
    if args.phase != "both" and not args.keep:
        parser.error("--phase load/measure need --keep NAME")

    guard = Guard()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    build()
    folder = Path(tempfile.mkdtemp(prefix="waymark-bench-scale-"))
    state = args.state_dir or (Path(tempfile.gettempdir()) / f"waymark-{args.keep}" if args.keep else folder)
    state.mkdir(parents=True, exist_ok=True)
    anvil = AnvilProcess(port=free_port(), state_file=state / "anvil.json" if args.keep else None)
    anvil.start()
    assert anvil.process is not None
    guard.watch(anvil.process.pid)
    tag = f"wm_scale_{os.getpid()}"
    big_name = args.keep or f"{tag}_big"
    sets = [
        DataSet("big", args.units, database_url(args.postgres, big_name), big_name, [], {}),
        DataSet("small", args.units // args.small_factor, database_url(args.postgres, f"{tag}_small"), f"{tag}_small", [], {}),
    ]
    if args.phase == "load":
        sets = sets[:1]
    try:
        client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
        chain_settings = ChainSettings(rpc_url=anvil.rpc_url, chain_id=anvil.chain_id, deployments_dir=state / "deployments")
        if chain_settings.deployment_file.exists():
            deployment = load_deployment(chain_settings.deployment_file)
        else:
            deployment, _ = deploy(client, devnet_account(DEPLOYER_INDEX), waymark_steps(bench_consortium()), chain_settings.deployment_file)
        register_product(client, deployment)
        start = int(client.w3.eth.get_block("latest")["timestamp"]) + 1
        load_before = [round(x, 2) for x in os.getloadavg()]
        for data in sets:
            kept = data.database == args.keep
            if not kept:
                guard.drop_at_end(args.postgres, data.database)
                admin(args.postgres, f"DROP DATABASE IF EXISTS {data.database}")
            if not database_exists(args.postgres, data.database):
                admin(args.postgres, f"CREATE DATABASE {data.database}")
            progress = Progress(state / f"{data.database}.json" if kept else None, start)
            if args.phase == "measure" and kept:
                data.units = int(progress.values["containers"]) * CONTAINER_UNITS  # what the load reached
                sets[1].units = data.units // args.small_factor
            print(f"loading the {data.name} data set: {data.units:,} units (from {int(progress.values['containers']) * CONTAINER_UNITS:,}) ...", flush=True)
            load(data, client, chain_settings, deployment, progress, args.workers, args.writers)
            if args.phase == "load":
                return
            measure_database(data, progress)
            f = data.figures
            print(f"{data.name}: {f['units']:,} units, {f['events']:,} events ({f['anchored_events']:,} anchored), load {f['load_events_per_s']:,.0f} events/s, "
                  f"{f['bytes_per_event']:,.0f} bytes/event; unit history p50 "
                  f"{f['history_p50_ms']} ms p99 {f['history_p99_ms']} ms ({f['history_events']} events)", flush=True)
        for data in sets:  # every set shares the chain: the big set's node follows what the small set anchored since
            follow_chain(data, client, chain_settings, deployment)
        cold_scans(sets, folder, chain_settings, guard, args.concurrency, args.seconds, args.rounds, args.build_processes)
        for data in sets:
            c = data.figures["cold_scans"]
            print(f"{data.name}: cold scans ({data.figures['verdict']} passports of {data.figures['passport_bytes']:,} bytes) c={args.concurrency} {c['per_second']:,.1f}/s p50 {c['p50_ms']} ms p99 {c['p99_ms']} ms "
                  f"errors {c['errors']} (server cpu {c['server_cpu']}, client cpu {c['client_cpu']})", flush=True)
            print("  CPU per cold scan, ms: " + ", ".join(f"{part} {ms}" for part, ms in data.figures["cold_scan_cpu_ms"].items()), flush=True)
        big, small = (s.figures["cold_scans"] for s in sets)
        growth = 1 - big["per_second"] / small["per_second"] if small["per_second"] else float("nan")
        summary = {
            "benchmark": "scale",
            "database": "postgresql",
            "cores": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "concurrency": args.concurrency,
            "build_processes": args.build_processes,
            "big": sets[0].figures,
            "small": sets[1].figures,
            "cold_rate_drop_big_vs_small": round(growth, 3),
            "targets": {"cold_scans_per_s": TARGET_COLD_PER_S, "cold_p99_ms": TARGET_COLD_P99_MS, "within_of_small": TARGET_GROWTH, "units": 1_000_000, "events": 5_000_000},
            "met": bool(
                big["per_second"] >= TARGET_COLD_PER_S and big["p99_ms"] <= TARGET_COLD_P99_MS and big["errors"] == 0
                and growth <= TARGET_GROWTH and sets[0].figures["units"] >= 1_000_000 and sets[0].figures["events"] >= 5_000_000
            ),
        }
        print(json.dumps(summary))
    finally:
        anvil.stop()
        for data in sets:
            if data.database == args.keep:
                continue
            try:
                admin(args.postgres, f"DROP DATABASE IF EXISTS {data.database} WITH (FORCE)")
            except psycopg.Error as error:
                print(f"could not drop {data.database}: {error}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)  # the run's own files (a kept set's live in --state-dir)
        guard.close()


if __name__ == "__main__":
    main()
