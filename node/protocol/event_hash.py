"""The CBV 2.0 event hash: an event id that is the same for the same event in any serialisation.

``event_hash(event)`` returns ``ni:///sha-256;<hex>?ver=CBV2.0``, the SHA-256 of the event's
*pre-hash string*. This is our own implementation of the canonicalisation rules of the GS1
CBV 2.0 standard (section "EPCIS event hash ID"), checked against the published test vectors
of the reference implementation (github.com/RalphTro/epcis-event-hash-generator, folder
tests/examples, expected results for CBV 2.0; copies in tests/protocol/data/cbv_vectors).
The PyPI release of that project (1.9.3) needs a JSON-LD expansion per document and runs at
milliseconds per event; ingest needs tens of microseconds.

The pre-hash string, as implemented here:

1. ``eventType=<type>``, then the fields in the canonical property order: eventTime,
   eventTimeZoneOffset, epcList, parentID, inputEPCList, childEPCs, quantityList,
   childQuantityList, inputQuantityList, outputEPCList, outputQuantityList, action,
   transformationID, bizStep, disposition, persistentDisposition (set, unset), readPoint
   (id), bizLocation (id), bizTransactionList (type, bizTransaction), sourceList (type,
   source), destinationList (type, destination), then each sensorElement (sensorMetadata:
   time, startTime, endTime, deviceID, deviceMetadata, rawData, dataProcessingMethod,
   bizRules; each sensorReport: type, exception, deviceID, deviceMetadata, rawData,
   dataProcessingMethod, time, microorganism, chemicalSubstance, value, component,
   stringValue, booleanValue, hexBinaryValue, uriValue, minValue, maxValue, meanValue, sDev,
   percRank, percValue, uom, coordinateReferenceSystem), then ``ilmd`` (written generically).
   A field is written ``name=value``; a list is its name followed by its entries; absent or
   empty fields write nothing. Entries of every list are sorted (code point order).
2. Then the parts of standard fields not covered above (e.g. an extension inside
   ``readPoint`` or a sensorReport), in the same canonical order, each as ``<field><rest>``;
   then the event's own extension fields, sorted. Generic writing is ``name=value`` or
   ``name<children>`` with siblings sorted; extension names are written
   ``{namespace IRI}localName`` with the prefix declared in ``@context``.
3. Left out entirely: eventID, recordTime, errorDeclaration and certificationInfo (CBV 2.0
   does not hash them), ``@context`` and comments.

Values are canonicalised (:mod:`node.protocol.cbv_values`): whitespace trimmed; times in UTC with millisecond precision and
``Z`` (the 3rd decimal rounded up when the 4th is 5-9); numbers without trailing zeros (also
numeric-looking strings); CBV bare terms, CURIEs into GS1 vocabularies (``cbv:``, ``gs1:``)
and old CBV URNs as web vocabulary IRIs (other CURIE values are hashed as written, so Waymark
writes its own vocabulary values as full IRIs); every GS1 key (EPC URN, Digital Link URI on any
host) as its constrained canonical Digital Link URI on id.gs1.org (serial wins over lot,
consumer product variant and query string dropped).

Numeric-looking strings go through a float, so past 15 significant digits two different
strings can canonicalise alike; :mod:`node.protocol.epcis_validation` refuses such values in
extension fields.

Error declarations: because ``errorDeclaration`` is not hashed, an error declaration has the
same CBV hash as the event it declares erroneous (by design of the standard: it names that
event). Waymark stores, attests and anchors it under :func:`record_digest` (which adds the
declaration) and links it to the original by the shared CBV hash.

One concern: the CBV 2.0 pre-hash string and the ids and subjects derived from it, one rule
(the canonical values it writes are :mod:`node.protocol.cbv_values`).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from node.errors import WaymarkError
from node.protocol.cbv_values import (
    EMPTY_CONTEXT,
    TIME_RE,
    Context,
    canon,
    canon_vocab,
    canonical_time,
    context_for,
)
from node.protocol.vocabulary import (
    BIZ_STEP_IRIS,
    BIZ_TRANSACTION_TYPE_IRIS,
    DISPOSITION_IRIS,
    MEASUREMENT_TYPE_IRIS,
    SENSOR_COMPONENT_IRIS,
    SENSOR_EXCEPTION_IRIS,
    SOURCE_DESTINATION_TYPE_IRIS,
    STANDARD_PREFIXES,
    context_prefixes,
)

# JSON objects arrive as dicts (json, orjson); checking against typing.Mapping would cost
# microseconds per value in the hot path.
_OBJECT = dict
_CONTAINER = (dict, list)

HASH_PREFIX = "ni:///sha-256;"
HASH_SUFFIX = "?ver=CBV2.0"


class EventHashError(WaymarkError):
    """An event cannot be hashed (not an object, no type) or an event id is malformed."""

    code = "event_hash_error"

    def __init__(self, problem: str) -> None:
        super().__init__(f"cannot compute the event hash: {problem}")


def unix_seconds(value: str) -> int:
    """Unix seconds of an event time string, fractions truncated (not rounded).

    This is the attestation's ``eventTime``: truncating keeps it equal to
    ``floor(parse_timestamp(value))`` however many decimals the time carries.
    """
    match = TIME_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise EventHashError(f"not a timestamp: {value!r}")
    try:
        year, month, day, hour, minute, second = map(int, match.groups()[:6])
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        raise EventHashError(f"not a timestamp: {value!r}") from None
    zone = match.group(8)
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return int(moment.timestamp())


# --- the pre-hash string ------------------------------------------------------------------

_IGNORED = frozenset(
    ("type", "eventID", "recordTime", "errorDeclaration", "certificationInfo", "@context",
     "rdfs:comment", "comment", "ilmd")
)
_GENERIC_IGNORED = frozenset(("@context", "rdfs:comment", "comment"))
_XML_NAMESPACES = {"cbvmda": "urn:epcglobal:cbv:mda"}  # keys keep the XML binding's namespace


def _key_name(key: str, ctx: Context) -> str:
    prefix, sep, local = key.partition(":")
    if sep:
        iri = ctx.user.get(prefix)
        if iri is None:
            iri = _XML_NAMESPACES.get(prefix) or STANDARD_PREFIXES.get(prefix)
        if iri is not None:
            return "{" + iri + "}" + local
    return key


def _generic(name: str, value: Any, ctx: Context, out: list[str]) -> None:
    if isinstance(value, _OBJECT):
        children: list[str] = []
        for key, child in value.items():
            if key not in _GENERIC_IGNORED:
                _generic(_key_name(key, ctx), child, ctx, children)
        children.sort()
        out.append(name + "".join(children))
    elif isinstance(value, list):
        for item in value:
            _generic(name, item, ctx, out)
    else:
        text = canon(value, ctx)
        out.append(f"{name}={text}" if text else name)


def _leftover(name: str, obj: Mapping[str, Any], consumed: frozenset[str], ctx: Context, out: list[str]) -> None:
    """Write the keys of a structured field that the canonical order did not cover."""
    children: list[str] = []
    for key, value in obj.items():
        if key not in consumed and key not in _GENERIC_IGNORED:
            _generic(_key_name(key, ctx), value, ctx, children)
    if children:
        children.sort()
        out.append(name + "".join(children))


def _field(name: str, text: str) -> str:
    return f"{name}={text}" if text else ""


# Handlers write the canonical part of one top-level field and push leftovers.
Handler = Callable[[str, Any, Context, list[str]], str]


def _plain(name: str, value: Any, ctx: Context, left: list[str]) -> str:
    if isinstance(value, _CONTAINER):
        _generic(name, value, ctx, left)
        return ""
    return _field(name, canon(value, ctx))


def _time(name: str, value: Any, ctx: Context, left: list[str]) -> str:
    if isinstance(value, _CONTAINER):
        _generic(name, value, ctx, left)
        return ""
    return _field(name, canonical_time(value))


def _vocab(table: Mapping[str, str]) -> Handler:
    def handle(name: str, value: Any, ctx: Context, left: list[str]) -> str:
        if isinstance(value, _CONTAINER):
            _generic(name, value, ctx, left)
            return ""
        return _field(name, canon_vocab(value, table, ctx))

    return handle


def _epcs(name: str, value: Any, ctx: Context, left: list[str]) -> str:
    items = value if isinstance(value, list) else [value]
    entries = []
    for item in items:
        if isinstance(item, _OBJECT):
            _generic(name, item, ctx, left)
            continue
        text = canon(item, ctx)
        if text:
            entries.append("epc=" + text)
    if not entries:
        return ""
    entries.sort()
    return name + "".join(entries)


_QTY_KEYS = frozenset(("epcClass", "quantity", "uom"))


def _quantities(name: str, value: Any, ctx: Context, left: list[str]) -> str:
    entries = []
    for element in value if isinstance(value, list) else [value]:
        if not isinstance(element, _OBJECT):
            continue
        text = ""
        for key in ("epcClass", "quantity", "uom"):
            if key in element:
                text += _field(key, canon(element[key], ctx))
        if text:
            entries.append("quantityElement" + text)
        _leftover("quantityElement", element, _QTY_KEYS, ctx, left)
    if not entries:
        return ""
    entries.sort()
    return name + "".join(entries)


def _persistent(name: str, value: Any, ctx: Context, left: list[str]) -> str:
    if not isinstance(value, _OBJECT):
        return _plain(name, value, ctx, left)
    text = ""
    for key in ("set", "unset"):
        items = value.get(key)
        if items is None:
            continue
        entries = []
        for item in items if isinstance(items, list) else [items]:
            canon = canon_vocab(item, DISPOSITION_IRIS, ctx)
            if canon:
                entries.append(f"{key}={canon}")
        entries.sort()
        text += "".join(entries)
    _leftover(name, value, frozenset(("set", "unset")), ctx, left)
    return name + text if text else ""


_ID_ONLY = frozenset(("id",))


def _location(name: str, value: Any, ctx: Context, left: list[str]) -> str:
    if not isinstance(value, _OBJECT):
        text = canon(value, ctx) if not isinstance(value, list) else ""
        return name + "id=" + text if text else ""
    text = _field("id", canon(value.get("id"), ctx)) if "id" in value else ""
    _leftover(name, value, _ID_ONLY, ctx, left)
    return name + text if text else ""


def _typed_list(id_key: str, types: Mapping[str, str]) -> Handler:
    consumed = frozenset(("type", id_key))

    def handle(name: str, value: Any, ctx: Context, left: list[str]) -> str:
        entries = []
        for element in value if isinstance(value, list) else [value]:
            if not isinstance(element, _OBJECT):
                continue
            text = ""
            if "type" in element:
                text += _field("type", canon_vocab(element["type"], types, ctx))
            if id_key in element:
                text += _field(id_key, canon(element[id_key], ctx))
            if text:
                entries.append(text)
            _leftover(id_key, element, consumed, ctx, left)
        if not entries:
            return ""
        entries.sort()
        return name + "".join(entries)

    return handle


_METADATA_ORDER = (
    "time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData",
    "dataProcessingMethod", "bizRules",
)
_REPORT_ORDER = (
    "type", "exception", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod", "time",
    "microorganism", "chemicalSubstance", "value", "component", "stringValue", "booleanValue",
    "hexBinaryValue", "uriValue", "minValue", "maxValue", "meanValue", "sDev", "percRank",
    "percValue", "uom", "coordinateReferenceSystem",
)
_METADATA_KEYS = frozenset(_METADATA_ORDER)
_REPORT_KEYS = frozenset(_REPORT_ORDER)
_REPORT_VOCAB = {
    "type": MEASUREMENT_TYPE_IRIS,
    "exception": SENSOR_EXCEPTION_IRIS,
    "component": SENSOR_COMPONENT_IRIS,
}
_ELEMENT_KEYS = frozenset(("sensorMetadata", "sensorReport"))


_TIME_KIND, _PLAIN_KIND = 0, 1
_METADATA_PLAN = {
    key: (rank, _TIME_KIND if "time" in key.lower() else _PLAIN_KIND)
    for rank, key in enumerate(_METADATA_ORDER)
}
_REPORT_PLAN = {
    key: (rank, _REPORT_VOCAB.get(key) or (_TIME_KIND if "time" in key.lower() else _PLAIN_KIND))
    for rank, key in enumerate(_REPORT_ORDER)
}


def _ordered_object(obj: dict[str, Any], plan: Mapping[str, tuple[int, Any]], ctx: Context) -> str:
    present = sorted((plan[key][0], key) for key in obj if key in plan)
    parts = []
    for _, key in present:
        value = obj[key]
        if value is None:
            continue
        kind = plan[key][1]
        if kind is _TIME_KIND:
            text = canonical_time(value)
        elif kind is _PLAIN_KIND:
            text = canon(value, ctx)
        else:
            text = canon_vocab(value, kind, ctx)
        if text:
            parts.append(f"{key}={text}")
    return "".join(parts)


def _sensors(name: str, value: Any, ctx: Context, left: list[str]) -> str:
    elements = []
    for element in value if isinstance(value, list) else [value]:
        if not isinstance(element, _OBJECT):
            continue
        text = ""
        rest: list[str] = []
        metadata = element.get("sensorMetadata")
        if isinstance(metadata, _OBJECT):
            meta_text = _ordered_object(metadata, _METADATA_PLAN, ctx)
            if meta_text:
                text += "sensorMetadata" + meta_text
            _leftover("sensorMetadata", metadata, _METADATA_KEYS, ctx, rest)
        reports = element.get("sensorReport")
        report_texts = []
        for report in reports if isinstance(reports, list) else ([reports] if reports else []):
            if not isinstance(report, _OBJECT):
                continue
            report_text = _ordered_object(report, _REPORT_PLAN, ctx)
            if report_text:
                report_texts.append("sensorReport" + report_text)
            _leftover("sensorReport", report, _REPORT_KEYS, ctx, rest)
        report_texts.sort()
        text += "".join(report_texts)
        if text:
            elements.append("sensorElement" + text)
        for key, child in element.items():
            if key not in _ELEMENT_KEYS and key not in _GENERIC_IGNORED:
                _generic(_key_name(key, ctx), child, ctx, rest)
        if rest:
            rest.sort()
            left.append("sensorElement" + "".join(rest))
    elements.sort()
    return "".join(elements)


_ORDER: tuple[tuple[str, Handler], ...] = (
    ("eventTime", _time),
    ("eventTimeZoneOffset", _plain),
    ("epcList", _epcs),
    ("parentID", _plain),
    ("inputEPCList", _epcs),
    ("childEPCs", _epcs),
    ("quantityList", _quantities),
    ("childQuantityList", _quantities),
    ("inputQuantityList", _quantities),
    ("outputEPCList", _epcs),
    ("outputQuantityList", _quantities),
    ("action", _plain),
    ("transformationID", _plain),
    ("bizStep", _vocab(BIZ_STEP_IRIS)),
    ("disposition", _vocab(DISPOSITION_IRIS)),
    ("persistentDisposition", _persistent),
    ("readPoint", _location),
    ("bizLocation", _location),
    ("bizTransactionList", _typed_list("bizTransaction", BIZ_TRANSACTION_TYPE_IRIS)),
    ("sourceList", _typed_list("source", SOURCE_DESTINATION_TYPE_IRIS)),
    ("destinationList", _typed_list("destination", SOURCE_DESTINATION_TYPE_IRIS)),
    ("sensorElementList", _sensors),
)
_ORDERED_KEYS = frozenset(key for key, _ in _ORDER)


def prehash(event: Mapping[str, Any], context: Any = None) -> str:
    """The CBV 2.0 pre-hash string of an event.

    ``context`` is the enclosing document's ``@context``; the event's own ``@context``, if
    any, is applied on top of it.
    """
    if not isinstance(event, _OBJECT):
        raise EventHashError(f"an event is a JSON object, got {type(event).__name__}")
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise EventHashError("the event has no type")
    ctx = context_for(event, context)
    parts = ["eventType=", event_type]
    left: list[str] = []  # uncovered parts of standard fields, in canonical order
    for key, handler in _ORDER:
        if key in event:
            text = handler(key, event[key], ctx, left)
            if text:
                parts.append(text)
    if "ilmd" in event:
        _generic("ilmd", event["ilmd"], ctx, parts)
    parts.extend(left)
    extensions: list[str] = []
    for key, value in event.items():
        if key not in _ORDERED_KEYS and key not in _IGNORED:
            _generic(_key_name(key, ctx), value, ctx, extensions)
    if extensions:
        extensions.sort()
        parts.extend(extensions)
    return "".join(parts)


def event_digest(event: Mapping[str, Any], context: Any = None) -> bytes:
    """The 32-byte SHA-256 of the event's pre-hash string (the attested ``eventHash``)."""
    return hashlib.sha256(prehash(event, context).encode("utf-8")).digest()


