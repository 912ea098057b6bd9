"""The node's HTTP API (FastAPI): capture, proofs, unit histories, batches, health.

    POST /capture                     EPCIS 2.0 capture of an attested EPCISDocument (see
                                      node.member.ingest.capture for the `wm:attestation` field)
    GET  /events/{event_id}           an accepted event, its attestation, and whether it is anchored
    GET  /events/{event_id}/proof     its proof bundle (node.member.proofs); 409 while pending
    GET  /units/{identifier}/history  the unit's history, container events included (node.member.history)
    GET  /batches/held?after=&limit=  the anchored batches this node holds, as a feed (node.member.network.holders)
    GET  /batches/{root}              an anchored batch: root, transaction, block, event ids
    GET  /batches/{root}/bundle       its batch bundle (node/member/network/BUNDLE.md), own or imported
    /documents...                     the encrypted document store (node.member.documents_routes)
    /epcis/...                        the EPCIS 2.0 REST interface (node.member.epcis_rest)
    GET  /health                      database and chain reachable, queue length, cursors, replication

`event_id` is the event hash `ni:///sha-256;<hex>?ver=CBV2.0` (percent-encode the `?`),
or just its 64 hex digits. Errors are JSON `{code, message, field?}`:
422 malformed (field names the path), 401 bad or missing attestation, 403 signer without
the role, 413 too large, 404 unknown, 409 not anchored yet, 503 chain or database down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import func, select, text
from starlette.middleware.cors import CORSMiddleware

from node.db import Batch, ChainCursor, Event
from node.errors import WaymarkError
from node.documents import DocumentSettings
from node.member.documents_routes import build_document_router
from node.member.epcis_rest import install_epcis
from node.member.history import unit_history
from node.member.indexer import CURSOR_NAME
from node.member.ingest.capture import CaptureService
from node.member.network.bundle import MEDIA_TYPE as BUNDLE_MEDIA_TYPE
from node.member.network.bundle import BundleHeader, anchoring_org, held_batch, stream_bundle
from node.member.network.holders import FEED_LIMIT, held_feed
from node.member.network.replicator import replication_status
from node.member.proofs import EventNotFound, build_bundle, parse_event_id
from node.protocol.event_hash import hash_from_digest
from node.strict_json import LARGE_BODY, ErrorBarrier, JsonInputError, read_body, release_memory
from node.member.runtime import (
    NodeRuntime,
    build_anchorer,
    build_capture,
    build_indexer,
    build_replicator,
    build_role_mirror,
    check_pool,
    load_runtime,
    resolve_organisation,
)

log = logging.getLogger(__name__)

STATUS_BY_CODE = {
    "malformed": 422,
    "bad_signature": 401,
    "missing_role": 403,
    "too_large": 413,
    "event_not_found": 404,
    "not_found": 404,
    "event_pending": 409,
    "wrong_node": 403,
    "rpc_unreachable": 503,
    "database_error": 503,
}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


class BadRoot(WaymarkError):
    code = "malformed"
    field = "root"

    def __init__(self, root: str) -> None:
        super().__init__(f"{root!r} is not a batch root: expected 0x and 64 hex digits")


class NotFound(WaymarkError):
    code = "not_found"

    def __init__(self, what: str) -> None:
        super().__init__(f"no {what} here")


def create_app(
    runtime: NodeRuntime,
    *,
    run_indexer: bool = True,
    run_anchorer: bool = False,
    run_replicator: bool = False,
    documents: DocumentSettings | None = None,
    epcis_signed_reads: bool = True,
) -> FastAPI:
    """The node's app: capture, events, proofs, unit histories, batch bundles, the document store
    and health. The indexer (and, if asked, the anchorer and the replicator) run as threads while it lives."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        roles = build_role_mirror(runtime)
        pool = check_pool(runtime.node.check_processes) if runtime.node.check_processes else None
        app.state.capture = build_capture(runtime, roles, pool)
        if run_indexer:
            indexer = build_indexer(runtime)
            threads.append(threading.Thread(target=indexer.run, args=(stop, runtime.node.indexer_poll), name="indexer", daemon=True))
            threads.append(threading.Thread(target=deliver_subscriptions, args=(stop,), name="epcis-subscriptions", daemon=True))
        if run_anchorer:
            anchorer = build_anchorer(runtime)
            threads.append(threading.Thread(target=anchorer.run, args=(stop, runtime.node.anchorer_poll), name="anchorer", daemon=True))
        if run_replicator:
            replicator = build_replicator(runtime, roles)
            threads.append(threading.Thread(target=replicator.run, args=(stop, runtime.node.replication_poll), name="replicator", daemon=True))
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    app = FastAPI(title="Waymark node", lifespan=lifespan, default_response_class=JSONResponse)
    app.add_middleware(ErrorBarrier)
    # Buyers' scanner pages, served from any member's origin, ask every node for a unit's event ids
    # (independent confirmation): reads may come from any origin; no credentials are involved.
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD"], allow_credentials=False)

    @app.exception_handler(WaymarkError)
    async def _waymark_error(_request: Request, exc: WaymarkError) -> JSONResponse:
        status = getattr(exc, "status", None) or STATUS_BY_CODE.get(exc.code, 500)
        if status == 500:
            log.error("unexpected error: %s", exc)
        return error_response(status, exc.code, str(exc), getattr(exc, "field", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return error_response(422, "malformed", str(first.get("msg", "invalid request")), field)

    @app.exception_handler(JsonInputError)
    async def _json_input_error(_request: Request, exc: JsonInputError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.post("/capture", status_code=201)
    async def capture(request: Request) -> JSONResponse:
        # Content-Type, Content-Encoding and size here; the strict decoding (duplicate keys,
        # depth, numbers) in the capture checks, which may run in a worker process.
        service: CaptureService = request.app.state.capture
        body = await read_body(request, service.limits)
        size = len(body)
        try:
            result = await anyio.to_thread.run_sync(service.capture, body)
        finally:
            del body
            if size >= LARGE_BODY:
                release_memory()
        return JSONResponse(
            {"eventIds": result.event_ids, "accepted": result.new, "duplicates": result.duplicates},
            status_code=201 if result.new else 200,
        )

    @app.get("/events/{event_id:path}/proof")
    def proof(event_id: str) -> JSONResponse:
        return JSONResponse(
            build_bundle(runtime.db, event_id, chain_id=runtime.client.chain_id, registry_address=runtime.registry_address)
        )

    @app.get("/events/{event_id:path}")
    def event(event_id: str) -> JSONResponse:
        digest = parse_event_id(event_id)
        with runtime.db.session() as s:
            row = s.execute(
                select(Event, Batch.status).outerjoin(Batch, Batch.id == Event.batch_id).where(Event.digest == digest)
            ).first()
        if row is None:
            raise EventNotFound(event_id)
        stored, status = row
        return JSONResponse(
            {
                "eventId": hash_from_digest(digest),
                "event": orjson.loads(stored.body),
                "signer": stored.signer,
                "signature": "0x" + bytes(stored.signature).hex(),
                "role": stored.role,
                "status": "pending" if status is None or status == "prepared" else status,
            }
        )

    @app.get("/units/{identifier:path}/history")
    def history(identifier: str) -> JSONResponse:
        entries = unit_history(runtime.db, identifier)
        return JSONResponse(
            [
                {
                    "eventId": e.event_id,
                    "eventTime": e.event["eventTime"],
                    "type": e.event_type,
                    "bizStep": e.biz_step,
                    "signer": e.signer,
                    "role": e.role,
                    "anchored": e.anchored,
                    "via": list(e.via),
                    "event": e.event,
                }
                for e in entries
            ]
        )

    @app.get("/batches/held")
    def batches_held(after: int = 0, limit: int = FEED_LIMIT) -> JSONResponse:
        return JSONResponse(held_feed(runtime.db, after, limit))

    @app.get("/batches/{root}/bundle")
    def batch_bundle(root: str) -> Response:
        raw = _root(root)
        held = held_batch(runtime.db, raw)
        if held is None:
            raise NotFound(f"anchored batch {root}")
        batch_id, count = held
        header = BundleHeader(
            chain_id=runtime.client.chain_id,
            registry=runtime.registry_address,
            root=raw,
            event_count=count,
            org_id=anchoring_org(runtime.db, runtime.client.chain_id, runtime.registry_address, raw) or runtime.organisation,
        )
        return StreamingResponse(
            stream_bundle(runtime.db, batch_id, header),
            media_type=BUNDLE_MEDIA_TYPE,
            headers={"Content-Encoding": "gzip", "Cache-Control": "public, max-age=31536000, immutable"},
        )

    @app.get("/batches/{root}")
    def batch(root: str) -> JSONResponse:
        raw = _root(root)
        with runtime.db.session() as s:
            found = s.scalar(select(Batch).where(Batch.root == raw))
            if found is None or found.status == "prepared":
                raise NotFound(f"anchored batch {root}")
            digests = s.scalars(select(Event.digest).where(Event.batch_id == found.id).order_by(Event.leaf_index)).all()
        return JSONResponse(
            {
                "root": "0x" + bytes(found.root).hex(),
                "eventCount": found.event_count,
                "status": found.status,
                "txHash": "0x" + bytes(found.tx_hash or b"").hex(),
                "blockNumber": found.block_number,
                "eventIds": [hash_from_digest(bytes(d)) for d in digests],
            }
        )

    def _root(root: str) -> bytes:
        try:
            return parse_event_id(root)  # same shape: 32 bytes of hex
        except WaymarkError:
            raise BadRoot(root) from None

    app.include_router(build_document_router(runtime, documents))
    deliver_subscriptions = install_epcis(app, runtime, signed_reads=epcis_signed_reads)

    @app.get("/health")
    def health() -> JSONResponse:
        # maxFutureSkew: what this node accepts of event times ahead of its clock (its oracles check the same before answering 202)
        report: dict[str, Any] = {"status": "ok", "maxFutureSkew": runtime.node.max_future_skew}
        try:
            with runtime.db.session() as s:
                s.execute(text("SELECT 1"))
                report["pending"] = int(s.scalar(select(func.count()).select_from(Event).where(Event.batch_id.is_(None))) or 0)
                report["unanchoredBatches"] = int(
                    s.scalar(select(func.count()).select_from(Batch).where(Batch.status == "prepared")) or 0
                )
                cursor = s.get(ChainCursor, (runtime.client.chain_id, CURSOR_NAME))
                report["indexedBlock"] = cursor.block_number if cursor else None
            # batches of other members: held, waiting, and withheld (no member node served them in time)
            report["network"] = {"organisation": runtime.organisation, **replication_status(runtime.db, runtime.client.chain_id)}
            report["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - health reports, it does not fail
            report.update(status="degraded", database=f"unreachable: {type(exc).__name__}")
        try:
            report["chainId"] = runtime.client.chain_id
            report["head"] = int(runtime.client.w3.eth.block_number)
            report["chain"] = "ok"
        except Exception as exc:  # noqa: BLE001
            report.update(status="degraded", chain=f"unreachable: {type(exc).__name__}")
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    return app



def app_from_environment() -> FastAPI:
    """An app from WAYMARK_* settings alone, for `uvicorn --factory` worker processes. Only
    the HTTP API: the anchorer and the indexer run once per database, elsewhere."""
    runtime = load_runtime()
    resolve_organisation(runtime)
    return create_app(runtime, run_indexer=False, run_anchorer=False)
