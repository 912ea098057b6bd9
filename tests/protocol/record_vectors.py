"""Waymark's own test vectors for what an event is stored, attested and anchored under: its
record digest (``event_hash.record_digest``: an error declaration adds its declaration to the
CBV 2.0 hash) and its attestation subject (``primary_object_id``: an event about no object is
about its readPoint, else its bizLocation).

The expected values in ``data/record_vectors.json`` are written by Python::

    .venv/bin/python -m tests.protocol.record_vectors

tests/protocol/test_event_hash.py holds Python to the file, tests/scanner_web/test_eventhash_js.py
holds the page's JavaScript (scanner_web/src/eventhash.js) to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from node.protocol.event_hash import EventHashError, event_hash, hash_from_digest, primary_object_id, record_digest, unix_seconds

PATH = Path(__file__).parent / "data" / "record_vectors.json"

_EPC = "https://id.gs1.org/01/09521234543213/21/1001"
_ORIGINAL_ID = "ni:///sha-256;c6407ffcac52ec159528f2b556ba4ac3844c5aa48485c1fd61643e94f0a2d678?ver=CBV2.0"
_CONTEXT = ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"example": "https://ns.example.com/epcis/"}]


def _object_event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": "2025-03-04T10:11:12.345+01:00",
        "eventTimeZoneOffset": "+01:00",
        "epcList": [_EPC],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "readPoint": {"id": "urn:epc:id:sgln:9521234.00001.0"},
    }
    event.update(fields)
    return event


def _sensor_event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": "2025-03-05T06:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "sensor_reporting",
        "sensorElementList": [
            {
                "sensorMetadata": {"time": "2025-03-05T06:00:00Z", "deviceID": "urn:epc:id:giai:9521234.sensor7"},
                "sensorReport": [{"type": "Temperature", "value": 4.5, "uom": "CEL"}, {"type": "RelativeHumidity", "value": 61}],
            }
        ],
    }
    event.update(fields)
    for key, value in list(event.items()):
        if value is None:
            del event[key]
    return event


# (name, event, the enclosing document's @context or None)
CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("ordinary event: record digest is the CBV hash", _object_event(), None),
    ("errorDeclaration null: an ordinary event", _object_event(errorDeclaration=None), None),
    (
        "error declaration with correctiveEventIDs",
        _object_event(errorDeclaration={
            "declarationTime": "2025-03-06T08:00:00.000Z",
            "reason": "incorrect_data",
            "correctiveEventIDs": [_ORIGINAL_ID, "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"],
        }),
        None,
    ),
    (
        "error declaration with correctiveEventIDs in the other order",
        _object_event(errorDeclaration={
            "declarationTime": "2025-03-06T08:00:00.000Z",
            "reason": "incorrect_data",
            "correctiveEventIDs": ["urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", _ORIGINAL_ID],
        }),
        None,
    ),
    (
        "error declaration without correctiveEventIDs",
        _object_event(errorDeclaration={"declarationTime": "2025-03-06T08:00:00.000Z", "reason": "did_not_occur"}),
        None,
    ),
    (
        "error declaration with only a declarationTime",
        _object_event(errorDeclaration={"declarationTime": "2025-03-06T09:00:00+02:00"}),
        None,
    ),
    (
        "error declaration with a full reason IRI",
        _object_event(errorDeclaration={"declarationTime": "2025-03-06T08:00:00.000Z", "reason": "https://ref.gs1.org/cbv/ER-incorrect_data"}),
        None,
    ),
    (
        "error declaration with extension fields (document context prefix, nested, numbers, lists, comment)",
        _object_event(errorDeclaration={
            "declarationTime": "2025-03-06T08:00:00.000Z",
            "reason": "incorrect_data",
            "correctiveEventIDs": [_ORIGINAL_ID],
            "example:ticket": "  T-42  ",
            "example:approval": {"example:by": "urn:epc:id:pgln:9521234.00000", "example:level": 2.50, "rdfs:comment": "not hashed"},
            "example:codes": [3, "1e2", True],
            "gs1:note": "a standard prefix",
            "rdfs:comment": "not hashed either",
        }),
        _CONTEXT,
    ),
    (
        "error declaration with extension fields under the event's own context",
        _object_event(**{
            "@context": [{"ext": "https://ns.example.org/ext/"}],
            "errorDeclaration": {"declarationTime": "2025-03-06T08:00:00.000Z", "ext:why": "scanner fault", "ext:unit": {"ext:id": "https://id.gs1.org/00/095212345000000017"}},
        }),
        None,
    ),
    (
        "error declaration whose declaration has an unprefixed extension key",
        _object_event(errorDeclaration={"declarationTime": "2025-03-06T08:00:00.000Z", "note": "unprefixed"}),
        None,
    ),
    (
        "error declaration of an AggregationEvent",
        {
            "type": "AggregationEvent",
            "eventTime": "2025-03-04T10:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "parentID": "urn:epc:id:sscc:9521234.0000000017",
            "childEPCs": [_EPC, "https://id.gs1.org/01/09521234543213/21/1000"],
            "action": "ADD",
            "bizStep": "packing",
            "errorDeclaration": {"declarationTime": "2025-03-06T08:00:00.000Z", "reason": "incorrect_data"},
        },
        None,
    ),
    ("sensor-only event: readPoint is the subject", _sensor_event(readPoint={"id": "urn:epc:id:sgln:9521234.00001.0"}), None),
    (
        "sensor-only event with readPoint and bizLocation: readPoint wins",
        _sensor_event(readPoint={"id": "https://id.gs1.org/414/9521234000013/254/7"}, bizLocation={"id": "urn:epc:id:sgln:9521234.00002.0"}),
        None,
    ),
    ("sensor-only event with only a bizLocation", _sensor_event(bizLocation={"id": "urn:epc:id:sgln:9521234.00002.0"}), None),
    (
        "sensor-only event with a blank readPoint id: bizLocation",
        _sensor_event(readPoint={"id": "   "}, bizLocation={"id": "https://id.gs1.org/414/9521234000020"}),
        None,
    ),
    (
        "sensor-only event with empty object lists",
        _sensor_event(epcList=[], quantityList=[], readPoint={"id": "urn:epc:id:sgln:9521234.00003.0"}),
        None,
    ),
    (
        "sensor-only event with a non-GS1 place id",
        _sensor_event(readPoint={"id": "https://warehouse.example.com/dock/4"}),
        None,
    ),
    ("sensor-only event with no place: no subject", _sensor_event(), None),
    (
        "sensor-only error declaration",
        _sensor_event(readPoint={"id": "urn:epc:id:sgln:9521234.00001.0"}, errorDeclaration={
            "declarationTime": "2025-03-07T00:00:00Z", "reason": "incorrect_data", "correctiveEventIDs": [_ORIGINAL_ID],
        }),
        None,
    ),
    (
        "an object wins over the place",
        _object_event(readPoint={"id": "urn:epc:id:sgln:9521234.00001.0"}, bizLocation={"id": "urn:epc:id:sgln:9521234.00002.0"}),
        None,
    ),
]


def expected(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What Python makes of an event: CBV hash, record id, subject (None if none), unix time."""
    try:
        subject: str | None = primary_object_id(event, context)
    except EventHashError:
        subject = None
    return {
        "eventHash": event_hash(event, context),
        "recordHash": hash_from_digest(record_digest(event, context)),
        "subject": subject,
        "time": unix_seconds(event["eventTime"]),
    }


def build() -> list[dict[str, Any]]:
    return [{"name": name, "event": event, "context": context, **expected(event, context)} for name, event, context in CASES]


def load() -> list[dict[str, Any]]:
    return json.loads(PATH.read_text())  # type: ignore[no-any-return]


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(CASES)} vectors to {PATH}")
