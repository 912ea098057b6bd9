"""ERP records of the manufacturer: production runs and packing lists.

Production run (`production`), JSON:

    {"runId": "PR-2025-0701", "gtin": "09521234543213", "lot": "L2025-07",
     "serials": ["7Hq2...", ...], "producedAt": "2025-07-01T08:00:00+07:00",
     "site": {"gln": "9521234000013", "unlocode": "VNSGN"},
     "expiry": "2030-07-01", "productionOrder": "PO-88123"}

becomes one ObjectEvent ADD of the units (`https://id.gs1.org/01/<gtin>/21/<serial>`),
bizStep commissioning, disposition active, at the site, with the lot (and expiry) in
`ilmd` and the production order as a `prodorder` business transaction. Serials come from
the source system (they are printed on the labels: random, at least 64 bits, see
node.protocol.gs1.new_serial); the same run sent twice is the same event.

Packing list (`packing`), JSON:

    {"packingId": "PK-1", "parent": "195212340000000014", "children": ["https://id.gs1.org/01/.../21/...", ...],
     "packedAt": "2025-07-02T10:00:00+07:00", "site": {...}, "action": "ADD"}

becomes an AggregationEvent of the children into (ADD, bizStep packing) or out of (DELETE,
bizStep unpacking) the parent carton or pallet (an SSCC).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field, field_validator

from node.protocol import epcis
from node.protocol import vocabulary
from node.protocol.gs1 import InvalidIdentifier, UnitId
from oracle.adapters.base import Adapter, Context, FieldError, Gtin, Ident, Location, ObjectRef, Output, Record, Sscc, Timestamp, offset_of


class ProductionRun(Record):
    run_id: Ident
    gtin: Gtin
    lot: str = Field(min_length=1, max_length=20, description="Lot / batch number (GS1 AI 10)")
    serials: list[str] = Field(min_length=1, max_length=20_000, description="Serials of the units made (GS1 AI 21)")
    produced_at: Timestamp
    site: Location
    expiry: date | None = Field(None, description="Expiry date of the lot, YYYY-MM-DD")
    production_order: Ident | None = None

    @field_validator("serials")
    @classmethod
    def _distinct(cls, serials: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, serial in enumerate(serials):
            if serial in seen:
                raise ValueError(f"serial {serial!r} (item {i}) appears twice")
            seen.add(serial)
        return serials


class ProductionAdapter(Adapter):
    name = "production"
    model = ProductionRun
    description = "ERP production runs: serialised units commissioned at a site"

    def build(self, record: ProductionRun, ctx: Context) -> Output:
        units = []
        for i, serial in enumerate(record.serials):
            try:
                units.append(UnitId(record.gtin, serial, record.lot))
            except InvalidIdentifier as exc:
                raise FieldError(f"serials[{i}]", exc.problem) from None
        ilmd = {"cbvmda:lotNumber": record.lot}
        if record.expiry is not None:
            ilmd["cbvmda:itemExpirationDate"] = record.expiry.isoformat()
        event = epcis.object_event(
            epcs=units,
            action="ADD",
            event_time=record.produced_at,
            event_time_zone_offset=offset_of(record.produced_at),
            biz_step="commissioning",
            disposition="active",
            read_point=record.site.read_point(),
            biz_location=record.site.business_location(),
            biz_transactions=[epcis.biz_transaction(_urn("prodorder", record.production_order), "prodorder")] if record.production_order else None,
            ilmd=ilmd,
        )
        return Output(events=[event], notes={"units": len(units)})


class PackingList(Record):
    packing_id: Ident
    parent: Sscc
    children: list[ObjectRef] = Field(min_length=1, max_length=20_000)
    packed_at: Timestamp
    site: Location | None = None
    action: Literal["ADD", "DELETE"] = "ADD"


class PackingAdapter(Adapter):
    name = "packing"
    model = PackingList
    description = "Packing lists: units into cartons, cartons onto pallets (and back out)"

    def build(self, record: PackingList, ctx: Context) -> Output:
        event = epcis.aggregation_event(
            parent_id=record.parent,
            child_epcs=list(dict.fromkeys(record.children)),
            action=record.action,
            event_time=record.packed_at,
            event_time_zone_offset=offset_of(record.packed_at),
            biz_step="packing" if record.action == "ADD" else "unpacking",
            disposition="in_progress",
            read_point=record.site.read_point() if record.site else None,
            biz_location=record.site.business_location() if record.site else None,
        )
        return Output(events=[event], notes={"children": len(record.children)})


def _urn(kind: str, identifier: str) -> str:
    """A business transaction id as a URI under the Waymark namespace (ERP ids are not URIs)."""
    safe = re.sub(r"[^A-Za-z0-9._~:-]", lambda m: f"%{ord(m.group()):02X}", identifier)
    return f"{vocabulary.WAYMARK_NS}bt/{kind}/{safe}"
