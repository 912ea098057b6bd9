"""The buyer-facing API: GS1 Digital Link resolver, passports and scans, ownership claims,
manufacturers' clone alerts, health and metrics; it serves the scanner page.

    GET  /01/{gtin}/10/{lot}/21/{serial}, /01/{gtin}/21/{serial}, /00/{sscc}
                                 the resolver (HTML page, JSON passport or linkset by Accept)
    GET  /api/v1/scan?uri=       scan a code read by the page (logged for clone detection)
    GET  /api/v1/passport?uri=   a passport without logging a scan
    GET  /api/v1/ownership?uri=, POST /api/v1/ownership/claims    ownership
    POST /api/v1/claim-codes, GET /api/v1/alerts                  manufacturers (signed requests)
    GET  /health, /health/live, /metrics, /api/v1/config, /docs, /openapi.json

Run with `waymark api run`. Settings: WAYMARK_API_ (api.settings), WAYMARK_CHAIN_, WAYMARK_DB_.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from api import errors
from api.auth import RequestVerifier
from api.compression import CompressedAnswers
from api.metrics import Metrics, MetricsMiddleware
from api.ratelimit import RateLimiter
from api.routes import alerts, answers, audit, digital_link, health, ownership, resolver
from api.build_pool import BuildPool
from api.services import PassportCache, Services, load_salt, passport_builder
from api.settings import ApiSettings
from node.chain.client import ChainClient
from node.chain.deploy import load_deployment
from node.db import Database
from node.escrow.orders import OrderIndex
from api.readmodel.chain_view import ChainView
from api.readmodel.clone_rules import CloneRules
from api.readmodel.scans import ScanLog
from node.settings import ChainSettings, DatabaseSettings

log = logging.getLogger("waymark.api")

DESCRIPTION = """\
Scan a product's GS1 Digital Link and get its passport: product and manufacturer, the
verified timeline of the unit and of every case, pallet and container it travelled in, and
a verdict (genuine, unverified, suspicious, unknown).

