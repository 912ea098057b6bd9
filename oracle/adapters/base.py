"""What every adapter shares: the input field types (with their checks), locations, the
adapter's output, and turning validation failures into an `InputRejected` that names the field.

An adapter is a pydantic model (the documented JSON schema of its input: `GET /schemas/<name>`
on the oracle's app) and a `build` function from a validated record to an `Output`: EPCIS
events to sign, documents to store, escrow facts, FX observations, and state to remember
once the output is queued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from node.member.ingest.capture import event_time_problem
from node.protocol import epcis
from node.protocol import timestamps
from node.protocol import vocabulary
from node.protocol.digital_link import parse_identifier
from node.protocol.gs1 import (
    ContainerId,
    Identifier,
    InvalidIdentifier,
    UnitId,
    check_digit,
    normalize_gtin,
    validate_sscc,
)
from oracle.errors import InputRejected
from oracle.state import OracleState

Json = dict[str, Any]

# ---- field types ---------------------------------------------------------------------------


def _timestamp(value: str) -> str:
    try:
        timestamps.parse_timestamp(value)
    except ValueError as exc:
        if "years" in str(exc):  # well formed, but no such date in the years 1-9999 UTC
            raise
        raise ValueError(f"expected an ISO 8601 time with a time zone, like 2025-07-01T08:30:00+07:00, got {value!r}") from None
    # The node's own bounds (years 1970-9999 UTC): what the oracle acknowledges, the node will
    # not refuse for its time. The future skew is checked per event (Oracle.check_event).
    problem = event_time_problem(value, None)
    if problem is not None:
        raise ValueError(problem)
    return value


def ascii_digits(value: str) -> str:
    """Refuse digits other than ASCII 0-9 (full-width １２３, Arabic-Indic ١٢٣...): Python and
    regex `\\d` read them as digits, so they would be stored as written."""
    if not value.isascii():
        odd = next(c for c in value if not c.isascii())
        raise ValueError(f"{odd!r} (U+{ord(odd):04X}) is not an ASCII character; write codes with the digits 0-9, got {value!r}")
    return value


def _gtin(value: str) -> str:
    ascii_digits(value)
    try:
        return normalize_gtin(value.strip())
    except InvalidIdentifier as exc:
        raise ValueError(exc.problem) from None


def _sscc(value: str) -> str:
    text = ascii_digits(value.strip())
    if text.isdigit():
        try:
            return ContainerId(validate_sscc(text)).canonical_uri
        except InvalidIdentifier as exc:
            raise ValueError(exc.problem) from None
    identifier = _identifier(text)
    if not isinstance(identifier, ContainerId):
        raise ValueError(f"expected an SSCC (18 digits or a /00/ Digital Link), got a unit {text!r}")
    return identifier.canonical_uri


def _identifier(text: str) -> Identifier:
    try:
        return parse_identifier(text.strip())
    except InvalidIdentifier as exc:
        raise ValueError(exc.problem) from None


def _object(value: str) -> str:
    """A unit (Digital Link /01/../21/..) or logistic unit (SSCC): its canonical id."""
    text = value.strip()
    if text.isdigit():  # any script's digits: _sscc names the non-ASCII ones
        return _sscc(text)
    return _identifier(text).canonical_uri


def _currency(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError(f"expected an ISO 4217 currency code like EUR, got {value!r}")
    return value


def _country(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise ValueError(f"expected an ISO 3166-1 alpha-2 country code like VN, got {value!r}")
    return value


def _amount(value: str | int | float) -> str:
    if isinstance(value, float):
        raise ValueError("write amounts as decimal strings (\"1250.00\"), not floats, so no cent is lost")
    if isinstance(value, bool):
        raise ValueError(f"expected a decimal amount like 1250.00, got {value!r}")
    if isinstance(value, str):
        ascii_digits(value)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"expected a decimal amount like 1250.00, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"expected a non-negative amount, got {value!r}")
    if amount.as_tuple().exponent < -18:  # type: ignore[operator]
        raise ValueError(f"at most 18 decimals, got {value!r}")
    if amount >= Decimal(10) ** 30:
        raise ValueError(f"at most 30 integer digits, got {value!r}")
    return format(amount, "f")


def _identifier_text(value: str) -> str:
    text = value.strip()
    if not text or len(text) > 64 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:-]*", text):
        raise ValueError(f"expected an identifier of letters, digits and . _ / : - (at most 64), got {value!r}")
    return text


Timestamp = Annotated[str, AfterValidator(_timestamp), Field(description="ISO 8601 time with time zone")]
Gtin = Annotated[str, AfterValidator(_gtin), Field(description="GTIN-8/12/13/14 with a valid check digit")]
Sscc = Annotated[str, AfterValidator(_sscc), Field(description="SSCC: 18 digits, or a GS1 Digital Link /00/<SSCC>")]
ObjectRef = Annotated[str, AfterValidator(_object), Field(description="A unit (GS1 Digital Link /01/<GTIN>/21/<serial>) or an SSCC")]
Currency = Annotated[str, AfterValidator(_currency), Field(description="ISO 4217 code")]
Country = Annotated[str, AfterValidator(_country), Field(description="ISO 3166-1 alpha-2 code")]
Amount = Annotated[str, BeforeValidator(_amount), Field(description="Decimal string, e.g. \"1250.00\"")]
Ident = Annotated[str, AfterValidator(_identifier_text), Field(description="Source-system identifier")]


class Record(BaseModel):
    """Base of adapter inputs: camelCase JSON, unknown fields refused (no silent typos, and no
    personal data slipping into events through a field nobody asked for)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True)