CORRECTION_SEPARATOR = "\nwaymark:errorDeclaration\n"


def record_digest(event: Mapping[str, Any], context: Any = None) -> bytes:
    """The 32 bytes Waymark stores, attests and anchors an event under.

    For an ordinary event this is :func:`event_digest`. An error declaration (an event with
    ``errorDeclaration``) has the same CBV 2.0 hash as the event it declares erroneous, so it
    is kept under the SHA-256 of its pre-hash string, :data:`CORRECTION_SEPARATOR` and its
    ``errorDeclaration`` written canonically (as extensions are); :func:`event_digest` still
    names the original it corrects.
    """
    text = prehash(event, context)
    declaration = event.get("errorDeclaration")
    if declaration is None:
        return hashlib.sha256(text.encode("utf-8")).digest()
    parts: list[str] = []
    _generic("errorDeclaration", declaration, context_for(event, context), parts)
    return hashlib.sha256((text + CORRECTION_SEPARATOR + "".join(parts)).encode("utf-8")).digest()


def event_hash(event: Mapping[str, Any], context: Any = None) -> str:
    """The event id: ``ni:///sha-256;<hex>?ver=CBV2.0``."""
    return HASH_PREFIX + event_digest(event, context).hex() + HASH_SUFFIX


def hash_from_digest(digest: bytes) -> str:
    """``ni:///sha-256;<hex>?ver=CBV2.0`` for a 32-byte digest."""
    if len(digest) != 32:
        raise EventHashError(f"a digest has 32 bytes, got {len(digest)}")
    return HASH_PREFIX + digest.hex() + HASH_SUFFIX


