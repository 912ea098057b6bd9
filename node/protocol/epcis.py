"""EPCIS 2.0 events (JSON-LD binding) as plain dicts: vocabulary, builders, validation.

Events are built and validated as the JSON objects EPCIS 2.0 defines (``type``,
``eventTime``, ``eventTimeZoneOffset``, ``epcList``, ``action``, ``bizStep``, ...), so what
is stored, signed, hashed and shown is one thing. CBV 2.0 terms may be written bare
(``"shipping"``), as CURIEs (``"cbv:BizStep-shipping"``) or as full IRIs; the event hash
treats all three alike.

Waymark's own vocabulary lives in two namespaces, declared by :data:`WAYMARK_CONTEXT`:

* ``wmc:`` = ``https://ns.waymark.example/customs/`` - customs steps CBV lacks, as bizStep
  values (``.../customs/declared``, ``cleared``, ``detained``, ``returned``,
  ``duty_assessed``), customs dispositions (``.../customs/held``, ``released``, ``refused``)
  and extension fields (``wmc:declarationId``, ``wmc:customsOffice``, ``wmc:duty`` =
  ``{wmc:amount, wmc:currency}``, ``wmc:reason``). Builders write vocabulary *values* as
  full IRIs: the CBV hash (like its reference implementation) expands CURIEs in values only
  into GS1's own vocabularies, so ``wmc:declared`` is accepted but hashes differently from
  its IRI - pick one spelling per deployment (the IRI).
* ``wm:`` = ``https://ns.waymark.example/epcis/`` - document references
  ``wm:documents`` = ``[{wm:documentType, wm:digest: "sha256:<hex>"}]``.

Document hashes go in the ``wm:documents`` extension, not ``certificationInfo``: the CBV 2.0
event hash leaves ``certificationInfo`` out of the pre-hash string, so a changed certificate
would not change the event id; user extensions are hashed.

Validation is GS1's official EPCIS 2.0 JSON schema (``data/EPCIS-JSON-Schema.json``, checked
by jsonschema_rs: every event type, field and extension the standard allows), then Waymark's
own checks (GS1 keys that hash canonically, extension values that hash without loss, the
structure of ``wm:``/``wmc:`` fields). It raises :class:`EpcisValidationError` whose ``field``
is the path of the offending value (``epcisBody.eventList[3].epcList[0]``) and whose problem
names the rule broken.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, NoReturn, Sequence, TypedDict, Unpack

import jsonschema_rs

from node.errors import WaymarkError

# --- namespaces and contexts --------------------------------------------------------------

EPCIS_CONTEXT_URL = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
CBV_NS = "https://ref.gs1.org/cbv/"
GS1_VOC_NS = "https://ref.gs1.org/voc/"
EPCIS_NS = "https://ref.gs1.org/epcis/"

WAYMARK_PREFIX = "wm"
WAYMARK_NS = "https://ns.waymark.example/epcis/"
CUSTOMS_PREFIX = "wmc"
CUSTOMS_NS = "https://ns.waymark.example/customs/"

WAYMARK_CONTEXT: list[Any] = [EPCIS_CONTEXT_URL, {WAYMARK_PREFIX: WAYMARK_NS, CUSTOMS_PREFIX: CUSTOMS_NS}]
"""The ``@context`` of every event Waymark builds."""

# --- CBV 2.0 vocabulary (terms of the EPCIS 2.0 JSON-LD context) --------------------------

BIZ_STEPS = frozenset(
    "accepting arriving assembling collecting commissioning consigning creating_class_instance "
    "cycle_counting decommissioning departing destroying disassembling dispensing encoding "
    "entering_exiting holding inspecting installing killing loading other packing picking "
    "receiving removing repackaging repairing replacing reserving retail_selling sampling "
    "sensor_reporting shipping staging_outbound stock_taking stocking storing transporting "
    "unloading unpacking void_shipping".split()
)
DISPOSITIONS = frozenset(
    "active available completeness_inferred completeness_verified conformant container_closed "
    "container_open damaged destroyed dispensed disposed encoded expired in_progress in_transit "
    "inactive mismatch_class mismatch_instance mismatch_quantity needs_replacement "
    "no_pedigree_match non_conformant non_sellable_other partially_dispensed recalled reserved "
    "retail_sold returned sellable_accessible sellable_not_accessible stolen unavailable unknown".split()
)
BIZ_TRANSACTION_TYPES = frozenset(
    "bol cert desadv inv pedigree po poc prodorder recadv rma testprd testres upevt".split()
)
SOURCE_DESTINATION_TYPES = frozenset("location owning_party possessing_party".split())
ERROR_REASONS = frozenset("did_not_occur incorrect_data".split())
MEASUREMENT_TYPES = frozenset(
    "AbsoluteHumidity AbsorbedDose AbsorbedDoseRate Acceleration Altitude AmountOfSubstance "
    "AmountOfSubstancePerUnitVolume Angle AngularAcceleration AngularMomentum AngularVelocity "
    "Area Capacitance Conductance Conductivity Count Density Dimensionless DoseEquivalent "
    "DoseEquivalentRate DynamicViscosity ElectricCharge ElectricCurrent ElectricCurrentDensity "
    "ElectricFieldStrength Energy Exposure Force Frequency Illuminance Inductance Irradiance "
    "KinematicViscosity Length LinearMomentum Luminance LuminousFlux LuminousIntensity "
    "MagneticFlux MagneticFluxDensity MagneticVectorPotential Mass MassConcentration "
    "MassFlowRate MassPerAreaTime MemoryCapacity MolalityOfSolute MolarEnergy MolarMass "
    "MolarVolume Power Pressure RadiantFlux RadiantIntensity Radioactivity RelativeHumidity "
    "Resistance Resistivity SolidAngle SpecificVolume Speed SurfaceDensity SurfaceTension "
    "Temperature Time Torque Voltage Volume VolumeFlowRate VolumeFraction VolumetricFlux "
    "Wavenumber".split()
)
SENSOR_EXCEPTIONS = frozenset(("ALARM_CONDITION", "ERROR_CONDITION"))
SENSOR_COMPONENTS = frozenset(
    "x y z axial_distance azimuth height spherical_radius polar_angle elevation_angle easting "
    "northing latitude longitude altitude".split()
)

# Bare term -> full IRI, per field kind (what JSON-LD expansion with the EPCIS context gives).
BIZ_STEP_IRIS = {term: f"{CBV_NS}BizStep-{term}" for term in BIZ_STEPS}
DISPOSITION_IRIS = {term: f"{CBV_NS}Disp-{term}" for term in DISPOSITIONS}
BIZ_TRANSACTION_TYPE_IRIS = {term: f"{CBV_NS}BTT-{term}" for term in BIZ_TRANSACTION_TYPES}
SOURCE_DESTINATION_TYPE_IRIS = {term: f"{CBV_NS}SDT-{term}" for term in SOURCE_DESTINATION_TYPES}
ERROR_REASON_IRIS = {term: f"{CBV_NS}ER-{term}" for term in ERROR_REASONS}
MEASUREMENT_TYPE_IRIS = {term: f"{GS1_VOC_NS}{term}" for term in MEASUREMENT_TYPES}
SENSOR_EXCEPTION_IRIS = {term: f"{GS1_VOC_NS}{term}" for term in SENSOR_EXCEPTIONS}
SENSOR_COMPONENT_IRIS = {term: f"{CBV_NS}Comp-{term}" for term in SENSOR_COMPONENTS}

STANDARD_PREFIXES = {"cbv": CBV_NS, "gs1": GS1_VOC_NS, "epcis": EPCIS_NS}
"""Prefixes the EPCIS 2.0 context itself defines (used for CURIEs in vocabulary fields)."""

# --- Waymark customs vocabulary -----------------------------------------------------------

CUSTOMS_STEPS = ("declared", "cleared", "detained", "returned", "duty_assessed")
CUSTOMS_DISPOSITIONS = ("held", "released", "refused")
CUSTOMS_STEP_IRIS = {step: f"{CUSTOMS_NS}{step}" for step in CUSTOMS_STEPS}
CUSTOMS_DISPOSITION_IRIS = {disp: f"{CUSTOMS_NS}{disp}" for disp in CUSTOMS_DISPOSITIONS}


def customs_step(step: str) -> str:
    """The bizStep IRI of a customs step: ``declared`` -> ``https://ns.waymark.example/customs/declared``."""
    if step not in CUSTOMS_STEPS:
        raise ValueError(f"unknown customs step {step!r}; one of {', '.join(CUSTOMS_STEPS)}")
    return CUSTOMS_STEP_IRIS[step]


