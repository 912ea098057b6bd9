"""The CSV drop folder under poison input: a row the csv module cannot read is a rejected row
(named by line), a file that fails on every try is quarantined after a bounded number of tries
with a report, neither ever blocks the next file; and a report says what the node finally did."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import orjson

from oracle.runtime import OracleRuntime
from tests.oracle.conftest import OracleFactory
from tests.oracle.journey import GTIN, LOT, Journey, at
from tests.oracle.servers import NodeProcess

HEADER = "run_id,gtin,lot,serial,produced_at,site_unlocode\n"


def production_csv(j: Journey, run: str, serials: list[str], produced_at: str | None = None) -> str:
    when = produced_at or at(j.t0, 10)
    return HEADER + "".join(f"{run},{GTIN},{LOT},{s},{when},VNSGN\n" for s in serials)


def drop(runtime: OracleRuntime, name: str, content: str, age: float) -> Path:
    """A file in the inbox, `age` seconds old (older files are read first)."""
    path = runtime.settings.csv_dir() / "inbox" / name
    path.write_text(content)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def deliver_all(runtime: OracleRuntime, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while runtime.queue.pending() and time.monotonic() < deadline:
        if not runtime.delivery.step():
            time.sleep(0.05)
    assert runtime.queue.pending() == 0, runtime.queue.counts()


def report_of(folder: Path, name: str) -> dict[str, Any]:
    (path,) = folder.glob(f"*{name}.report.json")
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def test_a_field_over_the_csv_limit_is_a_rejected_row_and_the_next_file_goes_through(
    make_oracle: OracleFactory, node: NodeProcess, chain_now: int
) -> None:
    runtime = make_oracle("manufacturer")
    folder = runtime.csv
    assert folder is not None
    j = Journey(chain_now + 5, tag=6)
    huge = production_csv(j, "RUN-A", ["A1"]) + f"RUN-A,{GTIN},{LOT},{'x' * 140_000},{at(j.t0, 10)},VNSGN\n"
    drop(runtime, "production_huge.csv", huge, age=20)
    drop(runtime, "production_next.csv", production_csv(j, "RUN-B", ["B1", "B2"]), age=10)
    reports = folder.scan()
    assert [r.file for r in reports] == ["production_huge.csv", "production_next.csv"]
    huge_report = report_of(folder.rejected, "production_huge.csv")
    assert huge_report["accepted"] == 1 and huge_report["rejected"] == 1
    (rejected_rows,) = folder.rejected.glob("*production_huge.csv.rejected.csv")
    listing = rejected_rows.read_text()
    assert listing.splitlines()[1].startswith("3,(row),unreadable CSV: field larger than field limit (131072)")
    assert report_of(folder.processed, "production_next.csv")["accepted"] == 2
    assert not list(folder.inbox.iterdir())


def test_a_file_failing_on_every_try_is_quarantined_after_bounded_tries_without_blocking_others(
    make_oracle: OracleFactory, node: NodeProcess, chain_now: int
) -> None:
    runtime = make_oracle("manufacturer", max_poison_tries=3)
    folder = runtime.csv
    assert folder is not None
    j = Journey(chain_now + 5, tag=7)
    # An operator replaced processed/ with a file: a file of good rows cannot be moved there, every try.
    shutil.rmtree(folder.processed)
    folder.processed.write_text("not a folder")
    drop(runtime, "production_poison.csv", production_csv(j, "RUN-P", ["P1"]), age=30)
    for attempt in range(1, 4):
        drop(runtime, f"production_bad{attempt}.csv", production_csv(j, f"RUN-X{attempt}", ["X1"], "not a time"), age=30 - attempt)
        reports = folder.scan()
        # The files after the poison one are read at every scan, whatever happens to it.
        assert [r.file for r in reports] == [f"production_bad{attempt}.csv"]
        assert report_of(folder.rejected, f"production_bad{attempt}.csv")["rejected"] == 1
        in_inbox = [p.name for p in folder.inbox.iterdir()]
        assert in_inbox == (["production_poison.csv"] if attempt < 3 else [])
    quarantined = report_of(folder.quarantine, "production_poison.csv")
    assert quarantined["quarantined"] is True and quarantined["tries"] == 3
    assert len(quarantined["errors"]) == 3 and all("NotADirectoryError" in e or "Not a directory" in e for e in quarantined["errors"])
    assert list(folder.quarantine.glob("*-production_poison.csv"))
    # Its rows were acknowledged before the move failed: queued once, whatever the tries.
    assert runtime.queue.counts()["event"]["pending"] == 1


def test_the_report_says_what_the_node_finally_did(make_oracle: OracleFactory, node: NodeProcess, chain_now: int) -> None:
    runtime = make_oracle("manufacturer")
    folder = runtime.csv
    assert folder is not None
    j = Journey(chain_now + 5, tag=8)
    # This oracle cannot read the registry's history (role_at unknown): it acknowledges a run dated
    # before its organisation held MANUFACTURER; the node, which can, refuses it.
    runtime.oracle.role_at = None
    drop(runtime, "production_mixed.csv", production_csv(j, "RUN-OK", ["K1"]) + production_csv(j, "RUN-OLD", ["O1"], "2001-01-01T00:00:00Z")[len(HEADER):], age=10)
    drop(runtime, "production_clean.csv", production_csv(j, "RUN-C", ["C1"]), age=5)
    folder.scan()
    mixed = report_of(folder.processed, "production_mixed.csv")
    assert mixed["accepted"] == 2 and mixed["node"] == "pending"
    deliver_all(runtime)
    folder.follow_up()
    # Moved to rejected/ with the node's answer for line 3; the clean file says stored.
    assert not list(folder.processed.glob("*production_mixed.csv*"))
    final = report_of(folder.rejected, "production_mixed.csv")
    assert final["node"] == "refused"
    (refusal,) = final["refusedByNode"]
    assert refusal["lines"] == [3] and "did not hold MANUFACTURER" in refusal["errors"][0]
    assert list(folder.rejected.glob("*-production_mixed.csv"))
    assert report_of(folder.processed, "production_clean.csv")["node"] == "stored"
