"""GS1 keys in their one canonical form, and the keys an event names.

The CBV 2.0 event hash writes every GS1 key (EPC URN, Digital Link URI on any host) as its
constrained canonical Digital Link URI on id.gs1.org (serial wins over lot, consumer
product variant and query string dropped). Capture indexes events by the same form
(:func:`event_epcs`), so that a unit is found however an event wrote it.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from node.protocol.gs1 import check_digit

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


def canonical_epc(epc: str) -> str:
    """The id.gs1.org form of a GS1 key, as the CBV hash writes it; any other URI unchanged."""
    return canonical_gs1_uri(epc) or epc


_EPC_FIELDS = (("epcList", "epc"), ("childEPCs", "child"), ("inputEPCList", "input"), ("outputEPCList", "output"))
_QUANTITY_FIELDS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")


def event_epcs(event: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The EPCs an event names: (canonical id, relation) for each identifier, once each, in
    the order the event names them (parent, then the EPC lists, then the quantity classes)."""
    found: list[tuple[str, str]] = []
    if isinstance(event.get("parentID"), str):
        found.append((canonical_epc(event["parentID"]), "parent"))
    for key, relation in _EPC_FIELDS:
        for epc in event.get(key) or ():
            found.append((canonical_epc(epc), relation))
    for key in _QUANTITY_FIELDS:
        for element in event.get(key) or ():
            found.append((canonical_epc(element["epcClass"]), "quantity"))
    return tuple(dict.fromkeys(found))
