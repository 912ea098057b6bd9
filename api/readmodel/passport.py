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

Verification of one event is node.protocol.verification's (the one rule: event_hash, signature, role,
merkle_proof, anchor, confirmations, and the marks); chain lookups go through `ChainView`, a
node.protocol.verification Registry and AnchorOf, which caches what cannot change (roles and organisations at a past time) and
re-reads what can (anchors, the head) after a short time. Signature and role are taken from
the verification record the node wrote when it accepted or imported the event (events
`role`, `signer_org`, `verified_at_ms`), so a cold passport asks the chain nothing per event;
the event hash is still recomputed (a stored body edited afterwards fails), the Merkle leaf
binds the recorded signer, and rows without a record are verified in full. The browser and
the audit recover every signature themselves. The unit's clone suspicion, state and ownership
(api.readmodel.scans: the same for every scanner) and the link's own flags are added per request by the
API (`finish`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from sqlalchemy import bindparam, func, select
from web3 import Web3

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Batch, Database, Event
from node.errors import WaymarkError
from node.escrow.orders import OrderIndex
from node.member.history import HistoryEntry, unit_history
from api.readmodel.locations import route_by_location
from node.member.network.holders import network_section
from api.readmodel.product_master import master_section, recorded_lot
from node.protocol.verification import Anchor, Attested, Head, Inclusion, Outcome, Recorded, verify_anchoring, verify_attestation
from node.protocol.attestation import AttestationDomain
from node.protocol.crypto import SignatureError, keccak256
from node.protocol.event_hash import digest_from_hash
from node.protocol.digital_link import ParsedLink
from node.protocol.gs1 import ContainerId, Identifier, UnitId, encode_component
from node.protocol.issuance import recover_issuer
from node.protocol.merkle import leaf_hash
from api.readmodel.scans import Flag, ScanOutcome

Verdict = Literal["genuine", "unverified", "suspicious", "unknown"]
CheckStatus = Literal["passed", "failed", "pending"]


class PassportError(WaymarkError):
    code = "passport_error"


# --- the passport's shape (documented in the OpenAPI spec; the builder emits the same keys) ----


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class OrgRef(_Model):
    id: int
    name: str
    country: str = Field(description="ISO 3166-1 alpha-2")


class Reason(_Model):
    code: str = Field(description="Stable code, e.g. event_failed, events_pending, too_many_devices")
    message: str


class CheckResult(_Model):
    name: str = Field(description="event_hash | signature | role | merkle_proof | anchor | confirmations")
    status: CheckStatus
    detail: str


class MerkleInfo(_Model):
    root: str
    leaf: str
    leaf_index: int | None = None
    proof: list[str]


class AnchorInfo(_Model):
    tx_hash: str | None = None
    block_number: int
    block_time: int = Field(description="Unix seconds of the anchoring block")
    org_id: int
    confirmations: int


class Verification(_Model):
    status: Literal["verified", "pending", "failed"]
    failed_check: str | None = None
    failure: str | None = Field(None, description="Failure code of the first failed check (as node.protocol.verification names them)")
    checks: list[CheckResult]
    marks: list[Literal["late", "signer_revoked"]] = Field(
        default_factory=list,
        description="Marks of a verified event, never plainly genuine: late (anchored past the maximum reporting delay "
                    "after its event time), signer_revoked (the signer had lost its role before the batch was anchored)")
    signer: str
    signature: str
    subject: str
    signer_org: OrgRef | None = None
    signer_role: str | None = Field(None, description="The role the signer held at the event time")
    merkle: MerkleInfo | None = None
    anchor: AnchorInfo | None = None


class DocumentInfo(_Model):
    type: str
    digest: str = Field(description="sha256:<hex> of the document's content")
    status: Literal["available", "erased", "not_held"]
    event_id: str


class SensorExcursion(_Model):
    event_id: str
    time: str
    type: str
    value: float | None = None
    uom: str | None = None
    exception: str | None = None


class LocationRef(_Model):
    id: str = Field(description="Canonical id of the place (readPoint/bizLocation)")
    name: str | None = Field(None, description="From the location's master data; None if no member registered it")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2, from the location's master data")
    unlocode: str | None = None


class Correction(_Model):
    reason: str | None = Field(None, description="CBV error reason, e.g. incorrect_data, did_not_occur")
    declared_at: str = Field(description="declarationTime of the EPCIS error declaration")
    corrective_event_ids: list[str] = Field(default_factory=list, description="Event hashes of the corrective events")


class TimelineEvent(_Model):
    id: str = Field(description="CBV 2.0 event hash ni:///sha-256;<hex>?ver=CBV2.0")
    digest: str
    type: str
    action: str | None = None
    biz_step: str | None = Field(None, description="Short name: shipping, wmc:cleared, ...")
    disposition: str | None = None
    event_time: str
    event_time_unix: int
    read_point: str | None = None
    biz_location: str | None = None
    via: list[str] = Field(description="Containers (canonical ids, innermost first) through which the event applies; empty for the unit's own events")
    location: LocationRef | None = Field(None, description="Where the event happened (bizLocation, else readPoint) with its master data")
    correction: Correction | None = Field(None, description="Set when the event was declared erroneous (EPCIS error declaration)")
    event: dict[str, Any] = Field(description="The EPCIS event as stored, for re-hashing")
    verification: Verification


class RouteStop(_Model):
    location_id: str | None = Field(None, description="Canonical id of the place; None for events that name no place")
    name: str | None = Field(None, description="The place's name from its master data")
    country: str | None = Field(None, description="The place's country (ISO 3166-1 alpha-2), not the reporting organisation's")
    organisations: list[str]
    steps: list[str]
    first: str
    last: str


class ProductInfo(_Model):
    gtin: str
    registered: bool
    manufacturer: OrgRef | None = None
    master: dict[str, Any] | None = Field(None, description="Master data (api.readmodel.product_master): status verified | not_held | hash_mismatch, metadataHash, and when verified name, description, images, brand, countryOfOrigin, materials, certifications")


class OwnershipView(_Model):
    claimed: bool
    method: str | None = None
    claimed_at: str | None = None
    by_this_device: bool = False
    state: Literal["active", "claimed", "decommissioned"] = Field("active", description="active -> claimed (by its buyer) -> decommissioned (by its manufacturer)")
    decommissioned_at: str | None = None
    decommission_reason: str | None = None


class ScanView(_Model):
    scans_in_window: int = Field(description="Scans within the clone rules' evidence window")
    devices_in_window: int
    regions_in_window: list[str] = Field(description="Countries set by the operator's trusted proxy")
    flags: list[Reason] = Field(description="The unit's clone signals (the same for every scanner) and the link's own flags")
    suspected_since: str | None = None
    suspected_until: str | None = Field(None, description="The unit's suspicion ages out then unless a new signal extends it")


class EscrowView(_Model):
    state: str = Field(description="Order state only: Created, Funded, Delivered, Disputed, Released, Refunded, Cancelled, Resolved")


class ChainInfo(_Model):
    chain_id: int
    rpc_url: str = Field(description="Read-only JSON-RPC endpoint the scanner page verifies against")
    provenance_registry: str
    consortium_registry: str
    confirmations_required: int


class EventHolders(_Model):
    event_id: str
    nodes: int = Field(description="Member nodes holding the event (this one included)")


class WithheldOrg(_Model):
    org_id: int
    batches: int = Field(description="Batches of this organisation no member node has served in time")


class NetworkView(_Model):
    """node.member.network.holders.network_section: how widely the unit's records are held."""

    member_nodes: int
    holders: list[EventHolders]
    withheld: list[WithheldOrg]


class Passport(_Model):
    id: str = Field(description="Canonical id on id.gs1.org")
    link: str = Field(description="The Digital Link on this resolver")
    kind: Literal["unit", "container"]
    gtin: str | None = None
    lot: str | None = Field(None, description="The lot the unit was commissioned in (its commissioning event's ilmd), else the link's")
    serial: str | None = None
    sscc: str | None = None
    product: ProductInfo | None = None
    verdict: Verdict
    reasons: list[Reason]
    timeline: list[TimelineEvent]
    route: list[RouteStop]
    documents: list[DocumentInfo]
    sensor_excursions: list[SensorExcursion]
    escrow: EscrowView | None = None
    ownership: OwnershipView
    scans: ScanView
    chain: ChainInfo
    network: NetworkView | None = None
    generated_at: str


# --- chain lookups ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgInfo:
    id: int
    name: str
    country: str

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "country": self.country}


