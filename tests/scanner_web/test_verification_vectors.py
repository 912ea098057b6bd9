"""The page's verifier (scanner_web/src/verify.js), run in the Debian chromium, answers every
verification vector exactly as the Python core did when it wrote them
(tests/protocol/data/verification_vectors.json, from node/protocol/verification.py): each check passing
and failing, pending and overdue, the host's anchor, and each mark. A rule changed in the core
fails tests/protocol/test_verification_vectors.py until the vectors are written again, and then
fails here until verify.js says the same."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from node.paths import PROJECT_ROOT
from tests.protocol.verification_vectors import PATH
from tests.scanner_web.conftest import CHROMIUM

DRIVER = Path(__file__).parent / "vectors_browser.mjs"
VECTORS: dict[str, Any] = json.loads(PATH.read_text())
FIELDS = ("status", "failedCheck", "marks", "overdue", "signerOrg", "role", "anchorOrg", "checks")


@pytest.fixture(scope="module")
def in_chromium() -> dict[str, dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is not installed at {CHROMIUM} (scripts/debian-packages.txt lists it)")
    done = subprocess.run(["node", str(DRIVER), json.dumps({"vectors": str(PATH), "executable": CHROMIUM})],
                          capture_output=True, text=True, timeout=180, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert "failure" not in out, out["failure"]
    assert not out["errors"], out["errors"]
    assert "Chrome" in out["userAgent"]
    return {r["name"]: r for r in out["results"]}


@pytest.mark.parametrize("case", VECTORS["events"], ids=lambda c: c["name"])
def test_the_browser_verifier_answers_a_vector_as_the_python_core(in_chromium: dict[str, dict[str, Any]], case: dict[str, Any]) -> None:
    found = in_chromium[case["name"]]
    assert {k: found[k] for k in FIELDS} == {k: case["expect"][k] for k in FIELDS}


def test_every_event_vector_ran_in_the_browser(in_chromium: dict[str, dict[str, Any]]) -> None:
    assert set(in_chromium) == {c["name"] for c in VECTORS["events"]}