_NI_RE = re.compile(r"^ni:///sha-256;([0-9a-f]{64})\?ver=CBV2\.0$")


def digest_from_hash(event_id: str) -> bytes:
    """The 32 bytes inside an ``ni:///sha-256;<hex>?ver=CBV2.0`` event id."""
    match = _NI_RE.match(event_id) if isinstance(event_id, str) else None
    if match is None:
        raise EventHashError(f"not a CBV 2.0 sha-256 event id: {event_id!r}")
    return bytes.fromhex(match.group(1))


def document_hashes(document: Mapping[str, Any]) -> list[str]:
    """Event ids of all events of an EPCISDocument (``epcisBody.eventList`` or ``.event``)."""
    body = document.get("epcisBody") or {}
    events = body.get("eventList")
    if events is None and "event" in body:
        events = [body["event"]]
    context = document.get("@context")
    return [event_hash(event, context) for event in events or []]


# --- subjects -----------------------------------------------------------------------------

_PRIMARY_FIELDS = ("epcList", "parentID", "outputEPCList", "inputEPCList", "childEPCs")
_PRIMARY_CLASS_FIELDS = ("quantityList", "outputQuantityList", "inputQuantityList", "childQuantityList")


def canonical_object_id(value: str, context: Any = None) -> str:
    """The canonical form of an object id as it appears in the pre-hash string."""
    ctx = Context(context_prefixes(context)) if context is not None else EMPTY_CONTEXT
    return canon(value, ctx)


