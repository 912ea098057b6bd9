"""GS1 identifiers: Digital Link URIs for serialised units, SSCCs for logistic units.

A unit is ``https://<resolver>/01/<GTIN-14>/10/<lot>/21/<serial>``; a case, pallet or
container is ``https://<resolver>/00/<SSCC-18>``. Parsing is strict (check digits, the
Digital Link qualifier order 22 < 10 < 21, the GS1 AI character set and lengths) and every
rejection is an :class:`InvalidIdentifier` saying what is wrong. AI rules come from ``biip``.

Two URI forms matter:

* ``UnitId.canonical_uri`` - ``https://id.gs1.org/01/<GTIN-14>/21/<serial>``: the constrained
  canonical form that the CBV 2.0 event hash normalises every GS1 key to (lot dropped when a
  serial is present). Events and attestation subjects use this form.
* ``UnitId.uri(resolver)`` - the full link with the lot, printed in the QR code.

A manufacturer may sign the code it issues (EIP-712, domain "Waymark code issuance" bound to
the chain id) and append the signature as ``?s=<hex>``; a scanner then recognises offline a
code that was never issued. The signature covers the full id on id.gs1.org *including the
lot*, so that a genuine serial cannot be re-printed under another lot.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Union
from urllib.parse import quote, unquote, urlsplit

from biip import ParseError
from biip.gln import Gln
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString

from node.errors import WaymarkError
from node.protocol.attestation import (
    Address,
    PrivateKeyLike,
    SignatureError,
    domain_separator,
    keccak256,
    parse_signature,
    recover_digest,
    sign_digest,
    typed_data_digest,
)

CANONICAL_RESOLVER = "id.gs1.org"
"""The host of canonical Digital Link URIs (GS1's own resolver)."""

SIGNATURE_PARAM = "s"
"""Query parameter carrying the manufacturer's issuance signature."""


class InvalidIdentifier(WaymarkError):
    """A GS1 identifier (GTIN, SSCC, Digital Link URI, EPC URN, serial, lot) is malformed."""

    code = "invalid_identifier"

    def __init__(self, value: str, problem: str) -> None:
        self.value = value
        self.problem = problem
        super().__init__(f"invalid GS1 identifier {value!r}: {problem}")


# --- check digits and keys ----------------------------------------------------------------


def check_digit(digits: str) -> int:
    """GS1 mod-10 check digit of a key without its check digit (weights 3,1,3,... from the right)."""
    total = 0
    weight = 3
    for char in reversed(digits):
        total += (ord(char) - 48) * weight
        weight = 4 - weight
    return (10 - total % 10) % 10


def _is_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def normalize_gtin(gtin: str) -> str:
    """Validate a GTIN-8/12/13/14 and return it zero-padded to 14 digits."""
    if not _is_digits(gtin):
        raise InvalidIdentifier(gtin, "a GTIN has digits only")
    if len(gtin) not in (8, 12, 13, 14):
        raise InvalidIdentifier(gtin, f"a GTIN has 8, 12, 13 or 14 digits, not {len(gtin)}")
    padded = gtin.zfill(14)
    expected = check_digit(padded[:13])
    if int(padded[13]) != expected:
        raise InvalidIdentifier(gtin, f"bad GTIN check digit: expected {expected}, got {padded[13]}")
    return padded


def validate_sscc(sscc: str) -> str:
    """Validate an 18-digit SSCC (with check digit) and return it."""
    if not _is_digits(sscc):
        raise InvalidIdentifier(sscc, "an SSCC has digits only")
    if len(sscc) != 18:
        raise InvalidIdentifier(sscc, f"an SSCC has 18 digits, not {len(sscc)}")
    expected = check_digit(sscc[:17])
    if int(sscc[17]) != expected:
        raise InvalidIdentifier(sscc, f"bad SSCC check digit: expected {expected}, got {sscc[17]}")
    return sscc


def make_sscc(company_prefix: str, serial_reference: int | str, extension_digit: int = 0) -> str:
    """Build an SSCC: extension digit + GS1 company prefix + serial reference + check digit.

    The serial reference fills the 16 - len(prefix) digits left after the prefix.
    """
    if not _is_digits(company_prefix) or not 4 <= len(company_prefix) <= 12:
        raise InvalidIdentifier(company_prefix, "a GS1 company prefix has 4 to 12 digits")
    if not 0 <= extension_digit <= 9:
        raise InvalidIdentifier(str(extension_digit), "the SSCC extension digit is 0-9")
    width = 16 - len(company_prefix)
    reference = str(serial_reference)
    if not _is_digits(reference) or len(reference) > width:
        raise InvalidIdentifier(
            reference, f"the serial reference has at most {width} digits with this company prefix"
        )
    body = f"{extension_digit}{company_prefix}{reference.zfill(width)}"
    return body + str(check_digit(body))


# --- lots and serials ---------------------------------------------------------------------

# GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1).
_CSET82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")

SERIAL_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
"""Characters of generated serials: a subset of CSet 82 that never needs percent-encoding."""

MIN_SERIAL_BITS = 64


def _check_ai_value(value: str, label: str, max_length: int) -> str:
    if not value:
        raise InvalidIdentifier(value, f"the {label} is empty")
    if len(value) > max_length:
        raise InvalidIdentifier(value, f"the {label} has at most {max_length} characters, not {len(value)}")
    bad = sorted({char for char in value if char not in _CSET82})
    if bad:
        raise InvalidIdentifier(
            value, f"the {label} has characters outside the GS1 AI set: {''.join(bad)!r}"
        )
    return value


def new_serial(bits: int = 72) -> str:
    """A random serial of at least ``bits`` (>= 64) bits of entropy from ``secrets``."""
    if bits < MIN_SERIAL_BITS:
        raise ValueError(f"serials carry at least {MIN_SERIAL_BITS} bits, asked for {bits}")
    length = math.ceil(bits / math.log2(len(SERIAL_ALPHABET)))
    if length > 20:
        raise ValueError(f"{bits} bits do not fit the 20 characters of AI 21")
    return "".join(secrets.choice(SERIAL_ALPHABET) for _ in range(length))


def encode_component(value: str) -> str:
    """Percent-encode a lot or serial for a Digital Link path segment.

    Everything but ASCII letters, digits, ``-``, ``.`` and ``_`` is encoded, which covers the
    characters the Digital Link standard requires to be escaped (``! " # % & ' ( ) * + , / :
    ; < = > ?``) and keeps one spelling per value.
    """
    return quote(value, safe="-._")


# --- identifiers --------------------------------------------------------------------------


def _item_path(gtin: str, cpv: str | None, lot: str | None) -> str:
    """``/01/<GTIN>[/22/<cpv>][/10/<lot>]``: the trade-item part of a Digital Link path, in the
    order Digital Link 1.4 fixes for AI 01's qualifiers."""
    path = f"/01/{gtin}"
    if cpv is not None:
        path += f"/22/{encode_component(cpv)}"
    if lot is not None:
        path += f"/10/{encode_component(lot)}"
    return path


def _normalise_item(item: "UnitId | ProductId") -> None:
    """Store the GTIN as GTIN-14 and keep the written form when it names the same GTIN; check
    the lot and variant values (frozen dataclasses: set through object.__setattr__)."""
    written = item.written_gtin or item.gtin
    object.__setattr__(item, "gtin", normalize_gtin(item.gtin))
    object.__setattr__(item, "written_gtin", written if normalize_gtin(written) == item.gtin else item.gtin)
    if item.lot is not None:
        _check_ai_value(item.lot, "lot (AI 10)", 20)
    if item.cpv is not None:
        _check_ai_value(item.cpv, "consumer product variant (AI 22)", 20)


@dataclass(frozen=True)
class UnitId:
    """A serialised trade item: GTIN-14, optional lot, serial."""

    gtin: str
    serial: str
    lot: str | None = None
    cpv: str | None = None
    """Consumer product variant (AI 22): kept in the link, not part of the CBV canonical id."""
    written_gtin: str | None = field(default=None, compare=False, repr=False)
    """The GTIN as the link wrote it (8, 12, 13 or 14 digits): Digital Link 1.4 keeps that form."""

    def __post_init__(self) -> None:
        _normalise_item(self)
        _check_ai_value(self.serial, "serial (AI 21)", 20)

    @property
    def canonical_uri(self) -> str:
        """``https://id.gs1.org/01/<GTIN-14>/21/<serial>`` - the form the CBV event hash uses."""
        return f"https://{CANONICAL_RESOLVER}/01/{self.gtin}/21/{encode_component(self.serial)}"

    def uri(self, resolver: str = CANONICAL_RESOLVER) -> str:
        """The full Digital Link URI (with lot when known) on ``resolver`` (host[:port][/path])."""
        path = _item_path(self.written_gtin or self.gtin, self.cpv, self.lot)
        return f"{_resolver_base(resolver)}{path}/21/{encode_component(self.serial)}"

    @property
    def issuance_uri(self) -> str:
        """What an issuance signature covers: the full id (lot included) on id.gs1.org, GTIN-14."""
        path = _item_path(self.gtin, self.cpv, self.lot)
        return f"https://{CANONICAL_RESOLVER}{path}/21/{encode_component(self.serial)}"

    @property
    def lot_id(self) -> "ProductId | None":
        """The unit's lot (a lot-level id), if the link names it."""
        return ProductId(self.gtin, self.lot, written_gtin=self.written_gtin) if self.lot is not None else None


@dataclass(frozen=True)
class ContainerId:
    """A logistic unit (case, pallet, container) by SSCC."""

    sscc: str

    def __post_init__(self) -> None:
        validate_sscc(self.sscc)

    @property
    def canonical_uri(self) -> str:
        return f"https://{CANONICAL_RESOLVER}/00/{self.sscc}"

    def uri(self, resolver: str = CANONICAL_RESOLVER) -> str:
        return f"{_resolver_base(resolver)}/00/{self.sscc}"

    @property
    def issuance_uri(self) -> str:
        return self.canonical_uri


@dataclass(frozen=True)
class ProductId:
    """A trade item class (product-level link ``/01/<GTIN>``) or one lot of it (``/01/<GTIN>/10/<lot>``)."""

    gtin: str
    lot: str | None = None
    cpv: str | None = None
    written_gtin: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _normalise_item(self)

    @property
    def level(self) -> str:
        return "lot" if self.lot is not None else "product"

    @property
    def canonical_uri(self) -> str:
        """``https://id.gs1.org/01/<GTIN-14>[/10/<lot>]`` (the CBV 2.0 class-level form)."""
        lot = f"/10/{encode_component(self.lot)}" if self.lot is not None else ""
        return f"https://{CANONICAL_RESOLVER}/01/{self.gtin}{lot}"

    def uri(self, resolver: str = CANONICAL_RESOLVER) -> str:
        return _resolver_base(resolver) + _item_path(self.written_gtin or self.gtin, self.cpv, self.lot)

    @property
    def product(self) -> "ProductId":
        return ProductId(self.gtin, written_gtin=self.written_gtin)


@dataclass(frozen=True)
class GS1Key:
    """Another GS1 primary key a Digital Link may carry: a location (414, with 254), a party
    (417) or an individual asset (8004), with its path qualifiers as (AI, value) pairs."""

    ai: str
    value: str
    qualifiers: tuple[tuple[str, str], ...] = ()

    @property
    def canonical_uri(self) -> str:
        path = f"/{self.ai}/{encode_component(self.value)}"
        path += "".join(f"/{ai}/{encode_component(value)}" for ai, value in self.qualifiers)
        return f"https://{CANONICAL_RESOLVER}{path}"

    def uri(self, resolver: str = CANONICAL_RESOLVER) -> str:
        return _resolver_base(resolver) + self.canonical_uri.removeprefix(f"https://{CANONICAL_RESOLVER}")


Identifier = Union[UnitId, ContainerId]
AnyKey = Union[UnitId, ContainerId, ProductId, GS1Key]
"""Whatever a Digital Link may name: a unit, a logistic unit, a product or lot, a location, party or asset."""


def _resolver_base(resolver: str) -> str:
    if "://" in resolver:
        base = resolver
    else:
        base = "https://" + resolver
    return base.rstrip("/")


# --- parsing ------------------------------------------------------------------------------

_SHORT_NAMES = {"gtin": "01", "lot": "10", "ser": "21", "cpv": "22", "sscc": "00", "gln": "414", "glnx": "254", "party": "417", "giai": "8004"}
# Digital Link key qualifiers of a GTIN, in the order the standard fixes.
_GTIN_QUALIFIER_ORDER = ("22", "10", "21")
_QUALIFIER_LABELS = {"22": "consumer product variant", "10": "lot", "21": "serial", "254": "GLN extension", "7040": "UIC with extension"}

SUPPORTED_PRIMARY_KEYS = ("01", "00", "414", "417", "8004")
"""The GS1 primary keys this network's resolver answers (the keys trade uses)."""


def _primary_qualifiers() -> dict[str, tuple[str, ...]]:
    # biip knows every GS1 primary key and its key qualifiers in Digital Link order.
    from biip.gs1_digital_link_uris import _PRIMARY_IDENTIFIERS

    return {pi.ai.ai: tuple(q.ai.ai for q in pi.qualifiers) for pi in _PRIMARY_IDENTIFIERS}


_PRIMARY_QUALIFIERS = _primary_qualifiers()
_ALL_QUALIFIERS = frozenset(q for qs in _PRIMARY_QUALIFIERS.values() for q in qs)
_AI_RE = re.compile(r"^\d{2,4}$")


@dataclass(frozen=True)
class ParsedLink:
    """A Digital Link URI taken apart: the identifier, where it resolves, its signature, and its
    validated GS1 data attributes (query string AIs, in the order given)."""

    identifier: Identifier
    resolver: str
    signature: bytes | None
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DigitalLink:
    """Any Digital Link URI (product, lot, unit, SSCC, location, party, asset) taken apart."""

    key: AnyKey
    resolver: str
    signature: bytes | None
    attributes: tuple[tuple[str, str], ...] = ()
    """Validated GS1 data attributes from the query string: (AI, value), in the order given."""

    @property
    def canonical_uri(self) -> str:
        """The key on id.gs1.org, whatever host the link names and whatever its query carries."""
        return self.key.canonical_uri

    def as_parsed(self) -> ParsedLink | None:
        """The unit/container form older callers use; None for other keys."""
        if isinstance(self.key, (UnitId, ContainerId)):
            return ParsedLink(self.key, self.resolver, self.signature, self.attributes)
        return None


def ai_label(ai: str) -> str:
    """``AI (17) (USE BY or EXPIRY)``-style name of an AI for messages."""
    known = _ai(ai)
    return f"AI ({ai}) {known.data_title}" if known is not None else f"AI ({ai})"


def _ai(ai: str) -> GS1ApplicationIdentifier | None:
    from biip.gs1_application_identifiers import _GS1_APPLICATION_IDENTIFIERS

    return _GS1_APPLICATION_IDENTIFIERS.get(ai)


def validate_ai_value(ai: str, value: str) -> str:
    """Check one AI value against the GS1 syntax dictionary (biip's AI table: format, length,
    character set, dates) and GS1 check digits of keys; return it or raise naming the AI."""
    known = _ai(ai)
    if known is None:
        raise InvalidIdentifier(f"{ai}={value}", f"AI ({ai}) is not a GS1 Application Identifier")
    if value == "":
        raise InvalidIdentifier(f"{ai}=", f"{ai_label(ai)} is empty")
    try:
        element = GS1ElementString.parse(ai + value)
    except ParseError as error:
        raise InvalidIdentifier(f"{ai}={value}", f"{ai_label(ai)} value {value!r} does not match its GS1 format {known.format}: {error}") from None
    if element.value != value:
        raise InvalidIdentifier(f"{ai}={value}", f"{ai_label(ai)} value {value!r} is longer than its GS1 format {known.format} allows")
    if ai in ("414", "417", "410", "411", "412", "413", "415", "416"):
        try:
            Gln.parse(value)
        except ParseError:
            raise InvalidIdentifier(f"{ai}={value}", f"bad check digit in {ai_label(ai)} {value!r}") from None
    return value


def _parse_query(uri: str, query: str, primary: str, path_keys: set[str]) -> tuple[tuple[tuple[str, str], ...], bytes | None]:
    """GS1 data attributes and the issuance signature of a query string. Parameters that are
    not AIs (linkType, context, utm_*, ...) are ignored, as Digital Link says."""
    if not query:
        return (), None
    attributes: list[tuple[str, str]] = []
    seen: set[str] = set()
    signature: bytes | None = None
    for item in query.split("&"):
        if not item:
            continue
        raw_name, _, raw_value = item.partition("=")
        name = unquote(raw_name)
        if name == SIGNATURE_PARAM:
            if signature is not None:
                raise InvalidIdentifier(uri, "the signature parameter appears twice")
            try:
                signature = parse_signature(raw_value)
            except SignatureError as error:
                raise InvalidIdentifier(uri, f"issuance signature: {error.problem}") from None
            continue
        if not _AI_RE.match(name):
            continue  # not a GS1 data attribute
        if _PERCENT_RE.search(raw_value):
            raise InvalidIdentifier(uri, f"bad percent-encoding in {ai_label(name)} value {raw_value!r}")
        try:
            value = unquote(raw_value.replace("+", "%2B"), errors="strict")
        except UnicodeDecodeError:
            raise InvalidIdentifier(uri, f"{ai_label(name)} value {raw_value!r} is not UTF-8 once decoded") from None
        if name in seen:
            raise InvalidIdentifier(uri, f"{ai_label(name)} appears twice in the query string")
        seen.add(name)
        if _ai(name) is None:
            raise InvalidIdentifier(uri, f"AI ({name}) in the query string is not a GS1 Application Identifier")
        if name in _PRIMARY_QUALIFIERS:
            raise InvalidIdentifier(uri, f"{ai_label(name)} is a primary key: it cannot be a data attribute of ({primary})")
        if name in _PRIMARY_QUALIFIERS.get(primary, ()) or name in path_keys:
            raise InvalidIdentifier(uri, f"{ai_label(name)} is a key qualifier of ({primary}): it belongs in the path, not the query string")
        try:
            validate_ai_value(name, value)
        except InvalidIdentifier as error:
            raise InvalidIdentifier(uri, error.problem) from None
        attributes.append((name, value))
    return tuple(attributes), signature


def parse_link(uri: str) -> DigitalLink:
    """Parse and validate any Digital Link URI this network serves (GS1 Digital Link URI
    syntax 1.4): ``/01/<GTIN>`` with its qualifiers ``/22/``, ``/10/``, ``/21/`` (product-,
    lot- and serial-level), ``/00/<SSCC>``, ``/414/<GLN>[/254/<ext>]``, ``/417/<party GLN>``,
    ``/8004/<GIAI>``, on any host and path prefix; GS1 data attributes in the query string are
    validated per AI (unknown, empty, duplicate or malformed ones are refused naming the AI);
    other query parameters are ignored.
    """
    if not isinstance(uri, str) or not uri:
        raise InvalidIdentifier(str(uri), "empty")
    if any(char.isspace() for char in uri):
        raise InvalidIdentifier(uri, "contains whitespace")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host
        raise InvalidIdentifier(uri, f"not a URI: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidIdentifier(uri, "a Digital Link URI starts with https:// (or http://)")
    if not parts.netloc:
        raise InvalidIdentifier(uri, "no resolver host")
    if parts.fragment:
        raise InvalidIdentifier(uri, "a Digital Link URI has no #fragment")

    segments = parts.path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()
    start = next(
        (i for i, seg in enumerate(segments) if _SHORT_NAMES.get(seg, seg) in _PRIMARY_QUALIFIERS and i + 1 < len(segments) and segments[i + 1][:1].isalnum()),
        None,
    )
    if start is None:
        start = next((i for i, seg in enumerate(segments) if _SHORT_NAMES.get(seg, seg) in _PRIMARY_QUALIFIERS), None)
    if start is None:
        raise InvalidIdentifier(uri, "no primary key: expected /01/<GTIN>, /00/<SSCC>, /414/<GLN>, /417/<GLN> or /8004/<GIAI> in the path")
    path_prefix = "/".join(segments[:start])
    pairs = segments[start:]
    if len(pairs) % 2:
        raise InvalidIdentifier(uri, f"path segment {pairs[-1]!r} has no value after it")
    keys = [_SHORT_NAMES.get(pairs[i], pairs[i]) for i in range(0, len(pairs), 2)]
    raw_values = [pairs[i] for i in range(1, len(pairs), 2)]
    for key, raw in zip(keys, raw_values):
        _check_percent_encoding(uri, key, raw)
    values = [unquote(raw, errors="strict") for raw in raw_values]
    primary = keys[0]
    if primary not in SUPPORTED_PRIMARY_KEYS:
        raise InvalidIdentifier(uri, f"primary key ({primary}) is not one this network resolves ({', '.join(SUPPORTED_PRIMARY_KEYS)})")
    attributes, signature = _parse_query(uri, parts.query, primary, set(keys))
    resolver = parts.netloc + ("/" + path_prefix if path_prefix else "")

    if primary == "00":
        if len(keys) > 1:
            raise InvalidIdentifier(uri, f"an SSCC takes no qualifiers, found /{keys[1]}/")
        validate_sscc(values[0])
        return DigitalLink(ContainerId(values[0]), resolver, signature, attributes)

    allowed = _GTIN_QUALIFIER_ORDER if primary == "01" else _PRIMARY_QUALIFIERS[primary]
    qualifiers: dict[str, str] = {}
    last_rank = -1
    for key, value in zip(keys[1:], values[1:]):
        if key not in allowed:
            names = ", ".join(allowed) or "none"
            raise InvalidIdentifier(uri, f"/{key}/ is not a key qualifier of ({primary}) ({names})")
        if key in qualifiers:
            raise InvalidIdentifier(uri, f"qualifier /{key}/ appears twice")
        rank = allowed.index(key)
        if rank < last_rank:
            previous = allowed[last_rank]
            raise InvalidIdentifier(
                uri,
                f"qualifier order: /{key}/ ({_QUALIFIER_LABELS.get(key, key)}) must come before "
                f"/{previous}/ ({_QUALIFIER_LABELS.get(previous, previous)})",
            )
        last_rank = rank
        qualifiers[key] = value

    if primary != "01":
        for key, value in [(primary, values[0]), *qualifiers.items()]:
            try:
                validate_ai_value(key, value)
            except InvalidIdentifier as error:
                raise InvalidIdentifier(uri, error.problem) from None
        return DigitalLink(GS1Key(primary, values[0], tuple(qualifiers.items())), resolver, signature, attributes)

    gtin = normalize_gtin(values[0])
    for key, label in (("22", "consumer product variant (AI 22)"), ("10", "lot (AI 10)"), ("21", "serial (AI 21)")):
        if key in qualifiers:
            try:
                _check_ai_value(qualifiers[key], label, 20)
            except InvalidIdentifier as error:
                raise InvalidIdentifier(uri, error.problem) from None
    # biip checks each AI's format (character set, length) against the GS1 AI table.
    problem = _biip_objection(gtin, tuple(k for k in _GTIN_QUALIFIER_ORDER if k in qualifiers))
    if problem is not None:
        raise InvalidIdentifier(uri, problem)
    key_id: AnyKey
    if "21" in qualifiers:
        key_id = UnitId(gtin=gtin, serial=qualifiers["21"], lot=qualifiers.get("10"), cpv=qualifiers.get("22"), written_gtin=values[0])
    else:
        key_id = ProductId(gtin, qualifiers.get("10"), qualifiers.get("22"), written_gtin=values[0])
    return DigitalLink(key_id, resolver, signature, attributes)


def parse_digital_link(uri: str) -> ParsedLink:
    """Parse and validate a unit (``/01/../21/..``) or SSCC (``/00/..``) Digital Link URI.

    Raises :class:`InvalidIdentifier` naming the problem: scheme, unknown key, qualifier
    order, check digit, character set, length, percent-encoding, a malformed signature or
    data attribute. Product-, lot-level and other keys: see :func:`parse_link`.
    """
    link = parse_link(uri)
    parsed = link.as_parsed()
    if parsed is None:
        if isinstance(link.key, ProductId):
            raise InvalidIdentifier(uri, "a unit link needs a serial (/21/<serial>)")
        ai = link.key.ai if isinstance(link.key, GS1Key) else "?"
        raise InvalidIdentifier(uri, f"({ai}) is not a unit's or container's primary key: expected /01/<GTIN>/21/<serial> or /00/<SSCC>")
    return parsed


@lru_cache(maxsize=4096)
def _biip_objection(gtin: str, keys: tuple[str, ...]) -> str | None:
    """biip's objection to a unit link of `gtin` with qualifiers `keys`, or None.

    Cached per GTIN and set of qualifiers (ingest parses thousands of links a second and
    biip costs ~150 us each): the qualifier values cannot change the verdict, because every
    value has passed `_check_ai_value` (1-20 characters of GS1 CSet 82), which is exactly
    biip's pattern for AIs 10, 21 and 22; what biip can still object to is the GTIN.
    """
    path = f"/01/{gtin}" + "".join(f"/{key}/0" for key in keys)
    try:
        GS1DigitalLinkURI.parse(f"https://{CANONICAL_RESOLVER}{path}")
    except ParseError as error:
        return str(error)
    return None


_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _check_percent_encoding(uri: str, key: str, raw: str) -> None:
    if _PERCENT_RE.search(raw):
        raise InvalidIdentifier(uri, f"bad percent-encoding in /{key}/ value {raw!r}")
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidIdentifier(uri, f"/{key}/ value {raw!r} is not UTF-8 once decoded") from None
    bad = sorted({char for char in decoded if char not in _CSET82})
    if bad:
        raise InvalidIdentifier(
            uri, f"/{key}/ value {decoded!r} has characters outside the GS1 AI set: {''.join(bad)!r}"
        )


_SGTIN_RE = re.compile(r"^urn:epc:id:sgtin:(\d{6,12})\.(\d{1,7})\.(.+)$")
_SSCC_RE = re.compile(r"^urn:epc:id:sscc:(\d{6,12})\.(\d{5,11})$")


def parse_identifier(text: str) -> Identifier:
    """Parse a unit or container id from a Digital Link URI or an EPC URN (sgtin, sscc)."""
    if text.startswith("urn:epc:id:sgtin:"):
        match = _SGTIN_RE.match(text)
        if not match or len(match.group(1)) + len(match.group(2)) != 13:
            raise InvalidIdentifier(text, "malformed SGTIN EPC URN")
        prefix, item, serial = match.groups()
        body = item[0] + prefix + item[1:]
        return UnitId(gtin=body + str(check_digit(body)), serial=unquote(serial))
    if text.startswith("urn:epc:id:sscc:"):
        match = _SSCC_RE.match(text)
        if not match or len(match.group(1)) + len(match.group(2)) != 17:
            raise InvalidIdentifier(text, "malformed SSCC EPC URN")
        prefix, reference = match.groups()
        body = reference[0] + prefix + reference[1:]
        return ContainerId(body + str(check_digit(body)))
    return parse_digital_link(text).identifier


def canonical_id(text: str) -> str:
    """The canonical URI (id.gs1.org, as the CBV hash uses) of a unit/container id string."""
    return parse_identifier(text).canonical_uri


def parse_key(text: str) -> AnyKey:
    """Any GS1 key as people and systems write it: a Digital Link on any host (query ignored
    for the key), an EPC URN (sgtin, sscc), or a bare key: 18 digits are an SSCC, 8, 12, 13
    or 14 digits a GTIN (product level). Bare keys and their Digital Link forms are one key."""
    value = text.strip()
    if not value:
        raise InvalidIdentifier(text, "empty")
    if _is_digits(value):
        if len(value) == 18:
            return ContainerId(validate_sscc(value))
        if len(value) in (8, 12, 13, 14):
            return ProductId(value)
        raise InvalidIdentifier(value, f"a bare key is an 18-digit SSCC or an 8, 12, 13 or 14-digit GTIN, not {len(value)} digits")
    if value.startswith("urn:"):
        return parse_identifier(value)
    return parse_link(value).key


def canonical_key(text: str) -> str:
    """The one key (id.gs1.org canonical URI) of any GS1 key string; see :func:`parse_key`."""
    return parse_key(text).canonical_uri


# --- issuance signatures ------------------------------------------------------------------

ISSUANCE_DOMAIN_NAME = "Waymark code issuance"
ISSUANCE_DOMAIN_VERSION = "1"
ISSUANCE_TYPE = "CodeIssuance(string unit)"
_ISSUANCE_TYPEHASH = keccak256(ISSUANCE_TYPE.encode("ascii"))


def issuance_digest(identifier: Identifier, chain_id: int) -> bytes:
    """EIP-712 digest of ``CodeIssuance(string unit)`` for this id on this chain.

    The domain has name "Waymark code issuance", version "1" and the chain id, and no
    verifying contract: a code is checked offline against the manufacturer's account.
    """
    separator = domain_separator(ISSUANCE_DOMAIN_NAME, ISSUANCE_DOMAIN_VERSION, chain_id)
    struct_hash = keccak256(_ISSUANCE_TYPEHASH + keccak256(identifier.issuance_uri.encode("utf-8")))
    return typed_data_digest(separator, struct_hash)


def sign_issuance(private_key: PrivateKeyLike, identifier: Identifier, chain_id: int) -> bytes:
    """The manufacturer's 65-byte issuance signature over a code."""
    return sign_digest(private_key, issuance_digest(identifier, chain_id))


def signed_link(identifier: Identifier, signature: bytes, resolver: str = CANONICAL_RESOLVER) -> str:
    """The printable link: the full Digital Link URI with ``?s=<hex signature>``."""
    if len(signature) != 65:
        raise ValueError(f"an issuance signature has 65 bytes, got {len(signature)}")
    return f"{identifier.uri(resolver)}?{SIGNATURE_PARAM}={signature.hex()}"


def issue_unit(
    gtin: str,
    lot: str | None,
    *,
    private_key: PrivateKeyLike | None = None,
    chain_id: int | None = None,
    resolver: str = CANONICAL_RESOLVER,
    serial_bits: int = 72,
) -> tuple[UnitId, str]:
    """Create a unit with a fresh random serial; return it and its printable link.

    With ``private_key`` and ``chain_id`` the link carries the issuance signature.
    """
    unit = UnitId(gtin=gtin, serial=new_serial(serial_bits), lot=lot)
    if private_key is None:
        return unit, unit.uri(resolver)
    if chain_id is None:
        raise ValueError("signing a code needs the chain id")
    return unit, signed_link(unit, sign_issuance(private_key, unit, chain_id), resolver)


def recover_issuer(link: str | ParsedLink, chain_id: int) -> Address | None:
    """The account that signed this link's code, or None if the link carries no signature.

    Raises :class:`InvalidIdentifier` for a malformed link and
    :class:`~node.protocol.attestation.SignatureError` for a signature that recovers nothing.
    """
    parsed = parse_digital_link(link) if isinstance(link, str) else link
    if parsed.signature is None:
        return None
    return recover_digest(issuance_digest(parsed.identifier, chain_id), parsed.signature)


def verify_issuance(link: str | ParsedLink, chain_id: int, issuer: str) -> bool:
    """True if the link carries a valid issuance signature by ``issuer`` for this chain."""
    try:
        recovered = recover_issuer(link, chain_id)
    except SignatureError:
        return False
    return recovered is not None and recovered.lower() == issuer.lower()