class _TTLCache:
    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._data: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = load()
        with self._lock:
            self._data[key] = (now + self.ttl, value)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


class ChainView:
    """Read-only, cached views of the registries for passports, claims and authorisation."""

    def __init__(self, client: ChainClient, deployment: Deployment, *, ttl: float = 30.0) -> None:
        self.client = client
        self.chain_id = client.chain_id
        self.provenance_address = deployment.address("ProvenanceRegistry")
        self.consortium_address = deployment.address("ConsortiumRegistry")
        self.escrow_address = deployment.contracts["TradeEscrow"].address if "TradeEscrow" in deployment.contracts else None
        self.provenance = client.contract("ProvenanceRegistry", self.provenance_address)
        self.consortium = client.contract("ConsortiumRegistry", self.consortium_address)
        self.domain = AttestationDomain(self.chain_id, self.provenance_address)
        self._past = _TTLCache(ttl=10 * 365 * 86400.0, size=200_000)  # facts about the past never change
        self._orgs = _TTLCache(ttl)
        self._current = _TTLCache(ttl)
        self._anchors = _TTLCache(ttl)
        self._head = _TTLCache(1.0, 1)

    def head(self) -> int:
        return int(self._head.get("head", lambda: int(self.client.w3.eth.block_number)))

    def organisation(self, org_id: int) -> OrgInfo | None:
        def load() -> OrgInfo | None:
            if org_id <= 0 or org_id > int(self.client.call(self.consortium.functions.organisationCount())):
                return None
            _id, name, country, _meta, _status = self.client.call(self.consortium.functions.organisation(org_id))
            return OrgInfo(int(org_id), str(name), bytes(country).decode("ascii", "replace"))

        return self._orgs.get(("org", org_id), load)  # type: ignore[no-any-return]

    def organisation_at(self, account: str, at: int) -> int:
        """The organisation `account` belonged to at unix time `at` (0: none)."""
        if at >= self._chain_time():
            return int(self.client.call(self.consortium.functions.organisationOfAt(account, at)))
        return int(self._past.get(("orgAt", account, at), lambda: int(self.client.call(self.consortium.functions.organisationOfAt(account, at)))))

    def has_role_at(self, account: str, role: str, at: int) -> bool:
        """hasRoleAt (node.protocol.verification.Registry); facts older than the head's time are kept."""
        def load() -> bool:
            return bool(self.client.call(self.consortium.functions.hasRoleAt(account, keccak256(role.encode()), at)))

        return load() if at >= self._chain_time() else bool(self._past.get(("roleAt", account, role, at), load))

    def host_of_at(self, org_id: int, at: int) -> int:
        def load() -> int:
            return int(self.client.call(self.consortium.functions.hostOfAt(org_id, at)))

        return load() if at >= self._chain_time() else int(self._past.get(("hostAt", org_id, at), load))

    def max_reporting_delay_at(self, at: int) -> int | None:
        def load() -> int:
            return int(self.client.call(self.consortium.functions.maxReportingDelayAt(at)))

        return load() if at >= self._chain_time() else int(self._past.get(("delayAt", at), load))

    def current_org(self, account: str) -> int:
        return int(self._current.get(("orgOf", account), lambda: int(self.client.call(self.consortium.functions.organisationOf(account)))))

    def has_role(self, account: str, role: str) -> bool:
        return bool(self._current.get(("hasRole", account, role), lambda: bool(self.client.call(self.consortium.functions.hasRole(account, keccak256(role.encode()))))))

    def product_org(self, gtin: str) -> int | None:
        """The organisation that registered product class `gtin` (None if unregistered)."""
        def load() -> int | None:
            org_id, _registered_at, _meta = self.client.call(self.provenance.functions.productOf(int(gtin)))
            return int(org_id) or None

        return self._current.get(("product", gtin), load)  # type: ignore[no-any-return]

    def product_hash(self, gtin: str) -> bytes | None:
        """The master data hash registered with product class `gtin` (None if unregistered)."""
        def load() -> bytes | None:
            org_id, _registered_at, metadata = self.client.call(self.provenance.functions.productOf(int(gtin)))
            return bytes(metadata) if org_id else None

        return self._current.get(("productHash", gtin), load)  # type: ignore[no-any-return]

    def anchor_of(self, root: bytes, org_id: int) -> Anchor | None:
        """`org_id`'s anchor of `root` (anchorOfOrganisation; node.protocol.verification.AnchorOf), kept for
        the cache's time: which anchor counts for an event is node.protocol.verification's rule."""
        def load() -> Anchor | None:
            org, block_number, timestamp, count = self.client.call(self.provenance.functions.anchorOfOrganisation(root, org_id))
            return Anchor(root, int(org), int(block_number), int(timestamp), int(count)) if int(org) else None

        return self._anchors.get(("anchor", root, org_id), load)  # type: ignore[no-any-return]

    def head_time(self) -> int:
        """The latest block's time (cached for a second)."""
        return self._chain_time()

    def _chain_time(self) -> int:
        # Facts at or after the latest block's time may still change; only older ones are cached.
        return int(self._head.get("time", lambda: int(self.client.w3.eth.get_block("latest")["timestamp"])))


