#!/usr/bin/env bash
# Static analysis of the Waymark contracts with slither, in its own virtual environment
# (.venv-slither, created on first use), compiled through the solc-js front scripts/solc-js
# (native solc cannot be downloaded on our machines; crytic-compile drives it with
# --standard-json, which the front answers like native solc).
#
# What is analysed: the deployable contracts at the top of contracts/ (ConsortiumRegistry,
# ProvenanceRegistry, TradeEscrow) with everything they import (interfaces, libraries,
# OpenZeppelin). contracts/mocks/ and contracts/devnet/ (test and devnet tokens) are left out.
#
# Exit status: 0 when no High finding remains, 1 when one does (a High finding in OpenZeppelin
# code counts too, unless it is one of the reviewed false positives in KNOWN_HIGH below),
# 2 when slither could not run. Medium findings are listed; each is explained in
# contracts/SLITHER.md, and one whose detector is not mentioned there is flagged.
#
# Usage: scripts/slither.sh [--all]     (--all also lists Low and Informational findings)
#        WAYMARK_SLITHER_VENV=<dir> to put the environment elsewhere; PYTHON=<python3.10+>.
set -euo pipefail

SLITHER_VERSION=0.11.6
CRYTIC_COMPILE_VERSION=0.4.2

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${WAYMARK_SLITHER_VENV:-$ROOT/.venv-slither}
PYTHON=${PYTHON:-python3}
SHOW_ALL=0
[[ "${1:-}" == "--all" ]] && SHOW_ALL=1

if [[ "$("$VENV/bin/slither" --version 2>/dev/null || true)" != "$SLITHER_VERSION" ]]; then
  echo "slither: creating $VENV (slither-analyzer $SLITHER_VERSION, crytic-compile $CRYTIC_COMPILE_VERSION)" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "slither-analyzer==$SLITHER_VERSION" "crytic-compile==$CRYTIC_COMPILE_VERSION"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$ROOT"
started=$(date +%s)
# slither's exit status counts findings; the verdict below is taken from its JSON report.
"$VENV/bin/slither" contracts \
  --solc-standard-json \
  --solc scripts/solc-js \
  --solc-remaps "@openzeppelin/=node_modules/@openzeppelin/" \
  --json "$work/report.json" >"$work/slither.log" 2>&1 || true
elapsed=$(( $(date +%s) - started ))

if [[ ! -s "$work/report.json" ]]; then
  cat "$work/slither.log" >&2
  echo "slither: no report (compilation or analysis failed)" >&2
  exit 2
fi

"$VENV/bin/python" - "$work/report.json" "$work/slither.log" "$ROOT/contracts/SLITHER.md" "$SHOW_ALL" "$elapsed" <<'PY'
import json
import sys
from collections import Counter
from pathlib import Path

report_path, log_path, notes_path, show_all, elapsed = sys.argv[1:6]
report = json.loads(Path(report_path).read_text())
if not report.get("success"):
    sys.stderr.write(Path(log_path).read_text())
    print(f"slither: failed: {report.get('error')}", file=sys.stderr)
    sys.exit(2)

# High findings in dependency code that were reviewed and are false positives: (detector, file).
KNOWN_HIGH = {
    # Math.mulDiv seeds Newton's iteration for the modular inverse with `(3 * denominator) ^ 2`:
    # XOR is meant (a value correct to four bits), not exponentiation.
    ("incorrect-exp", "node_modules/@openzeppelin/contracts/utils/math/Math.sol"),
}
ORDER = ("High", "Medium", "Low", "Informational", "Optimization")


def files(result: dict) -> set[str]:
    return {
        e["source_mapping"]["filename_relative"]
        for e in result.get("elements", [])
        if e.get("source_mapping", {}).get("filename_relative")
    }


def ours(result: dict) -> bool:
    return any(not f.startswith("node_modules/") for f in files(result))


def first_line(result: dict) -> str:
    return result["description"].strip().splitlines()[0]


results = report.get("results", {}).get("detectors", [])
own = [r for r in results if ours(r)]
deps = [r for r in results if not ours(r)]
count_own = Counter(r["impact"] for r in own)
count_deps = Counter(r["impact"] for r in deps)
print(f"slither: {len(results)} findings in {elapsed}s "
      f"(our contracts: {', '.join(f'{count_own[i]} {i}' for i in ORDER if count_own[i]) or 'none'}; "
      f"OpenZeppelin only: {', '.join(f'{count_deps[i]} {i}' for i in ORDER if count_deps[i]) or 'none'})")

notes = Path(notes_path).read_text() if Path(notes_path).exists() else ""
failing = []
for r in results:
    if r["impact"] != "High":
        continue
    reviewed = not ours(r) and any((r["check"], f) in KNOWN_HIGH for f in files(r))
    print(f"  HIGH [{r['check']}]{' (reviewed false positive)' if reviewed else ''}: {first_line(r)}")
    if not reviewed:
        failing.append(r)
undocumented = set()
for r in own:
    if r["impact"] == "Medium":
        documented = f"`{r['check']}`" in notes
        if not documented:
            undocumented.add(r["check"])
        print(f"  medium [{r['check']}]{'' if documented else ' (NOT EXPLAINED in contracts/SLITHER.md)'}: "
              f"{first_line(r)}")
if show_all == "1":
    for impact in ORDER[2:]:
        for r in own:
            if r["impact"] == impact:
                print(f"  {impact.lower()} [{r['check']}]: {first_line(r)}")
if undocumented:
    print(f"slither: medium findings not explained in contracts/SLITHER.md: {', '.join(sorted(undocumented))}")
if failing:
    print(f"slither: FAILED, {len(failing)} high-severity finding(s)")
    sys.exit(1)
print("slither: no high-severity finding")
PY