def customs_disposition(disposition: str) -> str:
    """The disposition IRI of a customs state: ``held`` -> ``https://ns.waymark.example/customs/held``."""
    if disposition not in CUSTOMS_DISPOSITIONS:
        raise ValueError(
            f"unknown customs disposition {disposition!r}; one of {', '.join(CUSTOMS_DISPOSITIONS)}"
        )
    return CUSTOMS_DISPOSITION_IRIS[disposition]


# --- units of measure ---------------------------------------------------------------------

UOM_CELSIUS = "CEL"
UOM_PERCENT = "P1"  # UN/CEFACT Rec 20 "percent"; relative humidity
TEMPERATURE_UOMS = frozenset(("CEL", "FAH", "KEL"))
_UOM_RE = re.compile(r"^[A-Z0-9]{2,3}$")

EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent")
ACTIONS = ("ADD", "OBSERVE", "DELETE")

# --- timestamps ---------------------------------------------------------------------------

_TIMESTAMP_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
, re.ASCII  # ASCII digits only: full-width digits are not a time
)
_OFFSET_RE = re.compile(r"^[+-](?:[01]\d|2[0-3]):[0-5]\d$")


def parse_timestamp(text: str) -> tuple[datetime, str]:
    """Parse an xsd:dateTimeStamp (time zone required); return (UTC datetime, fraction digits).

    The fraction digits are returned as written so that callers can round exactly; the
    datetime carries microseconds truncated to 6 digits.
    """
    match = _TIMESTAMP_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp with time zone: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7) or ""
    micro = int((fraction + "000000")[:6])
    zone = match.group(8)
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone.utc)
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    except (ValueError, OverflowError):  # no such date, or out of the range of dates (year 1-9999 in UTC)
        raise ValueError(f"not a date and time in the years 1-9999 UTC: {text!r}") from None
    return moment, fraction