# --- building ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredAttestation:
    digest: bytes
    signer: str
    signature: bytes
    subject: bytes
    leaf_index: int | None
    proof: bytes | None
    root: bytes | None
    batch_status: str | None
    tx_hash: bytes | None
    role: str | None = None
    signer_org: int | None = None
    verified_at_ms: int | None = None  # when the node checked signature and role (accept or import)


_STORED_ATTESTATIONS = (  # built once: building a statement costs more than running it
    select(
        Event.digest, Event.signer, Event.signature, Event.subject, Event.leaf_index, Event.proof,
        Batch.root, Batch.status, Batch.tx_hash, Event.role, Event.signer_org, Event.verified_at_ms,
    )
    .outerjoin(Batch, Batch.id == Event.batch_id)
    .where(Event.digest.in_(bindparam("digests", expanding=True)))
)


def stored_attestations(db: Database, digests: Sequence[bytes]) -> dict[bytes, StoredAttestation]:
    """Signature, proof and batch of stored events, by digest (one query; reads node.db's tables)."""
    if not digests:
        return {}
    with db.connect() as conn:
        rows = conn.execute(_STORED_ATTESTATIONS, {"digests": list(digests)}).all()
    return {
        bytes(r[0]): StoredAttestation(
            bytes(r[0]), r[1], bytes(r[2]), bytes(r[3]), r[4], bytes(r[5]) if r[5] is not None else None,
            bytes(r[6]) if r[6] is not None else None, r[7], bytes(r[8]) if r[8] is not None else None,
            r[9], int(r[10]) if r[10] is not None else None, int(r[11]) if r[11] is not None else None,
        )
        for r in rows
    }


