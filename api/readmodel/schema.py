"""The passport's shape as the API documents it (OpenAPI): the builder (api.readmodel.passport)
emits the same keys, in camelCase. Kept apart from the builder so that the schema reads on its
own and the builder is not tied to pydantic (passports are built as plain data and serialised
with orjson; these models are used for the documentation only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Verdict = Literal["genuine", "unverified", "suspicious", "unknown"]
CheckStatus = Literal["passed", "failed", "pending"]


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
    """The unit's state, the same in the passport and in the ownership routes' answers."""

    claimed: bool
    method: str | None = None
    claimed_at: str | None = Field(None, description="UTC with milliseconds, as every time in these answers: 2025-01-31T12:00:00.250Z")
    by_this_device: bool = False
    state: Literal["active", "claimed", "decommissioned"] = Field("active", description="active -> claimed (by its buyer) -> decommissioned (by its manufacturer)")
    decommissioned_at: str | None = Field(None, description="UTC with milliseconds")
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
