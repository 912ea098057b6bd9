"""An audit report written out: JSON for programs (`AuditReport.to_json`, schema
waymark.audit.report/1, plus the bundle's manifest check when the evidence was a bundle) and
one self-contained HTML page for people (no scripts, no external assets).

Everything in a report that came from evidence (subjects, details, objects) is untrusted text:
the HTML escapes every value it prints, attributes included.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from node.audit.model import AuditReport, Discrepancy, DiscrepancyKind

KIND_TITLES: Mapping[DiscrepancyKind, str] = {
    DiscrepancyKind.EVENT_DATA_MISSING: "Event data missing",
    DiscrepancyKind.HASH_MISMATCH: "Hash mismatch",
    DiscrepancyKind.SIGNATURE_INVALID: "Signature invalid",
    DiscrepancyKind.SIGNER_LACKED_ROLE: "Signer lacked role",
    DiscrepancyKind.EVENT_NEVER_ANCHORED: "Event never anchored",
    DiscrepancyKind.ROOT_NOT_ON_CHAIN: "Root not on chain",
    DiscrepancyKind.ESCROW_TRANSITION_UNBACKED: "Escrow transition without backing",
    DiscrepancyKind.LATE: "Anchored late (past the reporting delay)",
    DiscrepancyKind.SIGNER_REVOKED: "Signer lost its role before anchoring",
}

CHECKED_TITLES: Sequence[tuple[str, str]] = (
    ("events", "Events verified (hash, signature, role, anchoring)"),
    ("pendingEvents", "Events pending within their reporting delay"),
    ("batches", "Roots checked against the chain"),
    ("anchoredRoots", "Anchors replayed from the chain"),
    ("registryChanges", "Registry changes replayed"),
    ("escrowOrders", "Escrow orders"),
    ("escrowTransitions", "Escrow transitions checked"),
    ("escrowSignatures", "Escrow attestations examined"),
)


def report_json(report: AuditReport, manifest_problems: Sequence[str] = ()) -> dict[str, Any]:
    """The report's JSON; with a bundle's manifest problems under `bundle.manifestProblems`
    (readers of the schema ignore keys they do not know)."""
    data = report.to_json()
    if manifest_problems:
        data["ok"] = False
        data["bundle"] = {"manifestProblems": list(manifest_problems)}
    return data


def _write(path: Path, data: bytes) -> None:
    """Replace `path` whole (a reader never sees half a report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_json(report: AuditReport, path: Path, manifest_problems: Sequence[str] = ()) -> None:
    _write(path, orjson.dumps(report_json(report, manifest_problems), option=orjson.OPT_INDENT_2) + b"\n")


def write_html(report: AuditReport, path: Path, manifest_problems: Sequence[str] = ()) -> None:
    _write(path, render_html(report, manifest_problems).encode())


# ---- HTML --------------------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1f24}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
h3{font-size:1rem;margin:1.4rem 0 .4rem}
table{border-collapse:collapse;width:100%;margin:.4rem 0}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e4e8ec;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;width:8rem}
code,.mono{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.verdict{display:inline-block;padding:.25rem .7rem;border-radius:1rem;font-weight:600}
.ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}
.zero{color:#6e7781}dl{margin:0}dt{font-weight:600;float:left;clear:left;width:7rem}dd{margin:0 0 0 7.5rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _kind_title(kind: str) -> str:
    try:
        return KIND_TITLES[DiscrepancyKind(kind)]
    except ValueError:
        return kind


def _objects(objects: Mapping[str, str]) -> str:
    if not objects:
        return ""
    rows = "".join(f"<dt>{_e(k)}</dt><dd><code>{_e(v)}</code></dd>" for k, v in objects.items())
    return f"<dl>{rows}</dl>"


def _discrepancies(discrepancies: Sequence[Discrepancy]) -> str:
    parts: list[str] = []
    for kind in DiscrepancyKind:
        found = [d for d in discrepancies if d.kind == kind]
        if not found:
            continue
        rows = "".join(
            f"<tr><td><code>{_e(d.subject)}</code></td><td>{_e(d.detail)}</td><td>{_objects(d.objects)}</td></tr>"
            for d in found
        )
        parts.append(
            f'<h3 id="{_e(kind.value)}">{_e(KIND_TITLES[kind])} ({len(found)})</h3>'
            f"<table><thead><tr><th>Subject</th><th>Detail</th><th>Objects</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "".join(parts)


def render_html(report: AuditReport, manifest_problems: Sequence[str] = ()) -> str:
    """The report as one HTML page with everything inline."""
    clean = report.ok and not manifest_problems
    verdict = (
        '<span class="verdict ok">No discrepancies</span>' if clean
        else f'<span class="verdict bad">{len(report.discrepancies) + len(manifest_problems)} problem(s) found</span>'
    )
    checked = report.checked.to_json()
    checked_rows = "".join(f'<tr><td>{_e(title)}</td><td class="n">{checked.get(key, 0)}</td></tr>' for key, title in CHECKED_TITLES)
    kind_rows = "".join(
        f'<tr><td>{_e(_kind_title(kind))} <code class="zero">{_e(kind)}</code></td>'
        f'<td class="n{" zero" if not count else ""}">{count}</td></tr>'
        for kind, count in report.by_kind().items()
    )
    contracts = "".join(f"<tr><td>{_e(name)}</td><td><code>{_e(address)}</code></td></tr>" for name, address in sorted(report.contracts.items()))
    manifest = ""
    if manifest_problems:
        items = "".join(f"<li><code>{_e(p)}</code></li>" for p in manifest_problems)
        manifest = (
            '<h2 id="manifest">Bundle manifest</h2><p class="verdict bad">The bundle was altered after export: '
            f"these files do not match its manifest.</p><ul>{items}</ul>"
        )
    details = _discrepancies(report.discrepancies) or "<p>None.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Waymark audit: chain {_e(report.chain_id)}</title><style>{_STYLE}</style></head>
<body>
<h1>Waymark audit report</h1>
<p>{verdict}</p>
<table>
<tr><th>Chain id</th><td>{_e(report.chain_id)}</td></tr>
<tr><th>Blocks</th><td>{_e(report.from_block)} to {_e(report.to_block)}</td></tr>
<tr><th>Evidence</th><td><code>{_e(report.evidence)}</code></td></tr>
<tr><th>Started</th><td>{_e(report.started_at or "-")}</td></tr>
<tr><th>Time taken</th><td>{report.elapsed_s:.2f} s</td></tr>
</table>
<h2>Contracts</h2><table><thead><tr><th>Contract</th><th>Address</th></tr></thead><tbody>{contracts}</tbody></table>
<h2>What was checked</h2><table><tbody>{checked_rows}</tbody></table>
<h2>Discrepancies by kind</h2><table><tbody>{kind_rows}</tbody></table>
{manifest}
<h2>Discrepancies</h2>
{details}
</body></html>
"""
