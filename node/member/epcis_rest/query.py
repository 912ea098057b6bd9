"""EPCIS 2.0 event queries (the SimpleEventQuery parameters of EPCIS 2.0 section 8.2.7.1, in
the REST binding's spelling: pipe-delimited lists) over the node's stored events.

`parse_query` turns request parameters into an `EventQuery` (or raises `QueryParameterError`
naming the parameter); `run_query` pages through the events table in a stable order, narrows
by SQL where a column exists (event type, event time, record time, identifiers through
event_epcs) and tests the rest on the event body.

Not supported (refused with QueryParameterException): the dynamic parameter families
(`EQ_ILMD_*`, `EQ_INNER_*`, `GT_<field>`, `EQ_<extension field>`, `EXISTS_<field>` other
than `EXISTS_errorDeclaration`, `HASATTR_*`, `EQATTR_*`, `*_value` comparisons of sensor
values), EPC pattern URIs (`urn:epc:idpat:...`) and `WD_` hierarchies (no location master data
here: `WD_readPoint`/`WD_bizLocation` match the location itself).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import and_, or_, select

from node.db import Batch, Database, Event, EventEpc
from node.errors import WaymarkError
from node.protocol.timestamps import parse_timestamp
from node.protocol.vocabulary import BIZ_STEP_IRIS, DISPOSITION_IRIS, ERROR_REASON_IRIS, MEASUREMENT_TYPE_IRIS
from node.protocol.canonical_ids import canonical_gs1_uri
from node.protocol.event_hash import digest_from_hash, hash_from_digest

MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 30


class QueryParameterError(WaymarkError):
    """A query parameter is unknown or its value malformed (EPCIS QueryParameterException)."""

    code = "query_parameter"

    def __init__(self, parameter: str, problem: str) -> None:
        self.field = parameter
        super().__init__(f"{parameter}: {problem}")


class QueryTooLarge(WaymarkError):
    """More events match than `maxEventCount` allows (EPCIS QueryTooLargeException)."""

    code = "query_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than maxEventCount={limit} events match")


_LISTS = {
    "eventType", "EQ_action", "EQ_bizStep", "EQ_disposition", "EQ_persistentDisposition_set",
    "EQ_persistentDisposition_unset", "EQ_readPoint", "WD_readPoint", "EQ_bizLocation", "WD_bizLocation",
    "EQ_transformationID", "MATCH_epc", "MATCH_parentID", "MATCH_inputEPC", "MATCH_outputEPC", "MATCH_anyEPC",
    "MATCH_epcClass", "MATCH_inputEPCClass", "MATCH_outputEPCClass", "MATCH_anyEPCClass", "EQ_eventID",
    "EQ_errorReason", "EQ_correctiveEventID", "EQ_type", "EQ_deviceID", "EQ_dataProcessingMethod",
    "EQ_microorganism", "EQ_chemicalSubstance", "EQ_bizRules", "EQ_stringValue", "EQ_hexBinaryValue",
    "EQ_uriValue",
}
_TIMES = {
    "GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime", "GE_errorDeclarationTime",
    "LT_errorDeclarationTime", "GE_startTime", "LT_startTime", "GE_endTime", "LT_endTime",
}
_NUMBERS = {"EQ_quantity", "GT_quantity", "GE_quantity", "LT_quantity", "LE_quantity"}
_BOOLEANS = {"EXISTS_errorDeclaration", "EQ_booleanValue"}
_INTEGERS = {"eventCountLimit", "maxEventCount", "perPage"}
_OTHER = {"orderBy", "orderDirection", "nextPageToken"}
PARAMETERS = frozenset(_LISTS | _TIMES | _NUMBERS | _BOOLEANS | _INTEGERS | _OTHER)
EVENT_TYPES = ("AggregationEvent", "AssociationEvent", "ObjectEvent", "TransactionEvent", "TransformationEvent")


def timestamp_ms(text: str) -> int:
    """Unix milliseconds of an EPCIS timestamp (ValueError if it is not one)."""
    moment, _ = parse_timestamp(text)
    return int(moment.timestamp() * 1000)


@dataclass
class EventQuery:
    """Parsed query parameters (lists already split on `|`)."""

    lists: dict[str, list[str]] = field(default_factory=dict)
    times: dict[str, int] = field(default_factory=dict)  # unix ms
    numbers: dict[str, float] = field(default_factory=dict)
    booleans: dict[str, bool] = field(default_factory=dict)
    order_by: str | None = None
    descending: bool = False
    event_count_limit: int | None = None
    max_event_count: int | None = None


def _truthy(name: str, text: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise QueryParameterError(name, f"expected true or false, got {text!r}")


def parse_query(params: Sequence[tuple[str, str]] | Mapping[str, Any], *, allow_paging: bool = True) -> EventQuery:
    """An EventQuery from request parameters (pairs) or a named query's JSON object."""
    query = EventQuery()
    pairs: list[tuple[str, Any]] = list(params.items()) if isinstance(params, Mapping) else list(params)
    seen: set[str] = set()
    for name, value in pairs:
        if name not in PARAMETERS or (not allow_paging and name in ("perPage", "nextPageToken")):
            raise QueryParameterError(name, "not a query parameter this node supports")
        if name in seen:
            raise QueryParameterError(name, "given twice")
        seen.add(name)
        if name in ("perPage", "nextPageToken"):
            continue
        if name in _LISTS:
            items = [str(v) for v in value] if isinstance(value, list) else str(value).split("|")
            if not items or any(not item for item in items):
                raise QueryParameterError(name, "an empty value")
            query.lists[name] = items
        elif name in _TIMES:
            try:
                query.times[name] = timestamp_ms(str(value))
            except (ValueError, OverflowError):
                raise QueryParameterError(name, f"expected a date-time with time zone, got {value!r}") from None
        elif name in _NUMBERS:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise QueryParameterError(name, f"expected a number, got {value!r}") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise QueryParameterError(name, "expected a finite number")
            query.numbers[name] = number
        elif name in _BOOLEANS:
            query.booleans[name] = value if isinstance(value, bool) else _truthy(name, str(value))
        elif name in ("eventCountLimit", "maxEventCount"):
            try:
                count = int(value)
            except (TypeError, ValueError):
                raise QueryParameterError(name, f"expected an integer, got {value!r}") from None
            if count < 0:
                raise QueryParameterError(name, "must not be negative")
            if name == "eventCountLimit":
                query.event_count_limit = count
            else:
                query.max_event_count = count
        elif name == "orderBy":
            if value not in ("eventTime", "recordTime"):
                raise QueryParameterError(name, "this node orders by eventTime or recordTime")
            query.order_by = str(value)
        elif name == "orderDirection":
            if value not in ("ASC", "DESC"):
                raise QueryParameterError(name, "ASC or DESC")
            query.descending = value == "DESC"
    if query.event_count_limit is not None and query.max_event_count is not None:
        raise QueryParameterError("eventCountLimit", "eventCountLimit and maxEventCount are mutually exclusive")
    return query