DocumentStatus = Callable[[str], Literal["available", "erased", "not_held"]]


def documents_not_held(_digest: str) -> Literal["available", "erased", "not_held"]:
    """Hook: this API holds no document store yet, so every document is shown as not held here."""
    return "not_held"


def corrections_none(_event_ids: Sequence[str]) -> Mapping[str, dict[str, Any]]:
    """Hook for the corrections (EPCIS error declarations) of events, by event id: none known.
    Each value is {reason, declaredAt, correctiveEventIds}."""
    return {}


ESCROW_STATES = ("None", "Created", "Funded", "Delivered", "Disputed", "Released", "Refunded", "Cancelled", "Resolved")
_SHIPMENT_REF = 9  # index of OrderTerms.shipmentRef in the terms tuple


@dataclass(frozen=True)
class EscrowOrder:
    order_id: int
    buyer: str
    shipment_ref: bytes
    state: str


class EscrowOrders:
    """Escrow orders as the indexer stored their `OrderCreated` logs, with their state read from
    TradeEscrow. Orders cover a shipment by `OrderTerms.shipmentRef`, the keccak256 of the
    canonical id of a unit, its lot or a container. Without a TradeEscrow in the deployment
    (or before the indexer has seen one) every lookup answers None.
    """

    def __init__(self, db: Database, chain: ChainView) -> None:
        self.db = db
        self.chain = chain
        self.contract = chain.client.contract("TradeEscrow", chain.escrow_address) if chain.escrow_address else None

    def _created(self, key: str | None = None) -> list[tuple[int, str, bytes]]:
        from node.db import ChainLog

        if self.contract is None:
            return []
        query = select(ChainLog.args).where(
            ChainLog.chain_id == self.chain.chain_id, ChainLog.contract == "TradeEscrow", ChainLog.event == "OrderCreated"
        )
        if key is not None:
            query = query.where(ChainLog.key == key)
        with self.db.connect() as conn:
            rows = conn.execute(query).scalars().all()
        found: list[tuple[int, str, bytes]] = []
        for raw in rows:
            args = orjson.loads(raw)
            terms = args.get("terms")
            ref = terms.get("shipmentRef") if isinstance(terms, Mapping) else terms[_SHIPMENT_REF] if isinstance(terms, list) else None
            if isinstance(ref, str) and ref.startswith("0x"):
                found.append((int(args["orderId"]), Web3.to_checksum_address(args["buyer"]), bytes.fromhex(ref[2:])))
        return found

    def _state(self, order_id: int) -> str:
        assert self.contract is not None
        order = self.chain.client.call(self.contract.functions.getOrder(order_id))
        state = int(order[0])
        return ESCROW_STATES[state] if state < len(ESCROW_STATES) else str(state)

    def order(self, order_id: int) -> EscrowOrder | None:
        for found_id, buyer, ref in self._created("0x" + order_id.to_bytes(32, "big").hex()):
            if found_id == order_id:
                return EscrowOrder(order_id, buyer, ref, self._state(order_id))
        return None



