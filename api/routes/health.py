"""Health, liveness, Prometheus metrics and the page's configuration."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.responses import Response

from api.deps import ServicesDep
from api.routes.answers import config_json

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(description="ok | degraded")
    database: str
    chain: str
    chain_id: int | None = Field(None, alias="chainId")
    head: int | None = None


class PageConfig(BaseModel):
    chain_id: int = Field(alias="chainId")
    rpc_url: str = Field(alias="rpcUrl", description="Read-only JSON-RPC URL the page verifies against")
    provenance_registry: str = Field(alias="provenanceRegistry")
    consortium_registry: str = Field(alias="consortiumRegistry")
    confirmations_required: int = Field(alias="confirmationsRequired")
    resolver: str
    languages: list[str]


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Database or chain unreachable"}})
async def health(services: ServicesDep) -> Response:
    """Whether the database and the chain answer."""

    def probe() -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok"}
        try:
            with services.db.connect() as conn:
                conn.execute(text("SELECT 1"))
            report["database"] = "ok"
        except Exception as error:  # noqa: BLE001 - health reports, it does not fail
            report.update(status="degraded", database=f"unreachable: {type(error).__name__}")
        try:
            report["head"] = int(services.client.w3.eth.block_number)
            report["chainId"] = services.client.chain_id
            report["chain"] = "ok"
        except Exception as error:  # noqa: BLE001
            report.update(status="degraded", chain=f"unreachable: {type(error).__name__}")
        return report

    report = await anyio.to_thread.run_sync(probe)
    return Response(orjson.dumps(report), status_code=200 if report["status"] == "ok" else 503, media_type="application/json")


@router.get("/health/live", response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def live() -> Response:
    """Liveness: a constant answer (also the benchmark's baseline route)."""
    return Response(b"ok", media_type="text/plain")


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics."""
    services.metrics.cache_size.set(len(services.passports))
    services.metrics.count_builds(services.passports.builds)
    services.metrics.cache_bytes.set(services.passports.bytes)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/config", response_model=PageConfig, tags=["scan"])
async def config(services: ServicesDep) -> Response:
    """What the scanner page needs: the chain, its read-only RPC URL and the registries' addresses."""
    return Response(config_json(services), media_type="application/json")