def per_page(params: Mapping[str, str]) -> int:
    """perPage, clamped to 1..MAX_PER_PAGE (EPCIS lets the server return fewer)."""
    text = params.get("perPage")
    if text is None:
        return DEFAULT_PER_PAGE
    try:
        return max(1, min(MAX_PER_PAGE, int(text)))
    except ValueError:
        raise QueryParameterError("perPage", f"expected an integer, got {text!r}") from None


# --- vocabulary and identifier normal forms --------------------------------------------------

_STEP_BY_FORM = {f: iri for term, iri in BIZ_STEP_IRIS.items() for f in (term, iri, f"cbv:BizStep-{term}", f"urn:epcglobal:cbv:bizstep:{term}")}
_DISP_BY_FORM = {f: iri for term, iri in DISPOSITION_IRIS.items() for f in (term, iri, f"cbv:Disp-{term}", f"urn:epcglobal:cbv:disp:{term}")}
_REASON_BY_FORM = {f: iri for term, iri in ERROR_REASON_IRIS.items() for f in (term, iri, f"cbv:ER-{term}", f"urn:epcglobal:cbv:er:{term}")}
_MTYPE_BY_FORM = {f: iri for term, iri in MEASUREMENT_TYPE_IRIS.items() for f in (term, iri, f"gs1:{term}")}


def step_iri(value: Any) -> str:
    return _STEP_BY_FORM.get(str(value), str(value))


def disposition_iri(value: Any) -> str:
    return _DISP_BY_FORM.get(str(value), str(value))


def canonical_id(value: Any) -> str:
    text = str(value)
    return canonical_gs1_uri(text) or text


