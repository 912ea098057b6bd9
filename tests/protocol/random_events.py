"""Random EPCIS 2.0 events for cross-checking our CBV hash against epcis-event-hash-generator.

They stay in the region where the PyPI release 1.9.3 of that package agrees with the
published CBV 2.0 test vectors: no sensorElementList, no certificationInfo, never both a
sourceList and a destinationList, times with at most 3 decimals (see
data/cbv_vectors/README.md for what 1.9.3 does differently; the vectors cover those parts).
"""

from __future__ import annotations

import random
import string
from typing import Any

from node.protocol.gs1 import check_digit


def gtin14(r: random.Random) -> str:
    body = "0" + "".join(r.choice(string.digits) for _ in range(12))
    return body + str(check_digit(body))


def serial(r: random.Random, n: int | None = None) -> str:
    return "".join(r.choice(string.ascii_letters + string.digits) for _ in range(n or r.randint(1, 12)))


def sgtin_urn(r: random.Random) -> str:
    prefix_len = r.randint(6, 12)
    digits = "".join(r.choice(string.digits) for _ in range(13))
    return f"urn:epc:id:sgtin:{digits[:prefix_len]}.{digits[prefix_len:]}.{serial(r)}"


def sscc_urn(r: random.Random) -> str:
    prefix_len = r.randint(6, 12)
    digits = "".join(r.choice(string.digits) for _ in range(17))
    return f"urn:epc:id:sscc:{digits[:prefix_len]}.{digits[prefix_len:]}"


def unit_dl(r: random.Random) -> str:
    host = r.choice(["id.gs1.org", "brand.example", "scan.waymark.example"])
    lot = f"/10/{serial(r, 5)}" if r.random() < 0.5 else ""
    return f"https://{host}/01/{gtin14(r)}{lot}/21/{serial(r)}"


def sscc_dl(r: random.Random) -> str:
    body = "".join(r.choice(string.digits) for _ in range(17))
    return f"https://{r.choice(['id.gs1.org', 'carrier.example'])}/00/{body}{check_digit(body)}"


def an_id(r: random.Random) -> str:
    return r.choice([sgtin_urn, sscc_urn, unit_dl, sscc_dl])(r)


def sgln(r: random.Random) -> str:
    prefix_len = r.randint(6, 12)
    digits = "".join(r.choice(string.digits) for _ in range(12))
    ext = r.choice(["0", str(r.randint(1, 999))])
    return f"urn:epc:id:sgln:{digits[:prefix_len]}.{digits[prefix_len:]}.{ext}"


def lgtin(r: random.Random) -> str:
    prefix_len = r.randint(6, 12)
    digits = "".join(r.choice(string.digits) for _ in range(13))
    return f"urn:epc:class:lgtin:{digits[:prefix_len]}.{digits[prefix_len:]}.{serial(r, 6)}"


def a_time(r: random.Random) -> str:
    y, mo, d = r.randint(2000, 2030), r.randint(1, 12), r.randint(1, 28)
    h, mi, s = r.randint(0, 23), r.randint(0, 59), r.randint(0, 59)
    frac = r.choice(["", "." + str(r.randint(0, 9)), f".{r.randint(0, 999):03d}"])
    zone = r.choice(["Z", "+00:00", "+01:00", "-06:00", "+05:30", "+14:00", "-11:00"])
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"


BIZ_STEPS = ["commissioning", "inspecting", "packing", "loading", "shipping", "departing", "arriving", "receiving", "unpacking"]
DISPS = ["active", "in_progress", "in_transit", "conformant", "non_conformant", "returned", "container_closed"]


def quantities(r: random.Random) -> list[dict[str, Any]]:
    out = []
    for _ in range(r.randint(1, 3)):
        q: dict[str, Any] = {"epcClass": lgtin(r)}
        if r.random() < 0.7:
            q["quantity"] = r.choice([r.randint(1, 500), round(r.uniform(0.1, 99.9), 2)])
            if r.random() < 0.5:
                q["uom"] = r.choice(["KGM", "LTR", "MTR"])
        out.append(q)
    return out


def extensions(r: random.Random, event: dict[str, Any]) -> None:
    if r.random() < 0.5:
        event["ex:note"] = "note-" + serial(r, 6)
    if r.random() < 0.3:
        event["ex:info"] = {"ex:code": "C" + serial(r, 4), "ex:level": str(r.randint(1, 9))}


def random_event(r: random.Random) -> dict[str, Any]:
    kind = r.choice(["ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent"])
    e: dict[str, Any] = {"type": kind, "eventTime": a_time(r), "eventTimeZoneOffset": r.choice(["+00:00", "+01:00", "-06:00"])}
    if kind == "ObjectEvent":
        e["epcList"] = [an_id(r) for _ in range(r.randint(1, 5))]
        if r.random() < 0.3:
            e["quantityList"] = quantities(r)
        e["action"] = r.choice(["ADD", "OBSERVE", "DELETE"])
    elif kind == "AggregationEvent":
        e["parentID"] = sscc_dl(r)
        e["childEPCs"] = [an_id(r) for _ in range(r.randint(1, 6))]
        if r.random() < 0.3:
            e["childQuantityList"] = quantities(r)
        e["action"] = r.choice(["ADD", "DELETE"])
    elif kind == "TransactionEvent":
        e["epcList"] = [an_id(r) for _ in range(r.randint(1, 4))]
        e["action"] = r.choice(["ADD", "DELETE"])
    else:
        e["inputEPCList"] = [an_id(r) for _ in range(r.randint(1, 3))]
        e["outputEPCList"] = [an_id(r) for _ in range(r.randint(1, 3))]
        if r.random() < 0.5:
            e["inputQuantityList"] = quantities(r)
        if r.random() < 0.4:
            e["transformationID"] = "urn:uuid:" + "".join(r.choice("0123456789abcdef") for _ in range(8))
    e["bizStep"] = r.choice(BIZ_STEPS + ["urn:epcglobal:cbv:bizstep:" + r.choice(BIZ_STEPS)])
    if r.random() < 0.7:
        e["disposition"] = r.choice(DISPS)
    if r.random() < 0.8:
        e["readPoint"] = {"id": sgln(r)}
    if r.random() < 0.5:
        e["bizLocation"] = {"id": sgln(r)}
    if kind == "TransactionEvent" or r.random() < 0.3:
        e["bizTransactionList"] = [
            {"type": r.choice(["po", "inv", "desadv", "bol"]), "bizTransaction": f"urn:epcglobal:cbv:bt:{gtin14(r)[1:]}:{serial(r, 5)}"}
            for _ in range(r.randint(1, 2))
        ]
    which = r.random()
    if which < 0.2:
        e["sourceList"] = [{"type": "owning_party", "source": "urn:epc:id:pgln:4012345.00000"}]
    elif which < 0.4:
        e["destinationList"] = [{"type": "location", "destination": sgln(r)}]
    extensions(r, e)
    return e
