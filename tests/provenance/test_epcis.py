"""EPCIS 2.0 builders and validation: valid events of every type, errors that name the field."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from node.errors import WaymarkError
from node.provenance import epcis
from node.provenance.epcis import EpcisValidationError, validate_document, validate_event
from node.provenance.event_hash import event_hash
from node.provenance.gs1 import ContainerId, UnitId, make_sscc

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
        epcis.object_event(epcs=[CASE], action="OBSERVE", event_time=T, biz_step=epcis.customs_step("duty_assessed"),
                           disposition=epcis.customs_disposition("held"),
                           extensions=epcis.customs_fields(declaration_id="DECL-9", duty_amount="12.50",
                                                           duty_currency="USD")),
        epcis.transformation_event(input_epcs=UNITS[:2], output_epcs=UNITS[2:], event_time=T,
                                   biz_step="repackaging"),
    ]


def test_built_events_are_valid_and_carry_the_waymark_context() -> None:
    for event in lifecycle():
        validate_event(event)
        assert event["@context"] == epcis.WAYMARK_CONTEXT
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
         "epcisBody.eventList[0].epcList[1]", "absolute URI"),
        (lambda ev: ev[1].pop("eventTime"), "epcisBody.eventList[1].eventTime", "required"),
        (lambda ev: ev[1].__setitem__("eventTime", "2024-05-01 10:00"), "epcisBody.eventList[1].eventTime", "time zone"),
        (lambda ev: ev[1].__setitem__("eventTimeZoneOffset", "+2"), "epcisBody.eventList[1].eventTimeZoneOffset", "+HH:MM"),
        (lambda ev: ev[0].__setitem__("action", "CREATE"), "epcisBody.eventList[0].action", "ADD, OBSERVE, DELETE"),
        (lambda ev: ev[6].__setitem__("action", "ADD"), "epcisBody.eventList[6].action", "not a field"),
        (lambda ev: ev[0].__setitem__("bizStep", "teleporting"), "epcisBody.eventList[0].bizStep", "unknown bizStep"),
        (lambda ev: ev[5].__setitem__("bizStep", "wmc:smuggled"), "epcisBody.eventList[5].bizStep",
         "unknown Waymark bizStep"),
        (lambda ev: ev[5].__setitem__("bizStep", epcis.CUSTOMS_NS + "smuggled"), "epcisBody.eventList[5].bizStep",
         "unknown Waymark bizStep"),
        (lambda ev: ev[5].__setitem__("disposition", epcis.CUSTOMS_NS + "cleared"), "epcisBody.eventList[5].disposition",
         "unknown Waymark disposition"),
        (lambda ev: ev[0].__setitem__("disposition", "shiny"), "epcisBody.eventList[0].disposition", "unknown disposition"),
        (lambda ev: ev[0].__setitem__("childEPCs", []), "epcisBody.eventList[0].childEPCs", "not a field of ObjectEvent"),
        (lambda ev: ev[2].pop("childEPCs"), "epcisBody.eventList[2].childEPCs", "needs childEPCs"),
        (lambda ev: ev[2].pop("parentID"), "epcisBody.eventList[2].parentID", "required when action is ADD"),
        (lambda ev: ev[3].pop("bizTransactionList"), "epcisBody.eventList[3].bizTransactionList", "at least one"),
        (lambda ev: ev[3]["bizTransactionList"][0].__setitem__("type", "bribe"),
         "epcisBody.eventList[3].bizTransactionList[0].type", "unknown bizTransaction type"),
        (lambda ev: ev[3]["sourceList"][0].pop("type"), "epcisBody.eventList[3].sourceList[0].type", "required"),
        (lambda ev: ev[6].pop("inputEPCList"), "epcisBody.eventList[6].inputEPCList", "inputs and outputs"),
        (lambda ev: ev[4]["sensorElementList"][0]["sensorReport"][0].__setitem__("uom", "P1"),
         "epcisBody.eventList[4].sensorElementList[0].sensorReport[0].uom", "CEL, FAH or KEL"),
        (lambda ev: ev[4]["sensorElementList"][0]["sensorReport"][1].__setitem__("uom", "CEL"),
         "epcisBody.eventList[4].sensorElementList[0].sensorReport[1].uom", "P1"),
        (lambda ev: ev[4]["sensorElementList"][0]["sensorReport"][1].pop("uom"),
         "epcisBody.eventList[4].sensorElementList[0].sensorReport[1].uom", "unit of measure"),
        (lambda ev: ev[4]["sensorElementList"][0]["sensorReport"][0].__setitem__("value", "cold"),
         "epcisBody.eventList[4].sensorElementList[0].sensorReport[0].value", "expected a number"),
        (lambda ev: ev[4]["sensorElementList"][0]["sensorReport"][0].__setitem__("type", "Mood"),
         "epcisBody.eventList[4].sensorElementList[0].sensorReport[0].type", "unknown measurement type"),
        (lambda ev: ev[4]["sensorElementList"][0]["sensorMetadata"].__setitem__("startTime", "yesterday"),
         "epcisBody.eventList[4].sensorElementList[0].sensorMetadata.startTime", "timestamp"),
        (lambda ev: ev[1]["wm:documents"][0].__setitem__("wm:digest", "md5:abc"),
         "epcisBody.eventList[1].wm:documents[0].wm:digest", "sha256:"),
        (lambda ev: ev[5]["wmc:duty"].__setitem__("wmc:amount", "12,50"),
         "epcisBody.eventList[5].wmc:duty.wmc:amount", "decimal"),
        (lambda ev: ev[5]["wmc:duty"].__setitem__("wmc:currency", "dollars"),
         "epcisBody.eventList[5].wmc:duty.wmc:currency", "ISO 4217"),
        (lambda ev: ev[0].__setitem__("colour", "red"), "epcisBody.eventList[0].colour", "unknown field"),
        (lambda ev: ev[0].__setitem__("acme:colour", "red"), "epcisBody.eventList[0].acme:colour", "not declared"),
        (lambda ev: ev[0].__setitem__("wm:serialBatch", "12345678901234567890"),
         "epcisBody.eventList[0].wm:serialBatch", "15 significant digits"),
        (lambda ev: ev[0].__setitem__("disposition", None), "epcisBody.eventList[0].disposition", "null"),
        (lambda ev: ev[0].__setitem__("type", "AssociationEvent"), "epcisBody.eventList[0].type", "expected one of"),
        (lambda ev: ev[0]["readPoint"].__setitem__("id", "factory 7"), "epcisBody.eventList[0].readPoint.id", "absolute URI"),
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
        ("type", "EPCISQueryDocument", "type"),
        ("schemaVersion", "1.2", "schemaVersion"),
        ("creationDate", "today", "creationDate"),
        ("@context", [{"wm": epcis.WAYMARK_NS}], "@context"),
    ]:
        bad = copy.deepcopy(document)
        bad[key] = value
        assert error_of(bad).field == field
    empty = copy.deepcopy(document)
    empty["epcisBody"]["eventList"] = []
    assert error_of(empty).field == "epcisBody.eventList"


def test_extension_prefixes_come_from_the_document_context() -> None:
    document = epcis.epcis_document(lifecycle(), creation_date=T)
    document["@context"] = [epcis.EPCIS_CONTEXT_URL, {"wm": epcis.WAYMARK_NS, "wmc": epcis.CUSTOMS_NS, "acme": "https://acme.example/ns/"}]
    document["epcisBody"]["eventList"][0]["acme:colour"] = "red"
    validate_document(document)


def test_customs_curie_is_accepted_but_hashes_unlike_its_iri() -> None:
    event = lifecycle()[5]
    curie = {**event, "bizStep": "wmc:duty_assessed"}
    validate_event(curie)
    assert event["bizStep"] == epcis.CUSTOMS_NS + "duty_assessed"
    assert event_hash(curie) != event_hash(event)  # as in the reference algorithm


def test_customs_vocabulary_is_namespaced_iris() -> None:
    assert epcis.customs_step("declared") == "https://ns.waymark.example/customs/declared"
    assert set(epcis.CUSTOMS_STEPS) == {"declared", "cleared", "detained", "returned", "duty_assessed"}
    with pytest.raises(ValueError):
        epcis.customs_step("bribed")
    assert epcis.WAYMARK_CONTEXT[1] == {"wm": "https://ns.waymark.example/epcis/",
                                        "wmc": "https://ns.waymark.example/customs/"}