def format_timestamp(moment: datetime | str) -> str:
    """Format a time as EPCIS writes it here: UTC, milliseconds, ``Z``."""
    if isinstance(moment, str):
        moment = parse_timestamp(moment)[0]
    if moment.tzinfo is None:
        raise ValueError("event times must be time-zone aware")
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_offset(moment: datetime | None = None, offset: str | None = None) -> str:
    """``eventTimeZoneOffset`` (``+HH:MM``) from an explicit offset or an aware datetime."""
    if offset is not None:
        if not _OFFSET_RE.match(offset):
            raise ValueError(f"a time zone offset looks like +01:00, got {offset!r}")
        return offset
    if moment is None or moment.utcoffset() is None:
        return "+00:00"
    minutes = int(moment.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# --- errors -------------------------------------------------------------------------------


class EpcisValidationError(WaymarkError):
    """An EPCIS document or event is malformed; ``field`` is the path of the bad value."""

    code = "invalid_epcis"

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


# --- builders -----------------------------------------------------------------------------

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


_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


def document_ref(document_type: str, sha256_hex: str) -> Json:
    """A ``wm:documents`` entry: the type of a document and the SHA-256 of its content.

    The digest is written ``sha256:<hex>`` so that no hash is ever read as a number by the
    CBV canonicalisation (an all-digit hex string would be).
    """
    digest = sha256_hex.lower()
    if not _HEX64_RE.match(digest):
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


# --- validation ---------------------------------------------------------------------------

_ABSOLUTE_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
_CURIE_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*):([^\s/][^\s]*)$")
_NUMERIC_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")

_STANDARD_KEYS = {
    "@context", "type", "eventTime", "eventTimeZoneOffset", "recordTime", "eventID",
    "certificationInfo", "errorDeclaration", "parentID", "epcList", "inputEPCList", "childEPCs",
    "quantityList", "childQuantityList", "inputQuantityList", "outputEPCList",
    "outputQuantityList", "action", "transformationID", "bizStep", "disposition",
    "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList",
    "destinationList", "sensorElementList", "ilmd",
}
_ALLOWED_BY_TYPE = {
    "ObjectEvent": {"epcList", "quantityList", "action", "ilmd"},
    "AggregationEvent": {"parentID", "childEPCs", "childQuantityList", "action"},
    "TransactionEvent": {"parentID", "epcList", "quantityList", "action"},
    "TransformationEvent": {
        "inputEPCList", "inputQuantityList", "outputEPCList", "outputQuantityList",
        "transformationID", "ilmd",
    },
}
_TYPE_SPECIFIC = set().union(*_ALLOWED_BY_TYPE.values())


