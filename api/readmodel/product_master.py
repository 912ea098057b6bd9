"""Product master data, and the product- and lot-level views of the passport.

A manufacturer registers a product class on chain with a metadata hash
(`ProvenanceRegistry.registerProduct(gtin, metadataHash)`). The master data itself (name,
description, images, brand, country of origin, materials, certifications) stays off chain:
the node stores the exact bytes whose keccak256 is that hash, so anyone can hold the shown
content to the chain, and nobody (not the node's operator either) can show other content
under the manufacturer's name. The bytes are a JSON object that `ProductMaster` validates.

The lot-level view gathers a lot's units (from its commissioning events, whose `ilmd` names
the lot as `cbvmda:lotNumber`, or events naming the lot as a class), its production,
inspection and recall state; the product-level view lists the product's lots.

Note: EPCIS `ilmd` is not covered by the CBV 2.0 event hash (so not by the signature); the lot
a unit was commissioned in is therefore what the storing node says, while the issuance
signature of a signed code (`?s=`) covers the lot cryptographically.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy import bindparam, delete, insert, select

from api.readmodel.chain_view import TTLCache
from node.protocol.timestamps import iso_ms
from node.db import Database, Event, EventEpc
from node.db.models import ProductMaster as ProductMasterRow
from node.db.plain import PlainSelect
from node.db.prefix import prefix_range
from node.errors import WaymarkError
from node.protocol.crypto import keccak256
from node.protocol.event_hash import hash_from_digest
from node.protocol.gs1 import CANONICAL_RESOLVER, ProductId, encode_component, normalize_gtin

LOT_NUMBER = "cbvmda:lotNumber"
MAX_MASTER_BYTES = 64 * 1024


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="allow")


class Image(_Model):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^(https?://|/|data:image/(png|jpeg|webp);base64,)", description="https URL, a path on this resolver, or an inline PNG/JPEG/WebP data URI")
    alt: str | None = Field(None, max_length=300, description="What the picture shows, for screen readers")


class Certification(_Model):
    name: str = Field(min_length=1, max_length=200)
    issuer: str | None = Field(None, max_length=200)
    id: str | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2048)


class ProductMaster(_Model):
    """A product's master data, as the manufacturer publishes it (camelCase JSON keys)."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    images: list[Image] = Field(default_factory=list, max_length=10)
    brand: str | None = Field(None, max_length=200)
    country_of_origin: str | None = Field(None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    materials: list[str] = Field(default_factory=list, max_length=50)
    certifications: list[Certification] = Field(default_factory=list, max_length=50)


class MasterDataError(WaymarkError):
    code = "invalid_master_data"

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.problem = problem
        self.field = field
        super().__init__(problem)


class MasterDataHashMismatch(WaymarkError):
    """The content is not what the manufacturer registered on chain."""

    code = "master_data_hash_mismatch"

    def __init__(self, gtin: str, content_hash: bytes, registered: bytes | None) -> None:
        self.gtin = gtin
        on_chain = "0x" + registered.hex() if registered else "nothing (the product is not registered)"
        super().__init__(f"the content hashes to 0x{content_hash.hex()}, but product {gtin} has {on_chain} registered on chain")


def master_hash(content: bytes) -> bytes:
    """keccak256 of the master data bytes: what `registerProduct` takes as metadataHash."""
    return keccak256(content)


def parse_master(content: bytes) -> ProductMaster:
    """Validate master data bytes (a JSON object, at most 64 KiB)."""
    if len(content) > MAX_MASTER_BYTES:
        raise MasterDataError(f"master data has at most {MAX_MASTER_BYTES} bytes, got {len(content)}")
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as error:
        raise MasterDataError(f"master data is not JSON: {error}") from None
    try:
        return ProductMaster.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MasterDataError(f"{where}: {first['msg']}", where) from None


def store_master(db: Database, gtin: str, content: bytes, registered_hash: bytes | None) -> ProductMaster:
    """Store `content` as the master data of `gtin` if its keccak256 is the hash registered on
    chain (`registered_hash`, from `ProvenanceRegistry.productOf`); replaces nothing else."""
    gtin = normalize_gtin(gtin)
    master = parse_master(content)
    digest = master_hash(content)
    if registered_hash is None or digest != registered_hash:
        raise MasterDataHashMismatch(gtin, digest, registered_hash)
    with db.connect(write=True) as conn:
        conn.execute(delete(ProductMasterRow).where(ProductMasterRow.gtin == gtin))
        conn.execute(insert(ProductMasterRow).values(gtin=gtin, content=content, content_hash=digest, stored_at_ms=int(time.time() * 1000)))
    return master


def stored_master(db: Database, gtin: str) -> bytes | None:
    """The master data bytes of `gtin` exactly as stored (None if none are held)."""
    with db.connect() as conn:
        row = conn.execute(select(ProductMasterRow.content).where(ProductMasterRow.gtin == gtin)).scalar()
    return bytes(row) if row is not None else None


_MASTER = PlainSelect(select(ProductMasterRow.content, ProductMasterRow.content_hash).where(ProductMasterRow.gtin == bindparam("gtin")))  # per passport: built once
_CHECKED: dict[tuple[bytes, bytes], dict[str, Any] | None] = {}  # (content, stored hash) -> data, or None if they disagree
_CHECKED_SIZE = 1024


def load_master(db: Database, gtin: str) -> tuple[dict[str, Any], bytes] | None:
    """The stored master data of `gtin` as JSON data, with its hash (None if none is held).
    The hash check and validation of a content are done once per (content, hash) read: every
    passport of a product shows the same master data."""
    with db.connect() as conn:
        rows = _MASTER.rows(conn, {"gtin": gtin})
    if not rows:
        return None
    content, digest = bytes(rows[0][0]), bytes(rows[0][1])
    key = (content, digest)
    if key not in _CHECKED:
        if len(_CHECKED) >= _CHECKED_SIZE:
            _CHECKED.clear()
        # edited in the database (the content no longer hashes to its hash): never shown
        _CHECKED[key] = ProductMaster.model_validate(orjson.loads(content)).model_dump(exclude_none=True) if master_hash(content) == digest else None
    data = _CHECKED[key]
    return (dict(data), digest) if data is not None else None


def master_section(db: Database, gtin: str, registered_hash: bytes | None) -> dict[str, Any]:
    """What the passport shows of the product's master data: the content if its hash is the one
    registered on chain, with the hash; else why not ("not_held", "hash_mismatch")."""
    loaded = load_master(db, gtin)
    registered = "0x" + registered_hash.hex() if registered_hash else None
    if loaded is None:
        return {"status": "not_held", "metadataHash": registered}
    data, digest = loaded
    if registered_hash is None or digest != registered_hash:
        return {"status": "hash_mismatch", "metadataHash": registered}
    return {"status": "verified", "metadataHash": registered, **data}


VERIFIED_KEPT_S = 30.0  # as long as a chain view keeps the product's registered hash
VERIFIED_KEPT = 1024  # products


class MasterSections:
    """`master_section` for one passport builder, kept for VERIFIED_KEPT_S once verified: every
    passport of a product shows the same master data, which the hash the chain registers
    certifies, so a cold build reads it from memory instead of the database. Anything else (not
    held, a hash mismatch) is read at every build: master data stored later shows at once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._kept = TTLCache(VERIFIED_KEPT_S, size=VERIFIED_KEPT)

    def section(self, gtin: str, registered_hash: bytes | None) -> dict[str, Any]:
        key = (gtin, registered_hash)
        section: dict[str, Any] | None = self._kept.fresh(key)
        if section is None:
            section = master_section(self.db, gtin, registered_hash)
            if section["status"] != "verified":
                return section
            self._kept.put(key, section)
        return dict(section)  # the kept one is never handed out


# --- lots -----------------------------------------------------------------------------------------


def lot_uri(gtin: str, lot: str) -> str:
    return f"https://{CANONICAL_RESOLVER}/01/{gtin}/10/{encode_component(lot)}"


def lot_of_event(event: Mapping[str, Any]) -> str | None:
    """The lot an event's ilmd names (`cbvmda:lotNumber`), if any."""
    ilmd = event.get("ilmd")
    if isinstance(ilmd, Mapping):
        lot = ilmd.get(LOT_NUMBER)
        if isinstance(lot, str) and lot:
            return lot
    return None


def recorded_lot(timeline: Sequence[Mapping[str, Any]]) -> str | None:
    """The lot the unit was commissioned in, by its own commissioning event's ilmd."""
    for item in timeline:
        if not item.get("via") and item.get("bizStep") == "commissioning":
            lot = lot_of_event(item.get("event") or {})
            if lot is not None:
                return lot
    return None


def _short(value: Any, prefixes: tuple[str, ...]) -> str | None:
    if not isinstance(value, str):
        return None
    for prefix in prefixes:
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


_STEP_PREFIXES = ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:", "cbv:BizStep-")
_DISP_PREFIXES = ("https://ref.gs1.org/cbv/Disp-", "urn:epcglobal:cbv:disp:", "cbv:Disp-")


def _event_rows(db: Database, gtin: str) -> list[tuple[int, bytes, int, str | None, dict[str, Any], list[str]]]:
    """Events naming units of `gtin` or a lot of it as a class: (id, digest, time, step, body, epcs)."""
    units = f"https://{CANONICAL_RESOLVER}/01/{gtin}/21/"
    lots = f"https://{CANONICAL_RESOLVER}/01/{gtin}/10/"
    with db.connect() as conn:
        rows = conn.execute(
            select(Event.id, Event.digest, Event.event_time_ms, Event.biz_step, Event.body, EventEpc.epc)
            .join(EventEpc, EventEpc.event_id == Event.id)
            .where(prefix_range(EventEpc.epc, units) | prefix_range(EventEpc.epc, lots))
            .order_by(Event.event_time_ms, Event.id)
        ).all()
    found: dict[int, tuple[int, bytes, int, str | None, dict[str, Any], list[str]]] = {}
    for event_id, digest, at, step, body, epc in rows:
        entry = found.get(int(event_id))
        if entry is None:
            entry = (int(event_id), bytes(digest), int(at), step, orjson.loads(body), [])
            found[int(event_id)] = entry
        entry[5].append(str(epc))
    return list(found.values())


def lots_of(db: Database, gtin: str) -> dict[str, dict[str, Any]]:
    """Per lot of `gtin`: its units, production, inspection and recall state, from the events."""
    rows = _event_rows(db, gtin)
    lots: dict[str, dict[str, Any]] = {}
    unit_lot: dict[str, str] = {}
    prefix = f"https://{CANONICAL_RESOLVER}/01/{gtin}/10/"

    def lot_entry(lot: str) -> dict[str, Any]:
        return lots.setdefault(lot, {
            "lot": lot, "units": 0, "producedAt": None, "inspections": [], "recalled": False, "recalledAt": None,
            "events": [],
        })

    # Commissioning first: which unit belongs to which lot.
    for _id, _digest, at, step, body, epcs in rows:
        lot = lot_of_event(body)
        if lot is None or _short(step, _STEP_PREFIXES) != "commissioning":
            continue
        entry = lot_entry(lot)
        units = [e for e in epcs if "/21/" in e]
        for unit in units:
            if unit not in unit_lot:
                unit_lot[unit] = lot
                entry["units"] += 1
        entry["producedAt"] = entry["producedAt"] or iso_ms(at)
    for _id, digest, at, step, body, epcs in rows:
        named = {e[len(prefix):] for e in epcs if e.startswith(prefix)}
        named |= {unit_lot[e] for e in epcs if e in unit_lot}
        short_step = _short(step, _STEP_PREFIXES)
        disposition = _short(body.get("disposition"), _DISP_PREFIXES)
        for lot in sorted(named):
            entry = lot_entry(lot)
            entry["events"].append(hash_from_digest(digest))
            if short_step == "inspecting":
                entry["inspections"].append({"time": iso_ms(at), "disposition": disposition, "eventId": hash_from_digest(digest)})
            if disposition == "recalled" or short_step == "recalling":
                entry["recalled"] = True
                entry["recalledAt"] = entry["recalledAt"] or iso_ms(at)
    return lots


def product_view(db: Database, product: ProductId, registered_hash: bytes | None, manufacturer: dict[str, Any] | None) -> dict[str, Any]:
    """The product-level page (``/01/<GTIN>``): master data and the product's lots."""
    lots = lots_of(db, product.gtin)
    return {
        "kind": "product",
        "id": product.canonical_uri,
        "gtin": product.gtin,
        "registered": manufacturer is not None,
        "manufacturer": manufacturer,
        "master": master_section(db, product.gtin, registered_hash),
        "lots": [{k: v for k, v in lot.items() if k != "events"} for lot in sorted(lots.values(), key=lambda entry: str(entry["producedAt"] or ""))],
    }


def lot_view(db: Database, product: ProductId, registered_hash: bytes | None, manufacturer: dict[str, Any] | None) -> dict[str, Any] | None:
    """The lot-level page (``/01/<GTIN>/10/<lot>``): production, inspection, recall state; None
    if no event names the lot."""
    assert product.lot is not None
    lot = lots_of(db, product.gtin).get(product.lot)
    if lot is None:
        return None
    return {
        "kind": "lot",
        "id": product.canonical_uri,
        "gtin": product.gtin,
        "lot": product.lot,
        "registered": manufacturer is not None,
        "manufacturer": manufacturer,
        "master": master_section(db, product.gtin, registered_hash),
        "units": lot["units"],
        "producedAt": lot["producedAt"],
        "inspections": lot["inspections"],
        "recalled": lot["recalled"],
        "recalledAt": lot["recalledAt"],
        "eventCount": len(lot["events"]),
    }
