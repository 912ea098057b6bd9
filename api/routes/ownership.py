"""Units' states: ownership claims (buyers), claim-code registration and decommissioning (manufacturers).

A unit is `active`, then `claimed` by its buyer, and may be `decommissioned` by its
manufacturer (from either state). Only these routes move it.

A buyer claims a unit once, with either

* the one-time code printed inside its packaging (`method: "code"`); only its hash is kept,
  registered beforehand by the manufacturer; or
* the escrow order that bought it (`method: "escrow"`): an EIP-712 `OwnershipClaim(string unit,
  uint256 orderId,uint64 issuedAt)` signed by the order's buyer account (domain "Waymark API",
  version "1", chainId); the order must cover the unit (its shipmentRef is the unit's, its
  lot's or one of its containers' id hash) and be Delivered, Released or Resolved.

Later scans show the unit as claimed. A scan from another device is a clone signal: the first
(a household member, a gift, a resale) alerts the manufacturer (`handed_on_after_claim`), more
make the unit suspicious for every scanner (`scanned_after_claim`; see api.readmodel.scans).

A manufacturer decommissions a unit (destroyed, recalled, expired, stolen, returned, other) with
a signed request (api.auth: account, timestamp, signature over method, path and body; replayed
requests are refused) by an account of the organisation that registered the unit's GTIN. Any
later scan by a device other than its claimer's is a clone signal (`scanned_after_decommission`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from api.auth import claim_digest
from api.deps import ManufacturerDep, ScanContextDep, ScanRateLimit, ServicesDep
from api.errors import BadRequest, ErrorBody, Forbidden
from api.routes.answers import core_for
from api.routes.digital_link import parse_any
from api.readmodel.escrow import EscrowOrders, shipment_keys
from api.readmodel.schema import OwnershipView
from node.protocol.crypto import SignatureError, parse_signature, recover_digest
from node.protocol.gs1 import UnitId
from api.readmodel.claim_codes import ClaimRejected
from api.readmodel.clone_rules import DecommissionReason

router = APIRouter(prefix="/api/v1", tags=["ownership"])

CLAIMABLE_STATES = ("Delivered", "Released", "Resolved")


class CodeClaim(BaseModel):
    method: Literal["code"]
    uri: str = Field(min_length=1, max_length=2048, description="The unit's Digital Link")
    code: str = Field(min_length=1, max_length=64, description="The one-time code from inside the packaging")


class EscrowClaim(BaseModel):
    method: Literal["escrow"]
    uri: str = Field(min_length=1, max_length=2048, description="The unit's Digital Link")
    order_id: str = Field(alias="orderId", min_length=1, max_length=80, description="Escrow order id (decimal or 0x hex)")
    issued_at: int = Field(alias="issuedAt", ge=0, lt=2**64, description="Unix seconds when the claim was signed")
    signature: str = Field(min_length=130, max_length=140, description="Buyer's EIP-712 OwnershipClaim signature (0x + 65 bytes)")


ClaimRequest = Annotated[CodeClaim | EscrowClaim, Body(discriminator="method")]


_CLAIM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed code or request"},
    401: {"model": ErrorBody, "description": "The escrow claim's signature does not verify"},
    404: {"model": ErrorBody, "description": "Unknown code"},
    409: {"model": ErrorBody, "description": "The unit is already claimed"},
    422: {"model": ErrorBody, "description": "Claim refused (wrong code, no code registered, order not covering the unit, too many attempts)"},
    429: {"model": ErrorBody, "description": "Rate limit of this client exceeded"},
}


@router.get("/ownership", response_model=OwnershipView, responses=_CLAIM_RESPONSES, summary="Whether a unit is claimed")
async def ownership(_limit: ScanRateLimit, services: ServicesDep, context: ScanContextDep, uri: str = Query(..., min_length=1, max_length=2048)) -> dict[str, Any]:
    link = parse_any(uri)
    await core_for(services, link)
    return services.scans.ownership(link.identifier.canonical_uri, context.device).view()


@router.post("/ownership/claims", status_code=201, response_model=OwnershipView, responses=_CLAIM_RESPONSES, summary="Claim ownership of a unit")
async def claim(_limit: ScanRateLimit, services: ServicesDep, context: ScanContextDep, request: ClaimRequest) -> dict[str, Any]:
    link = parse_any(request.uri)
    if not isinstance(link.identifier, UnitId):
        raise BadRequest("only serialised units can be claimed, not logistic units", "uri")
    core = await core_for(services, link)
    key = link.identifier.canonical_uri
    metrics = services.metrics
    try:
        if isinstance(request, CodeClaim):
            result = await anyio.to_thread.run_sync(services.scans.claim_with_code, key, request.code, context.device)
        else:
            order_id = _order_id(request.order_id)
            try:
                buyer = recover_digest(claim_digest(services.chain.chain_id, key, order_id, request.issued_at), parse_signature(request.signature))
            except SignatureError as error:
                raise BadRequest(f"the claim signature does not verify: {error.problem}", "signature", "bad_signature") from None
            orders = EscrowOrders(services.db, services.chain)
            order = await anyio.to_thread.run_sync(orders.order, order_id)
            if order is None:
                raise ClaimRejected(key, "unknown_order", f"escrow order {order_id} is not known to this node")
            if order.buyer != buyer:
                raise ClaimRejected(key, "not_buyer", f"the claim is signed by {buyer}, not by the order's buyer")
            if order.shipment_ref not in shipment_keys(link.identifier, core.containers):
                raise ClaimRejected(key, "order_does_not_cover", "the order's shipment is not this unit, its lot or a container it travelled in")
            if order.state not in CLAIMABLE_STATES:
                raise ClaimRejected(key, "order_not_delivered", f"the order is {order.state}; a unit is claimed after delivery")
            result = await anyio.to_thread.run_sync(lambda: services.scans.claim_with_order(key, order_id=str(order_id), owner=buyer, device=context.device))
    except ClaimRejected as error:
        metrics.claims.labels(request.method, error.reason).inc()
        raise
    metrics.claims.labels(request.method, "claimed").inc()
    return result.view()


def _order_id(text: str) -> int:
    value = text.strip()
    try:
        number = int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        raise BadRequest("orderId must be a decimal number or 0x hex", "orderId") from None
    if not 0 <= number < 2**256:
        raise BadRequest("orderId must fit uint256", "orderId")
    return number


# --- manufacturers: claim codes -------------------------------------------------------------------


class ClaimCodeEntry(BaseModel):
    uri: str = Field(min_length=1, max_length=2048, description="The unit's Digital Link")
    code_hash: str = Field(alias="codeHash", pattern=r"^0x[0-9a-fA-F]{64}$", description="api.readmodel.scans.claim_code_hash(canonical id, code), 0x hex")


class ClaimCodes(BaseModel):
    codes: list[ClaimCodeEntry] = Field(min_length=1, max_length=10_000)


class Registered(BaseModel):
    registered: int = Field(description="Codes stored now")
    already: int = Field(description="Units that already had a code (the first one stays)")


@router.post(
    "/claim-codes", response_model=Registered, tags=["manufacturers"], summary="Register claim-code hashes",
    responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody, "description": "Missing or bad request signature"},
               403: {"model": ErrorBody, "description": "Not a manufacturer, or not this product's"}},
)
async def register_claim_codes(maker: ManufacturerDep, services: ServicesDep, request: ClaimCodes) -> Registered:
    """A manufacturer registers the hashes of the one-time codes it put inside units' packaging.

    Signed request (headers Waymark-Account, Waymark-Timestamp, Waymark-Signature; see api.auth)
    by an account of the organisation that registered each unit's GTIN.
    """
    entries: list[tuple[str, bytes]] = []
    for index, entry in enumerate(request.codes):
        try:
            link = parse_any(entry.uri)
        except Exception as error:  # noqa: BLE001 - name the entry at fault
            raise BadRequest(f"codes[{index}].uri: {error}", f"codes[{index}].uri", "invalid_identifier") from None
        if not isinstance(link.identifier, UnitId):
            raise BadRequest(f"codes[{index}].uri is not a serialised unit", f"codes[{index}].uri")
        entries.append((link.identifier.canonical_uri, bytes.fromhex(entry.code_hash[2:])))

    def check_and_store() -> int:
        for gtin in {key.split("/")[4] for key, _ in entries}:
            if services.chain.product_org(gtin) != maker.org_id:
                raise Forbidden(f"product {gtin} is not registered to organisation {maker.org_id}")
        return services.scans.register_claim_codes(entries, org_id=maker.org_id, registered_by=maker.account)

    stored = await anyio.to_thread.run_sync(check_and_store)
    return Registered(registered=stored, already=len({k for k, _ in entries}) - stored)



# --- manufacturers: decommissioning ----------------------------------------------------------------


class Decommission(BaseModel):
    uri: str = Field(min_length=1, max_length=2048, description="The unit's Digital Link")
    reason: DecommissionReason = Field(description="Why it leaves circulation")


@router.post(
    "/units/decommission", response_model=OwnershipView, tags=["manufacturers"], summary="Decommission a unit",
    responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody, "description": "Missing or bad request signature"},
               403: {"model": ErrorBody, "description": "Not a manufacturer, or not this product's"},
               404: {"model": ErrorBody, "description": "Unknown code"},
               409: {"model": ErrorBody, "description": "Already decommissioned"}},
)
async def decommission(maker: ManufacturerDep, services: ServicesDep, request: Decommission) -> dict[str, Any]:
    """Take a unit out of circulation: its state becomes `decommissioned`, and any later scan by a
    device other than its claimer's is a clone signal (`scanned_after_decommission`).

    Signed request (headers Waymark-Account, Waymark-Timestamp, Waymark-Signature; see api.auth)
    by an account of the organisation that registered the unit's GTIN.
    """
    link = parse_any(request.uri)
    if not isinstance(link.identifier, UnitId):
        raise BadRequest("only serialised units can be decommissioned, not logistic units", "uri")
    await core_for(services, link)
    unit = link.identifier
    if await anyio.to_thread.run_sync(services.chain.product_org, unit.gtin) != maker.org_id:
        raise Forbidden(f"product {unit.gtin} is not registered to organisation {maker.org_id}")
    result = await anyio.to_thread.run_sync(lambda: services.scans.decommission(unit.canonical_uri, by=maker.account, reason=request.reason))
    return result.view()