# --- matching on the event body ---------------------------------------------------------------


def _ids(event: Mapping[str, Any], *keys: str) -> set[str]:
    out: set[str] = set()
    for key in keys:
        value = event.get(key)
        if isinstance(value, str):
            out.add(canonical_id(value))
        elif isinstance(value, list):
            out.update(canonical_id(v) for v in value if isinstance(v, str))
    return out


def _classes(event: Mapping[str, Any], *keys: str) -> set[str]:
    return {canonical_id(q["epcClass"]) for key in keys for q in event.get(key) or () if isinstance(q, Mapping) and "epcClass" in q}


def _quantities(event: Mapping[str, Any]) -> list[float]:
    keys = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
    return [float(q["quantity"]) for k in keys for q in event.get(k) or () if isinstance(q, Mapping) and isinstance(q.get("quantity"), (int, float))]


def _sensor_values(event: Mapping[str, Any], where: str, key: str) -> list[Any]:
    out = []
    for element in event.get("sensorElementList") or ():
        if not isinstance(element, Mapping):
            continue
        if where == "metadata":
            metadata = element.get("sensorMetadata")
            if isinstance(metadata, Mapping) and key in metadata:
                out.append(metadata[key])
        else:
            for report in element.get("sensorReport") or ():
                if isinstance(report, Mapping) and key in report:
                    out.append(report[key])
    return out


def _time_ok(values: list[Any], ge: int | None, lt: int | None) -> bool:
    for value in values:
        try:
            ms = timestamp_ms(str(value))
        except ValueError:
            continue
        if (ge is None or ms >= ge) and (lt is None or ms < lt):
            return True
    return False


def matches(query: EventQuery, event: Mapping[str, Any], event_id: str) -> bool:
    """Whether the event satisfies every parameter the SQL prefilter did not decide."""
    lists, times, numbers, booleans = query.lists, query.times, query.numbers, query.booleans
    if "EQ_action" in lists and event.get("action") not in lists["EQ_action"]:
        return False
    if "EQ_bizStep" in lists and step_iri(event.get("bizStep")) not in {step_iri(v) for v in lists["EQ_bizStep"]}:
        return False
    if "EQ_disposition" in lists and disposition_iri(event.get("disposition")) not in {disposition_iri(v) for v in lists["EQ_disposition"]}:
        return False
    for name, part in (("EQ_persistentDisposition_set", "set"), ("EQ_persistentDisposition_unset", "unset")):
        if name in lists:
            held = {disposition_iri(v) for v in ((event.get("persistentDisposition") or {}).get(part) or ())}
            if not held & {disposition_iri(v) for v in lists[name]}:
                return False
    for key in ("readPoint", "bizLocation"):
        wanted = set(lists.get(f"EQ_{key}", ())) | set(lists.get(f"WD_{key}", ()))
        if wanted:
            location = event.get(key)
            if not isinstance(location, Mapping) or location.get("id") not in wanted:
                return False
    if "EQ_transformationID" in lists and event.get("transformationID") not in lists["EQ_transformationID"]:
        return False
    id_params = {
        "MATCH_epc": _ids(event, "epcList", "childEPCs"),
        "MATCH_parentID": _ids(event, "parentID"),
        "MATCH_inputEPC": _ids(event, "inputEPCList"),
        "MATCH_outputEPC": _ids(event, "outputEPCList"),
        "MATCH_anyEPC": _ids(event, "epcList", "childEPCs", "parentID", "inputEPCList", "outputEPCList"),
        "MATCH_epcClass": _classes(event, "quantityList", "childQuantityList"),
        "MATCH_inputEPCClass": _classes(event, "inputQuantityList"),
        "MATCH_outputEPCClass": _classes(event, "outputQuantityList"),
        "MATCH_anyEPCClass": _classes(event, "quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"),
    }
    for name, present in id_params.items():
        if name in lists and not present & {canonical_id(v) for v in lists[name]}:
            return False
    if numbers:
        quantities = _quantities(event)
        tests = {
            "EQ_quantity": lambda q, v: q == v, "GT_quantity": lambda q, v: q > v, "GE_quantity": lambda q, v: q >= v,
            "LT_quantity": lambda q, v: q < v, "LE_quantity": lambda q, v: q <= v,
        }
        for name, value in numbers.items():
            if not any(tests[name](q, value) for q in quantities):
                return False
    if "EQ_eventID" in lists and not {event.get("eventID"), event_id} & set(lists["EQ_eventID"]):
        return False
    declaration = event.get("errorDeclaration")
    if booleans.get("EXISTS_errorDeclaration") and not isinstance(declaration, Mapping):
        return False
    if any(k in times for k in ("GE_errorDeclarationTime", "LT_errorDeclarationTime")) or "EQ_errorReason" in lists or "EQ_correctiveEventID" in lists:
        if not isinstance(declaration, Mapping):
            return False
        if (("GE_errorDeclarationTime" in times or "LT_errorDeclarationTime" in times)
                and not _time_ok([declaration.get("declarationTime")], times.get("GE_errorDeclarationTime"), times.get("LT_errorDeclarationTime"))):
            return False
        if "EQ_errorReason" in lists and _REASON_BY_FORM.get(str(declaration.get("reason")), declaration.get("reason")) not in {
                _REASON_BY_FORM.get(v, v) for v in lists["EQ_errorReason"]}:
            return False
        if "EQ_correctiveEventID" in lists and not set(declaration.get("correctiveEventIDs") or ()) & set(lists["EQ_correctiveEventID"]):
            return False
    for name, key in (("startTime", "startTime"), ("endTime", "endTime")):
        ge, lt = times.get(f"GE_{name}"), times.get(f"LT_{name}")
        if (ge is not None or lt is not None) and not _time_ok(_sensor_values(event, "metadata", key), ge, lt):
            return False
    if "EQ_type" in lists:
        wanted = {_MTYPE_BY_FORM.get(v, v) for v in lists["EQ_type"]}
        if not {_MTYPE_BY_FORM.get(str(v), str(v)) for v in _sensor_values(event, "report", "type")} & wanted:
            return False
    for name in ("deviceID", "dataProcessingMethod", "bizRules"):
        if f"EQ_{name}" in lists:
            found = {str(v) for v in _sensor_values(event, "metadata", name) + _sensor_values(event, "report", name)}
            if not found & set(lists[f"EQ_{name}"]):
                return False
    for name in ("microorganism", "chemicalSubstance", "stringValue", "hexBinaryValue", "uriValue"):
        if f"EQ_{name}" in lists:
            found = {str(v) for v in _sensor_values(event, "report", name)}
            if name == "hexBinaryValue":
                found = {v.lower() for v in found}
                if not found & {v.lower() for v in lists[f"EQ_{name}"]}:
                    return False
            elif not found & set(lists[f"EQ_{name}"]):
                return False
    if "EQ_booleanValue" in booleans and booleans["EQ_booleanValue"] not in _sensor_values(event, "report", "booleanValue"):
        return False
    return True