def primary_object_id(event: Mapping[str, Any], context: Any = None) -> str:
    """The canonical id of an event's primary object (the attestation subject's preimage).

    The first non-empty of epcList, parentID, outputEPCList, inputEPCList, childEPCs, then
    the epcClass of the quantity lists; within a list the smallest canonical id, so that the
    subject does not depend on the order the list was written in. An event naming no object
    (sensor-only) has its readPoint, else its bizLocation, as subject.
    """
    ctx = context_for(event, context)
    for key in _PRIMARY_FIELDS:
        value = event.get(key)
        if not value:
            continue
        items = value if isinstance(value, list) else [value]
        ids = [canon(item, ctx) for item in items if isinstance(item, str) and item.strip()]
        if ids:
            return min(ids)
    for key in _PRIMARY_CLASS_FIELDS:
        value = event.get(key)
        if isinstance(value, list):
            ids = [
                canon(element["epcClass"], ctx)
                for element in value
                if isinstance(element, _OBJECT) and isinstance(element.get("epcClass"), str)
            ]
            if ids:
                return min(ids)
    # An event about no object (a sensor-only ObjectEvent, EPCIS 2.0 7.4.2) is about a place.
    for key in ("readPoint", "bizLocation"):
        location = event.get(key)
        if isinstance(location, _OBJECT) and isinstance(location.get("id"), str) and location["id"].strip():
            return canon(location["id"], ctx)
    raise EventHashError("the event names no object and no place (epcList, parentID, ..., readPoint, bizLocation are all empty)")
