"""CBV 2.0 event hash: published test vectors, serialisation independence, tamper evidence,
and a cross-check against the epcis-event-hash-generator package on generated events."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import pytest

from node.protocol import epcis
from node.protocol import epcis_validation
from node.protocol import vocabulary
from node.protocol.canonical_ids import canonical_gs1_uri
from node.protocol.cbv_values import canonical_time
from node.protocol.event_hash import (
    EventHashError,
    digest_from_hash,
    document_hashes,
    event_digest,
    event_hash,
    hash_from_digest,
    prehash,
    primary_object_id,
)
from node.protocol.gs1 import UnitId, make_sscc

from .random_events import random_event

VECTORS = Path(__file__).parent / "data" / "cbv_vectors"
VECTOR_FILES = sorted(p for p in VECTORS.iterdir() if p.suffix in (".json", ".jsonld"))


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.stem)
def test_published_cbv_vectors_are_reproduced(path: Path) -> None:
    document = json.loads(path.read_text())
    expected = path.with_suffix(".hashes").read_text().split()
    assert document_hashes(document) == expected


def test_vector_set_covers_every_event_type_and_the_tricky_parts() -> None:
    text = "".join(p.read_text() for p in VECTOR_FILES)
    for needle in ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent",
                   "sensorElementList", "persistentDisposition", "ilmd", "errorDeclaration",
                   "urn:epc:id:sgtin", "urn:epc:id:sscc", "https://id.gs1.de/", "1415Z"):
        assert needle in text
    assert sum(len(p.with_suffix(".hashes").read_text().split()) for p in VECTOR_FILES) >= 30


# --- a Waymark event with every part we use ----------------------------------------------

UNITS = [UnitId("09506000134352", f"SER{i}AbC9x", "LOT-24") for i in range(3)]
PALLET = make_sscc("9506000", 42)


def waymark_event() -> dict[str, Any]:
    return epcis.object_event(
        epcs=UNITS,
        action="OBSERVE",
        event_time="2024-05-01T10:00:00.123+02:00",
        event_time_zone_offset="+02:00",
        biz_step=vocabulary.customs_step("cleared"),
        disposition=vocabulary.customs_disposition("released"),
        read_point="https://id.gs1.org/414/9506000134352/254/7",
        biz_location="https://id.gs1.org/414/9506000134352",
        biz_transactions=[epcis.biz_transaction("urn:epcglobal:cbv:bt:9506000134352:PO-77", "po")],
        destinations=[{"type": "owning_party", "destination": "https://id.gs1.org/417/9506000134352"}],
        sensor_elements=[
            epcis.sensor_element(
                [epcis.temperature(4.5), epcis.relative_humidity(61)],
                time="2024-05-01T09:59:00Z",
                device_id="urn:epc:id:giai:9506000.T17",
            )
        ],
        documents=[epcis.document_ref("customs_release", "ab" * 32)],
        extensions=epcis.customs_fields(
            declaration_id="DE-2024-0001", customs_office="DEHAM1", duty_amount="125.50", duty_currency="EUR"
        ),
    )


def test_waymark_event_is_valid_and_hashes_to_an_ni_uri() -> None:
    event = waymark_event()
    epcis_validation.validate_event(event)
    event_id = event_hash(event)
    assert event_id.startswith("ni:///sha-256;") and event_id.endswith("?ver=CBV2.0")
    assert digest_from_hash(event_id) == event_digest(event)
    assert hash_from_digest(event_digest(event)) == event_id


# --- same event, any serialisation ----------------------------------------------------------


def shuffled(value: Any, r: random.Random) -> Any:
    """Same JSON content, keys in another order, every list in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        r.shuffle(items)
        return {k: shuffled(v, r) for k, v in items}
    if isinstance(value, list):
        items = [shuffled(v, r) for v in value]
        r.shuffle(items)
        return items
    return value


def test_hash_ignores_key_order_list_order_and_json_formatting() -> None:
    event = waymark_event()
    reference = event_hash(event)
    r = random.Random(7)
    for _ in range(20):
        assert event_hash(shuffled(event, r)) == reference
    assert event_hash(json.loads(json.dumps(event, indent=3, sort_keys=True))) == reference
    assert event_hash(orjson.loads(orjson.dumps(event))) == reference