# --- running a query -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    """A stored event as the query interface returns it."""

    row_id: int
    digest: bytes
    event: dict[str, Any]
    received_at_ms: int
    event_time_ms: int
    corrects: bytes | None
    signer: str
    role: str
    anchored: bool

    @property
    def event_id(self) -> str:
        """The CBV 2.0 event hash (an error declaration shares its original's)."""
        return hash_from_digest(self.corrects or self.digest)


def encode_token(key: Sequence[int]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_token(token: str) -> list[int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise QueryParameterError("nextPageToken", "not a token this node issued") from None
    if not (isinstance(key, list) and len(key) == 3 and all(isinstance(k, int) and not isinstance(k, bool) for k in key)):
        raise QueryParameterError("nextPageToken", "not a token this node issued")
    return key


def _base_select(query: EventQuery) -> Any:
    statement = select(
        Event.id, Event.digest, Event.body, Event.received_at_ms, Event.event_time_ms, Event.corrects,
        Event.signer, Event.role, Batch.status,
    ).outerjoin(Batch, Batch.id == Event.batch_id)
    lists, times = query.lists, query.times
    if "eventType" in lists:
        statement = statement.where(Event.event_type.in_(lists["eventType"]))
    if "GE_eventTime" in times:
        statement = statement.where(Event.event_time_ms >= times["GE_eventTime"])
    if "LT_eventTime" in times:
        statement = statement.where(Event.event_time_ms < times["LT_eventTime"])
    if "GE_recordTime" in times:
        statement = statement.where(Event.received_at_ms >= times["GE_recordTime"])
    if "LT_recordTime" in times:
        statement = statement.where(Event.received_at_ms < times["LT_recordTime"])
    if "EQ_action" in lists:
        statement = statement.where(Event.action.in_(lists["EQ_action"]))
    if "EQ_eventID" in lists:
        digests = []
        for value in lists["EQ_eventID"]:
            try:
                digests.append(digest_from_hash(value))
            except (ValueError, WaymarkError):
                pass
        if digests:  # the hash form names the event and its corrections; other ids are tested on the body
            statement = statement.where(or_(Event.digest.in_(digests), Event.corrects.in_(digests), Event.body.contains('"eventID"')))
    epc_relations = {
        "MATCH_epc": ("epc", "child"), "MATCH_parentID": ("parent",), "MATCH_inputEPC": ("input",),
        "MATCH_outputEPC": ("output",), "MATCH_anyEPC": ("epc", "child", "parent", "input", "output"),
    }
    for name, relations in epc_relations.items():
        if name in lists:
            ids = [canonical_id(v) for v in lists[name]]
            statement = statement.where(
                Event.id.in_(select(EventEpc.event_id).where(and_(EventEpc.epc.in_(ids), EventEpc.relation.in_(relations))))
            )
    return statement


def _order(query: EventQuery, statement: Any, after: list[int] | None) -> Any:
    column = Event.received_at_ms if query.order_by == "recordTime" else Event.event_time_ms if query.order_by == "eventTime" else Event.id
    if query.order_by is None:
        key_of = Event.id
        if after is not None:
            statement = statement.where(Event.id < after[1] if query.descending else Event.id > after[1])
        return statement.order_by(key_of.desc() if query.descending else key_of)
    if after is not None:
        if query.descending:
            statement = statement.where(or_(column < after[0], and_(column == after[0], Event.id < after[1])))
        else:
            statement = statement.where(or_(column > after[0], and_(column == after[0], Event.id > after[1])))
    if query.descending:
        return statement.order_by(column.desc(), Event.id.desc())
    return statement.order_by(column, Event.id)


def stored_events(db: Database, query: EventQuery, after: list[int] | None, chunk: int) -> Iterator[StoredEvent]:
    """The stored events the query's indexed parts select, in its order, after the key `after`,
    read `chunk` rows at a time (the caller applies `matches` for the rest)."""
    base = _base_select(query)
    cursor = after
    while True:
        with db.session() as s:
            rows = s.execute(_order(query, base, cursor).limit(chunk)).all()
        for row in rows:
            event = orjson.loads(row.body)
            stored = StoredEvent(
                int(row.id), bytes(row.digest), event, int(row.received_at_ms), int(row.event_time_ms),
                bytes(row.corrects) if row.corrects is not None else None, row.signer, row.role,
                row.status in ("anchored", "confirmed"),
            )
            yield stored
        if len(rows) < chunk:
            return
        last = rows[-1]
        key = last.received_at_ms if query.order_by == "recordTime" else last.event_time_ms if query.order_by == "eventTime" else last.id
        cursor = [int(key), int(last.id), 0]


def sort_key(query: EventQuery, event: StoredEvent) -> int:
    return event.received_at_ms if query.order_by == "recordTime" else event.event_time_ms if query.order_by == "eventTime" else event.row_id


@dataclass(frozen=True)
class Page:
    events: list[StoredEvent]
    next_token: str | None


def run_query(db: Database, query: EventQuery, *, limit: int, token: str | None = None) -> Page:
    """One page of matching events (at most `limit`), and the token of the next page."""
    after = decode_token(token) if token else None
    served = after[2] if after else 0
    if query.max_event_count is not None and after is None:
        total = sum(1 for e in stored_events(db, query, None, 500) if matches(query, e.event, e.event_id))
        if total > query.max_event_count:
            raise QueryTooLarge(query.max_event_count)
    cap = limit
    if query.event_count_limit is not None:
        cap = max(0, min(limit, query.event_count_limit - served))
    found: list[StoredEvent] = []
    more = False
    if cap > 0:
        for event in stored_events(db, query, after, max(2 * cap, 100)):
            if not matches(query, event.event, event.event_id):
                continue
            if len(found) == cap:
                more = True
                break
            found.append(event)
    if query.event_count_limit is not None and served + len(found) >= query.event_count_limit:
        more = False
    next_token = encode_token([sort_key(query, found[-1]), found[-1].row_id, served + len(found)]) if more and found else None
    return Page(found, next_token)
