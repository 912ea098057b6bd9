"""A unit's passport: what a buyer sees when scanning its code, and the verdict on it.

The passport gathers, for one unit (or logistic unit), its product and manufacturer, its
full timeline (its own events and those of every case, pallet and container it was inside,
from `node.member.history`), each event's verification, the documents and sensor excursions the
events name, the state of an escrow order covering it, and a verdict:

| verdict | when |
|---|---|
| genuine | every event verified (hash, signature, role at the time, Merkle proof, anchor, confirmations), none marked, and the unit was commissioned by its product's manufacturer |
| unverified | nothing failed, but something is not proven yet (events pending, no commissioning event, product not registered) or an event is marked late or signer_revoked (accepted, never plainly genuine) |
| suspicious | a check failed, the commissioning was signed by another organisation, the link's issuance signature is not the manufacturer's, or the unit is suspected of being cloned (api.readmodel.scans: the same for every scanner, until its suspicion ages out) |
| unknown | the code is well-formed but nothing on this network carries it (answered 404 by the API) |

The parts live beside this module: the response schema (api.readmodel.schema), chain facts
(api.readmodel.chain_view: the registry's history from a log mirror, anchors per root), one
timeline event and its verification (api.readmodel.timeline), escrow keys (api.readmodel.escrow).
A cold passport is a few indexed reads of the node's tables (the history with each event's
stored attestation, recorded verification and holders in one statement; corrections, withheld
batches, places, master data) and no chain call per scan. The unit's clone suspicion, state and
ownership (api.readmodel.scans: the same for every scanner), its escrow order (by index) and the
link's own flags are added per request by the API (`finish`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import orjson
import zstandard
from sqlalchemy import func, select

from api.compression import zstd_closing_blocks, zstd_open_frame
from api.readmodel.chain_view import ChainView
from api.readmodel.escrow import order_levels
from api.readmodel.locations import route_by_location
from api.readmodel.product_master import MasterSections, recorded_lot
from api.readmodel.clone_rules import Flag
from api.readmodel.scans import ScanLog, ScanOutcome, UnitRead, WindowAsk, read_window
from api.readmodel.schema import Verdict
from node.protocol.timestamps import iso_ms
from api.readmodel.timeline import (
    DocumentStatus,
    EventVerifier,
    documents_of,
    excursions_of,
    ATTESTATION_COLUMNS,
    stored_attestation,
    timeline_event,
)
from node.db import Batch, Database, Event
from node.errors import WaymarkError
from node.escrow.orders import OrderIndex, OrderRead, read_orders
from node.member.history import HistoryEntry, unit_history
from node.member.network.holders import network_mark, network_section
from node.protocol.crypto import SignatureError
from node.protocol.gs1 import ContainerId, Identifier, UnitId
from node.protocol.digital_link import ParsedLink
from node.protocol.issuance import recover_issuer
from node.protocol.verification import Head


def documents_not_held(_digest: str) -> Literal["available", "erased", "not_held"]:
    """Hook: this API holds no document store yet, so every document is shown as not held here."""
    return "not_held"


def corrections_none(_event_ids: Sequence[str]) -> Mapping[str, dict[str, Any]]:
    """Hook for the corrections (EPCIS error declarations) of events, by event id: none known.
    Each value is {reason, declaredAt, correctiveEventIds}."""
    return {}


class PassportCore:
    """The scan-independent part of a passport, cached between scans.

    Kept serialised and compressed, not as the dicts it was built from: a cache of thousands of
    passports as nested dicts would be millions of objects for every full garbage collection to
    walk (a pause felt by every request in flight), and the JSON of a passport (tens of KB: every
    event with its signature and proof) packs six times smaller with Zstandard at level 1, so
    the cache's byte budget holds six times as many passports. Zstandard, not zlib: for a 40 KB
    passport it packs 3.5 times faster (78 vs 275 us) and unpacks, at every scan, 3.3 times faster
    (26 vs 86 us), into 15 % fewer bytes than zlib at its fastest level.
    The packed JSON is the start of a passport object, `{"id":...` (not closed), packed as a
    Zstandard frame left open: a scan's own members close the object (`finish`), and a client
    that accepts Zstandard gets the frame as it is stored, ended by those members as raw blocks
    (api.compression.zstd_closing_blocks), so a scan neither unpacks nor packs the core again.
    """

    __slots__ = (
        "_packed", "_spans", "size", "verdict", "reasons", "pending", "gtin", "manufacturer_org", "containers",
        "timeline_length", "built_at", "order_levels", "orders", "recorded_lot",
    )

    def __init__(
        self,
        body: dict[str, Any],
        verdict: Verdict,
        reasons: list[dict[str, str]],
        pending: bool,
        gtin: str | None,
        manufacturer_org: int | None,
    ) -> None:
        pieces: list[bytes] = []
        spans: list[tuple[str, int, int]] = []  # (key, start, end) of each value in the packed JSON
        at = 0
        for key, value in body.items():
            member, serialised = (b"," if pieces else b"{") + orjson.dumps(key) + b":", orjson.dumps(value)
            start = at + len(member)
            at = start + len(serialised)
            pieces += (member, serialised)
            spans.append((key, start, at))
        self._spans = tuple(spans)
        self._packed = zstd_open_frame(b"".join(pieces))
        self.size = len(self._packed)
        """Bytes held (compressed)."""
        self.verdict: Verdict = verdict
        self.reasons = tuple(dict(r) for r in reasons)
        self.pending = pending
        self.gtin = gtin
        self.manufacturer_org = manufacturer_org
        # Containers the unit travelled in (for escrow orders that name a container).
        self.containers: tuple[str, ...] = tuple(dict.fromkeys(c for item in body.get("timeline", ()) for c in item["via"]))
        self.timeline_length = len(body.get("timeline", ()))
        self.recorded_lot = recorded_lot(body.get("timeline", ()))  # the lot of its commissioning, for wrong-lot links
        self.built_at = time.monotonic()
        # The keys an escrow order may name for this unit, most specific first, and where to
        # look them up: the order section is read per scan (`order_section`), never cached here.
        self.order_levels: tuple[tuple[bytes, ...], ...] = ()
        self.orders: OrderIndex | None = None

    @property
    def frame(self) -> bytes:
        """The core's members, `{"id":...` (not closed), as a Zstandard frame left open."""
        return self._packed

    @property
    def start(self) -> bytes:
        """The core's members, `{"id":...` (not closed), unpacked."""
        return zstandard.ZstdDecompressor().decompressobj().decompress(self._packed)

    @property
    def parts(self) -> dict[str, orjson.Fragment]:
        """The top-level values, unpacked, as orjson fragments (serialised as they are)."""
        raw = self.start
        return {key: orjson.Fragment(raw[start:end]) for key, start, end in self._spans}

    @property
    def json(self) -> bytes:
        """The core alone as JSON."""
        return orjson.dumps(self.parts)

    @property
    def body(self) -> dict[str, Any]:
        """The passport core as data (parsed again: for tests and rare callers)."""
        return orjson.loads(self.json)  # type: ignore[no-any-return]

    def order_section(self) -> dict[str, str] | None:
        """The state of the order this unit belongs to, as the escrow logs left it now (by index)."""
        if self.orders is None or not self.order_levels:
            return None
        order = self.orders.order_of(self.order_levels)
        return {"state": order.state} if order is not None else None


