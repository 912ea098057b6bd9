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

Values are canonicalised: whitespace trimmed; times in UTC with millisecond precision and
``Z`` (the 3rd decimal rounded up when the 4th is 5-9); numbers without trailing zeros (also
numeric-looking strings); CBV bare terms, CURIEs into GS1 vocabularies (``cbv:``, ``gs1:``)
and old CBV URNs as web vocabulary IRIs (other CURIE values are hashed as written, so Waymark
writes its own vocabulary values as full IRIs); every GS1 key (EPC URN, Digital Link URI on any
host) as its constrained canonical Digital Link URI on id.gs1.org (serial wins over lot,
consumer product variant and query string dropped).

Numeric-looking strings go through a float, so past 15 significant digits two different
strings can canonicalise alike; :mod:`node.protocol.epcis` validation refuses such values in
extension fields.

Error declarations: because ``errorDeclaration`` is not hashed, an error declaration has the
same CBV hash as the event it declares erroneous (by design of the standard: it names that
event). Waymark stores, attests and anchors it under :func:`record_digest` (which adds the
declaration) and links it to the original by the shared CBV hash.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from node.errors import WaymarkError
from node.protocol.epcis import (
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
from node.protocol.gs1 import check_digit

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


# --- value canonicalisation ---------------------------------------------------------------

_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _number_text(number: float) -> str | None:
    if number != number or number in (float("inf"), float("-inf")):
        return None
    if number == int(number):
        return str(int(number))
    return repr(number)


_OLD_CBV_URNS = (
    ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-"),
    ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
    ("urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-"),
    ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-"),
    ("urn:epcglobal:cbv:er:", "https://ref.gs1.org/cbv/ER-"),
)


class _Context:
    """Prefixes in force for one event."""

    __slots__ = ("user", "vocab")

    def __init__(self, user: Mapping[str, str]) -> None:
        # Extension names expand with the prefixes the document declares; vocabulary
        # values also know the EPCIS context's own prefixes (cbv, gs1, epcis).
        self.user = {k: v for k, v in user.items() if k not in ("http", "https", "urn")}
        vocab = dict(STANDARD_PREFIXES)
        vocab.update(self.user)
        self.vocab = vocab


def _expand_curie(text: str, prefixes: Mapping[str, str]) -> str:
    prefix, sep, rest = text.partition(":")
    if sep and prefixes and not rest.startswith("//"):
        iri = prefixes.get(prefix)
        if iri is not None:
            return iri + rest
    return text


_canon_cache: dict[str, str] = {}
_CANON_CACHE_SIZE = 50_000  # ~15 MB at most


def _canon(value: Any, ctx: _Context) -> str:
    """Canonical text of a scalar value (not a time field)."""
    if isinstance(value, str):
        cached = _canon_cache.get(value)
        if cached is not None:
            return cached
        canonical = _canon_text(value)
        if len(_canon_cache) >= _CANON_CACHE_SIZE:
            _canon_cache.clear()
        _canon_cache[value] = canonical
        return canonical
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        number = _number_text(value)
        return number if number is not None else repr(value)
    if value is None:
        return ""
    return _canon(str(value), ctx)


def _canon_text(value: str) -> str:
    """Canonical text of a string value; depends on nothing but the string."""
    text = value.strip()
    if not text:
        return ""
    if ":" in text:
        if text.startswith("urn:epcglobal:cbv:"):
            for old, new in _OLD_CBV_URNS:
                if text.startswith(old):
                    text = new + text[len(old):]
                    break
        elif text.startswith(("urn:epc:", "http")):
            normalised = canonical_gs1_uri(text)
            if normalised is not None:
                return normalised
        return text
    first = text[0]
    if (first.isdigit() or first in "+-.") and _NUMBER_RE.match(text):
        number = _number_text(float(text))
        if number is not None:
            return number
    return text


def _canon_vocab(value: Any, table: Mapping[str, str], ctx: _Context) -> str:
    if isinstance(value, str):
        text = value.strip()
        iri = table.get(text)
        if iri is not None:
            return iri
        expanded = _expand_curie(text, ctx.vocab)
        if expanded.startswith(_GS1_VOCABULARIES):
            return expanded
        return _canon(text, ctx)
    return _canon(value, ctx)


# Only CURIEs that land in GS1's vocabularies are expanded in values (as the reference
# implementation's JSON-LD step does); other CURIE values are hashed as written.
_GS1_VOCABULARIES = ("https://ref.gs1.org/cbv/", "https://ref.gs1.org/voc/", "https://gs1.org/voc/")


_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$"
)
_CANONICAL_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def canonical_time(value: Any) -> str:
    """A timestamp in UTC with exactly 3 decimals and ``Z``; unparseable text is returned trimmed."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    text = value.strip()
    if _CANONICAL_TIME_RE.match(text):
        try:
            datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]), int(text[17:19]))
        except ValueError:
            return text
        return text
    moment = _parse_time(text)
    if moment is None:
        return text
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(text: str) -> datetime | None:
    match = _TIME_RE.match(text)
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        return None
    fraction = match.group(7) or ""
    millis = int((fraction + "000")[:3])
    if len(fraction) > 3 and fraction[3] >= "5":  # round half up on the 4th decimal
        millis += 1
    moment += timedelta(milliseconds=millis)
    zone = match.group(8)
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment


def unix_seconds(value: str) -> int:
    """Unix seconds of an event time string, fractions truncated (not rounded).

    This is the attestation's ``eventTime``: truncating keeps it equal to
    ``floor(parse_timestamp(value))`` however many decimals the time carries.
    """
    match = _TIME_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise EventHashError(f"not a timestamp: {value!r}")
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        raise EventHashError(f"not a timestamp: {value!r}") from None
    zone = match.group(8)
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return int(moment.timestamp())


# --- GS1 key normalisation (constrained canonical Digital Link URI) -----------------------

_GS1 = "https://id.gs1.org/"
_PRIMARY_KEYS = {
    "01": "01", "gtin": "01", "8006": "8006", "itip": "8006", "8010": "8010", "cpid": "8010",
    "414": "414", "gln": "414", "417": "417", "party": "417", "8017": "8017", "gsrnp": "8017",
    "8018": "8018", "gsrn": "8018", "255": "255", "gcn": "255", "00": "00", "sscc": "00",
    "253": "253", "gdti": "253", "401": "401", "ginc": "401", "402": "402", "gsin": "402",
    "8003": "8003", "grai": "8003", "8004": "8004", "giai": "8004",
}
_QUALIFIER_NAMES = {"cpv": "22", "lot": "10", "ser": "21"}
# which qualifiers each key may carry, and which of them survive in the constrained form
_KEY_QUALIFIERS = {
    "01": ({"22", "10", "21", "235"}, ("21", "235", "10")),
    "8006": ({"22", "10", "21"}, ("21", "10")),
    "414": ({"254"}, ("254",)),
    "8010": ({"8011"}, ("8011",)),
}
_DIGITS_RE = re.compile(r"^\d+$")
_SEGMENT_RE = re.compile(r"^[!-.0-~]+$")  # printable ASCII except '/' (percent escapes kept)
_KEY_SHAPES: dict[str, re.Pattern[str]] = {
    "00": re.compile(r"^\d{18}$"),
    "01": re.compile(r"^\d{14}$"),
    "8006": re.compile(r"^\d{18}$"),
    "414": re.compile(r"^\d{13}$"),
    "417": re.compile(r"^\d{13}$"),
    "8017": re.compile(r"^\d{18}$"),
    "8018": re.compile(r"^\d{18}$"),
    "402": re.compile(r"^\d{17}$"),
    "253": re.compile(r"^\d{13}[!-.0-~]{0,17}$"),
    "255": re.compile(r"^\d{13}\d{0,12}$"),
    "8003": re.compile(r"^\d{14}[!-.0-~]{0,16}$"),
    "401": re.compile(r"^[!-.0-~]{1,30}$"),
    "8004": re.compile(r"^[!-.0-~]{1,30}$"),
    "8010": re.compile(r"^[!-.0-~]{1,30}$"),
}


_KEY_HINT_RE = re.compile(
    r"/(?:0[01]|253|255|40[12]|41[47]|800[346]|801[078]|gtin|itip|cpid|gln|party|gsrnp?|gcn"
    r"|sscc|gdti|ginc|gsin|grai|giai)/\d{4}"
)


def _canonical_digital_link(uri: str) -> str | None:
    if _KEY_HINT_RE.search(uri) is None:
        return None
    scheme_end = uri.find("://")
    if scheme_end < 0:
        return None
    rest = uri[scheme_end + 3:]
    for stop in ("?", "#"):
        cut = rest.find(stop)
        if cut >= 0:
            rest = rest[:cut]
    segments = rest.split("/")[1:]  # drop the host
    if segments and segments[-1] == "":
        segments.pop()
    for i, segment in enumerate(segments):
        key = _PRIMARY_KEYS.get(segment)
        if key is not None and i + 1 < len(segments) and segments[i + 1][:4].isdigit():
            break
    else:
        return None
    value = segments[i + 1]
    tail = segments[i + 2:]
    if len(tail) % 2:
        return None
    if key == "01" and _DIGITS_RE.match(value) and len(value) in (8, 12, 13):
        value = value.zfill(14)
    shape = _KEY_SHAPES[key]
    if not shape.match(value):
        return None
    allowed, kept = _KEY_QUALIFIERS.get(key, (set(), ()))
    qualifiers: dict[str, str] = {}
    for j in range(0, len(tail), 2):
        name = _QUALIFIER_NAMES.get(tail[j], tail[j])
        if name not in allowed or not _SEGMENT_RE.match(tail[j + 1]):
            return None
        qualifiers[name] = tail[j + 1]
    out = f"{_GS1}{key}/{value}"
    for name in kept:
        if name in qualifiers:
            out += f"/{name}/{qualifiers[name]}"
            if key in ("01", "8006"):
                break  # only the finest level: serial (or TPX) over lot
    return out


def _gtin(prefix: str, item: str) -> str | None:
    if len(prefix) + len(item) != 13 or not (prefix + item).isdigit():
        return None
    body = item[0] + prefix + item[1:]
    return body + str(check_digit(body))


def _with_check(body: str, length: int) -> str | None:
    if len(body) != length or not body.isdigit():
        return None
    return body + str(check_digit(body))


_CPI_REF_RE = re.compile(r"^(?:%2[3dfDF]|[0-9A-Z-])+$")
_EPC_CHARS_RE = re.compile(r"^(?:%[0-9A-Fa-f]{2}|[!'()*+,.0-9:;=A-Za-z_-])+$")


def _epc_urn(uri: str) -> str | None:
    scheme, _, body = uri[8:].partition(":")  # after "urn:epc:"
    kind = scheme  # "id", "class" or "idpat"
    name, _, rest = body.partition(":")
    parts = rest.split(".")
    if len(parts) < 2 or not (6 <= len(parts[0]) <= 12) or not parts[0].isdigit():
        return None
    prefix = parts[0]

    def serial(text: str) -> str | None:
        return text if text and _EPC_CHARS_RE.match(text) else None

    if kind == "id":
        if name == "sgtin" and len(parts) >= 3:
            gtin, ser = _gtin(prefix, parts[1]), serial(".".join(parts[2:]))
            return f"{_GS1}01/{gtin}/21/{ser}" if gtin and ser else None
        if name == "sscc" and len(parts) == 2:
            reference = parts[1]
            body = reference[:1] + prefix + reference[1:]
            sscc = _with_check(body, 17)
            return f"{_GS1}00/{sscc}" if sscc else None
        if name == "sgln" and len(parts) >= 3:
            gln = _with_check(prefix + parts[1], 12)
            ext = ".".join(parts[2:])
            if not gln or not serial(ext):
                return None
            return f"{_GS1}414/{gln}" if ext == "0" else f"{_GS1}414/{gln}/254/{ext}"
        if name == "grai" and len(parts) >= 3:
            grai = _with_check("0" + prefix + parts[1], 13)
            ser = serial(".".join(parts[2:]))
            return f"{_GS1}8003/{grai}{ser}" if grai and ser else None
        if name == "giai" and len(parts) >= 2:
            ref = serial(".".join(parts[1:]))
            return f"{_GS1}8004/{prefix}{ref}" if ref else None
        if name in ("gsrn", "gsrnp") and len(parts) == 2:
            number = _with_check(prefix + parts[1], 17)
            ai = "8018" if name == "gsrn" else "8017"
            return f"{_GS1}{ai}/{number}" if number else None
        if name == "gdti" and len(parts) >= 3:
            gdti = _with_check(prefix + parts[1], 12)
            ser = serial(".".join(parts[2:]))
            return f"{_GS1}253/{gdti}{ser}" if gdti and ser else None
        if name == "cpi" and len(parts) >= 3:
            part_ref, part_serial = ".".join(parts[1:-1]), parts[-1]
            if not part_ref or not part_serial.isdigit() or not _CPI_REF_RE.match(part_ref):
                return None
            return f"{_GS1}8010/{prefix}{part_ref}/8011/{part_serial}"
        if name == "sgcn" and len(parts) == 3:
            sgcn = _with_check(prefix + parts[1], 12)
            return f"{_GS1}255/{sgcn}{parts[2]}" if sgcn and parts[2].isdigit() else None
        if name == "ginc" and len(parts) >= 2:
            ref = serial(".".join(parts[1:]))
            return f"{_GS1}401/{prefix}{ref}" if ref else None
        if name == "gsin" and len(parts) == 2:
            gsin = _with_check(prefix + parts[1], 16)
            return f"{_GS1}402/{gsin}" if gsin else None
        if name == "itip" and len(parts) >= 5:
            gtin, ser = _gtin(prefix, parts[1]), serial(".".join(parts[4:]))
            piece, total = parts[2], parts[3]
            if not (gtin and ser and len(piece) == 2 and len(total) == 2 and (piece + total).isdigit()):
                return None
            return f"{_GS1}8006/{gtin}{piece}{total}/21/{ser}"
        if name == "upui" and len(parts) >= 3:
            gtin, tpx = _gtin(prefix, parts[1]), serial(".".join(parts[2:]))
            return f"{_GS1}01/{gtin}/235/{tpx}" if gtin and tpx else None
        if name == "pgln" and len(parts) == 2:
            gln = _with_check(prefix + parts[1], 12)
            return f"{_GS1}417/{gln}" if gln else None
        return None
    if kind == "class" and name == "lgtin" and len(parts) >= 3:
        gtin, lot = _gtin(prefix, parts[1]), serial(".".join(parts[2:]))
        return f"{_GS1}01/{gtin}/10/{lot}" if gtin and lot else None
    if kind == "idpat" and parts[-1] == "*":
        if name in ("sgtin", "upui") and len(parts) == 3:
            gtin = _gtin(prefix, parts[1])
            return f"{_GS1}01/{gtin}" if gtin else None
        if name == "grai" and len(parts) == 3:
            grai = _with_check("0" + prefix + parts[1], 13)
            return f"{_GS1}8003/{grai}" if grai else None
        if name == "gdti" and len(parts) == 3:
            gdti = _with_check(prefix + parts[1], 12)
            return f"{_GS1}253/{gdti}" if gdti else None
        if name == "sgcn" and len(parts) == 3:
            sgcn = _with_check(prefix + parts[1], 12)
            return f"{_GS1}255/{sgcn}" if sgcn else None
        if name == "cpi" and len(parts) == 3:
            return f"{_GS1}8010/{prefix}{parts[1]}" if parts[1] else None
        if name == "itip" and len(parts) == 5:
            gtin = _gtin(prefix, parts[1])
            piece, total = parts[2], parts[3]
            if not (gtin and len(piece) == 2 and len(total) == 2 and (piece + total).isdigit()):
                return None
            return f"{_GS1}8006/{gtin}{piece}{total}"
    return None


# Ids Waymark writes are already canonical; recognising them skips the general parser.
_ALREADY_CANONICAL_RE = re.compile(
    # values never hold "/", "?" or "#": a link with a query string goes the long way (query dropped)
    r"^https://id\.gs1\.org/(?:00/\d{18}|01/\d{14}(?:/(?:21|10)/[!\"$-.0->@-~]+)?"
    r"|414/\d{13}(?:/254/[!\"$-.0->@-~]+)?|417/\d{13})$"
)


def canonical_gs1_uri(text: str) -> str | None:
    """The constrained canonical Digital Link URI of a GS1 key, or None if ``text`` is not one.

    Accepts EPC URNs (id, class, idpat) and Digital Link URIs on any host; drops the query
    string, the consumer product variant, and the lot when a serial is present. Check
    digits of Digital Link input are not verified here (that is validation's job).
    """
    if text.startswith("https://id.gs1.org/") and _ALREADY_CANONICAL_RE.match(text):
        return text
    if text.startswith("urn:epc:"):
        return _epc_urn(text)
    if text.startswith(("https://", "http://")):
        return _canonical_digital_link(text)
    return None


# --- the pre-hash string ------------------------------------------------------------------

_IGNORED = frozenset(
    ("type", "eventID", "recordTime", "errorDeclaration", "certificationInfo", "@context",
     "rdfs:comment", "comment", "ilmd")
)
_GENERIC_IGNORED = frozenset(("@context", "rdfs:comment", "comment"))
_XML_NAMESPACES = {"cbvmda": "urn:epcglobal:cbv:mda"}  # keys keep the XML binding's namespace


def _key_name(key: str, ctx: _Context) -> str:
    prefix, sep, local = key.partition(":")
    if sep:
        iri = ctx.user.get(prefix)
        if iri is None:
            iri = _XML_NAMESPACES.get(prefix) or STANDARD_PREFIXES.get(prefix)
        if iri is not None:
            return "{" + iri + "}" + local
    return key


def _generic(name: str, value: Any, ctx: _Context, out: list[str]) -> None:
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
        text = _canon(value, ctx)
        out.append(f"{name}={text}" if text else name)


def _leftover(name: str, obj: Mapping[str, Any], consumed: frozenset[str], ctx: _Context, out: list[str]) -> None:
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
Handler = Callable[[str, Any, _Context, list[str]], str]


def _plain(name: str, value: Any, ctx: _Context, left: list[str]) -> str:
    if isinstance(value, _CONTAINER):
        _generic(name, value, ctx, left)
        return ""
    return _field(name, _canon(value, ctx))


def _time(name: str, value: Any, ctx: _Context, left: list[str]) -> str:
    if isinstance(value, _CONTAINER):
        _generic(name, value, ctx, left)
        return ""
    return _field(name, canonical_time(value))


def _vocab(table: Mapping[str, str]) -> Handler:
    def handle(name: str, value: Any, ctx: _Context, left: list[str]) -> str:
        if isinstance(value, _CONTAINER):
            _generic(name, value, ctx, left)
            return ""
        return _field(name, _canon_vocab(value, table, ctx))

    return handle


def _epcs(name: str, value: Any, ctx: _Context, left: list[str]) -> str:
    items = value if isinstance(value, list) else [value]
    entries = []
    for item in items:
        if isinstance(item, _OBJECT):
            _generic(name, item, ctx, left)
            continue
        text = _canon(item, ctx)
        if text:
            entries.append("epc=" + text)
    if not entries:
        return ""
    entries.sort()
    return name + "".join(entries)


_QTY_KEYS = frozenset(("epcClass", "quantity", "uom"))


def _quantities(name: str, value: Any, ctx: _Context, left: list[str]) -> str:
    entries = []
    for element in value if isinstance(value, list) else [value]:
        if not isinstance(element, _OBJECT):
            continue
        text = ""
        for key in ("epcClass", "quantity", "uom"):
            if key in element:
                text += _field(key, _canon(element[key], ctx))
        if text:
            entries.append("quantityElement" + text)
        _leftover("quantityElement", element, _QTY_KEYS, ctx, left)
    if not entries:
        return ""
    entries.sort()
    return name + "".join(entries)


def _persistent(name: str, value: Any, ctx: _Context, left: list[str]) -> str:
    if not isinstance(value, _OBJECT):
        return _plain(name, value, ctx, left)
    text = ""
    for key in ("set", "unset"):
        items = value.get(key)
        if items is None:
            continue
        entries = []
        for item in items if isinstance(items, list) else [items]:
            canon = _canon_vocab(item, DISPOSITION_IRIS, ctx)
            if canon:
                entries.append(f"{key}={canon}")
        entries.sort()
        text += "".join(entries)
    _leftover(name, value, frozenset(("set", "unset")), ctx, left)
    return name + text if text else ""


_ID_ONLY = frozenset(("id",))


def _location(name: str, value: Any, ctx: _Context, left: list[str]) -> str:
    if not isinstance(value, _OBJECT):
        text = _canon(value, ctx) if not isinstance(value, list) else ""
        return name + "id=" + text if text else ""
    text = _field("id", _canon(value.get("id"), ctx)) if "id" in value else ""
    _leftover(name, value, _ID_ONLY, ctx, left)
    return name + text if text else ""


def _typed_list(id_key: str, types: Mapping[str, str]) -> Handler:
    consumed = frozenset(("type", id_key))

    def handle(name: str, value: Any, ctx: _Context, left: list[str]) -> str:
        entries = []
        for element in value if isinstance(value, list) else [value]:
            if not isinstance(element, _OBJECT):
                continue
            text = ""
            if "type" in element:
                text += _field("type", _canon_vocab(element["type"], types, ctx))
            if id_key in element:
                text += _field(id_key, _canon(element[id_key], ctx))
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


def _ordered_object(obj: dict[str, Any], plan: Mapping[str, tuple[int, Any]], ctx: _Context) -> str:
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
            text = _canon(value, ctx)
        else:
            text = _canon_vocab(value, kind, ctx)
        if text:
            parts.append(f"{key}={text}")
    return "".join(parts)


def _sensors(name: str, value: Any, ctx: _Context, left: list[str]) -> str:
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

def _freeze(value: Any) -> Any:
    # Key order is kept: another order only costs another cache entry.
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return tuple([(k, v if isinstance(v, str) else _freeze(v)) for k, v in value.items()])
    if isinstance(value, list):
        return tuple([v if isinstance(v, str) else _freeze(v) for v in value])
    return value


_prefix_cache: dict[Any, _Context] = {}


def _context_for(event: Mapping[str, Any], context: Any) -> _Context:
    own = event.get("@context")
    if own is None and context is None:
        return _EMPTY_CONTEXT
    # Contexts repeat across events; key the parsed prefixes by a frozen copy of them.
    try:
        key = (_freeze(context), _freeze(own))
        cached = _prefix_cache.get(key)
    except TypeError:  # an unhashable oddity inside a context: just parse it
        key, cached = None, None
    if cached is not None:
        return cached
    prefixes: dict[str, str] = {}
    if context is not None:
        prefixes.update(context_prefixes(context))
    if own is not None:
        prefixes.update(context_prefixes(own))
    built = _Context(prefixes)
    if key is not None:
        if len(_prefix_cache) > 256:
            _prefix_cache.clear()
        _prefix_cache[key] = built
    return built


_EMPTY_CONTEXT = _Context({})


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
    ctx = _context_for(event, context)
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
    _generic("errorDeclaration", declaration, _context_for(event, context), parts)
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
    ctx = _Context(context_prefixes(context)) if context is not None else _EMPTY_CONTEXT
    return _canon(value, ctx)


def primary_object_id(event: Mapping[str, Any], context: Any = None) -> str:
    """The canonical id of an event's primary object (the attestation subject's preimage).

    The first non-empty of epcList, parentID, outputEPCList, inputEPCList, childEPCs, then
    the epcClass of the quantity lists; within a list the smallest canonical id, so that the
    subject does not depend on the order the list was written in. An event naming no object
    (sensor-only) has its readPoint, else its bizLocation, as subject.
    """
    ctx = _context_for(event, context)
    for key in _PRIMARY_FIELDS:
        value = event.get(key)
        if not value:
            continue
        items = value if isinstance(value, list) else [value]
        ids = [_canon(item, ctx) for item in items if isinstance(item, str) and item.strip()]
        if ids:
            return min(ids)
    for key in _PRIMARY_CLASS_FIELDS:
        value = event.get(key)
        if isinstance(value, list):
            ids = [
                _canon(element["epcClass"], ctx)
                for element in value
                if isinstance(element, _OBJECT) and isinstance(element.get("epcClass"), str)
            ]
            if ids:
                return min(ids)
    # An event about no object (a sensor-only ObjectEvent, EPCIS 2.0 7.4.2) is about a place.
    for key in ("readPoint", "bizLocation"):
        location = event.get(key)
        if isinstance(location, _OBJECT) and isinstance(location.get("id"), str) and location["id"].strip():
            return _canon(location["id"], ctx)
    raise EventHashError("the event names no object and no place (epcList, parentID, ..., readPoint, bizLocation are all empty)")