def test_hash_is_the_same_for_equivalent_spellings_of_values() -> None:
    base = {
        "type": "ObjectEvent",
        "eventTime": "2024-05-01T08:00:00Z",
        "eventTimeZoneOffset": "+02:00",
        "epcList": ["urn:epc:id:sgtin:9506000.013435.ABC1", "urn:epc:id:sscc:9506000.0000000042"],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "disposition": "in_transit",
        "readPoint": {"id": "urn:epc:id:sgln:9506000.13435.0"},
        "sensorElementList": [{"sensorReport": [{"type": "Temperature", "value": 4.5, "uom": "CEL"}]}],
    }
    reference = event_hash(base)
    variants: list[Callable[[dict[str, Any]], None]] = [
        # same instant in another zone, with and without milliseconds
        lambda e: e.update(eventTime="2024-05-01T10:00:00.000+02:00"),
        lambda e: e.update(eventTime="2024-05-01T03:00:00.0004-05:00"),
        # the same GS1 keys as Digital Link URIs on other resolvers, with a lot and a query
        lambda e: e.update(epcList=["https://brand.example/01/09506000134352/10/L9/21/ABC1?x=1",
                                    f"https://carrier.example/sscc/{PALLET}"]),
        # CBV terms as CURIE, full IRI, old URN
        lambda e: e.update(bizStep="cbv:BizStep-shipping"),
        lambda e: e.update(bizStep="https://ref.gs1.org/cbv/BizStep-shipping"),
        lambda e: e.update(disposition="urn:epcglobal:cbv:disp:in_transit"),
        lambda e: e.update(readPoint={"id": "https://id.gs1.org/414/9506000134352"}),
        # numbers: 4.5 written as 4.50 text, measurement type as gs1 CURIE; padding whitespace
        lambda e: e["sensorElementList"][0]["sensorReport"][0].update(value="4.50", type="gs1:Temperature"),
        lambda e: e.update(action=" OBSERVE "),
        # fields CBV 2.0 leaves out of the hash
        lambda e: e.update(eventID="urn:uuid:0f1e2d3c-0000-4000-8000-000000000000",
                           recordTime="2025-01-01T00:00:00Z",
                           certificationInfo="https://cert.example/1"),
    ]
    for change in variants:
        variant = copy.deepcopy(base)
        change(variant)
        assert event_hash(variant) == reference, variant


def test_event_context_and_document_context_give_the_same_hash() -> None:
    event = waymark_event()
    document = epcis.epcis_document([event])
    stripped = document["epcisBody"]["eventList"][0]
    assert "@context" not in stripped
    assert document_hashes(document) == [event_hash(event)]
    assert event_hash(stripped, document["@context"]) == event_hash(event)


# --- any change is seen -------------------------------------------------------------------

EXCLUDED_BY_CBV = ("eventID", "recordTime", "errorDeclaration", "certificationInfo")


def scalar_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "@context":
                continue
            yield from scalar_paths(child, path + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from scalar_paths(child, path + (i,))
    else:
        yield path


def mutated(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return value + "1"


def set_path(event: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = event
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def get_path(event: dict[str, Any], path: tuple[Any, ...]) -> Any:
    target: Any = event
    for step in path:
        target = target[step]
    return target


def test_changing_any_hashed_value_changes_the_hash() -> None:
    event = waymark_event()
    reference = event_hash(event)
    paths = list(scalar_paths(event))
    assert len(paths) > 25
    for path in paths:
        tampered = copy.deepcopy(event)
        set_path(tampered, path, mutated(get_path(event, path)))
        assert event_hash(tampered) != reference, f"changing {path} went unnoticed"


def test_removing_or_adding_any_field_changes_the_hash() -> None:
    event = waymark_event()
    reference = event_hash(event)
    for key in event:
        if key in ("@context", "type"):
            continue
        smaller = {k: v for k, v in event.items() if k != key}
        assert event_hash(smaller) != reference, f"removing {key} went unnoticed"
    for extra in ({"wm:note": "x"}, {"ilmd": {"wm:x": "1"}}):
        assert event_hash({**event, **extra}) != reference
    more_units = copy.deepcopy(event)
    more_units["epcList"].append(UnitId("09506000134352", "EXTRA1").canonical_uri)
    assert event_hash(more_units) != reference


def test_fields_the_standard_leaves_out_do_not_change_the_hash() -> None:
    """CBV 2.0 excludes these: an error declaration keeps the id of the event it corrects."""
    event = waymark_event()
    reference = event_hash(event)
    for key in EXCLUDED_BY_CBV:
        value: Any = {"declarationTime": "2024-06-01T00:00:00Z", "reason": "incorrect_data"} \
            if key == "errorDeclaration" else "urn:uuid:0f1e2d3c-0000-4000-8000-000000000000"
        if key == "recordTime":
            value = "2024-06-01T00:00:00Z"
        assert event_hash({**event, key: value}) == reference


# --- pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("2023-02-02T11:04:03.1415Z", "2023-02-02T11:04:03.142Z"),
        ("2023-02-02T11:04:03.1414Z", "2023-02-02T11:04:03.141Z"),
        ("2023-02-02T11:04:03.1425Z", "2023-02-02T11:04:03.143Z"),  # half up, not to even
        ("2023-12-31T23:59:59.9996Z", "2024-01-01T00:00:00.000Z"),
        ("2020-03-04T11:00:30+01:00", "2020-03-04T10:00:30.000Z"),
        ("2019-10-21T00:05:00-06:00", "2019-10-21T06:05:00.000Z"),
        ("not a time", "not a time"),
    ],
)
def test_times_are_utc_milliseconds(given: str, canonical: str) -> None:
    assert canonical_time(given) == canonical


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("urn:epc:id:sgtin:4012345.011111.9876", "https://id.gs1.org/01/04012345111118/21/9876"),
        ("urn:epc:id:sscc:4012345.0000000333", "https://id.gs1.org/00/040123450000003338"),
        ("urn:epc:id:sgln:4012345.00011.987", "https://id.gs1.org/414/4012345000115/254/987"),
        ("urn:epc:id:sgln:4012345.00011.0", "https://id.gs1.org/414/4012345000115"),
        ("https://example.com/gtin/9780345418913/lot/A1/ser/765tz?abc=1", "https://id.gs1.org/01/09780345418913/21/765tz"),
        ("https://example.com/01/09780345418913/10/A1", "https://id.gs1.org/01/09780345418913/10/A1"),
        ("https://id.gs1.org/01/09506000134352/21/X%2F1", "https://id.gs1.org/01/09506000134352/21/X%2F1"),
        ("https://example.com/about", None),
        ("urn:uuid:1234", None),
        ("urn:epc:id:sgtin:4012345.0111.9876", None),  # company prefix + item reference != 13 digits
    ],
)
def test_gs1_keys_normalise_to_the_constrained_canonical_digital_link(given: str, canonical: str | None) -> None:
    assert canonical_gs1_uri(given) == canonical


