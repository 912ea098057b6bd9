"""Canonical text of values for the CBV 2.0 event hash (see :mod:`node.protocol.event_hash`).

Whitespace trimmed; times in UTC with millisecond precision and ``Z`` (the 3rd decimal
rounded up when the 4th is 5-9); numbers without trailing zeros (also numeric-looking
strings); CBV bare terms, CURIEs into GS1 vocabularies and old CBV URNs as web vocabulary
IRIs; GS1 keys as their canonical Digital Link URI (:mod:`node.protocol.canonical_ids`).
A :class:`Context` holds the prefixes one event's ``@context`` declares.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Mapping

from node.protocol.canonical_ids import canonical_gs1_uri
from node.protocol.vocabulary import STANDARD_PREFIXES, context_prefixes

NUMERIC_TEXT_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
"""A numeric-looking string: the hash writes it as the number it reads as (through a float)."""


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


class Context:
    """Prefixes in force for one event: ``user`` as its document declares them (for extension
    names), ``vocab`` with the EPCIS context's own (for vocabulary values)."""

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


def canon(value: Any, ctx: Context) -> str:
    """Canonical text of a scalar value (not a time field)."""
    if isinstance(value, str):
        return _canon_text(value)
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
    return canon(str(value), ctx)


# The repeated values (vocabulary, locations, products) stay; a unit's own identifiers are seen
# once each, so a big cache only grew with every unit a long-running process hashed.
@lru_cache(maxsize=4_096)
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
    if (first.isdigit() or first in "+-.") and NUMERIC_TEXT_RE.match(text):
        number = _number_text(float(text))
        if number is not None:
            return number
    return text


def canon_vocab(value: Any, table: Mapping[str, str], ctx: Context) -> str:
    """Canonical text of a vocabulary value: a bare term of ``table``, a GS1 CURIE, or as :func:`canon`."""
    if isinstance(value, str):
        text = value.strip()
        iri = table.get(text)
        if iri is not None:
            return iri
        expanded = _expand_curie(text, ctx.vocab)
        if expanded.startswith(_GS1_VOCABULARIES):
            return expanded
        return canon(text, ctx)
    return canon(value, ctx)


# Only CURIEs that land in GS1's vocabularies are expanded in values (as the reference
# implementation's JSON-LD step does); other CURIE values are hashed as written.
_GS1_VOCABULARIES = ("https://ref.gs1.org/cbv/", "https://ref.gs1.org/voc/", "https://gs1.org/voc/")


TIME_RE = re.compile(
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
    match = TIME_RE.match(text)
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = map(int, match.groups()[:6])
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


def _freeze(value: Any) -> Any:
    # Key order is kept: another order only costs another cache entry.
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return tuple([(k, v if isinstance(v, str) else _freeze(v)) for k, v in value.items()])
    if isinstance(value, list):
        return tuple([v if isinstance(v, str) else _freeze(v) for v in value])
    return value


_prefix_cache: dict[Any, Context] = {}


def context_for(event: Mapping[str, Any], context: Any) -> Context:
    """The prefixes in force for ``event``: the document's ``context``, then the event's own."""
    own = event.get("@context")
    if own is None and context is None:
        return EMPTY_CONTEXT
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
    built = Context(prefixes)
    if key is not None:
        if len(_prefix_cache) > 256:
            _prefix_cache.clear()
        _prefix_cache[key] = built
    return built


EMPTY_CONTEXT = Context({})