@dataclass(frozen=True)
class BuildAsk:
    """What a build reads for the API process besides the core, in the core's snapshot: the
    orders of the unit's shipment keys against the API's escrow order index checkpoint, and the
    unit's scan window from `window_since` (for a unit the scan log does not hold)."""

    order_checkpoint: int | None = None
    window_since: int | None = None


@dataclass(frozen=True)
class Built:
    """A passport core, with what its `BuildAsk` asked for (None where it asked for nothing)."""

    core: PassportCore
    orders: OrderRead | None = None
    window: UnitRead | None = None


def verdict_of(failed: bool, reasons: Sequence[Mapping[str, str]]) -> Verdict:
    """suspicious if a check failed, else unverified if anything is not proven, else genuine."""
    if failed:
        return "suspicious"
    return "unverified" if reasons else "genuine"


class PassportBuilder:
    """Builds passports from the node's database and cached chain facts."""

    def __init__(
        self,
        db: Database,
        chain: ChainView,
        *,
        resolver_url: str,
        browser_rpc_url: str,
        confirmations: int = 0,
        document_status: DocumentStatus = documents_not_held,
        orders: OrderIndex | None = None,
        corrections: Callable[[Sequence[str]], Mapping[str, dict[str, Any]]] = corrections_none,
    ) -> None:
        self.db = db
        self.chain = chain
        self.resolver_url = resolver_url.rstrip("/")
        self.confirmations = confirmations
        self.document_status = document_status
        self.orders = orders
        self.corrections = corrections
        self.verifier = EventVerifier(chain, confirmations)
        self.masters = MasterSections(db)
        # Builds the core in another process when set (api.build_pool): the API process then
        # keeps only what a scan needs of it, so cold passports are built on more than one core.
        # Awaited on the event loop (`build_remote`): no thread of the API process waits for it.
        self.remote: Callable[[Identifier, BuildAsk], Awaitable[Built | None]] | None = None
        # The API's scan log: a unit's first build reads its scan window too (`BuildAsk`).
        self.scans: ScanLog | None = None
        self._watermark: tuple[float, tuple[Any, ...]] | None = None
        self.chain_info = {
            "chainId": chain.chain_id,
            "rpcUrl": browser_rpc_url,
            "provenanceRegistry": chain.provenance_address,
            "consortiumRegistry": chain.consortium_address,
            "confirmationsRequired": confirmations,
        }

    def build(self, identifier: Identifier) -> PassportCore | None:
        """The passport core of a unit or container, built in this process; None if nothing on
        this network names it."""
        window, ask = self._ask(identifier)
        built = self.build_core(identifier, ask)
        if built is None:
            return None
        if not self._take(identifier, window, built):
            self._refresh_orders(built.core)
        return built.core

    async def build_remote(self, identifier: Identifier) -> PassportCore | None:
        """`build`, with the core built by `remote` (a build process) and awaited on the event
        loop; only an order index that moved since the ask reads the database, in a thread."""
        assert self.remote is not None, "no build processes"
        window, ask = self._ask(identifier)
        built = await self.remote(identifier, ask)
        if built is None:
            return None
        if not self._take(identifier, window, built):
            await anyio.to_thread.run_sync(self._refresh_orders, built.core)
        return built.core

    def _ask(self, identifier: Identifier) -> tuple[WindowAsk | None, BuildAsk]:
        """What a build reads for this process besides the core (see BuildAsk)."""
        window = self.scans.window_ask(identifier.canonical_uri) if self.scans is not None else None
        return window, BuildAsk(self.orders.checkpoint if self.orders is not None else None, window.since if window is not None else None)

    def _take(self, identifier: Identifier, window: WindowAsk | None, built: Built) -> bool:
        """Keep what the build read for this process where it still holds (in memory, no
        database): the unit's scan window, and the orders of its shipment keys, which the core
        is given. False if the order index must read them again (`_refresh_orders`)."""
        if self.scans is not None and window is not None and built.window is not None:
            self.scans.take_window(identifier.canonical_uri, window, built.window)
        return self._with_orders(identifier, built.core, built.orders)

    def build_core(self, identifier: Identifier, ask: BuildAsk = BuildAsk()) -> Built | None:
        """The core from the database and the chain alone (what a build process returns), with
        what `ask` asks for read in the same snapshot: the orders of the unit's shipment keys
        (`node.escrow.orders.read_orders`) and its scan window (`api.readmodel.scans.read_window`).
        None if nothing on this network names the unit."""
        with self.db.snapshot():  # one connection for the build's reads (Database.snapshot)
            entries = unit_history(self.db, identifier.canonical_uri, ATTESTATION_COLUMNS)
            if not entries:
                return None
            core = self._assemble(identifier, entries)
            orders = window = None
            if ask.order_checkpoint is not None:
                keys = (key for level in order_levels(identifier, core.containers) for key in level)
                orders = read_orders(self.db, self.chain.chain_id, ask.order_checkpoint, keys)
            if ask.window_since is not None:
                window = read_window(self.db, identifier.canonical_uri, ask.window_since)
            return Built(core, orders, window)

    def watermark(self) -> tuple[Any, ...]:
        """What the node's tables look like, cheaply: if it has not changed since a passport was
        built, no event was added, anchored or re-anchored since, nothing the network section
        shows changed (holders, withheld batches, peers), and the passport still holds.
        (An edit in place of a stored row is not seen here; passports are rebuilt after a
        maximum age anyway, and the browser re-checks every event itself.)"""
        now = time.monotonic()
        cached = self._watermark
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        with self.db.connect() as conn:
            # Each read is one index probe (primary key, ix_batches_*, ix_batches_status), not a
            # scan of the table: a new event or batch moves a max, an anchoring moves
            # anchored_at_ms and block_number, a batch sent back to `prepared` (the chain lost
            # its anchor) changes the count of prepared batches, which stays small.
            mark = (
                conn.execute(select(func.max(Event.id))).scalar(),
                conn.execute(select(func.max(Batch.id))).scalar(),
                conn.execute(select(func.max(Batch.anchored_at_ms))).scalar(),
                conn.execute(select(func.max(Batch.block_number))).scalar(),
                conn.execute(select(func.count()).select_from(Batch).where(Batch.status == "prepared")).scalar(),
                *network_mark(conn),
            )
        self._watermark = (now, mark)
        return mark

    def cached_watermark(self) -> tuple[Any, ...] | None:
        """The watermark read less than a second ago, if any (no database access)."""
        cached = self._watermark
        return cached[1] if cached is not None and time.monotonic() - cached[0] < 1.0 else None

    def issued_only(self, identifier: UnitId) -> PassportCore:
        """The passport of a code its manufacturer signed but which has no events yet."""
        core = self._assemble(identifier, [])
        if not self._with_orders(identifier, core, None):
            self._refresh_orders(core)
        return core

    # ---- assembly ------------------------------------------------------------------------------

    def _assemble(self, identifier: Identifier, entries: list[HistoryEntry]) -> PassportCore:
        chain = self.chain
        head = Head(chain.head(), chain.head_time())
        registry = chain.registry()
        timeline: list[dict[str, Any]] = []
        reasons: list[dict[str, str]] = []
        documents: list[dict[str, Any]] = []
        excursions: list[dict[str, Any]] = []
        failed = pending = False
        marked: dict[str, list[dict[str, Any]]] = {}
        attestations = [stored_attestation(entry) for entry in entries]
        chain.prefetch_anchors(a.root for a in attestations if a.root is not None)  # one read for the events' batches
        peers_holding = []
        for entry, attestation in zip(entries, attestations):
            peers_holding.append(attestation.peers_holding)
            item = timeline_event(entry, attestation, self.verifier.verify(entry, attestation, head, registry))
            timeline.append(item)
            status = item["verification"]["status"]
            if status == "failed" and not failed:
                failed = True
                check = item["verification"]["failedCheck"]
                detail = next(c["detail"] for c in item["verification"]["checks"] if c["name"] == check)
                reasons.append({"code": "event_failed", "message": f"event {item['bizStep'] or item['type']} of {item['eventTime']} failed the {check} check: {detail}"})
            elif status == "pending":
                pending = True
            for mark in item["verification"]["marks"]:
                marked.setdefault(mark, []).append(item)
            documents.extend(documents_of(entry, self.document_status))
            excursions.extend(excursions_of(entry))

        declared = [item["id"] for item, attestation in zip(timeline, attestations) if attestation.declared_erroneous]
        corrections = self.corrections(declared) if declared else {}
        for item in timeline:
            item["correction"] = corrections.get(item["id"])
        gtin = identifier.gtin if isinstance(identifier, UnitId) else None
        manufacturer_org = chain.product_org(gtin) if gtin else None
        product = None
        if gtin is not None:
            org = chain.organisation(manufacturer_org) if manufacturer_org else None
            product = {"gtin": gtin, "registered": manufacturer_org is not None, "manufacturer": org.ref() if org else None,
                       "master": self.masters.section(gtin, chain.product_hash(gtin)) if manufacturer_org else None}
            if manufacturer_org is None:
                reasons.append({"code": "product_not_registered", "message": f"product {gtin} is not registered on the chain"})
            commissioning = [t for t in timeline if not t["via"] and t["bizStep"] == "commissioning"]
            if not commissioning:
                reasons.append({"code": "no_commissioning", "message": "no commissioning event names this unit"})
            elif manufacturer_org is not None:
                by = commissioning[0]["verification"].get("signerOrg")
                if by is None or by["id"] != manufacturer_org:
                    org_name = by["name"] if by else "an account of no organisation"
                    reasons.append({"code": "commissioned_by_other", "message": f"commissioned by {org_name}, not by the product's manufacturer"})
                    failed = True
        if pending:
            reasons.append({"code": "events_pending", "message": "some events are not anchored on the chain yet"})
        for mark, items in sorted(marked.items()):
            # Accepted, never plainly genuine (node.protocol.verification's marks).
            named = ", ".join(f"{i['bizStep'] or i['type']} of {i['eventTime']}" for i in items)
            reasons.append({"code": f"events_{mark}", "message": (
                f"anchored later than the consortium's maximum reporting delay after its event time: {named}" if mark == "late"
                else f"signed by an account that had lost its role before the record was anchored: {named}")})
        # How widely the unit's records are held (node.member.network): holders per event, withheld records.
        network = network_section(self.db, timeline, peers_holding)
        for withheld in network["withheld"]:
            reasons.append({"code": "records_withheld", "message": f"some records are withheld: organisation {withheld['orgId']} "
                            f"anchored {withheld['batches']} batch(es) no member node has served"})
        if not timeline:
            reasons.append({"code": "no_events", "message": "the code was issued by its manufacturer but has no recorded events yet: "
                            "if the unit was made recently, members may still be delivering its records"})

        body: dict[str, Any] = {
            "id": identifier.canonical_uri,
            "link": identifier.uri(self.resolver_url),
            "kind": "unit" if isinstance(identifier, UnitId) else "container",
            "gtin": gtin,
            "lot": (recorded_lot(timeline) or identifier.lot) if isinstance(identifier, UnitId) else None,
            "serial": identifier.serial if isinstance(identifier, UnitId) else None,
            "sscc": identifier.sscc if isinstance(identifier, ContainerId) else None,
            "product": product,
            "timeline": timeline,
            "route": route_by_location(self.db, timeline),
            "documents": documents,
            "sensorExcursions": excursions,
            "chain": self.chain_info,
            "network": network,
        }
        return PassportCore(body, verdict_of(failed, reasons), reasons, pending, gtin, manufacturer_org)

    def _with_orders(self, identifier: Identifier, core: PassportCore, read: OrderRead | None) -> bool:
        """Give the core the escrow order keys it is looked up by and the index; True if the
        index holds their orders now (taken from `read`), False if `_refresh_orders` must read
        them before the first scan."""
        if self.orders is None:
            return True
        core.order_levels = order_levels(identifier, core.containers)
        core.orders = self.orders
        return self.orders.take(read)

    def _refresh_orders(self, core: PassportCore) -> None:
        """Bring the order index up to date and the core's orders into memory, from the database.
        After the core's snapshot: bringing the index up to date writes, and the snapshot's reads
        would not see what it wrote."""
        assert self.orders is not None
        self.orders.refresh(k for level in core.order_levels for k in level)


