"""Soak: `waymark demo` under steady load for a while, watched minute by minute.

    .venv/bin/python scripts/bench/soak.py --minutes 30 --records-per-second 10 --scans-per-second 50
    .venv/bin/python scripts/bench/soak.py --short          # CI size: 2 minutes, lighter load

It starts the demo (its own state folder and free ports), waits for "ready", then for the
given time sends production records to the manufacturer's oracle (each a run of new serials:
one commissioning event) and scans to the manufacturer's scan API. The scans come from a
process of their own (asyncio, open loop: sent on schedule whatever the answers, at most
`--scan-concurrency` in flight; a scan due while that many wait is counted as skipped, so a
slow API shows as skipped scans, never as a slower generator), each of a unit picked among the
`--scan-pool` units made last; minute 1 starts once that pool is full, so every minute scans
the same mix of first and repeat scans and its p99 is comparable with the others. Every minute
it prints the machine's load average, each process's memory (RSS of its whole process group,
MB), CPU and the time its main threads waited for a CPU (% of one core over the minute: high on
a shared, loaded machine), the scans answered (per second, skipped), their latency p50/p99 (request sent
to answer read), and the counts of events acknowledged by the oracle (202), stored by the node
and anchored. With `--kill-node-at S` it SIGKILLs the manufacturer's node S seconds in (the
demo must restart it and say so; nothing acknowledged may be lost).

At the end it stops the load, waits (bounded) until the oracle's queue is empty and the node
has anchored everything, and checks every acknowledged event exactly once: stored once,
anchored, and its submission's status `accepted` (not acknowledged-then-refused). Then it
stops the demo (Ctrl-C) and checks that no process of it is left. Targets (the issue's):
memory growth of every process under 1 MB per minute after the warm-up minutes, scan p99 of
the last minute within 20% of the first, nothing lost, duplicated or refused after its 202.
The last line is one JSON object with every figure.

Killed (SIGINT, SIGTERM), it stops the demo and leaves no process; SIGKILLed, the demo gets
SIGTERM from the kernel (PR_SET_PDEATHSIG) and stops its own children the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node.protocol.event_hash import digest_from_hash  # noqa: E402
from waymark.demo.layout import Ports  # noqa: E402
from waymark.demo.processes import die_with_parent, group_alive, process_stats  # noqa: E402
from waymark.demo.simulation import FACTORY_GLN, GTIN  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_scans import ScanLoad  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KILLED_NODE = "node-manufacturer"  # the node the records go to (--kill-node-at)
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---- processes ------------------------------------------------------------------------------


def group_usage(pgid: int) -> tuple[float, float, float]:
    """(RSS in MB, CPU seconds, seconds the main threads waited for a CPU) summed over the live
    processes of a process group. The wait (/proc/PID/schedstat) tells a process starved by a
    loaded machine from one that is slow itself."""
    rss = cpu = wait = 0.0
    for pid, fields in process_stats():
        if int(fields[2]) != pgid:  # field 5: pgrp
            continue
        cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        rss += int(fields[21]) * PAGE / 1e6  # rss pages
        try:
            wait += int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9  # ns on a run queue
        except (OSError, IndexError, ValueError):
            pass
    return rss, cpu, wait




class Demo:
    """`waymark demo` as a child in a session of its own; its output read by a thread."""

    def __init__(self, root: Path, day_seconds: float) -> None:
        self.root = root
        free = Ports.free()
        self.ports = {"--rpc-port": free.rpc, "--node-port": free.node, "--api-port": free.api, "--relayer-port": free.relayer,
                      "--oracle-port": free.oracles}
        command = [sys.executable, "-m", "waymark", "demo", "--root", str(root), "--day-seconds", str(day_seconds),
                   *[str(x) for option, port in self.ports.items() for x in (option, port)]]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            # Scans come from many simulated phones (X-Forwarded-For), not all from one rate-limited address.
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "WAYMARK_API_TRUST_FORWARDED_FOR": "true"},
            preexec_fn=die_with_parent,
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"demo: no line matching {pattern!r} in {timeout:.0f}s:\n" + "\n".join(self.lines[-40:]))

    def pids(self) -> dict[str, int]:
        data: dict[str, int] = json.loads((self.root / "pids.json").read_text())
        return data

    def stop(self, timeout: float = 90.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # Ctrl-C
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.thread.join(5)


# ---- load ---------------------------------------------------------------------------------


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: dict[str, str] = field(default_factory=dict)  # event id -> status URL
    units: int = 0
    refused_at_once: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_load(oracle_url: str, rate: float, stop: threading.Event, tally: Tally, run: str, serials_per_record: int,
                scans: ScanLoad) -> None:
    """Production records at `rate` per second, each a run of new serials (one commissioning event)."""
    client = httpx.Client(base_url=oracle_url, timeout=30)
    lot = f"SOAK{run}"
    n = 0
    start = time.monotonic()
    while not stop.is_set():
        due = start + n / rate
        if stop.wait(max(0.0, due - time.monotonic())):
            break
        serials = [f"S{run}N{n}X{k}" for k in range(serials_per_record)]
        record = {"runId": f"SOAK-{run}-{n}", "gtin": GTIN, "lot": lot, "serials": serials, "producedAt": now_iso(),
                  "site": {"gln": FACTORY_GLN, "unlocode": "VNSGN"}}
        n += 1
        try:
            response = client.post("/webhooks/production", json=record)
        except httpx.HTTPError as exc:
            with tally.lock:
                tally.errors.append(f"record {n}: {type(exc).__name__}: {exc}")
            continue
        with tally.lock:
            if response.status_code == 202:
                answer = response.json()
                for event_id in answer["eventIds"]:
                    tally.acknowledged[event_id] = answer["statusUrl"]
                tally.units += len(serials)
                scans.add_units([f"/01/{GTIN}/10/{lot}/21/{s}" for s in serials])
            else:
                tally.refused_at_once.append(f"{response.status_code}: {response.text[:200]}")
    client.close()


def api_cache(api_url: str) -> dict[str, float]:
    """The scan API's passport cache (entries, bytes) from its /metrics."""
    try:
        text = httpx.get(f"{api_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        for metric, key in (("waymark_api_passport_cache_entries", "passportCacheEntries"), ("waymark_api_passport_cache_bytes", "passportCacheBytes")):
            if line.startswith(metric + " "):
                found[key] = float(line.split()[1])
    return found


# ---- the node's database ------------------------------------------------------------------


def db_counts(db: Path) -> tuple[int, int]:
    """(events stored, events anchored) in the demo's database (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        stored = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        anchored = conn.execute(
            "SELECT COUNT(*) FROM events e JOIN batches b ON b.id = e.batch_id WHERE b.status IN ('anchored', 'confirmed')"
        ).fetchone()[0]
    finally:
        conn.close()
    return int(stored), int(anchored)


def exactly_once(db: Path, event_ids: list[str]) -> dict[str, int]:
    digests = [digest_from_hash(e) for e in event_ids]
    found: dict[bytes, tuple[int, str | None]] = {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            rows = conn.execute(
                "SELECT e.digest, COUNT(*), MAX(b.status) FROM events e LEFT JOIN batches b ON b.id = e.batch_id"
                f" WHERE e.digest IN ({', '.join('?' * len(chunk))}) GROUP BY e.digest", chunk,
            ).fetchall()
            for digest, count, status in rows:
                found[bytes(digest)] = (int(count), status)
    finally:
        conn.close()
    missing = sum(1 for d in digests if d not in found)
    duplicated = sum(1 for count, _s in found.values() if count > 1)
    unanchored = sum(1 for _c, status in found.values() if status not in ("anchored", "confirmed"))
    return {"checked": len(digests), "missing": missing, "duplicated": duplicated, "notAnchored": unanchored}


# ---- figures ------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:g}%"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope (per unit of x) of (x, y) points."""
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of load (default 30)")
    parser.add_argument("--short", action="store_true", help="CI size: 2 minutes, 4 records/s, 10 scans/s over 200 units, 1 warm-up minute")
    parser.add_argument("--records-per-second", type=float, default=10.0)
    parser.add_argument("--serials-per-record", type=int, default=2)
    parser.add_argument("--scans-per-second", type=float, default=50.0)
    parser.add_argument("--scan-concurrency", type=int, default=64, help="scans in flight at most (default 64)")
    parser.add_argument("--scan-pool", type=int, default=1000,
                        help="scans pick among this many most recently made units (default 1000); minute 1 starts once it is full")
    parser.add_argument("--warmup-minutes", type=int, default=5, help="minutes left out of the memory-growth slope")
    parser.add_argument("--kill-node-at", type=float, default=None, help="SIGKILL the node this many seconds into the load")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for delivery and anchoring at the end")
    parser.add_argument("--root", type=Path, default=None, help="demo state folder (default: a fresh temporary one)")
    args = parser.parse_args()
    if args.short:
        args.minutes, args.records_per_second, args.scans_per_second, args.warmup_minutes, args.scan_pool = 2.0, 4.0, 10.0, 1, 200

    temporary = None
    if args.root is None:
        temporary = tempfile.TemporaryDirectory(prefix="waymark-soak-")
        args.root = Path(temporary.name)
    demo = Demo(args.root.resolve(), day_seconds=0.25)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    started_scans: ScanLoad | None = None

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)  # also when started in the background, where SIGINT comes ignored
    result: dict[str, Any] = {"minutes": args.minutes, "recordsPerSecond": args.records_per_second, "scansPerSecond": args.scans_per_second}
    exit_code = 1
    try:
        oracles = demo.wait_for(r"^oracles\s+(.*)$", 600).group(1)
        manufacturer = re.search(r"\bmanufacturer (http://[^\s,]+)", oracles)
        assert manufacturer is not None, oracles
        demo.wait_for(r"^ready\b", 900)
        demo.wait_for(r"^press Ctrl-C", 60)
        api_url = f"http://127.0.0.1:{demo.ports['--api-port']}"
        db = args.root / "waymark.sqlite3"
        print(f"demo ready (state in {args.root}); load: {args.records_per_second:g} records/s x {args.serials_per_record} serials, "
              f"{args.scans_per_second:g} scans/s, {args.minutes:g} min", flush=True)
        tally = Tally()
        run = f"{int(time.time()) % 10**6}"
        scans = started_scans = ScanLoad(api_url, args.scans_per_second, args.scan_concurrency, args.scan_pool)
        threads.append(threading.Thread(target=record_load, args=(manufacturer.group(1), args.records_per_second, stop, tally, run,
                                                                   args.serials_per_record, scans), daemon=True))
        for thread in threads:
            thread.start()
        # Lead-in: minute 1 starts once the scan pool is full, so every minute scans the same mix.
        lead_in_deadline = time.monotonic() + 600
        while time.monotonic() < lead_in_deadline:
            with tally.lock:
                if tally.units >= args.scan_pool:
                    break
            time.sleep(0.5)
        scans.cut()
        print(f"lead-in done: {tally.units} units made, scan pool full", flush=True)

        minutes: list[dict[str, Any]] = []
        began = time.monotonic()
        last_cpu: dict[str, float] = {}
        last_wait: dict[str, float] = {}
        pids = demo.pids()
        names = list(pids)  # the demo itself, anvil, each member's node and scan API, the relayer
        for name in names:
            _rss, last_cpu[name], last_wait[name] = group_usage(pids[name])
        last_t = time.monotonic()
        killed = False
        total = args.minutes * 60
        minute = 0
        while time.monotonic() - began < total:
            next_mark = began + min(total, (minute + 1) * 60)
            while time.monotonic() < next_mark:
                if args.kill_node_at is not None and not killed and time.monotonic() - began >= args.kill_node_at:
                    os.killpg(demo.pids()[KILLED_NODE], signal.SIGKILL)
                    killed = True
                    print(f"soak: killed {KILLED_NODE} (pid {demo.pids()[KILLED_NODE]}) at {time.monotonic() - began:.0f}s", flush=True)
                time.sleep(min(1.0, max(0.0, next_mark - time.monotonic())))
            minute += 1
            now = time.monotonic()
            pids = demo.pids()
            window = scans.cut()
            with tally.lock:
                acknowledged = len(tally.acknowledged)
            stored, anchored = db_counts(db)
            cache = api_cache(api_url)
            row: dict[str, Any] = {"minute": minute, "scans": len(window["ms"]), "scansSent": window["sent"], "scansSkipped": window["skipped"],
                                   "scanErrors": window["errors"], "scanLagMaxMs": round(window["lagMs"], 1),
                                   "scanP50ms": percentile(window["ms"], 0.5), "scanP99ms": percentile(window["ms"], 0.99),
                                   "acknowledged": acknowledged, "stored": stored, "anchored": anchored, **cache}
            row["scansPerSecond"] = round(row["scans"] / (now - last_t), 1)
            row["loadAverage1m"] = round(os.getloadavg()[0], 1)  # the machine's (shared: other work shows here)
            for name in names:
                rss, cpu, wait = group_usage(pids[name])
                row[f"{name}MB"] = round(rss, 1)
                row[f"{name}Cpu%"] = round(100 * (cpu - last_cpu[name]) / (now - last_t), 1) if cpu >= last_cpu[name] else None
                row[f"{name}Wait%"] = round(100 * (wait - last_wait[name]) / (now - last_t), 1) if wait >= last_wait[name] else None
                last_cpu[name], last_wait[name] = cpu, wait
            last_t = now
            minutes.append(row)
            p50, p99 = row["scanP50ms"], row["scanP99ms"]
            print(f"min {minute:3d}  scans {row['scans']:5d} ({row['scansPerSecond']}/s, {window['skipped']} skipped) p50 {p50 or 0:7.1f} ms p99 {p99 or 0:7.1f} ms  "
                  f"acknowledged {acknowledged:6d} stored {stored:6d} anchored {anchored:6d}  "
                  f"passport cache {cache.get('passportCacheEntries', 0):.0f} / {cache.get('passportCacheBytes', 0) / 1e6:.0f}MB  "
                  + f"load {row['loadAverage1m']}  "
                  + "  ".join(f"{n} {row[f'{n}MB']:.0f}MB {_pct(row[f'{n}Cpu%'])} cpu {_pct(row[f'{n}Wait%'])} wait" for n in names),
                  flush=True)
        stop.set()
        scans.stop()
        for thread in threads:
            thread.join(60)

        # Drain: every acknowledged event delivered and anchored (bounded wait).
        with tally.lock:
            acknowledged_ids = list(tally.acknowledged)
            status_urls = sorted(set(tally.acknowledged.values()))
        oracle = httpx.Client(base_url=manufacturer.group(1), timeout=30)
        deadline = time.monotonic() + args.drain_timeout
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            for url in status_urls:
                if statuses.get(url) in (None, "pending"):
                    statuses[url] = oracle.get(url).json()["status"]
            check = exactly_once(db, acknowledged_ids)
            if all(s != "pending" for s in statuses.values()) and check["missing"] == 0 and check["notAnchored"] == 0:
                break
            time.sleep(2)
        oracle.close()
        check = exactly_once(db, acknowledged_ids)
        refused_later = sum(1 for s in statuses.values() if s == "refused")
        still_pending = sum(1 for s in statuses.values() if s == "pending")

        warm = [m for m in minutes if m["minute"] > args.warmup_minutes]
        growth = {n: slope([(m["minute"], m[f"{n}MB"]) for m in warm]) for n in names}
        first_p99 = minutes[0]["scanP99ms"] if minutes else None
        last_p99 = minutes[-1]["scanP99ms"] if minutes else None
        restarts = [line for line in demo.lines if re.match(r"^\w+ (exited with code|restarted)", line)]
        result.update({
            "perMinute": minutes,
            "memoryGrowthMBPerMin": {n: (round(g, 2) if g is not None else None) for n, g in growth.items()},
            "scanP99FirstMs": first_p99, "scanP99LastMs": last_p99,
            "scanP99Ratio": round(last_p99 / first_p99, 2) if first_p99 and last_p99 else None,
            "scanStatus": {str(k): v for k, v in sorted(scans.status.items())}, "scanErrors": scans.errors,
            "scanErrorKinds": scans.error_kinds,
            "acknowledged": len(acknowledged_ids), "submissions": len(status_urls), "refusedAtOnce": len(tally.refused_at_once),
            "refusedAfterAcknowledged": refused_later, "stillPending": still_pending, "exactlyOnce": check,
            "recordErrors": tally.errors[:5], "nodeKilledAt": args.kill_node_at, "demoSaid": restarts,
        })
        targets = {
            "memoryUnder1MBPerMin": all(g is not None and g < 1.0 for g in growth.values()) if warm and len(warm) >= 2 else None,
            "scanP99Within20Percent": (last_p99 <= 1.2 * first_p99) if first_p99 and last_p99 else None,
            "nothingLostDuplicatedOrRefused": check["missing"] == 0 and check["duplicated"] == 0 and check["notAnchored"] == 0
            and refused_later == 0 and still_pending == 0,
        }
        result["targets"] = targets
        exit_code = 0 if targets["nothingLostDuplicatedOrRefused"] else 2
    except KeyboardInterrupt as stopped:
        result["interrupted"] = str(stopped) or "SIGINT"
        exit_code = 130
    finally:
        stop.set()
        if started_scans is not None and started_scans.process.is_alive():
            started_scans.process.kill()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pids_seen: dict[str, int] = {}
        try:
            pids_seen = demo.pids()
        except (OSError, ValueError):
            pass
        demo.stop()
        left = [name for name, pid in pids_seen.items() if group_alive(pid)] + (["demo"] if group_alive(demo.process.pid) else [])
        result["processesLeft"] = left
        if temporary is not None:
            temporary.cleanup()
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
