"""Master data routes: a product's master data (authorised by the hash registered on chain) and
locations' master data (signed by a member organisation's account)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from api.deps import ServicesDep, SignedRequest
from api.errors import ApiError, BadRequest, ErrorBody, Forbidden, UnknownCode
from api.readmodel.locations import LocationRecord, store_location
from api.readmodel.product_master import MasterDataError, MasterDataHashMismatch, ProductMaster, store_master, stored_master
from api.routes.digital_link import CORS, GTIN_PATTERN, JSON, PathParam
from node.protocol.gs1 import normalize_gtin


router = APIRouter()


class Conflict(ApiError):
    code = "conflict"
    status = 409

    def __init__(self, problem: str, code: str | None = None) -> None:
        if code:
            self.code = code
        super().__init__(problem)


# --- master data --------------------------------------------------------------------------------------


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its $defs inlined (an OpenAPI operation cannot use local $defs)."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


@router.put(
    "/api/v1/products/{gtin}/master",
    tags=["products"],
    summary="Store a product's master data",
    responses={400: {"model": ErrorBody}, 409: {"model": ErrorBody, "description": "The content does not hash to the metadata hash registered on chain"}},
    openapi_extra={"requestBody": {"required": True, "content": {JSON: {"schema": _inline_schema(ProductMaster)}}}},
)
async def put_master(request: Request, services: ServicesDep, gtin: str = PathParam(GTIN_PATTERN, "gtin")) -> dict[str, str]:
    """Store the master data (name, description, images, brand, countryOfOrigin, materials,
    certifications; a JSON object, at most 64 KiB) of a registered product. The body's bytes
    must hash (keccak256) to the metadata hash its manufacturer registered on chain with
    `registerProduct`: that hash is the authorisation, so no signature is needed."""
    content = await request.body()
    normalized = normalize_gtin(gtin)
    registered = await anyio.to_thread.run_sync(services.chain.product_hash, normalized)
    try:
        await anyio.to_thread.run_sync(store_master, services.db, normalized, content, registered)
    except MasterDataError as error:
        raise BadRequest(str(error), error.field or "body", error.code) from None
    except MasterDataHashMismatch as error:
        raise Conflict(str(error), error.code) from None
    services.passports.clear()
    return {"gtin": normalized, "metadataHash": "0x" + (registered or b"").hex()}


@router.get("/api/v1/products/{gtin}/master", tags=["products"], summary="A product's master data", responses={400: {"model": ErrorBody, "description": "Malformed GTIN"}, 404: {"model": ErrorBody}})
async def get_master(services: ServicesDep, gtin: str = PathParam(GTIN_PATTERN, "gtin")) -> Response:
    """The master data bytes exactly as stored (their keccak256 is the product's metadata hash on chain)."""
    normalized = normalize_gtin(gtin)
    content = await anyio.to_thread.run_sync(stored_master, services.db, normalized)
    if content is None:
        raise UnknownCode(f"https://id.gs1.org/01/{normalized}")
    return Response(content, media_type=JSON, headers=CORS)


@router.put("/api/v1/locations", tags=["locations"], summary="Register a location's master data", responses={400: {"model": ErrorBody, "description": "Malformed location record"}, 401: {"model": ErrorBody}, 403: {"model": ErrorBody}})
async def put_location(record: LocationRecord, signed: SignedRequest, services: ServicesDep) -> dict[str, Any]:
    """Store a readPoint/bizLocation's master data (name, country; optional unlocode, address).
    Signed request (headers Waymark-Account, Waymark-Timestamp, Waymark-Signature; see api.auth)
    by an account of an active member organisation; the organisation is recorded."""
    org_id = await anyio.to_thread.run_sync(services.chain.current_org, signed.account)
    if not org_id:
        raise Forbidden(f"{signed.account} belongs to no member organisation")
    await anyio.to_thread.run_sync(store_location, services.db, record, org_id)
    services.passports.clear()
    return {"id": record.id, "orgId": org_id}
