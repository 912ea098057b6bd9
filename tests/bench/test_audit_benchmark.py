"""The audit benchmark runs end to end on a small history: an honest history audits clean, and
the re-audit from its checkpoint checks only the events added since. The benchmark is not run
by the suite otherwise, and it once broke unseen (it anchored every organisation's events from
one organisation's account, which the audit rightly refused)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from node.paths import PROJECT_ROOT


def test_the_audit_benchmark_audits_its_honest_history_clean_and_re_audits_only_what_was_added(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "scripts/bench/audit.py", "--events", "400", "--new-percent", "1", "--baseline", "20",
         "--batch-size", "100", "--workers", "2", "--work", str(tmp_path / "work")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["events"] == 400
    assert figures["naive_events"] == 20
    assert figures["incremental_new_events"] == 4
    assert figures["full_same_data_events"] == 404
