"""EPCIS 2.0 builders and validation: valid events of every type, errors that name the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import orjson

import pytest

from node.errors import WaymarkError
from node.protocol import epcis
from node.protocol import vocabulary
from node.protocol.epcis_validation import EpcisValidationError, validate_document, validate_event
from node.protocol.event_hash import event_hash
from node.protocol.gs1 import ContainerId, UnitId, make_sscc
from node.protocol.timestamps import format_timestamp, iso_ms, unix_ms

GTIN = "09506000134352"
UNITS = [UnitId(GTIN, f"S{i:03d}xYz", "LOT-1") for i in range(4)]
CASE = ContainerId(make_sscc("9506000", 7))
FACTORY = "https://id.gs1.org/414/9506000134352"
T = "2024-05-01T10:00:00.000Z"


def lifecycle() -> list[dict[str, Any]]:
    """Commission, inspect, pack, ship, customs, receive: one of each event type and more."""
    return [
        epcis.object_event(epcs=UNITS, action="ADD", event_time=T, biz_step="commissioning",
                           disposition="active", read_point=FACTORY,
                           ilmd={"cbvmda:lotNumber": "LOT-1"}),
        epcis.object_event(epcs=UNITS[:1], action="OBSERVE", event_time=T, biz_step="inspecting",
                           disposition="conformant", read_point=FACTORY,
                           documents=[epcis.document_ref("inspection_report", "0f" * 32)]),
        epcis.aggregation_event(parent_id=CASE, child_epcs=UNITS, action="ADD", event_time=T,
                                biz_step="packing", disposition="container_closed"),
        epcis.transaction_event(biz_transactions=[epcis.biz_transaction("urn:epcglobal:cbv:bt:9506000134352:PO1", "po")],
                                epcs=[CASE], action="ADD", event_time=T, biz_step="shipping",
                                disposition="in_transit",
                                sources=[{"type": "owning_party", "source": "https://id.gs1.org/417/9506000134352"}]),
        epcis.object_event(epcs=[CASE], action="OBSERVE", event_time=T, biz_step="departing",
                           disposition="in_transit",
                           sensor_elements=[epcis.sensor_element([epcis.temperature(-18.5), epcis.relative_humidity(40)],
                                                                 start_time=T, end_time="2024-05-01T11:00:00Z")]),
        epcis.object_event(epcs=[CASE], action="OBSERVE", event_time=T, biz_step=vocabulary.customs_step("duty_assessed"),
                           disposition=vocabulary.customs_disposition("held"),
                           extensions=epcis.customs_fields(declaration_id="DECL-9", duty_amount="12.50",
                                                           duty_currency="USD")),
        epcis.transformation_event(input_epcs=UNITS[:2], output_epcs=UNITS[2:], event_time=T,
                                   biz_step="repackaging"),
    ]


def test_built_events_are_valid_and_carry_the_waymark_context() -> None:
    for event in lifecycle():
        validate_event(event)
        assert event["@context"] == vocabulary.WAYMARK_CONTEXT
        assert event["eventTime"] == T
        event_hash(event)


def test_document_wrapper_is_valid_epcis_2() -> None:
    document = epcis.epcis_document(lifecycle(), creation_date=T)
    assert document["type"] == "EPCISDocument"
    assert document["schemaVersion"] == "2.0"
    assert document["creationDate"] == T
    assert len(document["epcisBody"]["eventList"]) == 7
    validate_document(document)
    events = epcis.document_events(document)
    assert [event_hash(e) for e in events] == [event_hash(e) for e in lifecycle()]


def test_event_time_is_written_in_utc_with_the_offset_kept_apart() -> None:
    from datetime import datetime, timedelta, timezone

    local = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    event = epcis.object_event(epcs=UNITS, action="OBSERVE", event_time=local)
    assert event["eventTime"] == "2024-05-01T10:00:00.250Z"
    assert event["eventTimeZoneOffset"] == "+02:00"


@pytest.mark.parametrize("ms, written", [
    (0, "1970-01-01T00:00:00.000Z"),
    (1_738_324_800_250, "2025-01-31T12:00:00.250Z"),
    (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),  # a float of seconds would give .998
    (-1, "1969-12-31T23:59:59.999Z"),
    (-30_641_760_000_000, "0999-01-01T00:00:00.000Z"),  # four digits of year, as xsd:dateTime has them
    (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
])
def test_unix_milliseconds_are_written_exactly_as_epcis_times(ms: int, written: str) -> None:
    assert iso_ms(ms) == written
    assert unix_ms(written) == ms  # and read back


def test_an_event_time_before_the_year_1000_is_written_with_four_digits_of_year() -> None:
    assert format_timestamp("0999-06-01T10:00:00.5+02:00") == "0999-06-01T08:00:00.500Z"


def error_of(document: dict[str, Any]) -> EpcisValidationError:
    with pytest.raises(EpcisValidationError) as caught:
        validate_document(document)
    assert isinstance(caught.value, WaymarkError)
    return caught.value


def broken(change: Callable[[list[dict[str, Any]]], None]) -> dict[str, Any]:
    document = epcis.epcis_document(lifecycle(), creation_date=T)
    change(document["epcisBody"]["eventList"])
    return document


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda ev: ev[3].__setitem__("epcList", [f"https://id.gs1.org/00/{CASE.sscc[:-1]}0"]),
         "epcisBody.eventList[3].epcList[0]", "check digit"),
        (lambda ev: ev[0]["epcList"].__setitem__(2, f"https://id.gs1.org/01/{GTIN}/21/S1/10/L"),
         "epcisBody.eventList[0].epcList[2]", "qualifier order"),
        (lambda ev: ev[0]["epcList"].__setitem__(1, "not a uri"),
         "epcisBody.eventList[0].epcList[1]", "is not a \"uri\""),
        (lambda ev: ev[1].pop("eventTime"), "epcisBody.eventList[1].eventTime", "required"),
        (lambda ev: ev[1].__setitem__("eventTime", "2024-05-01 10:00"), "epcisBody.eventList[1].eventTime", "date-time"),
        (lambda ev: ev[1].__setitem__("eventTimeZoneOffset", "+2"), "epcisBody.eventList[1].eventTimeZoneOffset", "does not match"),
        (lambda ev: ev[0].__setitem__("action", "CREATE"), "epcisBody.eventList[0].action", "definitions/action/enum"),
        (lambda ev: ev[6].__setitem__("action", "ADD"), "epcisBody.eventList[6].action", "TransformationEvent"),
        (lambda ev: ev[0].__setitem__("bizStep", "teleporting"), "epcisBody.eventList[0].bizStep", "definitions/bizStep"),
        (lambda ev: ev[0].__setitem__("disposition", "shiny"), "epcisBody.eventList[0].disposition", "definitions/disposition"),
        (lambda ev: ev[0].__setitem__("childEPCs", []), "epcisBody.eventList[0].childEPCs", "definitions/ObjectEvent"),
        (lambda ev: ev[2].pop("childEPCs"), "epcisBody.eventList[2]", "definitions/AggregationEvent"),
        (lambda ev: ev[3].pop("bizTransactionList"), "epcisBody.eventList[3].bizTransactionList", "required property"),
        (lambda ev: ev[3]["bizTransactionList"][0].__setitem__("type", "bribe"),
         "epcisBody.eventList[3].bizTransactionList[0].type", "bizTransaction-type"),
        (lambda ev: ev[3]["sourceList"][0].pop("type"), "epcisBody.eventList[3].sourceList[0].type", "required property"),
        (lambda ev: ev[6].pop("inputEPCList"), "epcisBody.eventList[6]", "definitions/TransformationEvent"),
        (lambda ev: ev[4]["sensorElementList"][0]["sensorReport"][0].__setitem__("value", "cold"),
         "epcisBody.eventList[4].sensorElementList[0].sensorReport[0].value", "not of type \"number\""),
        (lambda ev: ev[4]["sensorElementList"][0]["sensorReport"][0].__setitem__("type", "Mood"),
         "epcisBody.eventList[4].sensorElementList[0].sensorReport[0].type", "measurementType"),
        (lambda ev: ev[4]["sensorElementList"][0]["sensorMetadata"].__setitem__("startTime", "yesterday"),
         "epcisBody.eventList[4].sensorElementList[0].sensorMetadata.startTime", "date-time"),
        (lambda ev: ev[1]["wm:documents"][0].__setitem__("wm:digest", "md5:abc"),
         "epcisBody.eventList[1].wm:documents[0].wm:digest", "sha256:"),
        (lambda ev: ev[5]["wmc:duty"].__setitem__("wmc:amount", "12,50"),
         "epcisBody.eventList[5].wmc:duty.wmc:amount", "decimal"),
        (lambda ev: ev[5]["wmc:duty"].__setitem__("wmc:currency", "dollars"),
         "epcisBody.eventList[5].wmc:duty.wmc:currency", "ISO 4217"),
        (lambda ev: ev[0].__setitem__("colour", "red"), "epcisBody.eventList[0].colour", "definitions/ObjectEvent"),
        (lambda ev: ev[0].__setitem__("acme:colour", "red"), "epcisBody.eventList[0].acme:colour", "not declared"),
        (lambda ev: ev[0].__setitem__("wm:serialBatch", "12345678901234567890"),
         "epcisBody.eventList[0].wm:serialBatch", "15 significant digits"),
        (lambda ev: ev[0].__setitem__("disposition", None), "epcisBody.eventList[0].disposition", "null is not valid"),
        (lambda ev: ev[0].__setitem__("type", "AssociationEvent"), "epcisBody.eventList[0].parentID", "definitions/AssociationEvent"),
        (lambda ev: ev[0]["readPoint"].__setitem__("id", "factory 7"), "epcisBody.eventList[0].readPoint.id", "is not a \"uri\""),
    ],
)
def test_validation_error_names_the_field(change: Callable[[list[dict[str, Any]]], None], field: str, words: str) -> None:
    error = error_of(broken(change))
    assert error.field == field, str(error)
    assert words in error.problem, str(error)
    assert str(error).startswith(field + ": ")


def test_document_level_errors_name_the_field() -> None:
    document = epcis.epcis_document(lifecycle(), creation_date=T)
    for key, value, field in [
        ("type", "EPCISDocumentation", "type"),
        ("schemaVersion", "1.2", "schemaVersion"),
        ("creationDate", "today", "creationDate"),
        ("@context", [{"wm": vocabulary.WAYMARK_NS}], "@context"),
    ]:
        bad = copy.deepcopy(document)
        bad[key] = value
        assert error_of(bad).field == field
    empty = copy.deepcopy(document)
    empty["epcisBody"]["eventList"] = []
    validate_document(empty)  # the schema allows an empty eventList: nothing to capture, nothing wrong
    empty["epcisBody"]["eventList"] = {}
    assert error_of(empty).field == "epcisBody.eventList"


def test_extension_prefixes_come_from_the_document_context() -> None:
    document = epcis.epcis_document(lifecycle(), creation_date=T)
    document["@context"] = [vocabulary.EPCIS_CONTEXT_URL, {"wm": vocabulary.WAYMARK_NS, "wmc": vocabulary.CUSTOMS_NS, "acme": "https://acme.example/ns/"}]
    document["epcisBody"]["eventList"][0]["acme:colour"] = "red"
    validate_document(document)


def test_customs_curie_is_accepted_but_hashes_unlike_its_iri() -> None:
    event = lifecycle()[5]
    curie = {**event, "bizStep": "wmc:duty_assessed"}
    validate_event(curie)
    assert event["bizStep"] == vocabulary.CUSTOMS_NS + "duty_assessed"
    assert event_hash(curie) != event_hash(event)  # as in the reference algorithm


def test_customs_vocabulary_is_namespaced_iris() -> None:
    assert vocabulary.customs_step("declared") == "https://ns.waymark.example/customs/declared"
    assert set(vocabulary.CUSTOMS_STEPS) == {"declared", "cleared", "detained", "returned", "duty_assessed"}
    with pytest.raises(ValueError):
        vocabulary.customs_step("bribed")
    assert vocabulary.WAYMARK_CONTEXT[1] == {"wm": "https://ns.waymark.example/epcis/",
                                        "wmc": "https://ns.waymark.example/customs/"}


GS1_EXAMPLES = Path(__file__).parents[1] / "epcis_rest" / "data" / "gs1"


@pytest.mark.parametrize("name", sorted(str(p.relative_to(GS1_EXAMPLES)) for p in GS1_EXAMPLES.rglob("*.jsonld")))
def test_every_published_gs1_example_document_is_accepted(name: str) -> None:
    validate_document(orjson.loads((GS1_EXAMPLES / name).read_bytes()))


def one_event_document(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    document = epcis.epcis_document([event], creation_date=T)
    if context is not None:
        document["@context"] = context
    return document


SENSOR_ONLY = {
    "type": "ObjectEvent", "eventTime": T, "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
    "bizStep": "sensor_reporting", "readPoint": {"id": FACTORY},
    "sensorElementList": [{
        "sensorMetadata": {"time": T, "bizRules": "https://example.org/rules/cold-chain"},
        "sensorReport": [{"type": "Temperature", "value": 4.5, "uom": "CEL"},
                         {"type": "Count", "value": 12},  # a count has no unit
                         {"type": "Temperature", "minValue": 2, "maxValue": 8, "uom": "CEL",
                          "bizRules": "https://example.org/rules/2-8"}],
    }],
}


@pytest.mark.parametrize(
    ("description", "event"),
    [
        ("a sensor-only ObjectEvent with bizRules and a value without unit", SENSOR_ONLY),
        ("an AssociationEvent", {
            "type": "AssociationEvent", "eventTime": T, "eventTimeZoneOffset": "+00:00", "action": "ADD",
            "parentID": "urn:epc:id:grai:4012345.55555.987", "childEPCs": ["urn:epc:id:giai:4000001.12345"],
            "bizStep": "assembling"}),
        ("a GTIN-level (class) identifier in epcList", {
            "type": "ObjectEvent", "eventTime": T, "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
            "epcList": [f"https://id.gs1.org/01/{GTIN}"]}),
        ("unprefixed keys nested inside an extension field", {
            "type": "ObjectEvent", "eventTime": T, "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
            "epcList": [UNITS[0].canonical_uri],
            "wm:carrierData": {"trip": {"leg": 2, "vehicle": {"plate": "AB-12", "axles": [2, 3]}}}}),
        ("a business step outside the role table, as a URI", {
            "type": "TransformationEvent", "eventTime": T, "eventTimeZoneOffset": "+00:00",
            "inputEPCList": [UNITS[0].canonical_uri], "outputEPCList": [UNITS[1].canonical_uri],
            "bizStep": "https://ref.gs1.org/cbv/BizStep-transforming"}),
    ],
)
def test_schema_valid_events_are_accepted(description: str, event: dict[str, Any]) -> None:
    validate_document(one_event_document(event))
    validate_event({"@context": vocabulary.WAYMARK_CONTEXT, **event})
    event_hash({"@context": vocabulary.WAYMARK_CONTEXT, **event})


def test_epcis_query_documents_are_validated_and_their_events_read() -> None:
    document = orjson.loads((GS1_EXAMPLES / "EPCISQueryDocument.jsonld").read_bytes())
    validate_document(document)
    assert len(epcis.document_events(document)) == len(document["epcisBody"]["queryResults"]["resultsBody"]["eventList"])
    document["epcisBody"]["queryResults"]["resultsBody"]["eventList"][0]["eventTimeZoneOffset"] = "noon"
    with pytest.raises(EpcisValidationError) as caught:
        validate_document(document)
    assert caught.value.field == "epcisBody.queryResults.resultsBody.eventList[0].eventTimeZoneOffset"
    assert "schema rule" in caught.value.problem
