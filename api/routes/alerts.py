"""Manufacturers' clone alerts: what the clone rules flagged about their products, and why."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import ManufacturerDep, ServicesDep
from api.errors import ErrorBody
from node.protocol.timestamps import iso_ms

router = APIRouter(prefix="/api/v1", tags=["manufacturers"])


class AlertScan(BaseModel):
    at: str
    region: str | None = Field(None, description="Country set by the operator's trusted proxy; null when unknown")
    device: str = Field(description="Short tag of the device's salted hash: tells scans by one device from scans by others")


class AlertEvidence(BaseModel):
    scans: list[AlertScan] = Field(description="The unit's latest scans the rules read (at most 20), oldest first")
    scans_in_evidence_window: int = Field(alias="scansInEvidenceWindow")
    devices_in_evidence_window: int = Field(alias="devicesInEvidenceWindow")
    devices_per_region: dict[str, int] = Field(alias="devicesPerRegion")
    evidence_window: str = Field(alias="evidenceWindow")
    state: str = Field(description="active | claimed | decommissioned")
    claimed_at: str | None = Field(None, alias="claimedAt")
    claim_device: str | None = Field(None, alias="claimDevice")
    decommissioned_at: str | None = Field(None, alias="decommissionedAt")
    decommission_reason: str | None = Field(None, alias="decommissionReason")


class AlertView(BaseModel):
    id: int
    gtin: str | None = None
    unit: str = Field(description="Canonical id of the unit the rule tripped for")
    rule: str = Field(description="Clone signals (the unit is shown as suspicious): too_many_devices | devices_in_two_places | implausible_places | "
                                  "scanned_after_claim | scanned_after_decommission; alert only: too_many_scans | handed_on_after_claim | unknown_serial | bad_issuance_signature | lot_mismatch")
    detail: str = Field(description="What the rule saw, in words")
    created_at: str = Field(alias="createdAt", description="When the rule first tripped for this unit that UTC day")
    suspected_until: str | None = Field(None, alias="suspectedUntil", description="Until when the unit is shown as suspicious (null: alert only)")
    evidence: AlertEvidence | None = Field(None, description="Why: the scans and regions the rule read (null for alerts raised before evidence was kept)")


class AlertPage(BaseModel):
    alerts: list[AlertView]
    next_after: int = Field(alias="nextAfter", description="Pass as `after` to get the alerts that follow")


@router.get(
    "/alerts", response_model=AlertPage, response_model_by_alias=True, summary="Clone alerts for my products",
    responses={401: {"model": ErrorBody, "description": "Missing or bad request signature"},
               403: {"model": ErrorBody, "description": "Not an account of a manufacturer"}},
)
async def alerts(
    maker: ManufacturerDep,
    services: ServicesDep,
    after: int = Query(0, ge=0, lt=2**62, description="Only alerts with a larger id"),
    limit: int = Query(100, ge=1, le=1000),
    gtin: str | None = Query(None, pattern=r"^\d{14}$", description="Only this product (GTIN-14)"),
) -> AlertPage:
    """Alerts about the products of the signer's organisation, oldest first.

    Signed request (headers Waymark-Account, Waymark-Timestamp, Waymark-Signature; see api.auth)
    by an account of an organisation holding the MANUFACTURER role.
    """
    found = await anyio.to_thread.run_sync(lambda: services.scans.alerts(maker.org_id, after_id=after, limit=limit, gtin=gtin))
    return AlertPage(
        alerts=[
            AlertView(id=a.id, gtin=a.gtin, unit=a.unit_key, rule=a.rule, detail=a.detail, createdAt=iso_ms(a.created_at_ms),
                      suspectedUntil=iso_ms(a.suspected_until_ms) if a.suspected_until_ms else None, evidence=_evidence(a.evidence))
            for a in found
        ],
        nextAfter=found[-1].id if found else after,
    )


def _evidence(stored: dict[str, Any] | None) -> AlertEvidence | None:
    return AlertEvidence.model_validate(stored) if stored is not None else None
