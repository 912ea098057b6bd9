"""Clone detection on a simulated scan stream: precision and recall of the clone verdict, and
how long a copied code circulates before its manufacturer's alert.

    .venv/bin/python scripts/bench/clones.py [--units 10000] [--days 60] [--day-seconds 4]
        [--seed 1] [--concurrency 32] [--rules-only]

The stream (generated from --seed, the same every run) follows each unit from its sale:

* every unit: its buyer's phone scans it once to three times in its home country; some are
  scanned by a shop's device first (one device for all of that shop's units), some by a second
  phone of the household; a quarter of buyers claim the unit with the code from its packaging;
* honest travellers (6 %): the buyer takes it abroad, hours to weeks after the last scan at
  home, scans it there (sometimes a friend there does too) and perhaps again back home;
* gift buyers (6 %): the buyer gives it away, to someone at home or abroad, who scans it with
  their own phones and may claim it (a few givers claimed it themselves first);
* clones (1 %): weeks after the genuine unit's sale its code is copied onto 2 to 40 fakes
  sold in another country over weeks; each fake's buyer scans it once or twice, some try to
  claim it (with a code that cannot match).

70 % of scans arrive through the operator's reverse proxy with a country header (the trusted
region); the others carry no region. 3 % of scans also state a country themselves (the
scanner page's old header, a query parameter, the proxy's header) from an address that is not
the proxy's: the API must ignore them. The rules see none of the ground truth: the stream
goes through the real scan API, the same rules and settings an operator runs.

Set-up: an Anvil, the demo consortium, --units units anchored (tests/api/world.py), the API as
its own process (uvicorn, as `waymark api run`) with a real SQLite database, trusting the
country header from 127.0.0.1 only; spoofing scans connect from 127.0.0.2. Claim codes are
registered by the manufacturer's signed request. Time is compressed: one simulated day is
--day-seconds of real time, and the API's clone windows (its defaults: evidence 45 days,
suspicion 30 days, short window 24 hours, minimum travel 2 hours) are scaled by the same
factor through its settings; scans are sent at their scheduled time (the lag behind schedule is reported).
Every passport is read once before the stream (a read is not a scan) and cached for the whole
run: the benchmark measures the clone rules, not passport building (scripts/bench/scan.py does),
and a cold API on a loaded machine would fall behind the stream's schedule.

A unit counts as flagged when its manufacturer receives an alert of a suspicion rule for it
(the verdict every scanner sees turns "suspicious" at the same scan); precision and recall are
over units, against the stream's clones. Time to alert: from the first scan of a fake to the
scan that made the unit suspicious, in simulated hours, and from sending that first fake scan
to the manufacturer's alerts route showing the alert, in real seconds (polled every 0.25 s).
`--rules-only` runs the same stream through api.readmodel.scans.ScanLog in this process with a
simulated clock (no API, no chain): a quick look at the rules, not the benchmark's figure.

Killed (SIGINT, SIGTERM) it stops the API and the Anvil; SIGKILLed, a guard process
(scripts/bench/guard.py) stops them. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import orjson  # noqa: E402
import requests  # noqa: E402
from clone_stream import DAY_MS, Outcome, Step, Stream, generate, quantiles, rules_only, score  # noqa: E402
from guard import Guard  # noqa: E402
from scan import start_api  # noqa: E402

from api.auth import sign_request  # noqa: E402
from api.readmodel.claim_codes import claim_code_hash, new_claim_code  # noqa: E402
from api.readmodel.clone_rules import SUSPICION_RULES  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from node.chain.build import build  # noqa: E402
from tests.api.world import build_world  # noqa: E402
from tests.node.story import MANUFACTURER  # noqa: E402
from waymark.devnet.anvil import AnvilProcess  # noqa: E402
from waymark.ports import free_port  # noqa: E402

TARGET_PRECISION = 0.95
TARGET_RECALL = 0.90
COUNTRY_HEADER = "X-Country"


# --- through the API -------------------------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection, raw (the load generator must stay cheap)."""

    def __init__(self, port: int, local: str) -> None:
        self.port, self.local = port, local
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        try:
            return await self._request(method, path, headers, body)
        except (asyncio.IncompleteReadError, ConnectionError):  # the server closed an idle keep-alive connection
            self.close()
            return await self._request(method, path, headers, body)

    async def _request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(self.local, 0))
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        answer = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in answer.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        content = await self.reader.readexactly(length) if length else b""
        return int(answer[9:12]), content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def replay(stream: Stream, port: int, paths: dict[int, str], uris: dict[int, str], codes: dict[int, str], day_seconds: float, concurrency: int,
                 alerts: "AlertWatch") -> tuple[Outcome, dict[str, Any]]:
    scale = day_seconds / DAY_MS  # real seconds per simulated millisecond
    await warm(port, uris, concurrency)
    outcome = Outcome()
    lags: list[float] = []
    errors: Counter[str] = Counter()
    spoof_regions = 0
    queue: asyncio.Queue[Step | None] = asyncio.Queue(maxsize=concurrency * 4)
    start = time.monotonic()
    first_fake_sent: dict[int, float] = {}
    proxied: dict[int, set[str]] = defaultdict(set)  # countries the proxy has set for each unit so far

    async def worker() -> None:
        nonlocal spoof_regions
        proxy, stranger = Http(port, "127.0.0.1"), Http(port, "127.0.0.2")
        try:
            while (step := await queue.get()) is not None:
                due = start + step.at_ms * scale
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                lags.append(max(0.0, -delay))
                headers = {"Accept": "application/json", "Waymark-Device": step.device}
                if step.kind != "scan":
                    body = orjson.dumps({"method": "code", "uri": uris[step.unit], "code": codes[step.unit] if step.kind == "claim" else new_claim_code()})
                    status, _ = await proxy.request("POST", "/api/v1/ownership/claims", headers, body)
                    if status not in (201, 409, 422):
                        errors[f"claim {status}"] += 1
                    continue
                if step.fake:
                    first_fake_sent.setdefault(step.unit, time.monotonic())
                if step.spoof:
                    headers.update({COUNTRY_HEADER: step.spoof, "Waymark-Region": step.spoof})
                    status, content = await stranger.request("GET", paths[step.unit] + f"?region={step.spoof}", headers)
                else:
                    if step.region:
                        headers[COUNTRY_HEADER] = step.region
                        proxied[step.unit].add(step.region)
                    status, content = await proxy.request("GET", paths[step.unit], headers)
                if status != 200:
                    errors[f"scan {status}"] += 1
                    continue
                passport = orjson.loads(content)
                # A stated country the proxy never set for this unit must not show among its regions.
                if step.spoof and step.spoof not in proxied[step.unit]:
                    spoof_regions += step.spoof in passport["scans"]["regionsInWindow"]
                rules = {f["code"] for f in passport["scans"]["flags"]} & set(SUSPICION_RULES)
                if passport["verdict"] == "suspicious" and rules:
                    outcome.flagged_at_ms.setdefault(step.unit, step.at_ms)
                    outcome.rules[step.unit] |= rules
        finally:
            proxy.close()
            stranger.close()

    async def produce() -> None:
        for index, step in enumerate(stream.steps):
            await queue.put(step)
            if index % 5000 == 0:
                print(f"  {index}/{len(stream.steps)} steps, simulated day {step.at_ms / DAY_MS:.1f}, {len(outcome.flagged_at_ms)} units flagged", flush=True)
        for _ in range(concurrency):
            await queue.put(None)

    watcher = asyncio.create_task(alerts.run())
    # A failing worker fails the run (gather raises its exception) instead of stalling the queue.
    await asyncio.gather(produce(), *(worker() for _ in range(concurrency)))
    await alerts.settle()
    watcher.cancel()
    lags.sort()
    seconds_to_alert = [alerts.seen[u] - first_fake_sent[u] for u in stream.cloned if u in alerts.seen and u in first_fake_sent]
    figures = {
        "real_seconds": round(time.monotonic() - start, 1),
        "lag_behind_schedule_s": {"p50": round(lags[len(lags) // 2], 3), "p99": round(lags[int(len(lags) * 0.99)], 3), "max": round(lags[-1], 3)} if lags else {},
        "errors": dict(errors),
        "spoofed_regions_believed": spoof_regions,
        "real_seconds_first_fake_scan_to_alert": quantiles(seconds_to_alert),
        "units_alerted": len(alerts.seen),
        "units_alerted_but_not_shown_suspicious": len(set(alerts.seen) - set(outcome.flagged_at_ms)),
    }
    return outcome, figures


async def warm(port: int, uris: dict[int, str], concurrency: int) -> None:
    """Every unit's passport read once (not a scan): the stream then meets cached passports, so the
    API keeps to the stream's schedule and the rules see the stream's timing."""
    started = time.monotonic()
    pending = list(uris.values())

    async def reader() -> None:
        http = Http(port, "127.0.0.1")
        try:
            while pending:
                status, _ = await http.request("GET", "/api/v1/passport?uri=" + quote(pending.pop(), safe=""), {"Accept": "application/json"})
                if status != 200:
                    raise RuntimeError(f"passport read answered {status}")
        finally:
            http.close()

    await asyncio.gather(*(reader() for _ in range(concurrency)))
    print(f"  {len(uris)} passports read (cached) in {time.monotonic() - started:.1f} s", flush=True)


class AlertWatch:
    """The manufacturer polls its alerts route (signed requests) and notes when each unit's first
    suspicion alert appeared."""

    def __init__(self, port: int, chain_id: int, units_by_key: dict[str, int]) -> None:
        self.port, self.chain_id, self.units_by_key = port, chain_id, units_by_key
        self.seen: dict[int, float] = {}
        self.after = 0

    async def poll(self, client: httpx.AsyncClient) -> None:

        while True:
            path = f"/api/v1/alerts?after={self.after}&limit=1000"
            response = await client.get(path, headers=sign_request(MANUFACTURER.key, self.chain_id, "GET", path, audience=f"http://127.0.0.1:{self.port}"))
            response.raise_for_status()
            page = response.json()
            for alert in page["alerts"]:
                unit = self.units_by_key.get(alert["unit"])
                if unit is not None and alert["rule"] in SUSPICION_RULES:
                    self.seen.setdefault(unit, time.monotonic())
            self.after = page["nextAfter"]
            if len(page["alerts"]) < 1000:
                return

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as client:
            while True:
                await self.poll(client)
                await asyncio.sleep(0.25)

    async def settle(self) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as client:
            await self.poll(client)


def through_api(stream: Stream, args: argparse.Namespace) -> tuple[Outcome, dict[str, Any]]:

    guard = Guard()
    build()
    anvil = AnvilProcess(port=free_port()).start()
    assert anvil.process is not None
    guard.watch(anvil.process.pid)
    api = None
    try:
        folder = Path(tempfile.mkdtemp(prefix="waymark-bench-clones-"))
        lots = (args.units + 49) // 50
        print(f"setting up: {lots} lots of 50 units, anchored ...", flush=True)
        world = build_world(anvil, folder, lots={f"lot{i}": "genuine" for i in range(lots)}, lot_size=50)
        units = [u for story in world.lots.values() for u in story.units][: args.units]
        paths = {i: u.uri("http://x").removeprefix("http://x") for i, u in enumerate(units)}
        uris = {i: u.uri() for i, u in enumerate(units)}
        scale = args.day_seconds / 86_400  # real seconds per simulated second
        port = free_port()
        defaults = ApiSettings.model_fields
        scaled = {  # the API's own defaults, in compressed time
            f"WAYMARK_API_{name.upper()}": str(defaults[name].default * scale)
            for name in ("clone_window_hours", "clone_min_travel_minutes", "clone_evidence_days", "clone_suspicion_days")
        }
        api = start_api(folder, world, port, {
            "WAYMARK_API_TRUSTED_REGION_HEADER": COUNTRY_HEADER,
            "WAYMARK_API_TRUSTED_PROXIES": '["127.0.0.1"]',
            **scaled,
            "WAYMARK_API_PASSPORT_TTL": "86400",
            "WAYMARK_API_PENDING_PASSPORT_TTL": "86400",
            "WAYMARK_API_PASSPORT_MAX_AGE": "86400",
        })
        guard.watch(api.pid)
        codes = {i: new_claim_code() for i in paths}
        for chunk in range(0, len(units), 5000):
            body = orjson.dumps({"codes": [{"uri": uris[i], "codeHash": "0x" + claim_code_hash(units[i].canonical_uri, codes[i]).hex()}
                                           for i in range(chunk, min(len(units), chunk + 5000))]})
            headers = {**sign_request(MANUFACTURER.key, world.client.chain_id, "POST", "/api/v1/claim-codes", body, audience=f"http://127.0.0.1:{port}"), "Content-Type": "application/json"}
            registered = requests.post(f"http://127.0.0.1:{port}/api/v1/claim-codes", data=body, headers=headers, timeout=120)
            assert registered.status_code == 200, registered.text
        print(f"  {len(units)} units, claim codes registered; replaying {len(stream.steps)} steps over {args.days} simulated days "
              f"({args.days * args.day_seconds:.0f} s)", flush=True)
        watch = AlertWatch(port, world.client.chain_id, {u.canonical_uri: i for i, u in enumerate(units)})
        return asyncio.run(replay(stream, port, paths, uris, codes, args.day_seconds, args.concurrency, watch))
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=15)
        anvil.stop()
        guard.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=10_000, help="distinct units (at least 10,000 for the benchmark's figure)")
    parser.add_argument("--days", type=int, default=60, help="simulated days of the stream")
    parser.add_argument("--day-seconds", type=float, default=4.0, help="real seconds per simulated day")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-fakes", type=int, default=3, help="fewest fakes a copied code is printed on (2 shows what codes spread thinly cost)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent connections sending the stream")
    parser.add_argument("--rules-only", action="store_true", help="the stream through api.readmodel.scans in this process, simulated clock (not the benchmark)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up of `finally`

    stream = generate(args.units, args.days, args.seed, args.min_fakes)
    kinds = Counter(stream.category.values())
    print(f"stream: {len(stream.steps)} steps, {args.units} units ({dict(kinds)}), {len(stream.cloned)} cloned, "
          f"{sum(1 for s in stream.steps if s.fake and s.kind == 'scan')} scans of fakes, "
          f"{sum(1 for s in stream.steps if s.region)} with a trusted region, {sum(1 for s in stream.steps if s.spoof)} stating their own", flush=True)
    started = time.perf_counter()
    if args.rules_only:
        outcome, extra = rules_only(stream), {"mode": "rules-only (in process, simulated clock; not the benchmark's figure)"}
    else:
        outcome, extra = through_api(stream, args)
        extra["mode"] = "scan API"
    figures = score(stream, outcome)
    met = figures["precision"] >= TARGET_PRECISION and figures["recall"] >= TARGET_RECALL and not extra.get("errors") and not extra.get("spoofed_regions_believed")
    for key, value in {**figures, **extra}.items():
        print(f"{key:48} {value}")
    summary = {
        "benchmark": "clones",
        "units": args.units,
        "days": args.days,
        "day_seconds": args.day_seconds,
        "seed": args.seed,
        "min_fakes": args.min_fakes,
        "steps": len(stream.steps),
        "seconds": round(time.perf_counter() - started, 1),
        **figures,
        **extra,
        "targets": {"precision": TARGET_PRECISION, "recall": TARGET_RECALL},
        "met": met,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
