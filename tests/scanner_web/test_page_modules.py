"""The page's trust modules under Node (no browser): the page's words exist in every language the
page offers, members.js compares node answers as the page documents, and build.mjs compiles the
trust anchors into the bundle (deterministically) and refuses malformed ones naming the field."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from node.paths import PROJECT_ROOT

CLI = Path(__file__).parent / "page_cli.mjs"
BUILD = PROJECT_ROOT / "scanner_web" / "build.mjs"
ANCHORS = {
    "chainId": 31337, "rpcUrl": "http://127.0.0.1:8545", "consortiumRegistry": "0x" + "aa" * 20,
    "provenanceRegistry": "0x" + "bb" * 20, "confirmationsRequired": 0,
}


def run_js(payload: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(["node", str(CLI)], input=json.dumps(payload), capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_pages_trust_words_exist_in_every_language_the_page_offers() -> None:
    out = run_js({"strings": True})
    assert out["pageLanguages"] == out["languages"]
    assert out["problems"] == []


def event_id(n: int) -> str:
    return f"ni:///sha-256;{n:064x}?ver=CBV2.0"


def item(n: int, anchored: bool = True) -> dict[str, Any]:
    return {"id": event_id(n), "bizStep": "shipping", "eventTime": "2026-01-01T00:00:00.000Z", "verification": {"anchor": {"blockNumber": 1} if anchored else None}}


def answer(name: str, *events: int) -> dict[str, Any]:
    return {"node": {"orgId": len(name), "name": name, "url": f"http://{name}"}, "ok": True,
            "events": {event_id(n): {"bizStep": "retail_selling", "eventTime": "2026-01-02T00:00:00.000Z"} for n in events}}


def test_members_compare_counts_confirmations_and_names_what_is_missing_or_extra() -> None:
    passport = {"timeline": [item(1), item(2), item(3, anchored=False)]}  # 3 is pending: only its own node has it
    answers = [
        answer("A", 1, 2),
        answer("B", 1, 2, 9),  # holds 9, which the page does not show
        answer("C", 1),  # lacks 2
        {"node": {"orgId": 4, "name": "D", "url": "http://D"}, "ok": False, "error": "timeout"},
    ]
    out = run_js({"compare": {"passport": passport, "answers": answers}})
    assert (out["total"], out["answered"]) == (4, 3)
    assert out["confirmedBy"] == ["A", "B"]
    assert out["heldBy"] == {event_id(1): ["A", "B", "C"], event_id(2): ["A", "B"]}
    assert out["lacking"] == [{"id": event_id(2), "missingOn": ["C"]}]
    assert out["omitted"] == [{"id": event_id(9), "bizStep": "retail_selling", "eventTime": "2026-01-02T00:00:00.000Z", "heldBy": ["B"]}]
    assert out["silent"] == ["D"]


def build(tmp_path: Path, anchors: dict[str, Any], name: str) -> subprocess.CompletedProcess[str]:
    file = tmp_path / f"{name}.json"
    file.write_text(json.dumps(anchors))
    return subprocess.run(["node", str(BUILD), "--anchors", str(file), "--outdir", str(tmp_path / name)], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)


def test_the_bundle_is_deterministic_and_its_hash_covers_the_trust_anchors(tmp_path: Path) -> None:
    hashes = {}
    for name, anchors in [("one", ANCHORS), ("again", ANCHORS), ("other-rpc", {**ANCHORS, "rpcUrl": "https://rpc.example"})]:
        assert build(tmp_path, anchors, name).returncode == 0
        bundle = (tmp_path / name / "app.js").read_bytes()
        recorded = json.loads((tmp_path / name / "bundle.json").read_text())
        assert recorded["sha256"] == "0x" + hashlib.sha256(bundle).hexdigest()
        assert recorded["anchors"]["rpcUrl"] == anchors["rpcUrl"]
        hashes[name] = recorded["sha256"]
    assert hashes["one"] == hashes["again"] != hashes["other-rpc"]


@pytest.mark.parametrize(("change", "named"), [
    ({"chainId": 0}, "chainId must be a positive integer"),
    ({"consortiumRegistry": "0x1234"}, "consortiumRegistry must be a 0x-prefixed 20-byte address"),
    ({"rpcUrl": "ws://127.0.0.1:8546"}, "rpcUrl must be an http(s) URL"),
    ({"confirmationsRequired": -1}, "confirmationsRequired must be a whole number >= 0"),
    ({"registry": "0x" + "aa" * 20}, "unknown field registry"),
])
def test_malformed_trust_anchors_fail_the_build_naming_the_field(tmp_path: Path, change: dict[str, Any], named: str) -> None:
    done = build(tmp_path, {**ANCHORS, **change}, "bad")
    assert done.returncode == 2
    assert named in done.stderr
    assert not (tmp_path / "bad" / "app.js").exists()
