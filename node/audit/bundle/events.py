"""Which events a bundle holds: for the units selected, their events and those of every case,
pallet and container they were in at the time (node.member.history); for a lot or a product
also the events naming it by class; for an order, the events of what its shipmentRef names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import select

from node.audit.bundle.selection import Lot, Product, Selector, TimeRange
from node.db import Database, Event, EventEpc
from node.db.prefix import prefix_range
from node.member.history import unit_history
from node.protocol.canonical_ids import event_epcs
from node.protocol.crypto import keccak256
from node.protocol.gs1 import CANONICAL_RESOLVER, encode_component


def _unit_prefix(gtin: str) -> str:
    return f"https://{CANONICAL_RESOLVER}/01/{gtin}/21/"


def _with_histories(db: Database, units: Iterable[str], direct: Iterable[bytes] = ()) -> set[bytes]:
    """Digests of the units' events and of their containers' events while they were inside."""
    found = set(direct)
    for unit in sorted(set(units)):
        found.update(bytes.fromhex(entry.event_id[14:78]) for entry in unit_history(db, unit))
    return found


def _product_units(db: Database, gtin: str) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute(select(EventEpc.epc).where(prefix_range(EventEpc.epc, _unit_prefix(gtin))).distinct()).scalars()
        return list(rows)


def _class_events(db: Database, class_uris: Iterable[str]) -> set[bytes]:
    """Digests of the events naming any of these class-level ids (quantity lists)."""
    uris = list(class_uris)
    if not uris:
        return set()
    with db.connect() as conn:
        rows = conn.execute(
            select(Event.digest).join(EventEpc, EventEpc.event_id == Event.id).where(EventEpc.epc.in_(uris)).distinct()
        ).scalars()
        return {bytes(r) for r in rows}


def _lot_units(db: Database, lot: Lot) -> list[str]:
    """The units of a lot: those an event commissions with ILMD `cbvmda:lotNumber` = the lot, and
    those any event names by a Digital Link carrying the lot (`/01/<gtin>/10/<lot>/21/...`)."""
    prefix = _unit_prefix(lot.gtin)
    marker = f"/01/{lot.gtin}/10/{encode_component(lot.lot)}/21/"
    units: set[str] = set()
    with db.connect() as conn:
        rows = conn.execute(
            select(Event.id, Event.body).where(
                Event.id.in_(select(EventEpc.event_id).where(prefix_range(EventEpc.epc, prefix)))
            )
        ).all()
        ids_of_lot: list[int] = []
        for event_id, body in rows:
            event = orjson.loads(body)
            ilmd = event.get("ilmd")
            if isinstance(ilmd, Mapping) and str(ilmd.get("cbvmda:lotNumber", ilmd.get("lotNumber", ""))) == lot.lot:
                ids_of_lot.append(int(event_id))
            if marker in body:
                units.update(_canonical_units(event, marker, prefix))
        if ids_of_lot:
            named = conn.execute(
                select(EventEpc.epc).where(EventEpc.event_id.in_(ids_of_lot), prefix_range(EventEpc.epc, prefix))
            ).scalars()
            units.update(named)
    return sorted(units)


def _canonical_units(event: Mapping[str, Any], marker: str, prefix: str) -> set[str]:
    raw = [e for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList") for e in event.get(key) or ()]
    with_lot = {e for e in raw if isinstance(e, str) and marker in e}
    return {canonical for canonical, _relation in event_epcs({"epcList": sorted(with_lot)}) if canonical.startswith(prefix)}


def _range_events(db: Database, selection: TimeRange) -> set[bytes]:
    with db.connect() as conn:
        rows = conn.execute(
            select(Event.digest).where(Event.event_time_ms >= selection.start_ms, Event.event_time_ms <= selection.end_ms)
        ).scalars()
        return {bytes(r) for r in rows}


def _shipment_events(db: Database, shipment_ref: bytes) -> set[bytes]:
    """The events of what an order's shipmentRef names: keccak256 of a unit's, a container's or a
    lot's canonical id (api.readmodel.passport.shipment_keys). Nothing if it names nothing we hold."""
    with db.connect() as conn:
        epcs = list(conn.execute(select(EventEpc.epc).distinct()).scalars())
    for epc in epcs:
        if keccak256(epc.encode()) == shipment_ref:
            return _with_histories(db, [epc], _class_events(db, [epc]))
    for gtin in sorted({e[len(f"https://{CANONICAL_RESOLVER}/01/"):][:14] for e in epcs if "/01/" in e}):
        for lot_number in _lot_numbers(db, gtin):
            lot = Lot(gtin, lot_number)
            if keccak256(lot.class_uri.encode()) == shipment_ref:
                return _with_histories(db, _lot_units(db, lot), _class_events(db, [lot.class_uri]))
    return set()


def _lot_numbers(db: Database, gtin: str) -> set[str]:
    found: set[str] = set()
    with db.connect() as conn:
        bodies = conn.execute(
            select(Event.body).where(
                Event.id.in_(select(EventEpc.event_id).where(prefix_range(EventEpc.epc, f"https://{CANONICAL_RESOLVER}/01/{gtin}/"))),
                Event.body.like("%lotNumber%"),
            )
        ).scalars()
        for body in bodies:
            ilmd = orjson.loads(body).get("ilmd")
            if isinstance(ilmd, Mapping):
                number = ilmd.get("cbvmda:lotNumber", ilmd.get("lotNumber"))
                if number is not None:
                    found.add(str(number))
    return found


def select_events(db: Database, selector: Selector, shipment_ref: bytes | None = None) -> set[bytes]:
    """Digests of the events a bundle for `selector` holds (for an order: give its shipmentRef)."""
    if isinstance(selector, Product):
        units = _product_units(db, selector.gtin)
        classes = [f"https://{CANONICAL_RESOLVER}/01/{selector.gtin}"]
        with db.connect() as conn:
            classes += conn.execute(
                select(EventEpc.epc).where(prefix_range(EventEpc.epc, f"https://{CANONICAL_RESOLVER}/01/{selector.gtin}/10/")).distinct()
            ).scalars()
        return _with_histories(db, units, _class_events(db, classes))
    if isinstance(selector, Lot):
        return _with_histories(db, _lot_units(db, selector), _class_events(db, [selector.class_uri]))
    if isinstance(selector, TimeRange):
        return _range_events(db, selector)
    return _shipment_events(db, shipment_ref) if shipment_ref is not None else set()
