"""Location master data, and the passport's route grouped by where events happened.

An EPCIS event says where it happened with `readPoint` and `bizLocation` (SGLN EPC URNs or
GS1 Digital Link URIs of a GLN, `https://id.gs1.org/414/<GLN>[/254/<extension>]`). Member
organisations register what those ids are: a name and a country (and any further fields, an
address, a UN/LOCODE). The route then groups consecutive events by place (business location,
else read point), with the place's name and country, not by the country of the organisation
that reported the event: a Singapore carrier's unloading in Rotterdam is in NL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, delete, insert, select

from node.db import Database
from node.db.plain import PlainSelect
from node.db.models import LocationMaster
from node.errors import WaymarkError
from node.protocol.canonical_ids import canonical_gs1_uri


class LocationError(WaymarkError):
    code = "invalid_location"


class LocationRecord(BaseModel):
    """Master data of one location, as a member registers it."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=512, pattern=r"^(urn:epc:id:sgln:|https?://)\S+$", description="The readPoint/bizLocation id: an SGLN EPC URN or a GS1 Digital Link URI of a GLN")
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    unlocode: str | None = Field(None, pattern=r"^[A-Z]{2}[A-Z2-9]{3}$")
    address: str | None = Field(None, max_length=500)


def location_key(location_id: str) -> str:
    """One key per place: the canonical id.gs1.org form of a GLN (SGLN URN and Digital Link
    spellings of the same GLN + extension are one place); other URIs unchanged."""
    return canonical_gs1_uri(location_id) or location_id


def store_location(db: Database, record: LocationRecord, org_id: int) -> None:
    """Store (or replace) a location's master data, recording the organisation that gave it."""
    key = location_key(record.id)
    content = record.model_dump_json(exclude_none=True)
    with db.connect(write=True) as conn:
        conn.execute(delete(LocationMaster).where(LocationMaster.location == key))
        conn.execute(insert(LocationMaster).values(
            location=key, name=record.name, country=record.country, content=content, org_id=org_id, stored_at_ms=int(time.time() * 1000),
        ))


_LOCATIONS = PlainSelect(select(LocationMaster.location, LocationMaster.content).where(LocationMaster.location.in_(bindparam("keys", expanding=True))))  # built once


def load_locations(db: Database, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Master data of the given location ids (any spelling), by the id as given."""
    keys = {location_id: location_key(location_id) for location_id in ids}
    if not keys:
        return {}
    with db.connect() as conn:
        rows = _LOCATIONS.rows(conn, {"keys": sorted(set(keys.values()))})
    by_key = {str(r[0]): orjson.loads(r[1]) for r in rows}
    found: dict[str, dict[str, Any]] = {}
    for location_id, key in keys.items():
        data = by_key.get(key)
        if data is not None:
            found[location_id] = {"id": key, "name": data["name"], "country": data["country"], **({"unlocode": data["unlocode"]} if data.get("unlocode") else {})}
    return found


def event_place(item: Mapping[str, Any]) -> str | None:
    """Where a timeline event happened: its business location, else its read point."""
    place = item.get("bizLocation") or item.get("readPoint")
    return place if isinstance(place, str) else None


def _customs_country(item: Mapping[str, Any]) -> str | None:
    office = item["event"].get("wmc:customsOffice") if isinstance(item.get("event"), Mapping) else None
    if isinstance(office, str) and len(office) >= 2 and office[:2].isalpha():
        return office[:2].upper()  # customs office codes start with their country (e.g. NL000396)
    return None


def route_by_location(db: Database, timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive events grouped by the place they happened at, with its master data.

    Each timeline item gets a `location` ({id, name, country} or None). Events that name no
    place (at sea, a sensor report) form their own stops with `location` None; their country
    is only the customs office's, never the reporting organisation's.
    """
    places = load_locations(db, [p for p in (event_place(item) for item in timeline) if p])
    stops: list[dict[str, Any]] = []
    for item in timeline:
        place = event_place(item)
        location = places.get(place) if place else None
        if place and location is None:
            location = {"id": location_key(place), "name": None, "country": None}
        item["location"] = location
        country = location["country"] if location and location.get("country") else _customs_country(item)
        key = location["id"] if location else None
        org = item["verification"].get("signerOrg")
        step = item["bizStep"] or item["type"]
        if stops and stops[-1]["locationId"] == key and stops[-1]["country"] == country:
            stop = stops[-1]
            stop["last"] = item["eventTime"]
        else:
            stop = {
                "locationId": key,
                "name": location.get("name") if location else None,
                "country": country,
                "organisations": [],
                "steps": [],
                "first": item["eventTime"],
                "last": item["eventTime"],
            }
            stops.append(stop)
        if org and org["name"] not in stop["organisations"]:
            stop["organisations"].append(org["name"])
        if step not in stop["steps"]:
            stop["steps"].append(step)
    return stops