Errors are JSON `{code, message, field?}`. Public scan routes are rate limited per client
(429 with Retry-After). Writes by manufacturers are authenticated by an EIP-712 signature of
the request (headers `Waymark-Audience`, `Waymark-Account`, `Waymark-Timestamp`, `Waymark-Signature`); there are
no API keys.
"""


def build_services(api: ApiSettings, chain: ChainSettings, database: DatabaseSettings) -> Services:
    client = ChainClient(chain.rpc_url, expected_chain_id=chain.chain_id)
    deployment = load_deployment(chain.deployment_file)
    db = Database(database.url)
    db.migrate()
    view = ChainView(client, deployment, db=db)  # registry history from the indexed logs, the newest from the chain
    orders = OrderIndex(db, client.chain_id)  # escrow orders by shipment key, synced from the indexed logs
    builder = passport_builder(api, chain, db, view, orders)
    rules = CloneRules(
        window_ms=int(api.clone_window_hours * 3_600_000),
        max_devices=api.clone_max_devices,
        max_scans=api.clone_max_scans,
        max_regions=api.clone_max_regions,
        min_travel_ms=int(api.clone_min_travel_minutes * 60_000),
        evidence_window_ms=int(api.clone_evidence_days * 86_400_000),
        max_devices_across_regions=api.clone_max_devices_across_regions,
        claim_handover_devices=api.clone_claim_handover_devices,
        trade_device_units=api.clone_trade_device_units,
        suspicion_ms=int(api.clone_suspicion_days * 86_400_000),
    )
    scans = ScanLog(db, rules)
    builder.scans = scans  # a unit's first build reads its scan window too
    template_path = api.static_dir / "index.html"
    return Services(
        settings=api,
        db=db,
        client=client,
        deployment=deployment,
        chain=view,
        builder=builder,
        passports=PassportCache(builder, ttl=api.passport_ttl, pending_ttl=api.pending_passport_ttl, size=api.passport_cache_size, max_age=api.passport_max_age,
                                max_bytes=api.passport_cache_bytes,
                                # Each build process kept busy while its answers travel back and the API
                                # reads what else the scans need: with two builds per process in flight,
                                # the processes waited (scan.py: 158-210 cold scans/s, 200-228 with four).
                                build_threads=api.passport_build_threads or max(db.read_threads(), 4 * api.passport_build_processes)),
        scans=scans,
        limiter=RateLimiter(api.rate_limit_per_minute, api.rate_limit_burst),
        verifier=RequestVerifier(client.chain_id, api.signed_request_max_age, audience=api.public_url),
        metrics=Metrics(),
        salt=load_salt(api.device_salt_file),
        page_template=template_path.read_bytes() if template_path.exists() else b"<!doctype html><title>Waymark</title><!--WAYMARK-BOOT-->",
    )


class ResolverFastPath:
    """Serves GET /01/... and /00/... straight from `resolver.resolve`, skipping FastAPI's
    per-request parameter solving: the hottest route does its own parsing (from the raw path)
    and error answers anyway. The FastAPI routes of the same paths stay for the OpenAPI spec
    and behave identically (they call the same function). Unexpected exceptions still reach
    the app's 500 handler."""

    def __init__(self, app: Any, services: Any) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"][:4] in ("/01/", "/00/"):
            services = self.services()
            if services is not None:
                response = await resolver.resolve(Request(scope, receive), services)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    api: ApiSettings | None = None,
    chain: ChainSettings | None = None,
    database: DatabaseSettings | None = None,
) -> FastAPI:
    api = api or ApiSettings()
    chain = chain or ChainSettings()
    database = database or DatabaseSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(api, chain, database)
        pool = BuildPool(api.passport_build_processes, api, chain, database) if api.passport_build_processes else None
        if pool is not None:
            pool.start()
            services.builder.remote = pool.build
        services.scans.start(api.scan_flush_interval)
        if services.builder.orders is not None:
            services.builder.orders.start()
        app.state.services = services
        gc.collect()
        gc.freeze()  # what start-up built lives as long as the app: keep it out of every GC pass
        try:
            yield
        finally:
            if services.builder.orders is not None:
                services.builder.orders.stop()
            services.scans.stop()
            if pool is not None:
                pool.close()
            services.db.dispose()

    app = FastAPI(
        title="Waymark buyer API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if api.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if api.docs else None,
        # Metrics are our own Prometheus ones; FastAPI's OpenTelemetry hooks would cost a
        # provider lookup on every request for exporters nobody configured.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    errors.install(app)
    # Inner first: the resolver's fast path, compression of what it and the routes answer, then
    # metrics around everything.
    app.add_middleware(ResolverFastPath, services=lambda: getattr(app.state, "services", None))
    if api.compress:
        app.add_middleware(CompressedAnswers)
    app.add_middleware(MetricsMiddleware, metrics=lambda: getattr(getattr(app.state, "services", None), "metrics", None))
    app.include_router(health.router)
    app.include_router(resolver.router)
    app.include_router(ownership.router)
    app.include_router(alerts.router)
    app.include_router(audit.router)

    dist = api.static_dir / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    app.mount("/static", StaticFiles(directory=Path(dist)), name="static")

    app.openapi = lambda: openapi_spec(app)  # type: ignore[method-assign]

    @app.get("/", response_class=Response, include_in_schema=False)
    async def home(request: Request) -> Response:
        return answers.page(request.app.state.services, 200)

    return app


def openapi_spec(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec, with our error shape for 422 and the linkset schema registered."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    schemas.setdefault("ErrorBody", errors.ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}"))
    for path in spec["paths"].values():
        for operation in path.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None:
                answer["description"] = "Invalid request parameters or body"
                answer["content"] = {"application/json": {"schema": error_ref}}
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    linkset = digital_link.Linkset.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in linkset.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas["Linkset"] = linkset
    app.openapi_schema = spec
    return spec


def app_from_environment() -> FastAPI:
    """The app as configured by the environment (for `uvicorn --factory api.main:app_from_environment`)."""
    return create_app()
