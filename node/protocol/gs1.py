"""GS1 identifiers: check digits, keys, lots and serials, and the identifier types.

A unit is ``https://<resolver>/01/<GTIN-14>/10/<lot>/21/<serial>``; a case, pallet or
container is ``https://<resolver>/00/<SSCC-18>``. Construction is strict (check digits, the
GS1 AI character set and lengths) and every rejection is an :class:`InvalidIdentifier`
saying what is wrong. Reading identifiers from text (Digital Link URIs, EPC URNs, bare keys)
is :mod:`node.protocol.digital_link`; manufacturers' signatures over codes are
:mod:`node.protocol.issuance`.

Two URI forms matter:

* ``UnitId.canonical_uri`` - ``https://id.gs1.org/01/<GTIN-14>/21/<serial>``: the constrained
  canonical form that the CBV 2.0 event hash normalises every GS1 key to (lot dropped when a
  serial is present). Events and attestation subjects use this form.
* ``UnitId.uri(resolver)`` - the full link with the lot, printed in the QR code.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Union
from urllib.parse import quote

from node.errors import WaymarkError

CANONICAL_RESOLVER = "id.gs1.org"
"""The host of canonical Digital Link URIs (GS1's own resolver)."""


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


def is_digits(value: str) -> bool:
    """ASCII digits only (str.isdigit alone accepts other scripts' digits)."""
    return value.isascii() and value.isdigit()


@lru_cache(maxsize=4096)  # ingest checks thousands of units of a few products a second
def normalize_gtin(gtin: str) -> str:
    """Validate a GTIN-8/12/13/14 and return it zero-padded to 14 digits."""
    if not is_digits(gtin):
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
    if not is_digits(sscc):
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
    if not is_digits(company_prefix) or not 4 <= len(company_prefix) <= 12:
        raise InvalidIdentifier(company_prefix, "a GS1 company prefix has 4 to 12 digits")
    if not 0 <= extension_digit <= 9:
        raise InvalidIdentifier(str(extension_digit), "the SSCC extension digit is 0-9")
    width = 16 - len(company_prefix)
    reference = str(serial_reference)
    if not is_digits(reference) or len(reference) > width:
        raise InvalidIdentifier(
            reference, f"the serial reference has at most {width} digits with this company prefix"
        )
    body = f"{extension_digit}{company_prefix}{reference.zfill(width)}"
    return body + str(check_digit(body))


# --- lots and serials ---------------------------------------------------------------------

_CSET82_CHARS = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
CSET82 = frozenset(_CSET82_CHARS)
"""GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1)."""
_OUTSIDE_CSET82 = re.compile(f"[^{re.escape(_CSET82_CHARS)}]")


def outside_cset82(value: str) -> str:
    """The characters of ``value`` outside CSet 82, sorted, once each ("" when there are none)."""
    if _OUTSIDE_CSET82.search(value) is None:  # the common case, at C speed
        return ""
    return "".join(sorted({char for char in value if char not in CSET82}))

SERIAL_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
"""Characters of generated serials: a subset of CSet 82 that never needs percent-encoding."""

MIN_SERIAL_BITS = 64


def check_ai_value(value: str, label: str, max_length: int) -> str:
    """A lot, serial or variant value: 1 to ``max_length`` characters of CSet 82; ``label`` names it."""
    if not value:
        raise InvalidIdentifier(value, f"the {label} is empty")
    if len(value) > max_length:
        raise InvalidIdentifier(value, f"the {label} has at most {max_length} characters, not {len(value)}")
    bad = outside_cset82(value)
    if bad:
        raise InvalidIdentifier(value, f"the {label} has characters outside the GS1 AI set: {bad!r}")
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
        check_ai_value(item.lot, "lot (AI 10)", 20)
    if item.cpv is not None:
        check_ai_value(item.cpv, "consumer product variant (AI 22)", 20)


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
        check_ai_value(self.serial, "serial (AI 21)", 20)

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
