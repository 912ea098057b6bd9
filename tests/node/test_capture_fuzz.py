"""Whatever a client sends, capture answers with a CaptureError (422/401/413), never a crash."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.member.ingest.capture import CaptureError, checked_event_time, precheck_document
from node.protocol.attestation import AttestationDomain, event_unix_time
from node.protocol.timestamps import moment_ms
from tests.node.story import capture_document, lot_story, story_events

DOMAIN = AttestationDomain(31337, "0x" + "5f" * 20)
VALID = capture_document(story_events(lot_story(1_750_000_000)), DOMAIN)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    return found


PATHS = _paths(VALID)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), json_values)
def test_any_single_field_replaced_is_refused_cleanly_or_accepted(path: tuple[Any, ...], value: Any) -> None:
    document = orjson.loads(orjson.dumps(VALID))
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        precheck_document(orjson.dumps(document), DOMAIN, 10_000, 10**9)
    except CaptureError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200) | json_values.map(orjson.dumps))
def test_arbitrary_bodies_are_refused_cleanly(body: bytes) -> None:
    try:
        precheck_document(body, DOMAIN, 10_000, 10**9)
    except CaptureError:
        pass


@st.composite
def event_times(draw: st.DrawFn) -> str:
    """Event times as writers spell them: any second of 1970-9999, 0-9 decimals, Z or an offset."""
    moment = draw(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)))
    decimals = draw(st.integers(0, 9))
    fraction = "." + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=decimals, max_size=decimals))) if decimals else ""
    zone = draw(st.sampled_from(["Z", "+00:00", "+05:30", "-09:45", "+14:00", "-12:00"]))
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone


@settings(max_examples=500, deadline=None)
@given(event_times())
def test_capture_attests_the_seconds_signers_compute(text: str) -> None:
    # capture derives the attested eventTime from the time it parsed for its checks; signers
    # compute it with event_unix_time: the two must agree on every time capture accepts
    moment = checked_event_time(text, None)
    assert moment_ms(moment) // 1000 == event_unix_time({"eventTime": text})
