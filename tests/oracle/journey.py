"""Source records of one small shipment for the oracle tests, dated from a chain time `t0`:
a production run in VN, inspection, packing into a carton and a pallet, a container, an ocean
leg with sensor readings (one humidity excursion), customs in NL with duty, delivery."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from node.protocol.gs1 import UnitId, make_sscc

GTIN = "09521234543213"
LOT = "L2025-07"
VN = timezone(timedelta(hours=7))
NL = timezone(timedelta(hours=2))


def at(t0: int, seconds: int, zone: timezone = timezone.utc) -> str:
    return datetime.fromtimestamp(t0 + seconds, zone).isoformat()


def sscc(n: int) -> str:
    return make_sscc("9521234", n)


@dataclass
class Journey:
    t0: int
    tag: int = 0
    serials: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.serials:
            self.serials = [f"T{self.t0 % 10**6}N{self.tag}X{i:03d}" for i in range(4)]
        base = (self.t0 % 10**5) * 10 + self.tag * 1000
        self.carton, self.pallet, self.container = sscc(base + 1), sscc(base + 2), sscc(base + 3)
        self.shipment = f"BWOF-{self.t0}-{self.tag}"
        self.declaration = f"25NL{self.t0}{self.tag}"

    @property
    def units(self) -> list[str]:
        return [UnitId(GTIN, s, LOT).uri() for s in self.serials]

    def canonical(self, sscc_: str) -> str:
        return f"https://id.gs1.org/00/{sscc_}"

    def production(self) -> dict[str, Any]:
        return {"runId": f"PR-{self.t0}-{self.tag}", "gtin": GTIN, "lot": LOT, "serials": self.serials,
                "producedAt": at(self.t0, 10, VN), "site": {"gln": "9521234000013", "unlocode": "VNSGN"}, "expiry": "2030-07-01"}

    def inspection(self, report: bytes = b"%PDF-1.7 inspection report: all conformant") -> dict[str, Any]:
        return {"inspectionId": f"MIS-{self.t0}-{self.tag}", "objects": self.units[:2], "result": "conformant",
                "inspectedAt": at(self.t0, 20, VN), "site": {"unlocode": "VNSGN"}, "standard": "ISO 2859-1 AQL 2.5",
                "report": {"mediaType": "application/pdf", "contentBase64": base64.b64encode(report).decode()}}

    def packing_csv(self) -> str:
        rows = ["packing_id,parent,child,packed_at,site_unlocode"]
        rows += [f"PK-{self.tag}-C,{self.carton},{u},{at(self.t0, 30, VN)},VNSGN" for u in self.units]
        rows.append(f"PK-{self.tag}-P,{self.pallet},{self.carton},{at(self.t0, 40, VN)},VNSGN")
        return "\n".join(rows) + "\n"

    def booking(self) -> dict[str, Any]:
        return {"shipmentId": self.shipment, "status": "booked", "time": at(self.t0, 45), "containers": [self.container],
                "goods": [{"gtin": GTIN, "lot": LOT}],
                "transport": {"mode": "ocean", "vessel": "BLUEWATER HORIZON", "voyage": "042W", "billOfLading": f"BWOF{self.t0}{self.tag}"}}

    def carrier(self, status: str, seconds: int, **extra: Any) -> dict[str, Any]:
        places = {"VNSGN": (10.7769, 106.7009), "NLRTM": (51.9225, 4.4792), "NLAMS": (52.37, 4.89)}
        code = extra.pop("place", "VNSGN")
        lat, lon = places[code]
        return {"shipmentId": self.shipment, "status": status, "time": at(self.t0, seconds),
                "location": {"unlocode": code, "latitude": lat, "longitude": lon}, **extra}

    def loaded(self) -> dict[str, Any]:
        return self.carrier("loaded", 50, contents=[self.pallet])

    def shipped(self) -> dict[str, Any]:
        return self.carrier("shipped", 60)

    def readings(self, humid: float = 92.5) -> dict[str, Any]:
        return {"deviceId": f"TT-{self.tag}", "object": self.container, "readings": [
            {"time": at(self.t0, 70), "type": "temperature", "value": 27.5, "unit": "C"},
            {"time": at(self.t0, 70), "type": "humidity", "value": 71, "unit": "%"},
            {"time": at(self.t0, 80), "type": "humidity", "value": humid, "unit": "%"},
            {"time": at(self.t0, 90), "type": "humidity", "value": 74, "unit": "%"},
        ]}

    def declaration_record(self, readers: tuple[int, ...] = (), invoice: bytes | None = None) -> dict[str, Any]:
        """`readers`: the parties to the order the declaration's documents are sealed for."""
        extra: dict[str, Any] = {"readers": list(readers)} if readers else {}
        if invoice is not None:
            extra["invoice"] = {"contentBase64": base64.b64encode(invoice).decode()}
        return {"kind": "declaration", "declarationId": self.declaration, "containers": [self.container], "office": "NL000396",
                "port": {"unlocode": "NLRTM"}, "lodgedAt": at(self.t0, 100, NL), **extra, "hsCode": "691390", "declaredValue": {"amount": "18400.00", "currency": "EUR"},
                "originCountry": "VN", "originCertificate": {"contentBase64": base64.b64encode(f"Form E {self.t0}".encode()).decode()}}

    def decision(self, decision: str = "cleared", duty: str | None = "736.00") -> dict[str, Any]:
        record: dict[str, Any] = {"kind": "decision", "declarationId": self.declaration, "decision": decision, "decidedAt": at(self.t0, 110, NL)}
        if duty is not None and decision == "cleared":
            record["duty"] = {"amount": duty, "currency": "EUR"}
        if decision != "cleared":
            record["reason"] = "goods not as declared"
        return record

    def delivered(self) -> dict[str, Any]:
        return self.carrier("delivered", 130, place="NLAMS", contents=[self.pallet])