# --- per-scan completion ---------------------------------------------------------------------------


def issuance_flag(chain: ChainView, link: ParsedLink, manufacturer_org: int | None) -> Flag | None:
    """A flag if the link carries an issuance signature that is not by its manufacturer's accounts."""
    if link.signature is None:
        return None
    try:
        issuer = recover_issuer(link, chain.chain_id)
    except (SignatureError, WaymarkError):
        return Flag("bad_issuance_signature", "the code's issuance signature is malformed")
    if issuer is None:
        return None
    if manufacturer_org is None or chain.current_org(issuer) != manufacturer_org:
        return Flag("bad_issuance_signature", f"the code's issuance signature is by {issuer}, not by its manufacturer")
    return None


def valid_issuance(chain: ChainView, link: ParsedLink) -> bool:
    """True if the link carries its manufacturer's valid issuance signature."""
    if link.signature is None or not isinstance(link.identifier, UnitId):
        return False
    org = chain.product_org(link.identifier.gtin)
    return org is not None and issuance_flag(chain, link, org) is None


@dataclass(frozen=True)
class FinishedPassport:
    """One scan's passport: the cached core's members (`PassportCore.start`) followed by the
    scan's own (`members`: `,"escrow":...}`, which close the object)."""

    core: PassportCore
    members: bytes

    def json(self) -> bytes:
        return self.core.start + self.members

    def zstd(self) -> bytes:
        """The passport JSON as one Zstandard frame: the core's as cached, ended by the scan's
        members as raw blocks."""
        return self.core.frame + zstd_closing_blocks(self.members)


