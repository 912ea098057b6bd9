"""Reading GS1 identifiers from text: Digital Link URIs (any key this network resolves), EPC
URNs (sgtin, sscc) and bare keys.

Parsing is strict (check digits, the Digital Link qualifier order 22 < 10 < 21, the GS1 AI
character set and lengths, percent-encoding, the data attributes of the query string) and
every rejection is an :class:`~node.protocol.gs1.InvalidIdentifier` saying what is wrong.
The GS1 AI table (formats, titles) comes from ``biip``'s public API. A link may carry a
manufacturer's issuance signature as ``?s=<hex>`` (:mod:`node.protocol.issuance`); it is
parsed here and checked there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from biip import ParseError
from biip.gln import Gln
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString

from node.protocol.crypto import SignatureError, parse_signature
from node.protocol.gs1 import (
    CANONICAL_RESOLVER,
    AnyKey,
    ContainerId,
    GS1Key,
    Identifier,
    InvalidIdentifier,
    ProductId,
    UnitId,
    check_ai_value,
    check_digit,
    is_digits,
    normalize_gtin,
    outside_cset82,
    validate_sscc,
)

SIGNATURE_PARAM = "s"
"""Query parameter carrying the manufacturer's issuance signature."""

_SHORT_NAMES = {"gtin": "01", "lot": "10", "ser": "21", "cpv": "22", "sscc": "00", "gln": "414", "glnx": "254", "party": "417", "giai": "8004"}
# Digital Link key qualifiers of a GTIN, in the order the standard fixes.
_GTIN_QUALIFIER_ORDER = ("22", "10", "21")
_QUALIFIER_LABELS = {"22": "consumer product variant", "10": "lot", "21": "serial", "254": "GLN extension", "7040": "UIC with extension"}

SUPPORTED_PRIMARY_KEYS = ("01", "00", "414", "417", "8004")
"""The GS1 primary keys this network's resolver answers (the keys trade uses)."""


# Every GS1 primary key and its key qualifiers, in the order GS1 Digital Link URI syntax 1.4
# fixes (its table of primary keys and qualifiers; biip applies the same table when parsing).
_PRIMARY_QUALIFIERS: dict[str, tuple[str, ...]] = {
    "01": ("22", "10", "21", "235"),
    "8006": ("22", "10", "21"),
    "8013": (),
    "8010": ("8011",),
    "414": ("254", "7040"),
    "415": ("8020",),
    "417": ("7040",),
    "8017": ("8019",),
    "8018": ("8019",),
    "255": (),
    "00": (),
    "253": (),
    "401": (),
    "402": (),
    "8003": (),
    "8004": ("7040",),
}
_AI_RE = re.compile(r"^\d{2,4}$")
_WHITESPACE_RE = re.compile(r"\s")


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


@lru_cache(maxsize=1024)
def _ai(ai: str) -> GS1ApplicationIdentifier | None:
    """The GS1 AI ``ai`` exactly (biip's lookup matches a prefix of its argument: GS1 AIs are
    prefix-free, so a longer or shorter code comes back as another AI or not at all)."""
    try:
        known = GS1ApplicationIdentifier.extract(ai)
    except ParseError:
        return None
    return known if known.ai == ai else None


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
    return _parse_link(uri)


# A document names the same units and containers in several events (commissioning, inspecting,
# packing, ...): parsed once each. The answers are immutable; refusals are not kept.
@lru_cache(maxsize=8192)
def _parse_link(uri: str) -> DigitalLink:
    if _WHITESPACE_RE.search(uri):  # \s is str.isspace's set, searched at C speed
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
                check_ai_value(qualifiers[key], label, 20)
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
    return unit_or_container(parse_link(uri), uri)


def unit_or_container(link: DigitalLink, uri: str) -> ParsedLink:
    """`link` as a unit's or a container's link, or InvalidIdentifier saying what it lacks."""
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
    value has passed `check_ai_value` (1-20 characters of GS1 CSet 82), which is exactly
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
    bad = outside_cset82(decoded)
    if bad:
        raise InvalidIdentifier(uri, f"/{key}/ value {decoded!r} has characters outside the GS1 AI set: {bad!r}")


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
    if is_digits(value):
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
