"""Manufacturers' clone alerts: what the clone rules flagged about their products."""

from __future__ import annotations

import time

import anyio
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import ManufacturerDep, ServicesDep
from api.errors import ErrorBody

router = APIRouter(prefix="/api/v1", tags=["manufacturers"])


class AlertView(BaseModel):
    id: int
    gtin: str | None = None
    unit: str = Field(description="Canonical id of the unit the rule tripped for")
    rule: str = Field(description="too_many_devices | too_many_scans | implausible_places | scanned_after_claim | unknown_serial | bad_issuance_signature")
    detail: str
    created_at: str = Field(alias="createdAt")


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
            AlertView(id=a.id, gtin=a.gtin, unit=a.unit_key, rule=a.rule, detail=a.detail,
                      createdAt=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a.created_at_ms / 1000)))
            for a in found
        ],
        nextAfter=found[-1].id if found else after,
    )