class Location(Record):
    """Where something happened: a GLN, a UN/LOCODE, and/or coordinates. The most precise
    business location wins (GLN, then UN/LOCODE); coordinates become the read point."""

    gln: str | None = Field(None, description="GS1 Global Location Number, 13 digits")
    unlocode: str | None = Field(None, description="UN/LOCODE, e.g. VNSGN, NLRTM")
    latitude: float | None = Field(None, ge=-90, le=90, strict=True, allow_inf_nan=False)
    longitude: float | None = Field(None, ge=-180, le=180, strict=True, allow_inf_nan=False)

    def model_post_init(self, _context: Any) -> None:
        if self.gln is not None:
            ascii_digits(self.gln)
            if not (self.gln.isdigit() and len(self.gln) == 13) or int(self.gln[12]) != check_digit(self.gln[:12]):
                raise ValueError(f"gln: expected 13 digits with a valid check digit, got {self.gln!r}")
        if self.unlocode is not None and not re.fullmatch(r"[A-Z]{2}[A-Z2-9]{3}", self.unlocode):
            raise ValueError(f"unlocode: expected 2 letters of country and 3 of place, like NLRTM, got {self.unlocode!r}")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude come together")
        if self.gln is None and self.unlocode is None and self.latitude is None:
            raise ValueError("give a gln, a unlocode or coordinates")

    def business_location(self) -> str | None:
        if self.gln is not None:
            return f"https://id.gs1.org/414/{self.gln}"
        if self.unlocode is not None:
            return f"{vocabulary.WAYMARK_NS}unlocode/{self.unlocode}"
        return None

    def read_point(self) -> str | None:
        if self.latitude is not None and self.longitude is not None:
            return f"geo:{self.latitude:.5f},{self.longitude:.5f}"
        return self.business_location()

    @property
    def country(self) -> str | None:
        return self.unlocode[:2] if self.unlocode else None


class DocumentInput(Record):
    """A document that travels with a record (a report, a certificate): stored encrypted by the
    node; only its SHA-256 goes into the event."""

    document_type: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]{0,63}$", description="e.g. inspection_report, certificate_of_origin (default per adapter)"
    )
    media_type: str = Field("application/pdf", pattern=r"^[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*$", description="MIME type of the content")
    content_base64: str = Field(description="The document's bytes, base64")
    readers: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list, max_length=50,
        description="Organisation ids the document is sealed for besides the uploader and its type's role tier: the parties to the order, the destination's customs",
    )

    def content(self) -> bytes:
        try:
            raw = base64.b64decode(self.content_base64, validate=True)
        except ValueError:
            raise ValueError("contentBase64: not valid base64") from None
        if not raw:
            raise ValueError("contentBase64: the document is empty")
        return raw


