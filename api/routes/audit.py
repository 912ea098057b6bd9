"""Auditor routes (read-only): the latest audit report, and evidence bundles to download.

Audit data shows every event and escrow record, so every route here takes a signed request
(api.auth) by an account of an organisation holding the AUDITOR role now; others get 401
(no or bad signature) or 403 (not an auditor).

An audit replays the whole chain and checks every stored event, which takes seconds to
minutes: the report is kept in memory and served again. `?refresh=true` runs a new one, but
at most one audit runs at a time (concurrent requests wait for it and share its report) and
a report younger than REFRESH_INTERVAL is served instead of starting another.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from api.deps import AuditorDep, ServicesDep
from api.errors import ApiError, ErrorBody
from api.services import Services
from node.audit import AuditReport, audit_database
from node.audit.bundle import NothingToExport, export_bundle, make_selector
from node.audit.report import render_html, report_json

router = APIRouter(prefix="/api/v1/audit", tags=["auditors"])

REFRESH_INTERVAL = 60.0  # seconds: a younger report is served rather than starting another audit
AUDIT_WORKERS = 1  # in-process: the API server forks no worker processes


@dataclass
class AuditCache:
    """The latest report of this API process; one audit at a time."""

    report: AuditReport | None = None
    finished: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def latest(self, services: Services, refresh: bool) -> AuditReport:
        with self.lock:  # a second caller waits here, then finds the first one's report
            fresh = self.report is not None and time.monotonic() - self.finished < REFRESH_INTERVAL
            if self.report is None or (refresh and not fresh):
                self.report = audit_database(services.client, services.deployment, services.db, workers=AUDIT_WORKERS)
                self.finished = time.monotonic()
            return self.report


def _cache(request: Request) -> AuditCache:
    cache = getattr(request.app.state, "audit_cache", None)
    if cache is None:
        cache = request.app.state.audit_cache = AuditCache()
    return cache


class CheckedView(BaseModel):
    events: int
    pending_events: int = Field(alias="pendingEvents")
    batches: int
    anchored_roots: int = Field(alias="anchoredRoots")
    registry_changes: int = Field(alias="registryChanges")
    escrow_orders: int = Field(alias="escrowOrders")
    escrow_transitions: int = Field(alias="escrowTransitions")
    escrow_signatures: int = Field(alias="escrowSignatures")


class BlockRange(BaseModel):
    from_: int = Field(alias="from")
    to: int


class DiscrepancyView(BaseModel):
    kind: str = Field(description="event_data_missing | hash_mismatch | signature_invalid | signer_lacked_role | "
                                  "event_never_anchored | root_not_on_chain | escrow_transition_unbacked | batch_withheld")
    subject: str = Field(description="The event id, root or escrow transition at fault")
    detail: str
    objects: dict[str, str]


class AuditReportView(BaseModel):
    """An audit report, schema waymark.audit.report/1."""

    schema_: str = Field(alias="schema", examples=["waymark.audit.report/1"])
    ok: bool
    chain_id: int = Field(alias="chainId")
    contracts: dict[str, str]
    blocks: BlockRange
    evidence: str
    started_at: str = Field(alias="startedAt")
    elapsed_seconds: float = Field(alias="elapsedSeconds")
    checked: CheckedView
    by_kind: dict[str, int] = Field(alias="byKind")
    discrepancies: list[DiscrepancyView]


class NoEvidence(ApiError):
    code = "nothing_to_export"
    status = 404

    def __init__(self, problem: str) -> None:
        super().__init__(problem)


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or bad request signature"},
    403: {"model": ErrorBody, "description": "Not an account of an organisation holding the AUDITOR role"},
}


@router.get(
    "/report", response_model=AuditReportView, response_model_by_alias=True, summary="The latest audit report",
    responses={**AUTH_ERRORS, 200: {"content": {"text/html": {}}, "description": "The report (JSON, or HTML with format=html)"}},
)
async def report(
    _auditor: AuditorDep,
    services: ServicesDep,
    request: Request,
    refresh: bool = Query(False, description=f"Run a new audit unless the last one finished less than {REFRESH_INTERVAL:.0f} s ago"),
    format: str = Query("json", pattern="^(json|html)$", description="json, or html for the human report"),
) -> Response:
    """The report of the last audit of this node's database against the chain (run now if there
    is none yet). Signed request by an account of an organisation holding the AUDITOR role."""
    cache = _cache(request)
    found = await anyio.to_thread.run_sync(lambda: cache.latest(services, refresh))
    if format == "html":
        return Response(render_html(found), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
    return Response(orjson.dumps(report_json(found)), media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get(
    "/bundle", summary="Download an evidence bundle",
    response_class=Response,
    responses={**AUTH_ERRORS, 200: {"content": {"application/zip": {}}, "description": "The bundle (zip)"},
               400: {"model": ErrorBody, "description": "No selection, or a conflicting or malformed one"},
               404: {"model": ErrorBody, "description": "No anchored event or order record for the selection"}},
)
async def bundle(
    _auditor: AuditorDep,
    services: ServicesDep,
    product: str | None = Query(None, pattern=r"^\d{8,14}$", description="GTIN: every unit of the product"),
    lot: str | None = Query(None, min_length=1, max_length=20, description="With product: every unit of this lot"),
    order: str | None = Query(None, max_length=80, description="Escrow order id (0x + 64 hex, or decimal)"),
    time_from: str | None = Query(None, alias="from", max_length=40, description="Event time from (ISO 8601 or unix seconds)"),
    time_to: str | None = Query(None, alias="to", max_length=40, description="Event time to, inclusive"),
) -> Response:
    """A self-contained evidence bundle, as `waymark audit export` writes it; check it with
    `waymark audit verify --bundle FILE --rpc-url URL`. Signed request by an auditor."""
    selector = make_selector(product=product, lot=lot, order=order, time_from=time_from, time_to=time_to)

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="waymark-bundle-") as folder:
            path = Path(folder) / "bundle.zip"
            try:
                export_bundle(services.db, services.client, services.deployment, selector, path)
            except NothingToExport as exc:
                raise NoEvidence(str(exc)) from None
            return path.read_bytes()

    data = await anyio.to_thread.run_sync(build)
    name = "evidence-" + "-".join(str(v) for v in selector.to_json().values()).replace(":", "").replace("/", "_") + ".zip"
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
