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
from dataclasses import dataclass
from functools import lru_cache
from typing import Union
from urllib.parse import quote, unquote, urlsplit

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI

from node.errors import WaymarkError
from node.provenance.attestation import (
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


@dataclass(frozen=True)
class UnitId:
    """A serialised trade item: GTIN-14, optional lot, serial."""

    gtin: str
    serial: str
    lot: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gtin", normalize_gtin(self.gtin))
        _check_ai_value(self.serial, "serial (AI 21)", 20)
        if self.lot is not None:
            _check_ai_value(self.lot, "lot (AI 10)", 20)

    @property
    def canonical_uri(self) -> str:
        """``https://id.gs1.org/01/<GTIN-14>/21/<serial>`` - the form the CBV event hash uses."""
        return f"https://{CANONICAL_RESOLVER}/01/{self.gtin}/21/{encode_component(self.serial)}"

    def uri(self, resolver: str = CANONICAL_RESOLVER) -> str:
        """The full Digital Link URI (with lot when known) on ``resolver`` (host[:port][/path])."""
        path = f"/01/{self.gtin}"
        if self.lot is not None:
            path += f"/10/{encode_component(self.lot)}"
        path += f"/21/{encode_component(self.serial)}"
        return f"{_resolver_base(resolver)}{path}"

    @property
    def issuance_uri(self) -> str:
        """What an issuance signature covers: the full id (lot included) on id.gs1.org."""
        return self.uri(CANONICAL_RESOLVER)


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


Identifier = Union[UnitId, ContainerId]


def _resolver_base(resolver: str) -> str:
    if "://" in resolver:
        base = resolver
    else:
        base = "https://" + resolver
    return base.rstrip("/")


# --- parsing ------------------------------------------------------------------------------

_SHORT_NAMES = {"gtin": "01", "lot": "10", "ser": "21", "cpv": "22", "sscc": "00"}
# Digital Link key qualifiers of a GTIN, in the order the standard fixes.
_GTIN_QUALIFIER_ORDER = ("22", "10", "21")
_QUALIFIER_LABELS = {"22": "consumer product variant", "10": "lot", "21": "serial"}


@dataclass(frozen=True)
class ParsedLink:
    """A Digital Link URI taken apart: the identifier, where it resolves, its signature."""

    identifier: Identifier
    resolver: str
    signature: bytes | None


def parse_digital_link(uri: str) -> ParsedLink:
    """Parse and validate a unit (``/01/../21/..``) or SSCC (``/00/..``) Digital Link URI.

    Raises :class:`InvalidIdentifier` naming the problem: scheme, unknown key, qualifier
    order, check digit, character set, length, percent-encoding, or a malformed signature.
    """
    if not isinstance(uri, str) or not uri:
        raise InvalidIdentifier(str(uri), "empty")
    if any(char.isspace() for char in uri):
        raise InvalidIdentifier(uri, "contains whitespace")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host
        raise InvalidIdentifier(uri, f"not a URI: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidIdentifier(uri, "a Digital Link URI starts with https:// (or http://)")
    if not parts.netloc:
        raise InvalidIdentifier(uri, "no resolver host")
    if parts.fragment:
        raise InvalidIdentifier(uri, "a Digital Link URI has no #fragment")

    segments = parts.path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()
    start = next(
        (i for i, seg in enumerate(segments) if _SHORT_NAMES.get(seg, seg) in ("01", "00")), None
    )
    if start is None:
        raise InvalidIdentifier(uri, "no primary key: expected /01/<GTIN> or /00/<SSCC> in the path")
    path_prefix = "/".join(segments[:start])
    pairs = segments[start:]
    if len(pairs) % 2:
        raise InvalidIdentifier(uri, f"path segment {pairs[-1]!r} has no value after it")
    keys = [_SHORT_NAMES.get(pairs[i], pairs[i]) for i in range(0, len(pairs), 2)]
    raw_values = [pairs[i] for i in range(1, len(pairs), 2)]
    for key, raw in zip(keys, raw_values):
        _check_percent_encoding(uri, key, raw)
    values = [unquote(raw, errors="strict") for raw in raw_values]

    signature = _signature_from_query(uri, parts.query)
    resolver = parts.netloc + ("/" + path_prefix if path_prefix else "")

    primary = keys[0]
    if primary == "00":
        if len(keys) > 1:
            raise InvalidIdentifier(uri, f"an SSCC takes no qualifiers, found /{keys[1]}/")
        validate_sscc(values[0])
        return ParsedLink(ContainerId(values[0]), resolver, signature)

    gtin = normalize_gtin(values[0])
    qualifiers: dict[str, str] = {}
    last_rank = -1
    for key, value in zip(keys[1:], values[1:]):
        if key not in _GTIN_QUALIFIER_ORDER:
            raise InvalidIdentifier(uri, f"/{key}/ is not a key qualifier of a GTIN (22, 10, 21)")
        if key in qualifiers:
            raise InvalidIdentifier(uri, f"qualifier /{key}/ appears twice")
        rank = _GTIN_QUALIFIER_ORDER.index(key)
        if rank < last_rank:
            previous = _GTIN_QUALIFIER_ORDER[last_rank]
            raise InvalidIdentifier(
                uri,
                f"qualifier order: /{key}/ ({_QUALIFIER_LABELS[key]}) must come before "
                f"/{previous}/ ({_QUALIFIER_LABELS[previous]})",
            )
        last_rank = rank
        qualifiers[key] = value
    if "21" not in qualifiers:
        raise InvalidIdentifier(uri, "a unit link needs a serial (/21/<serial>)")
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
    unit = UnitId(gtin=gtin, serial=qualifiers["21"], lot=qualifiers.get("10"))
    return ParsedLink(unit, resolver, signature)


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


def _signature_from_query(uri: str, query: str) -> bytes | None:
    if not query:
        return None
    found: bytes | None = None
    for item in query.split("&"):
        name, _, value = item.partition("=")
        if name == SIGNATURE_PARAM:
            if found is not None:
                raise InvalidIdentifier(uri, "the signature parameter appears twice")
            try:
                found = parse_signature(value)
            except SignatureError as error:
                raise InvalidIdentifier(uri, f"issuance signature: {error.problem}") from None
    return found


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
    :class:`~node.provenance.attestation.SignatureError` for a signature that recovers nothing.
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