# ---- output ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentUpload:
    content: bytes
    document_type: str
    media_type: str
    # Organisations the document is sealed for besides the uploader and its type's role tier.
    readers: tuple[int, ...] = ()

    @property
    def sha256_hex(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def ref(self) -> Json:
        return epcis.document_ref(self.document_type, self.sha256_hex)


@dataclass(frozen=True)
class FxObservation:
    base: str
    quote: str
    rate: Decimal
    observed_at: int
    source: str | None = None


@dataclass
class Output:
    """What one accepted record produces."""

    events: list[Json] = field(default_factory=list)
    documents: list[DocumentUpload] = field(default_factory=list)
    fx: list[FxObservation] = field(default_factory=list)
    # State to remember once the output is safely queued (idempotent upserts).
    remember: list[Callable[[OracleState], None]] = field(default_factory=list)
    # Said back to the source system (e.g. the shipment a booking registered).
    notes: dict[str, Any] = field(default_factory=dict)
    # The duty an event's escrow fact carries ({amount, currency}, by the event's index in
    # `events`): the event itself names only the sealed document that holds it.
    escrow_duty: dict[int, dict[str, str]] = field(default_factory=dict)

    def extend(self, other: "Output") -> None:
        self.escrow_duty.update({len(self.events) + i: duty for i, duty in other.escrow_duty.items()})
        self.events.extend(other.events)
        self.documents.extend(other.documents)
        self.fx.extend(other.fx)
        self.remember.extend(other.remember)
        self.notes.update(other.notes)


@dataclass(frozen=True)
class Context:
    """What adapters may consult: the oracle's remembered state and its product catalogue."""

    state: OracleState
    products: Mapping[str, Mapping[str, Any]]
    # The organisation's secret for the salts of the documents adapters write themselves
    # (derived from its signing key): the same record gives the same document, and nobody
    # can guess a document's content (an HS code, a round value) from its public hash.
    secret: bytes = b""

    def record_document(self, document_type: str, body: Mapping[str, Any], readers: Sequence[int] = ()) -> DocumentUpload:
        """A JSON document of confidential fields taken out of an event, salted (see `secret`)."""
        if not self.secret:
            raise ValueError("this oracle has no document secret, so it cannot seal confidential fields")
        canonical = orjson.dumps({"documentType": document_type, **body}, option=orjson.OPT_SORT_KEYS)
        salt = hmac.new(self.secret, canonical, hashlib.sha256).hexdigest()
        content = orjson.dumps({"documentType": document_type, **body, "salt": salt}, option=orjson.OPT_SORT_KEYS)
        return DocumentUpload(content, document_type, "application/json", tuple(sorted(set(readers))))


class Adapter:
    """An input schema and a builder. Subclasses set `name`, `model` and implement `build`."""

    name: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    description: ClassVar[str] = ""

    def parse(self, data: Any) -> BaseModel:
        """Validate a decoded JSON value against the schema; InputRejected names the first bad field."""
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            raise rejection(self.name, exc) from None

    def build(self, record: Any, ctx: Context) -> Output:
        raise NotImplementedError

    def handle(self, data: Any, ctx: Context) -> Output:
        record = self.parse(data)
        try:
            return self.build(record, ctx)
        except ValueError as exc:  # a builder's own check on a value the schema let through
            raise InputRejected(self.name, getattr(exc, "field", "(record)"), str(exc)) from None

    def schema(self) -> Json:
        return self.model.model_json_schema(by_alias=True)


class FieldError(ValueError):
    """A builder's objection to one field (`field` is its path in the input)."""

    def __init__(self, field_path: str, problem: str) -> None:
        self.field = field_path
        super().__init__(problem)


def field_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(record)"


def rejection(adapter: str, exc: ValidationError) -> InputRejected:
    errors = exc.errors(include_url=False)
    first = errors[0]
    message = str(first.get("msg", "invalid"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first.get("type") == "extra_forbidden":
        message = "unknown field (see the adapter's schema)"
    elif first.get("type") == "missing":
        message = "required"
    problem = InputRejected(adapter, field_path(first.get("loc", ())), message)
    problem.more = [  # type: ignore[attr-defined]
        {"field": field_path(e.get("loc", ())), "message": str(e.get("msg", "")).removeprefix("Value error, ")} for e in errors[1:10]
    ]
    return problem


def device_uri(device_id: str) -> str:
    """A device id as an EPCIS URI: as given if it is one, else under the Waymark namespace."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$", device_id):
        return device_id
    return f"{vocabulary.WAYMARK_NS}device/{quote(device_id, safe='-._')}"


def unit_or_container(canonical: str) -> Identifier:
    return parse_identifier(canonical)


def lot_uri(gtin: str, lot: str) -> str:
    """The canonical id of a lot (what an escrow order's shipmentRef may hash)."""
    return f"https://id.gs1.org/01/{gtin}/10/{quote(lot, safe='-._')}"


def unix(timestamp: str) -> int:
    return int(timestamps.parse_timestamp(timestamp)[0].timestamp())


def moment(timestamp: str) -> datetime:
    return timestamps.parse_timestamp(timestamp)[0]


ResultLiteral = Literal["conformant", "non_conformant"]
__all__ = [
    "Adapter", "Amount", "Context", "Country", "Currency", "DocumentInput", "DocumentUpload", "FieldError", "FxObservation",
    "Gtin", "Ident", "Json", "Location", "ObjectRef", "Output", "Record", "Sscc", "Timestamp", "UnitId", "device_uri", "lot_uri",
]


def offset_of(timestamp: str) -> str:
    """The eventTimeZoneOffset of a source time as written (``Z`` is +00:00)."""
    zone = timestamp.strip()[-6:]
    return zone if re.fullmatch(r"[+-]\d{2}:\d{2}", zone) else "+00:00"
