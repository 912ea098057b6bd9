"""The page's JavaScript CBV 2.0 event hash (scanner_web/src/eventhash.js) under Node agrees with
the published test vectors and with node/provenance/event_hash.py, so that the browser's
"event hash" check means what the server's does."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

from node.paths import PROJECT_ROOT
from node.provenance import epcis
from node.provenance.event_hash import prehash, primary_object_id, unix_seconds
from tests.provenance.random_events import random_event

VECTORS = PROJECT_ROOT / "tests" / "provenance" / "data" / "cbv_vectors"
CLI = Path(__file__).parent / "eventhash_cli.mjs"


def run_js(payload: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(["node", str(CLI)], input=json.dumps(payload), capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_published_cbv_vectors_are_reproduced_in_javascript() -> None:
    files = sorted(p for p in VECTORS.iterdir() if p.suffix in (".json", ".jsonld"))
    out = run_js({"documents": [json.loads(p.read_text()) for p in files]})
    for path, hashes in zip(files, out["documents"]):
        assert hashes == path.with_suffix(".hashes").read_text().split(), path.name


def test_javascript_and_python_agree_on_random_events() -> None:
    r = random.Random(20251123)
    events = [random_event(r) for _ in range(300)]
    out = run_js({"events": [[e, None] for e in events]})["events"]
    for event, js in zip(events, out):
        assert js.get("prehash") == prehash(event), json.dumps(event)
        assert js["subject"] == primary_object_id(event)
        assert js["time"] == unix_seconds(event["eventTime"])


def test_javascript_and_python_agree_on_waymark_events() -> None:
    from tests.api.world import journey
    from tests.node.story import lot_story

    events = [event for event, _signer in journey(lot_story(1_700_000_000))]
    out = run_js({"events": [[e, None] for e in events]})["events"]
    for event, js in zip(events, out):
        assert js.get("prehash") == prehash(event)
        assert js["subject"] == primary_object_id(event)


def test_javascript_vocabularies_match_the_python_ones() -> None:
    script = (
        "import * as h from './scanner_web/src/eventhash.js';"
        "console.log(JSON.stringify({b: h.BIZ_STEPS, d: h.DISPOSITIONS, t: h.BIZ_TRANSACTION_TYPES, s: h.SOURCE_DESTINATION_TYPES,"
        " m: h.MEASUREMENT_TYPES, e: h.SENSOR_EXCEPTIONS, c: h.SENSOR_COMPONENTS, p: h.STANDARD_PREFIXES}))"
    )
    done = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    js = json.loads(done.stdout)
    assert set(js["b"]) == set(epcis.BIZ_STEPS)
    assert set(js["d"]) == set(epcis.DISPOSITIONS)
    assert set(js["t"]) == set(epcis.BIZ_TRANSACTION_TYPES)
    assert set(js["s"]) == set(epcis.SOURCE_DESTINATION_TYPES)
    assert set(js["m"]) == set(epcis.MEASUREMENT_TYPES)
    assert set(js["e"]) == set(epcis.SENSOR_EXCEPTIONS)
    assert set(js["c"]) == set(epcis.SENSOR_COMPONENTS)
    assert js["p"] == epcis.STANDARD_PREFIXES