def test_primary_object_is_the_smallest_canonical_id_of_the_first_non_empty_list() -> None:
    event = waymark_event()
    assert primary_object_id(event) == min(u.canonical_uri for u in UNITS)
    reordered = {**event, "epcList": list(reversed(event["epcList"]))}
    assert primary_object_id(reordered) == primary_object_id(event)
    aggregation = epcis.aggregation_event(parent_id=f"https://id.gs1.org/00/{PALLET}", child_epcs=UNITS,
                                          action="ADD", event_time="2024-05-01T10:00:00Z", biz_step="packing")
    assert primary_object_id(aggregation) == f"https://id.gs1.org/00/{PALLET}"
    with pytest.raises(EventHashError):
        primary_object_id({"type": "ObjectEvent", "epcList": []})


def test_malformed_input_is_refused() -> None:
    with pytest.raises(EventHashError):
        prehash({"eventTime": "2024-01-01T00:00:00Z"})
    with pytest.raises(EventHashError):
        prehash(["not", "an", "event"])  # type: ignore[arg-type]
    with pytest.raises(EventHashError):
        digest_from_hash("ni:///sha-256;abcd?ver=CBV2.0")


# --- cross-check against the reference package ------------------------------------------


def test_same_hashes_as_epcis_event_hash_generator_on_generated_events() -> None:
    from epcis_event_hash_generator import hash_generator, json_to_py

    r = random.Random(20240501)
    events = [random_event(r) for _ in range(400)]
    context = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"ex": "https://ns.example.com/ex/"}]
    document = {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-01-01T00:00:00Z",
        "epcisBody": {"eventList": copy.deepcopy(events)},
    }
    # the package reads its cached copy of the EPCIS context; nothing is fetched
    reference = hash_generator.epcis_hashes_from_events(json_to_py.event_list_from_epcis_document_json(document))
    ours = [event_hash(event, context) for event in events]
    mismatches = [i for i, (a, b) in enumerate(zip(ours, reference)) if a != b]
    assert len(reference) == len(events)
    assert not mismatches, f"{len(mismatches)} of {len(events)} differ, first: {events[mismatches[0]]}"


def test_record_vectors_are_what_python_makes_of_their_events() -> None:
    """data/record_vectors.json (shared with the page's JavaScript) is Python's current answer:
    regenerate it with `python -m tests.protocol.record_vectors` after a deliberate change."""
    from . import record_vectors

    stored = record_vectors.load()
    assert [v["name"] for v in stored] == [name for name, _e, _c in record_vectors.CASES]
    for vector, (name, event, context) in zip(stored, record_vectors.CASES):
        assert (vector["event"], vector["context"]) == (event, context), name
        assert {k: vector[k] for k in ("eventHash", "recordHash", "subject", "time")} == record_vectors.expected(event, context), name
    by_name = {v["name"]: v for v in stored}
    # what the vectors are there to pin: a correction differs from its original, a sensor-only event has a place
    assert by_name["error declaration with correctiveEventIDs"]["recordHash"] != by_name["ordinary event: record digest is the CBV hash"]["recordHash"]
    assert by_name["error declaration with correctiveEventIDs"]["eventHash"] == by_name["ordinary event: record digest is the CBV hash"]["eventHash"]
    assert by_name["sensor-only event: readPoint is the subject"]["subject"] == "https://id.gs1.org/414/9521234000013"
