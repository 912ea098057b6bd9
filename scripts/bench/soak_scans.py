"""The scan load of scripts/bench/soak.py: a process of its own that sends scans of recently made
units on schedule (asyncio, a bounded number in flight; a scan due while all are in flight is
counted as skipped), and reports each minute's answers and latencies back to the soak."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import random
import time
from collections import deque
from typing import Any, TypedDict

import httpx


class ScanWindow(TypedDict):
    """What the scan generator did since the last cut (one minute)."""

    ms: list[float]  # latency of each answered scan, from its request leaving to its answer read
    due: int  # scans the schedule called for
    sent: int
    skipped: int  # due while `concurrency` scans were already in flight: not sent (the API is the bottleneck)
    errors: int  # no HTTP answer (connection error, timeout)
    errorKinds: dict[str, int]  # those errors by exception class, e.g. ReadTimeout, RemoteProtocolError
    status: dict[int, int]
    lagMs: float  # worst lateness of a send behind its schedule (the generator's own delay)


def _empty_window() -> ScanWindow:
    return {"ms": [], "due": 0, "sent": 0, "skipped": 0, "errors": 0, "errorKinds": {}, "status": {}, "lagMs": 0.0}


def scan_worker(api_url: str, rate: float, concurrency: int, pool_size: int, seed: int, units: Any, control: Any) -> None:
    """The scan load, in a process of its own (its own interpreter and GIL, so the soak's other
    threads never slow it): open loop at `rate` scans/s, up to `concurrency` in flight, each a unit
    picked uniformly among the `pool_size` most recently made (so every minute scans the same mix
    of first and repeat scans). `units` (a queue) brings new unit paths; `control` (a pipe) asks
    "cut" (answered with the minute's ScanWindow) and "stop" (answered with the last one)."""
    asyncio.run(_scan_loop(api_url, rate, concurrency, pool_size, seed, units, control))


async def _scan_loop(api_url: str, rate: float, concurrency: int, pool_size: int, seed: int, units: Any, control: Any) -> None:
    rng = random.Random(seed)
    pool: deque[str] = deque(maxlen=pool_size)
    window = _empty_window()
    in_flight: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits, headers={"Accept": "application/json"}) as client:

        async def scan(path: str, forwarded_for: str) -> None:
            began = time.perf_counter()
            try:
                response = await client.get(path, headers={"X-Forwarded-For": forwarded_for})
            except httpx.HTTPError as error:
                window["errors"] += 1
                kind = type(error).__name__
                window["errorKinds"][kind] = window["errorKinds"].get(kind, 0) + 1
                return
            window["ms"].append((time.perf_counter() - began) * 1000)
            window["status"][response.status_code] = window["status"].get(response.status_code, 0) + 1

        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while True:
            while True:
                try:
                    pool.extend(units.get_nowait())
                except queue.Empty:
                    break
            if control.poll():
                command = control.recv()
                if command == "stop":
                    await asyncio.gather(*in_flight)
                    control.send(window)
                    return
                control.send(window)
                window = _empty_window()
            due = start + n / rate
            now = loop.time()
            if due > now:
                await asyncio.sleep(min(due - now, 0.05))
                continue
            n += 1
            if not pool:
                continue
            window["due"] += 1
            if len(in_flight) >= concurrency:
                window["skipped"] += 1
                continue
            window["lagMs"] = max(window["lagMs"], (now - due) * 1000)
            window["sent"] += 1
            task = asyncio.create_task(scan(rng.choice(pool), f"10.{rng.randrange(256)}.{rng.randrange(256)}.1"))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)


class ScanLoad:
    """The scan worker process, and the per-minute cut of what it measured."""

    def __init__(self, api_url: str, rate: float, concurrency: int, pool_size: int) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.units: Any = context.Queue()
        self.control, theirs = context.Pipe()
        self.process = context.Process(target=scan_worker, args=(api_url, rate, concurrency, pool_size, 1, self.units, theirs), daemon=True)
        self.process.start()
        self.status: dict[int, int] = {}
        self.errors = 0
        self.error_kinds: dict[str, int] = {}

    def add_units(self, paths: list[str]) -> None:
        self.units.put(paths)

    def cut(self, command: str = "cut") -> ScanWindow:
        self.control.send(command)
        if not self.control.poll(60):
            raise RuntimeError("the scan generator did not answer within 60 s")
        window: ScanWindow = self.control.recv()
        for code, count in window["status"].items():
            self.status[code] = self.status.get(code, 0) + count
        self.errors += window["errors"]
        for kind, count in window["errorKinds"].items():
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + count
        return window

    def stop(self) -> ScanWindow | None:
        window = self.cut("stop") if self.process.is_alive() else None
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        return window
