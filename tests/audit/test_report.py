"""Written reports: the JSON reads back as the same report (plus a bundle's manifest problems),
and the HTML page is self-contained with every piece of evidence text escaped."""

from __future__ import annotations

import json
import re
from pathlib import Path

from node.audit import AuditReport, Checked, Discrepancy, DiscrepancyKind
from node.audit.report import render_html, write_html, write_json

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def sample(discrepancies: list[Discrepancy]) -> AuditReport:
    return AuditReport(
        chain_id=31337, contracts={"ProvenanceRegistry": "0x" + "ab" * 20}, from_block=3, to_block=90,
        evidence="database sqlite:///x", checked=Checked(events=24, batches=2, anchored_roots=2),
        discrepancies=discrepancies, elapsed_s=1.25, started_at="2025-07-01T00:00:00Z",
    )


def test_the_json_report_reads_back_and_carries_manifest_problems(tmp_path: Path) -> None:
    report = sample([Discrepancy(DiscrepancyKind.HASH_MISMATCH, "ni:///sha-256;" + "0" * 64 + "?ver=CBV2.0", "edited", {"event": "e"})])
    write_json(report, tmp_path / "r.json")
    assert AuditReport.from_json(json.loads((tmp_path / "r.json").read_text())) == report
    write_json(sample([]), tmp_path / "b.json", ["events.json: sha-256 1 does not match the manifest's 2"])
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["ok"] is False and data["bundle"]["manifestProblems"] == ["events.json: sha-256 1 does not match the manifest's 2"]
    assert AuditReport.from_json(data).discrepancies == []


def test_the_html_report_escapes_evidence_text_and_loads_nothing_from_outside(tmp_path: Path) -> None:
    report = sample([Discrepancy(DiscrepancyKind.SIGNER_LACKED_ROLE, HOSTILE, HOSTILE, {HOSTILE: HOSTILE, "signer": '"><b>'})])
    page = render_html(report, [HOSTILE])
    assert "<script" not in page and "<img" not in page and '"><b>' not in page
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == 5  # subject, detail, key, value, manifest
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "default-src 'none'" in page
    assert "Signer lacked role (1)" in page and "31337" in page and "3 to 90" in page and "1.25 s" in page
    write_html(sample([]), tmp_path / "clean.html")
    assert "No discrepancies" in (tmp_path / "clean.html").read_text()
