"""EPCIS 2.0 events (JSON-LD binding) as plain dicts: the builders and document helpers.

Events are built as the JSON objects EPCIS 2.0 defines (``type``, ``eventTime``,
``eventTimeZoneOffset``, ``epcList``, ``action``, ``bizStep``, ...), so what is stored,
signed, hashed and shown is one thing. CBV 2.0 terms may be written bare (``"shipping"``),
as CURIEs (``"cbv:BizStep-shipping"``) or as full IRIs; the event hash treats all three
alike. The vocabulary (CBV terms, Waymark's ``wm:``/``wmc:`` namespaces, customs steps) is
:mod:`node.protocol.vocabulary`; validation is :mod:`node.protocol.epcis_validation`; times
are :mod:`node.protocol.timestamps`.

Document hashes go in the ``wm:documents`` extension, not ``certificationInfo``: the CBV 2.0
event hash leaves ``certificationInfo`` out of the pre-hash string, so a changed certificate
would not change the event id; user extensions are hashed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence, TypedDict, Unpack

from node.protocol.timestamps import format_offset, format_timestamp
from node.protocol.vocabulary import CUSTOMS_PREFIX, DOCUMENT_DIGEST_RE, WAYMARK_CONTEXT, WAYMARK_PREFIX

UOM_CELSIUS = "CEL"
UOM_PERCENT = "P1"  # UN/CEFACT Rec 20 "percent"; relative humidity

Json = dict[str, Any]


def _ids(values: Iterable[Any]) -> list[str]:
    out = []
    for value in values:
        uri = getattr(value, "canonical_uri", value)
        out.append(str(uri))
    return out


def _one_id(value: Any) -> str:
    return str(getattr(value, "canonical_uri", value))


def _common(
    event_type: str,
    event_time: datetime | str,
    event_time_zone_offset: str | None,
) -> Json:
    offset = event_time_zone_offset
    if offset is None and isinstance(event_time, datetime):
        offset = format_offset(event_time)
    return {
        "@context": WAYMARK_CONTEXT,
        "type": event_type,
        "eventTime": format_timestamp(event_time),
        "eventTimeZoneOffset": format_offset(offset=offset or "+00:00"),
    }


class EventFields(TypedDict, total=False):
    """The where/why fields every event type takes (keyword arguments of the builders below)."""

    biz_step: str | None
    disposition: str | None
    read_point: str | None
    biz_location: str | None
    sources: Sequence[Mapping[str, str]] | None
    destinations: Sequence[Mapping[str, str]] | None
    sensor_elements: Sequence[Json] | None
    documents: Sequence[Json] | None
    extensions: Mapping[str, Any] | None


class EventFieldsWithTransactions(EventFields, total=False):
    biz_transactions: Sequence[Mapping[str, str]] | None


class EventFieldsWithIlmd(EventFieldsWithTransactions, total=False):
    """ObjectEvent and TransformationEvent may also carry instance/lot master data."""

    ilmd: Mapping[str, Any] | None


def _what_where_why(event: Json, **fields: Unpack[EventFieldsWithIlmd]) -> Json:
    if (biz_step := fields.get("biz_step")) is not None:
        event["bizStep"] = biz_step
    if (disposition := fields.get("disposition")) is not None:
        event["disposition"] = disposition
    if (read_point := fields.get("read_point")) is not None:
        event["readPoint"] = {"id": read_point}
    if (biz_location := fields.get("biz_location")) is not None:
        event["bizLocation"] = {"id": biz_location}
    if biz_transactions := fields.get("biz_transactions"):
        event["bizTransactionList"] = [dict(bt) for bt in biz_transactions]
    if sources := fields.get("sources"):
        event["sourceList"] = [dict(s) for s in sources]
    if destinations := fields.get("destinations"):
        event["destinationList"] = [dict(d) for d in destinations]
    if sensor_elements := fields.get("sensor_elements"):
        event["sensorElementList"] = list(sensor_elements)
    if ilmd := fields.get("ilmd"):
        event["ilmd"] = dict(ilmd)
    if documents := fields.get("documents"):
        event[f"{WAYMARK_PREFIX}:documents"] = list(documents)
    if extensions := fields.get("extensions"):
        for key, value in extensions.items():
            if key in event:
                raise ValueError(f"extension {key!r} would overwrite a standard field")
            event[key] = value
    return event


def object_event(
    *,
    epcs: Iterable[Any],
    action: str,
    event_time: datetime | str,
    event_time_zone_offset: str | None = None,
    **fields: Unpack[EventFieldsWithIlmd],
) -> Json:
    """An ObjectEvent about units/containers (ids or UnitId/ContainerId objects)."""
    event = _common("ObjectEvent", event_time, event_time_zone_offset)
    event["epcList"] = _ids(epcs)
    event["action"] = action
    return _what_where_why(event, **fields)


def aggregation_event(
    *,
    parent_id: Any,
    child_epcs: Iterable[Any],
    action: str,
    event_time: datetime | str,
    event_time_zone_offset: str | None = None,
    **fields: Unpack[EventFieldsWithTransactions],
) -> Json:
    """An AggregationEvent: ``child_epcs`` packed into (ADD) or out of (DELETE) ``parent_id``."""
    event = _common("AggregationEvent", event_time, event_time_zone_offset)
    event["parentID"] = _one_id(parent_id)
    children = _ids(child_epcs)
    if children:
        event["childEPCs"] = children
    event["action"] = action
    return _what_where_why(event, **fields)


def transaction_event(
    *,
    biz_transactions: Sequence[Mapping[str, str]],
    epcs: Iterable[Any],
    action: str,
    event_time: datetime | str,
    parent_id: Any | None = None,
    event_time_zone_offset: str | None = None,
    **fields: Unpack[EventFields],
) -> Json:
    """A TransactionEvent tying objects to business transactions (PO, invoice, ...)."""
    event = _common("TransactionEvent", event_time, event_time_zone_offset)
    if parent_id is not None:
        event["parentID"] = _one_id(parent_id)
    event["epcList"] = _ids(epcs)
    event["action"] = action
    return _what_where_why(event, biz_transactions=biz_transactions, **fields)


def transformation_event(
    *,
    input_epcs: Iterable[Any],
    output_epcs: Iterable[Any],
    event_time: datetime | str,
    transformation_id: str | None = None,
    event_time_zone_offset: str | None = None,
    **fields: Unpack[EventFieldsWithIlmd],
) -> Json:
    """A TransformationEvent: inputs consumed, outputs produced (no ``action``)."""
    event = _common("TransformationEvent", event_time, event_time_zone_offset)
    inputs, outputs = _ids(input_epcs), _ids(output_epcs)
    if inputs:
        event["inputEPCList"] = inputs
    if outputs:
        event["outputEPCList"] = outputs
    if transformation_id is not None:
        event["transformationID"] = transformation_id
    return _what_where_why(event, **fields)


def biz_transaction(transaction_id: str, transaction_type: str | None = None) -> dict[str, str]:
    """An entry of ``bizTransactionList`` (type: a CBV term such as ``po``, ``inv``)."""
    entry = {"bizTransaction": transaction_id}
    if transaction_type is not None:
        entry = {"type": transaction_type, **entry}
    return entry


def sensor_report(
    measurement_type: str,
    value: float | int,
    uom: str,
    *,
    time: datetime | str | None = None,
    device_id: str | None = None,
    exception: str | None = None,
) -> Json:
    """One ``sensorReport`` entry (measurement type is a GS1 term: Temperature, ...)."""
    report: Json = {"type": measurement_type}
    if exception is not None:
        report["exception"] = exception
    if device_id is not None:
        report["deviceID"] = device_id
    if time is not None:
        report["time"] = format_timestamp(time)
    report["value"] = value
    report["uom"] = uom
    return report


def temperature(value: float | int, **kwargs: Any) -> Json:
    """A temperature reading in degrees Celsius (UN/CEFACT ``CEL``)."""
    return sensor_report("Temperature", value, UOM_CELSIUS, **kwargs)


def relative_humidity(value: float | int, **kwargs: Any) -> Json:
    """A relative humidity reading in percent (UN/CEFACT ``P1``)."""
    return sensor_report("RelativeHumidity", value, UOM_PERCENT, **kwargs)


def sensor_element(
    reports: Sequence[Json],
    *,
    time: datetime | str | None = None,
    start_time: datetime | str | None = None,
    end_time: datetime | str | None = None,
    device_id: str | None = None,
) -> Json:
    """A ``sensorElementList`` entry: optional metadata plus reports."""
    element: Json = {}
    metadata: Json = {}
    if time is not None:
        metadata["time"] = format_timestamp(time)
    if start_time is not None:
        metadata["startTime"] = format_timestamp(start_time)
    if end_time is not None:
        metadata["endTime"] = format_timestamp(end_time)
    if device_id is not None:
        metadata["deviceID"] = device_id
    if metadata:
        element["sensorMetadata"] = metadata
    element["sensorReport"] = list(reports)
    return element


def document_ref(document_type: str, sha256_hex: str) -> Json:
    """A ``wm:documents`` entry: the type of a document and the SHA-256 of its content.

    The digest is written ``sha256:<hex>`` so that no hash is ever read as a number by the
    CBV canonicalisation (an all-digit hex string would be).
    """
    digest = sha256_hex.lower()
    if not DOCUMENT_DIGEST_RE.match("sha256:" + digest):
        raise ValueError(f"a SHA-256 digest has 64 hex digits, got {sha256_hex!r}")
    return {f"{WAYMARK_PREFIX}:documentType": document_type, f"{WAYMARK_PREFIX}:digest": f"sha256:{digest}"}


def customs_fields(
    *,
    declaration_id: str | None = None,
    customs_office: str | None = None,
    duty_amount: str | None = None,
    duty_currency: str | None = None,
    reason: str | None = None,
) -> Json:
    """Customs extension fields (``wmc:``) to pass as ``extensions=``.

    ``duty_amount`` is a decimal string (``"125.50"``) in ``duty_currency`` (ISO 4217).
    """
    fields: Json = {}
    if declaration_id is not None:
        fields[f"{CUSTOMS_PREFIX}:declarationId"] = declaration_id
    if customs_office is not None:
        fields[f"{CUSTOMS_PREFIX}:customsOffice"] = customs_office
    if duty_amount is not None or duty_currency is not None:
        if duty_amount is None or duty_currency is None:
            raise ValueError("a duty needs both an amount and a currency")
        fields[f"{CUSTOMS_PREFIX}:duty"] = {
            f"{CUSTOMS_PREFIX}:amount": duty_amount,
            f"{CUSTOMS_PREFIX}:currency": duty_currency,
        }
    if reason is not None:
        fields[f"{CUSTOMS_PREFIX}:reason"] = reason
    return fields


def epcis_document(events: Sequence[Json], creation_date: datetime | str | None = None) -> Json:
    """Wrap events in an EPCISDocument (``schemaVersion`` 2.0)."""
    created = creation_date if creation_date is not None else datetime.now(timezone.utc)
    body_events = []
    for event in events:
        stripped = {k: v for k, v in event.items() if k != "@context"}
        body_events.append(stripped)
    return {
        "@context": WAYMARK_CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": format_timestamp(created),
        "epcisBody": {"eventList": body_events},
    }


def document_events(document: Mapping[str, Any]) -> list[Json]:
    """The events of an EPCISDocument (or EPCISQueryDocument), each with the document's
    ``@context`` merged in."""
    body = document.get("epcisBody") or {}
    if document.get("type") == "EPCISQueryDocument":
        body = (body.get("queryResults") or {}).get("resultsBody") or {}
    events = body.get("eventList")
    if events is None and "event" in body:
        events = [body["event"]]
    context = document.get("@context")
    out = []
    for event in events or []:
        if "@context" not in event and context is not None:
            event = {"@context": context, **event}
        out.append(event)
    return out