def context_prefixes(context: Any) -> dict[str, str]:
    """Prefix -> IRI declared by a JSON-LD ``@context`` (remote context URLs declare none here)."""
    found: dict[str, str] = {}
    items = context if isinstance(context, list) else [context]
    for item in items:
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key.startswith("@"):
                    continue
                if isinstance(value, str):
                    found[key] = value
                elif isinstance(value, Mapping) and isinstance(value.get("@id"), str):
                    found[key] = value["@id"]
    return found


class _Validator:
    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self.prefixes = prefixes

    # helpers
    def fail(self, path: str, problem: str) -> NoReturn:
        raise EpcisValidationError(path, problem)

    def string(self, path: str, value: Any) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {type(value).__name__}")
        if not value.strip():
            self.fail(path, "empty string")
        return value

    def uri(self, path: str, value: Any) -> str:
        text = self.string(path, value)
        if not _ABSOLUTE_URI_RE.match(text):
            self.fail(path, f"expected an absolute URI, got {text!r}")
        return text

    def object_id(self, path: str, value: Any, *, instance: bool) -> None:
        from node.protocol.gs1 import InvalidIdentifier, parse_digital_link, parse_identifier

        text = self.uri(path, value)
        lowered = text.lower()
        gs1_like = lowered.startswith(("urn:epc:id:sgtin:", "urn:epc:id:sscc:")) or (
            lowered.startswith(("https://", "http://"))
            and re.search(r"/(01|00|gtin|sscc)/\d", text) is not None
        )
        if not gs1_like:
            return
        try:
            if instance:
                parse_identifier(text)
            elif not lowered.startswith("urn:"):
                # a class id (GTIN, GTIN+lot) is fine; a malformed key is not
                if "/21/" in text or "/ser/" in text or "/00/" in text or "/sscc/" in text:
                    parse_digital_link(text)
        except InvalidIdentifier as error:
            self.fail(path, error.problem)

    def timestamp(self, path: str, value: Any) -> None:
        text = self.string(path, value)
        try:
            parse_timestamp(text)
        except ValueError as exc:
            if "years" in str(exc):  # well formed, but no such date in the years 1-9999 UTC
                self.fail(path, str(exc))
            self.fail(path, f"expected an ISO 8601 timestamp with time zone, got {text!r}")

    def nonempty_list(self, path: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {type(value).__name__}")
        if not value:
            self.fail(path, "empty list")
        return value

    def mapping(self, path: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected an object, got {type(value).__name__}")
        return value

    def number(self, path: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"expected a number, got {type(value).__name__}")
        if value != value or value in (float("inf"), float("-inf")):
            self.fail(path, "not a finite number")

    def vocab(
        self, path: str, value: Any, terms: Iterable[str], extra_iris: Iterable[str] = (), what: str = "term"
    ) -> None:
        text = self.string(path, value)
        if text in terms:
            return
        prefix, _, local = text.partition(":")
        if prefix in (WAYMARK_PREFIX, CUSTOMS_PREFIX):
            # Accepted (valid JSON-LD), but the CBV hash does not expand non-GS1 CURIEs in
            # values, so the CURIE and the IRI give different event ids; builders emit IRIs.
            expanded = (WAYMARK_NS if prefix == WAYMARK_PREFIX else CUSTOMS_NS) + local
        else:
            expanded = self.expand(text)
        if expanded in extra_iris:
            return
        if expanded.startswith((CUSTOMS_NS, WAYMARK_NS)):
            self.fail(path, f"unknown Waymark {what} {text!r}")
        if ":" in text and _ABSOLUTE_URI_RE.match(text):
            return
        self.fail(path, f"unknown {what} {text!r}")

    def expand(self, text: str) -> str:
        prefix, sep, rest = text.partition(":")
        if sep and not rest.startswith("//"):
            iri = self.prefixes.get(prefix) or STANDARD_PREFIXES.get(prefix)
            if iri:
                return iri + rest
        return text

    # event
    def event(self, path: str, event: Any) -> None:
        """Waymark's own checks on an event the official schema has accepted: GS1 keys that
        hash canonically (check digits, qualifier order), extension values that hash without
        loss, and the structure of Waymark's extension fields."""
        event = self.mapping(path, event)
        if "@context" in event:
            merged = dict(self.prefixes)
            merged.update(context_prefixes(event["@context"]))
            self.prefixes = merged
        for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
            items = event.get(key)
            if isinstance(items, list):
                for i, item in enumerate(items):
                    # class-level ids (a GTIN alone) are allowed in EPC lists: EPCIS 2.0 8.3.3
                    self.object_id(f"{path}.{key}[{i}]", item, instance=False)
        if "parentID" in event:
            self.object_id(f"{path}.parentID", event["parentID"], instance=True)
        for key in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
            for i, element in enumerate(event.get(key) or ()):
                if isinstance(element, Mapping) and "epcClass" in element:
                    self.object_id(f"{path}.{key}[{i}].epcClass", element["epcClass"], instance=False)
        for key, value in event.items():
            if key not in _STANDARD_KEYS:
                self.extension_key(f"{path}.{key}", key)
                self.extension_value(f"{path}.{key}", key, value)
        ilmd = event.get("ilmd")
        if isinstance(ilmd, Mapping):
            for key, value in ilmd.items():
                self.extension_value(f"{path}.ilmd.{key}", key, value)

    # extensions
    def extension_key(self, path: str, key: str) -> None:
        match = _CURIE_KEY_RE.match(key)
        if match is None:
            self.fail(path, f"unknown field {key!r} (extension fields are prefix:name with the prefix declared in @context)")
        prefix = match.group(1)
        if prefix not in self.prefixes and prefix not in STANDARD_PREFIXES and prefix != "cbvmda":
            self.fail(path, f"prefix {prefix!r} of extension field {key!r} is not declared in @context")

    def extension_value(self, path: str, key: str, value: Any, *, item: bool = False) -> None:
        if value is None:
            self.fail(path, "null is not allowed")
        if not item:
            if key == f"{WAYMARK_PREFIX}:documents":
                self.documents(path, value)
            elif key == f"{CUSTOMS_PREFIX}:duty":
                self.duty(path, value)
        if isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                # inside an extension field, keys need no prefix (they are the extension's own)
                self.extension_value(f"{path}.{sub_key}", sub_key, sub_value)
        elif isinstance(value, list):
            for i, element in enumerate(value):
                self.extension_value(f"{path}[{i}]", key, element, item=True)
        elif isinstance(value, str):
            # The CBV hash reads numeric-looking strings as numbers; past 15 significant
            # digits a float loses digits, so two different values could hash alike.
            if _NUMERIC_RE.match(value.strip()):
                significant = re.sub(r"[^0-9]", "", value.split("e")[0].split("E")[0]).lstrip("0")
                if len(significant) > 15:
                    self.fail(path, "numeric string with more than 15 significant digits loses "
                                    "precision in the CBV event hash; prefix it with a non-digit")
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                self.fail(path, "not a finite number")

    def documents(self, path: str, value: Any) -> None:
        for i, entry in enumerate(self.nonempty_list(path, value)):
            entry = self.mapping(f"{path}[{i}]", entry)
            type_key, digest_key = f"{WAYMARK_PREFIX}:documentType", f"{WAYMARK_PREFIX}:digest"
            if type_key not in entry:
                self.fail(f"{path}[{i}].{type_key}", "required")
            self.string(f"{path}[{i}].{type_key}", entry[type_key])
            if digest_key not in entry:
                self.fail(f"{path}[{i}].{digest_key}", "required")
            digest = self.string(f"{path}[{i}].{digest_key}", entry[digest_key])
            if not (digest.startswith("sha256:") and _HEX64_RE.match(digest[7:])):
                self.fail(f"{path}[{i}].{digest_key}", f"expected sha256:<64 lowercase hex>, got {digest!r}")

    def duty(self, path: str, value: Any) -> None:
        duty = self.mapping(path, value)
        amount_key, currency_key = f"{CUSTOMS_PREFIX}:amount", f"{CUSTOMS_PREFIX}:currency"
        amount = self.string(f"{path}.{amount_key}", duty.get(amount_key))
        if not re.match(r"^\d+(\.\d+)?$", amount):
            self.fail(f"{path}.{amount_key}", f"expected a decimal string like 125.50, got {amount!r}")
        currency = self.string(f"{path}.{currency_key}", duty.get(currency_key))
        if not re.match(r"^[A-Z]{3}$", currency):
            self.fail(f"{path}.{currency_key}", f"expected an ISO 4217 code like EUR, got {currency!r}")


_SCHEMA_FILE = Path(__file__).with_name("data") / "EPCIS-JSON-Schema.json"


@lru_cache(maxsize=1)
def official_schema() -> dict[str, Any]:
    """GS1's published EPCIS 2.0 JSON schema (inlined), as shipped in node/protocol/data."""
    loaded: dict[str, Any] = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


@lru_cache(maxsize=1)
def _schema_validator() -> Any:
    return jsonschema_rs.validator_for(official_schema())


def json_path(parts: Iterable[str | int], root: str = "") -> str:
    """``epcisBody.eventList[3].epcList[0]`` from the parts of a JSON pointer."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(document)"


_QUOTED = re.compile(r'^"((?:[^"\\]|\\.)*)"')


def schema_problems(instance: Any, root: str = "") -> list[EpcisValidationError]:
    """Every violation of the official EPCIS 2.0 JSON schema, deepest first; each names the
    JSON path of the value and the schema rule it breaks."""
    found = []
    for error in _schema_validator().iter_errors(instance):
        parts: list[str | int] = list(error.instance_path)
        kind = type(error.kind).__name__
        if kind in ("Required", "PropertyNames", "AdditionalProperties"):
            named = _QUOTED.match(error.message)
            if named is not None:
                parts.append(named.group(1))
        rule = "/".join(str(p) for p in error.schema_path)
        message = error.message
        if message.startswith(("{", "[")):  # the whole value quoted back: say what failed instead
            message = f"matches none of the alternatives ({kind})"
        found.append((len(parts), EpcisValidationError(json_path(parts, root), f"{message} (schema rule {rule})")))
    found.sort(key=lambda item: -item[0])
    return [problem for _depth, problem in found]


def _check_schema(instance: Any, root: str = "") -> None:
    problems = schema_problems(instance, root)
    if problems:
        raise problems[0]


def validate_event(event: Mapping[str, Any], *, path: str = "event", context: Any = None) -> None:
    """Validate one event against the official schema, then Waymark's own checks; raise
    :class:`EpcisValidationError` naming the field path and the rule broken.

    ``context`` is the enclosing document's ``@context`` when the event has none itself.
    """
    if "@context" not in event and context is not None:
        event = {"@context": context, **event}
    _check_schema(event, path)
    _Validator(context_prefixes(context) if context is not None else {}).event(path, event)


def validate_document(document: Mapping[str, Any]) -> None:
    """Validate an EPCISDocument or EPCISQueryDocument (official schema, then Waymark's checks
    on every event)."""
    if not isinstance(document, Mapping):
        raise EpcisValidationError("(document)", f"expected an object, got {type(document).__name__}")
    if document.get("type") not in ("EPCISDocument", "EPCISQueryDocument"):
        raise EpcisValidationError("type", f"expected EPCISDocument or EPCISQueryDocument, got {document.get('type')!r}")
    _check_schema(document)
    if not str(document.get("schemaVersion")).startswith("2."):
        raise EpcisValidationError("schemaVersion", f"this node speaks EPCIS 2.x, got {document.get('schemaVersion')!r}")
    context = document.get("@context")
    urls = [c for c in (context if isinstance(context, list) else [context]) if isinstance(c, str)]
    if not any("epcis-context" in url for url in urls):
        raise EpcisValidationError("@context", "must include the EPCIS 2.0 JSON-LD context (terms are read with it)")
    prefixes = context_prefixes(context)
    for path, event in _located_events(document):
        _Validator(dict(prefixes)).event(path, event)


def _located_events(document: Mapping[str, Any]) -> list[tuple[str, Any]]:
    body = document.get("epcisBody") or {}
    if document.get("type") == "EPCISQueryDocument":
        results = (body.get("queryResults") or {}).get("resultsBody") or {}
        return [(f"epcisBody.queryResults.resultsBody.eventList[{i}]", e) for i, e in enumerate(results.get("eventList") or [])]
    return [(f"epcisBody.eventList[{i}]", e) for i, e in enumerate(body.get("eventList") or [])]
