"""Carrier tracking feed: shipment milestones and locations (`carrier`), JSON:

    {"shipmentId": "BWOF-SGN-RTM-0042", "status": "shipped", "time": "2025-07-05T14:00:00+07:00",
     "location": {"unlocode": "VNSGN", "latitude": 10.77, "longitude": 106.70},
     "containers": ["195212340000000038"], "contents": ["195212340000000021"],
     "goods": [{"gtin": "09521234543213", "lot": "L2025-07"}],
     "transport": {"mode": "ocean", "vessel": "BLUEWATER HORIZON", "voyage": "042W", "billOfLading": "BWOF42SGNRTM"}}

`status` and the event it becomes (objects: `containers`, or the shipment's containers
known from its booking):

| status | event |
|---|---|
| booked | none: registers the shipment (containers, goods, transport) with this oracle |
| picked_up | ObjectEvent OBSERVE, bizStep accepting, disposition in_progress |
| loaded | AggregationEvent ADD of `contents` (pallets) into the one container, bizStep loading, disposition container_closed |
| shipped | ObjectEvent OBSERVE, bizStep shipping, disposition in_transit, bill of lading as a `bol` transaction (escrow: Shipped) |
| departed / in_transit / arrived | ObjectEvent OBSERVE, bizStep departing / transporting / arriving, disposition in_transit |
| unloaded | AggregationEvent DELETE of `contents` out of the container, bizStep unloading, disposition container_open |
| out_for_delivery | ObjectEvent OBSERVE of `contents` (or containers), bizStep departing, disposition in_transit |
| delivered | ObjectEvent OBSERVE of `contents` (or containers), bizStep receiving, disposition in_progress (escrow: Delivered) |

The location gives the business location (GLN or UN/LOCODE) and, with coordinates, the read
point (`geo:` URI). A delivery is recorded by place, never by the consignee's name or
address: the schema has no such field and refuses unknown ones.

Any status but `booked` for a shipment this oracle never saw booked must name its containers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from node.protocol import epcis
from node.protocol import vocabulary
from oracle.adapters.base import Adapter, Context, FieldError, Gtin, Ident, Location, ObjectRef, Output, Record, Sscc, Timestamp, lot_uri, offset_of
from oracle.state import OracleState, Shipment

Status = Literal[
    "booked", "picked_up", "loaded", "shipped", "departed", "in_transit", "arrived", "unloaded", "out_for_delivery", "delivered"
]
_OBSERVE_STEPS: dict[str, tuple[str, str | None]] = {
    "picked_up": ("accepting", "in_progress"),
    "shipped": ("shipping", "in_transit"),
    "departed": ("departing", "in_transit"),
    "in_transit": ("transporting", "in_transit"),
    "arrived": ("arriving", "in_transit"),
    "out_for_delivery": ("departing", "in_transit"),
    "delivered": ("receiving", "in_progress"),
}


class Goods(Record):
    gtin: Gtin
    lot: str | None = Field(None, max_length=20)


class Transport(Record):
    mode: Literal["ocean", "air", "road", "rail"]
    vessel: str | None = Field(None, max_length=64)
    voyage: str | None = Field(None, max_length=32)
    flight: str | None = Field(None, max_length=16)
    bill_of_lading: Ident | None = None


class CarrierUpdate(Record):
    shipment_id: Ident
    status: Status
    time: Timestamp
    location: Location | None = None
    containers: list[Sscc] = Field(default_factory=list, max_length=500)
    contents: list[ObjectRef] = Field(default_factory=list, max_length=20_000, description="Pallets or units inside (loaded, unloaded, last mile)")
    goods: list[Goods] = Field(default_factory=list, max_length=100, description="Products in the shipment (booked)")
    transport: Transport | None = None


class CarrierAdapter(Adapter):
    name = "carrier"
    model = CarrierUpdate
    description = "Carrier tracking: bookings, pickups, loading, departures, arrivals, delivery"

    def build(self, record: CarrierUpdate, ctx: Context) -> Output:
        known = ctx.state.shipment(record.shipment_id)
        containers = list(dict.fromkeys(record.containers)) or list(known.containers if known else ())
        detail: dict[str, Any] = {}
        if record.transport is not None:
            detail["transport"] = record.transport.model_dump(by_alias=True, exclude_none=True)
        goods = [g.gtin for g in record.goods]
        lots = [lot_uri(g.gtin, g.lot) for g in record.goods if g.lot]
        if lots:
            detail["lots"] = sorted(set(lots) | set((known.detail.get("lots", []) if known else [])))
        if record.contents:
            detail["contents"] = list(dict.fromkeys([*(known.detail.get("contents", []) if known else []), *record.contents]))
        shipment = Shipment(record.shipment_id, tuple(containers), tuple(goods), detail)
        output = Output(remember=[lambda state: state.save_shipment(shipment)], notes={"shipment": record.shipment_id})
        if record.status == "booked":
            if not containers:
                raise FieldError("containers", "a booking names the shipment's containers")
            return output
        if not containers:
            raise FieldError(
                "containers", f"shipment {record.shipment_id!r} was never booked with this oracle: name its containers"
            )
        if record.location is None:
            raise FieldError("location", f"a {record.status} update says where it happened")
        where: dict[str, Any] = {
            "event_time": record.time,
            "event_time_zone_offset": offset_of(record.time),
            "read_point": record.location.read_point(),
            "biz_location": record.location.business_location(),
        }
        if record.status in ("loaded", "unloaded"):
            if len(containers) != 1 or not record.contents:
                raise FieldError(
                    "contents" if record.contents == [] else "containers",
                    f"a {record.status} update names one container and the contents going {'into' if record.status == 'loaded' else 'out of'} it",
                )
            adding = record.status == "loaded"
            output.events.append(epcis.aggregation_event(
                parent_id=containers[0],
                child_epcs=list(dict.fromkeys(record.contents)),
                action="ADD" if adding else "DELETE",
                biz_step="loading" if adding else "unloading",
                disposition="container_closed" if adding else "container_open",
                **where,
            ))
            return output
        step, disposition = _OBSERVE_STEPS[record.status]
        objects = containers
        if record.status in ("out_for_delivery", "delivered") and record.contents:
            objects = list(dict.fromkeys(record.contents))
        transactions = None
        transport = record.transport or (Transport.model_validate(known.detail["transport"]) if known and "transport" in known.detail else None)
        if record.status == "shipped" and transport is not None and transport.bill_of_lading:
            transactions = [epcis.biz_transaction(f"{vocabulary.WAYMARK_NS}bt/bol/{transport.bill_of_lading}", "bol")]
        output.events.append(epcis.object_event(
            epcs=objects, action="OBSERVE", biz_step=step, disposition=disposition, biz_transactions=transactions, **where
        ))
        return output


def shipment_refs(state: OracleState, objects: list[str]) -> list[str]:
    """Everything an escrow order covering these objects may name as its shipment: the objects,
    and for each shipment that holds one of them, its containers, contents and lots."""
    refs = list(objects)
    for obj in objects:
        for shipment in state.shipments_of(obj):
            refs.extend(shipment.containers)
            refs.extend(shipment.detail.get("contents", []))
            refs.extend(shipment.detail.get("lots", []))
    return list(dict.fromkeys(refs))