def finish(core: PassportCore, outcome: ScanOutcome, link_flags: Sequence[Flag] = ()) -> FinishedPassport:
    """The passport: the cached core plus the unit's suspicion, ownership and escrow order (the
    same for every scanner) and the flags of the link presented (issuance signature, lot)."""
    suspicion = outcome.suspicion
    flags = [*(suspicion.reasons if suspicion else ()), *link_flags]
    reasons = [*core.reasons, *({"code": f.rule, "message": f.message} for f in flags)]
    members = orjson.dumps({
        "escrow": core.order_section(),
        "verdict": "suspicious" if flags else core.verdict,
        "reasons": reasons,
        "ownership": outcome.ownership.view(),
        "scans": {
            "scansInWindow": outcome.scans_in_window,
            "devicesInWindow": outcome.devices_in_window,
            "regionsInWindow": list(outcome.regions_in_window),
            "flags": [{"code": f.rule, "message": f.message} for f in flags],
            "suspectedSince": iso_ms(suspicion.since_ms) if suspicion else None,
            "suspectedUntil": iso_ms(suspicion.until_ms) if suspicion else None,
        },
        "generatedAt": iso_ms(int(time.time() * 1000)),
    })
    return FinishedPassport(core, b"," + members[1:])  # after the core's members, which open the object