class PassportCore:
    """The scan-independent part of a passport, cached between scans.

    Kept as its JSON bytes, not as the dicts it was built from: a cache of thousands of
    passports as nested dicts would be millions of objects for every full garbage collection
    to walk (a pause felt by every request in flight).
    """

    __slots__ = (
        "json", "verdict", "reasons", "pending", "gtin", "manufacturer_org", "containers", "timeline_length", "built_at",
        "order_levels", "orders", "recorded_lot",
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
        self.json: bytes = orjson.dumps(body)
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

    def order_section(self) -> dict[str, str] | None:
        """The state of the order this unit belongs to, as the escrow logs left it now."""
        if self.orders is None or not self.order_levels:
            return None
        order = self.orders.order_of(self.order_levels)
        return {"state": order.state} if order is not None else None

    @property
    def body(self) -> dict[str, Any]:
        """The passport core as data (parsed again: for tests and rare callers)."""
        return orjson.loads(self.json)  # type: ignore[no-any-return]


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _short_step(step: Any) -> str | None:
    if not isinstance(step, str):
        return None
    for prefix in ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:", "cbv:BizStep-"):
        if step.startswith(prefix):
            return step[len(prefix):]
    if step.startswith("https://ns.waymark.example/customs/"):
        return "wmc:" + step.rsplit("/", 1)[1]
    return step


def _short_disposition(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    for prefix in ("https://ref.gs1.org/cbv/Disp-", "urn:epcglobal:cbv:disp:", "cbv:Disp-"):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def _location_id(value: Any) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


class PassportBuilder:
    """Builds passports from the node's database and the chain."""

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
        history: Callable[[Database, str], list[HistoryEntry]] = unit_history,
        corrections: Callable[[Sequence[str]], Mapping[str, dict[str, Any]]] = corrections_none,
    ) -> None:
        self.db = db
        self.chain = chain
        self.resolver_url = resolver_url.rstrip("/")
        self.confirmations = confirmations
        self.document_status = document_status
        self.orders = orders
        self.history = history
        self.corrections = corrections
        self._memo: dict[bytes, tuple[tuple[Outcome, ...], Attested | None]] = {}
        self._watermark: tuple[float, tuple[Any, ...]] | None = None
        self.chain_info = {
            "chainId": chain.chain_id,
            "rpcUrl": browser_rpc_url,
            "provenanceRegistry": chain.provenance_address,
            "consortiumRegistry": chain.consortium_address,
            "confirmationsRequired": confirmations,
        }

    def build(self, identifier: Identifier) -> PassportCore | None:
        """The passport core of a unit or container; None if nothing on this network names it."""
        entries = self.history(self.db, identifier.canonical_uri)
        return self._assemble(identifier, entries) if entries else None

    def watermark(self) -> tuple[Any, ...]:
        """What the node's tables look like, cheaply: if it has not changed since a passport was
        built, no event was added, anchored or re-anchored since, and the passport still holds.
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
            )
        self._watermark = (now, mark)
        return mark

    def cached_watermark(self) -> tuple[Any, ...] | None:
        """The watermark read less than a second ago, if any (no database access)."""
        cached = self._watermark
        return cached[1] if cached is not None and time.monotonic() - cached[0] < 1.0 else None

    def issued_only(self, identifier: UnitId) -> PassportCore:
        """The passport of a code its manufacturer signed but which has no events yet."""
        return self._assemble(identifier, [])

    # ---- assembly ------------------------------------------------------------------------------

    def _assemble(self, identifier: Identifier, entries: list[HistoryEntry]) -> PassportCore:
        chain = self.chain
        head = chain.head()
        stored = stored_attestations(self.db, [digest_from_hash(e.event_id) for e in entries])
        timeline: list[dict[str, Any]] = []
        reasons: list[dict[str, str]] = []
        documents: list[dict[str, Any]] = []
        excursions: list[dict[str, Any]] = []
        failed = pending = False
        marked: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            attestation = stored.get(digest_from_hash(entry.event_id))
            if attestation is None:  # removed between the two reads
                continue
            item = self._timeline_event(entry, attestation, head)
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
            documents.extend(self._documents(entry))
            excursions.extend(_excursions(entry))

        corrections = self.corrections([item["id"] for item in timeline]) if timeline else {}
        for item in timeline:
            item["correction"] = corrections.get(item["id"])
        gtin = identifier.gtin if isinstance(identifier, UnitId) else None
        manufacturer_org = chain.product_org(gtin) if gtin else None
        product = None
        if gtin is not None:
            org = chain.organisation(manufacturer_org) if manufacturer_org else None
            product = {"gtin": gtin, "registered": manufacturer_org is not None, "manufacturer": org.ref() if org else None,
                       "master": master_section(self.db, gtin, chain.product_hash(gtin)) if manufacturer_org else None}
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
        # --- network (node/network): holders per event, withheld records of the history's organisations
        network = network_section(self.db, timeline)
        for withheld in network["withheld"]:
            reasons.append({"code": "records_withheld", "message": f"some records are withheld: organisation {withheld['orgId']} "
                            f"anchored {withheld['batches']} batch(es) no member node has served"})
        # --- end network
        if not timeline:
            reasons.append({"code": "no_events", "message": "the code was issued by its manufacturer but has no recorded events yet: "
                            "if the unit was made recently, members may still be delivering its records"})

        if failed:
            verdict: Verdict = "suspicious"
        elif reasons:
            verdict = "unverified"
        else:
            verdict = "genuine"

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
        core = PassportCore(body, verdict, reasons, pending, gtin, manufacturer_org)
        if self.orders is not None:
            core.order_levels = order_levels(identifier, core.containers)
            core.orders = self.orders
            self.orders.fresh()
            self.orders.orders_for(k for level in core.order_levels for k in level)  # in memory before the first scan
        return core

    def _documents(self, entry: HistoryEntry) -> list[dict[str, Any]]:
        found = []
        event: Mapping[str, Any] = entry.event
        for ref in event.get("wm:documents") or ():
            if not isinstance(ref, Mapping):
                continue
            digest = ref.get("wm:digest")
            if not isinstance(digest, str):
                continue
            found.append({"type": str(ref.get("wm:documentType", "document")), "digest": digest, "status": self.document_status(digest), "eventId": entry.event_id})
        return found

    def _timeline_event(self, entry: HistoryEntry, attestation: StoredAttestation, head: int) -> dict[str, Any]:
        event = entry.event
        event_time_unix = entry.event_time_ms // 1000
        return {
            "id": entry.event_id,
            "digest": _hex(attestation.digest),
            "type": entry.event_type,
            "action": event.get("action") if isinstance(event.get("action"), str) else None,
            "bizStep": _short_step(event.get("bizStep")),
            "disposition": _short_disposition(event.get("disposition")),
            "eventTime": _iso_ms(entry.event_time_ms),
            "eventTimeUnix": event_time_unix,
            "readPoint": _location_id(event.get("readPoint")),
            "bizLocation": _location_id(event.get("bizLocation")),
            "via": list(entry.via),
            "event": event,
            "verification": self.verify(event, attestation, head),
        }

    def verify(self, event: Mapping[str, Any], stored: StoredAttestation, head: int) -> dict[str, Any]:
        """node.protocol.verification's checks of one stored event, as the passport shows them.

        Checks 1-3 (hash, signature, role at the event time) depend only on the stored data and the
        registry's past, so a passing outcome is remembered under a key covering all of it (a changed
        row gets a new key); proof, anchor, confirmations and marks are checked each time (anchors
        through ChainView's short cache). Signature and role are taken from the node's record of
        its own check when it has one (node.protocol.verification.Recorded).
        """
        chain = self.chain
        key = _memo_key(event, stored)
        memo = self._memo.get(key)
        if memo is None:
            recorded = (Recorded(stored.role, stored.signer_org, stored.verified_at_ms)
                        if stored.verified_at_ms is not None and stored.signer_org is not None and stored.role else None)
            memo = verify_attestation(chain.domain, event, stored.digest, stored.signer, stored.signature, chain,
                                      recorded=recorded)
            if memo[1] is not None:
                if len(self._memo) >= 200_000:
                    self._memo.clear()
                self._memo[key] = memo
        anchored = stored.root is not None and stored.proof is not None and stored.batch_status in ("anchored", "confirmed")
        inclusion = Inclusion.from_concatenated(stored.root, stored.proof) if anchored else None  # type: ignore[arg-type]
        result = verify_anchoring(stored.digest, *memo, chain, inclusion, chain.anchor_of, Head(head, chain.head_time()),
                                  confirmations=self.confirmations)
        org = chain.organisation(result.signer_org) if result.signer_org else None
        attested = memo[1]
        return {
            "status": result.status.value,
            "failedCheck": result.failed_check.value if result.failed_check else None,
            "failure": result.failure,
            "checks": [o.to_json() for o in result.outcomes],
            "marks": sorted(m.value for m in result.marks),
            "signer": stored.signer,
            "signature": _hex(stored.signature),
            "subject": _hex(stored.subject),
            "signerOrg": org.ref() if org else None,
            "signerRole": result.role,
            "merkle": {
                "root": _hex(inclusion.root), "leaf": _hex(leaf_hash(stored.digest, attested.signer)),
                "leafIndex": stored.leaf_index, "proof": [_hex(p) for p in inclusion.proof],
            } if inclusion is not None and attested is not None else None,
            "anchor": {
                "txHash": _hex(stored.tx_hash) if stored.tx_hash else None,
                "blockNumber": result.anchor.block_number,
                "blockTime": result.anchor.timestamp,
                "orgId": result.anchor.org_id,
                "confirmations": result.confirmations,
            } if result.anchor is not None else None,
        }


def _memo_key(event: Mapping[str, Any], stored: StoredAttestation) -> bytes:
    return hashlib.sha256(
        orjson.dumps(event, option=orjson.OPT_SORT_KEYS) + stored.digest + stored.signature + stored.subject
        + stored.signer.encode() + f"|{stored.role}|{stored.signer_org}|{stored.verified_at_ms}".encode()
    ).digest()


def order_levels(identifier: Identifier, containers: Iterable[str]) -> tuple[tuple[bytes, ...], ...]:
    """`shipment_keys` one level each, most specific first: the unit, its lot, then each
    container it travelled in, innermost first (the rule is node.escrow.orders')."""
    return tuple((key,) for key in shipment_keys(identifier, containers))


def shipment_keys(identifier: Identifier, containers: Iterable[str]) -> list[bytes]:
    """What an escrow order's shipmentRef may be for this unit: keccak256 of its canonical id,
    of its lot's (https://id.gs1.org/01/<gtin>/10/<lot>), or of a container it travelled in."""
    keys = [keccak256(identifier.canonical_uri.encode())]
    if isinstance(identifier, UnitId) and identifier.lot is not None:
        keys.append(keccak256(f"https://id.gs1.org/01/{identifier.gtin}/10/{encode_component(identifier.lot)}".encode()))
    for container in containers:
        key = keccak256(container.encode())
        if key not in keys:
            keys.append(key)
    return keys


def _excursions(entry: HistoryEntry) -> list[dict[str, Any]]:
    found = []
    event: Mapping[str, Any] = entry.event
    for element in event.get("sensorElementList") or ():
        if not isinstance(element, Mapping):
            continue
        raw_metadata = element.get("sensorMetadata")
        metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
        for report in element.get("sensorReport") or ():
            if not isinstance(report, Mapping) or not report.get("exception"):
                continue
            value = report.get("value")
            found.append({
                "eventId": entry.event_id,
                "time": str(report.get("time") or metadata.get("time") or event.get("eventTime") or ""),
                "type": str(report.get("type", "")).rsplit("/", 1)[-1],
                "value": float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
                "uom": report.get("uom") if isinstance(report.get("uom"), str) else None,
                "exception": str(report.get("exception")).rsplit("/", 1)[-1],
            })
    return found


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


def finish(core: PassportCore, outcome: ScanOutcome, link_flags: Sequence[Flag] = ()) -> bytes:
    """The passport JSON: the cached core plus the unit's suspicion and ownership (the same for
    every scanner) and the flags of the link presented (issuance signature, lot)."""
    suspicion = outcome.suspicion
    flags = [*(suspicion.reasons if suspicion else ()), *link_flags]
    reasons = [*core.reasons, *({"code": f.rule, "message": f.message} for f in flags)]
    verdict = "suspicious" if flags else core.verdict
    ownership = outcome.ownership
    dynamic = {
        "escrow": core.order_section(),
        "verdict": verdict,
        "reasons": reasons,
        "ownership": {
            "claimed": ownership.claimed,
            "method": ownership.method,
            "claimedAt": _iso_ms(ownership.claimed_at_ms) if ownership.claimed_at_ms else None,
            "byThisDevice": ownership.by_this_device,
            "state": ownership.state,
            "decommissionedAt": _iso_ms(ownership.decommissioned_at_ms) if ownership.decommissioned_at_ms else None,
            "decommissionReason": ownership.decommission_reason,
        },
        "scans": {
            "scansInWindow": outcome.scans_in_window,
            "devicesInWindow": outcome.devices_in_window,
            "regionsInWindow": list(outcome.regions_in_window),
            "flags": [{"code": f.rule, "message": f.message} for f in flags],
            "suspectedSince": _iso_ms(suspicion.since_ms) if suspicion else None,
            "suspectedUntil": _iso_ms(suspicion.until_ms) if suspicion else None,
        },
        "generatedAt": _iso_ms(int(time.time() * 1000)),
    }
    # The core is serialised once per cache entry; the per-scan part is spliced in front of it.
    return orjson.dumps(dynamic)[:-1] + b"," + core.json[1:]
