"""The oracle's HTTP app (FastAPI): webhooks for source systems and an EPCIS capture endpoint.

    POST /webhooks/{adapter}   one source record as JSON (schema: GET /schemas/{adapter});
                               adapters: production, packing, carrier, iot, inspection, customs, fx
    POST /capture              an EPCIS 2.0 EPCISDocument (unsigned events; the oracle signs them)
    GET  /adapters             the adapters this oracle runs, with a line each
    GET  /schemas/{adapter}    the JSON schema of an adapter's input
    GET  /fx-rates/{base}/{quote}  the newest rate of the pair; with ?orderId=0x..[&issuedAt=unix] a quote signed for that order (escrow FxRate)
    GET  /events/{event_id}    delivery state of an event: pending / delivered / rejected
    GET  /submissions/{id}     what became of one accepted record (its `statusUrl`): pending /
                               accepted (the node stored it) / refused (with the receiver's message)
    GET  /rejected             jobs a receiver refused for good, with its reason
    GET  /health               queue counts per kind and state

An accepted record is answered 202 (queued durably, delivered to the node and the relayer
in the background) with the event ids it produced and a `statusUrl` saying later what the
node did with them; the same record again is answered 202
with the same ids and `accepted: 0`. A refused one is answered 422
`{code: "rejected", adapter, field, message, more?}`: `field` is the path of the offending
value in the input (`readings[2].unit`, `(body)` for something that is not JSON at all).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from node.strict_json import LARGE_BODY, ErrorBarrier, JsonInputError, JsonLimits, loads, read_body, release_memory
from oracle.errors import InputRejected, OracleError, UnknownAdapter
from oracle.escrow import FxSigner
from oracle.runtime import OracleRuntime, load_runtime
from oracle.service import submission_report


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _rejected(exc: InputRejected) -> Response:
    body = exc.as_json()
    more = getattr(exc, "more", None)
    if more:
        body["more"] = more
    return _json(body, 422)


def create_app(runtime: OracleRuntime, *, background: bool = True, max_body_bytes: int = 64 * 1024 * 1024) -> FastAPI:
    """The app; with `background` the delivery worker and CSV watcher run while it lives."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background:
            runtime.start()
        try:
            yield
        finally:
            if background:
                runtime.stop()

    app = FastAPI(title=f"Waymark oracle ({runtime.account.address})", lifespan=lifespan)
    app.add_middleware(ErrorBarrier)
    oracle = runtime.oracle

    limits = JsonLimits(max_bytes=max_body_bytes)

    async def body_of(request: Request, adapter: str) -> Any:
        try:
            raw = await read_body(request, limits)
            try:
                return loads(raw, limits)
            finally:
                if len(raw) >= LARGE_BODY:
                    del raw
                    release_memory()
        except JsonInputError as exc:
            if exc.code == "malformed" and exc.field == "(body)":
                raise InputRejected(adapter, exc.field, f"malformed JSON: {exc.message}") from None
            if exc.status == 422:
                raise InputRejected(adapter, exc.field, exc.message) from None
            raise

    async def accept(adapter: str, request: Request) -> Response:
        try:
            oracle.adapter(adapter)
            data = await body_of(request, adapter)
            accepted = await anyio.to_thread.run_sync(oracle.accept, adapter, data)
        except InputRejected as exc:
            return _rejected(exc)
        except JsonInputError as exc:  # 413 too large, 415 media type or encoding
            return _json({**exc.as_json(), "adapter": adapter}, exc.status)
        except UnknownAdapter as exc:
            return _json({"code": exc.code, "message": str(exc), "field": "adapter"}, 404)
        except OracleError as exc:
            return _json({"code": exc.code, "message": str(exc)}, 500)
        return _json(accepted.as_json(), 202)

    @app.post("/webhooks/{adapter}", status_code=202)
    async def webhook(adapter: str, request: Request) -> Response:
        if adapter == "epcis":
            return _json({"code": "wrong_endpoint", "message": "EPCIS documents go to POST /capture"}, 404)
        return await accept(adapter, request)

    @app.post("/capture", status_code=202)
    async def capture(request: Request) -> Response:
        return await accept("epcis", request)

    @app.get("/adapters")
    def adapters() -> Response:
        return _json([{"name": a.name, "description": a.description, "schema": f"/schemas/{a.name}"} for a in oracle.adapters.values()])

    @app.get("/schemas/{adapter}")
    def schema(adapter: str) -> Response:
        try:
            return _json(oracle.adapter(adapter).schema())
        except UnknownAdapter as exc:
            return _json({"code": exc.code, "message": str(exc), "field": "adapter"}, 404)

    @app.get("/fx-rates/{base}/{quote}")
    def fx_rate(base: str, quote: str, orderId: str | None = None,  # noqa: N803 - the query names
                issuedAt: int | None = None) -> Response:  # noqa: N803
        signed = runtime.state.signed_rate(base.upper(), quote.upper())
        if signed is None:
            return _json({"code": "not_found", "message": f"this oracle signed no {base.upper()}/{quote.upper()} rate"}, 404)
        signer = runtime.oracle.fx_signer
        if orderId is None or not isinstance(signer, FxSigner):
            return _json(signed)
        try:
            order_id = int(orderId, 0)
        except ValueError:
            return _json({"code": "invalid_order_id", "message": f"not an order id: {orderId}", "field": "orderId"}, 422)
        try:
            return _json(signer.for_order(signed, order_id, issuedAt))
        except ValueError as exc:
            return _json({"code": "invalid_issued_at", "message": str(exc), "field": "issuedAt"}, 422)

    @app.get("/events/{event_id:path}")
    def event(event_id: str) -> Response:
        info = runtime.queue.info(event_id)
        if info is None or info.kind != "event":
            return _json({"code": "not_found", "message": f"this oracle queued no event {event_id}"}, 404)
        return _json({"eventId": event_id, "status": info.status, "attempts": info.attempts, "lastError": info.last_error})

    @app.get("/submissions/{submission}")
    def submission(submission: str) -> Response:
        report = submission_report(runtime.queue, submission)
        if report is None:
            return _json({"code": "not_found", "message": f"this oracle has no submission {submission}"}, 404)
        return _json(report)

    @app.get("/rejected")
    def rejected() -> Response:
        return _json([{"kind": j.kind, "key": j.key, "attempts": j.attempts, "error": j.last_error} for j in runtime.queue.rejected()])

    @app.get("/health")
    def health() -> Response:
        return _json({"status": "ok", "account": runtime.account.address, "chainId": runtime.chain_id, "queue": runtime.queue.counts()})

    return app


def app_from_environment() -> FastAPI:
    """An app from WAYMARK_ORACLE_* and WAYMARK_CHAIN_* settings (for `uvicorn --factory`)."""
    return create_app(load_runtime())
