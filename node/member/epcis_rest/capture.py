"""EPCIS capture: capture jobs (`POST /capture`, run one at a time by the interface's worker,
the whole document or event by event as GS1-Capture-Error-Behaviour says), the job listing,
and the synchronous capture of one event (`POST /events`). Both go through the node's own
CaptureService (node.member.ingest.capture), so an event captured here is checked and stored
as any other."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from node.db import CaptureJob
from node.member.epcis_rest.interface import PREFIX, EpcisInterface, link_next, now_ms, paging_only
from node.member.epcis_rest.negotiation import negotiate, parse_json, read_body
from node.protocol.timestamps import iso_ms
from node.member.epcis_rest.problems import EpcisProblem, capture_problem, moved, problem_body
from node.member.ingest.capture import CaptureError, CaptureService
from node.protocol.vocabulary import EPCIS_CONTEXT_URL


def add_capture_routes(router: APIRouter, interface: EpcisInterface) -> None:
    db = interface.db

    @router.post("/capture")
    async def capture(request: Request) -> Response:
        negotiate(request)
        behaviour = (request.headers.get("GS1-Capture-Error-Behaviour") or "rollback").strip().lower()
        if behaviour == "all":
            behaviour = "proceed"
        if behaviour not in ("rollback", "proceed"):
            raise EpcisProblem(400, "ValidationException", "Invalid GS1-Capture-Error-Behaviour", "rollback or proceed")
        body = await read_body(request, interface.size_limit)
        document = parse_json(body)
        if not isinstance(document, dict) or document.get("type") not in ("EPCISDocument", "EPCISQueryDocument"):
            raise EpcisProblem(400, "ValidationException", "Not an EPCIS document", "expected an EPCISDocument or EPCISQueryDocument object")
        events = document_events(document)
        if isinstance(events, list) and len(events) > interface.capture_limit:
            raise EpcisProblem(413, "CaptureLimitExceededException", "Capture Payload too large",
                               f"{len(events)} events exceed GS1-EPCIS-Capture-Limit {interface.capture_limit}")
        job_id = secrets.token_hex(16)
        with db.session() as s, s.begin():
            s.add(CaptureJob(id=job_id, created_at_ms=now_ms(), running=True, success=False, error_behaviour=behaviour,
                             errors="[]", event_ids="[]"))
        service: CaptureService = request.app.state.capture
        interface.jobs.submit(run_job, interface, service, job_id, body, document, behaviour)
        return interface.empty(202, {"Location": f"{PREFIX}/capture/{job_id}"})

    @router.get("/capture")
    async def capture_jobs(request: Request) -> Response:
        interface.reader(request)
        limit = paging_only(request)
        before = _int_token(request.query_params.get("nextPageToken"))

        def work() -> tuple[list[CaptureJob], bool]:
            with db.session() as s:
                statement = select(CaptureJob).order_by(CaptureJob.created_at_ms.desc(), CaptureJob.id.desc())
                if before is not None:
                    statement = statement.where(CaptureJob.created_at_ms < before)
                rows = list(s.scalars(statement.limit(limit + 1)).all())
                s.expunge_all()
            return rows[:limit], len(rows) > limit

        rows, more = await anyio.to_thread.run_sync(work)
        token_out = str(rows[-1].created_at_ms) if more and rows else None
        return interface.json([_job_json(j) for j in rows], headers=link_next(request, token_out))

    @router.get("/capture/{capture_id}")
    async def capture_job(capture_id: str, request: Request) -> Response:
        interface.reader(request)
        with db.session() as s:
            job = s.get(CaptureJob, capture_id)
            if job is None:
                raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no capture job {capture_id}")
            return interface.json(_job_json(job))

    @router.post("/events")
    async def capture_one(request: Request) -> Response:
        negotiate(request)
        body = await read_body(request, interface.size_limit)
        event = parse_json(body)
        if not isinstance(event, dict):
            raise EpcisProblem(400, "ValidationException", "Not an EPCIS event", "expected one event object")
        context = event.pop("@context", [EPCIS_CONTEXT_URL])
        document = {"@context": context, "type": "EPCISDocument", "schemaVersion": "2.0",
                    "creationDate": iso_ms(now_ms()), "epcisBody": {"eventList": [event]}}
        service: CaptureService = request.app.state.capture
        try:
            result = await anyio.to_thread.run_sync(service.capture, orjson.dumps(document))
        except CaptureError as exc:
            status, problem = capture_problem(exc)
            moved(problem, "epcisBody.eventList[0]", "")  # the document is ours: point into the event itself
            return interface.json(problem, status, media="application/problem+json")
        location = f"{PREFIX}/events/{quote(result.event_ids[0], safe='')}"
        interface.delivery_wakeup.set()
        if not result.new:
            raise EpcisProblem(409, "ResourceAlreadyExistsException", "A resource with the provided identifier already exists.",
                               f"{result.event_ids[0]} is already stored")
        return interface.empty(201, {"Location": location})


def document_events(document: Mapping[str, Any]) -> Any:
    """The event list of an EPCISDocument or EPCISQueryDocument (None if it has none)."""
    body = document.get("epcisBody")
    if not isinstance(body, dict):
        return None
    if document.get("type") == "EPCISQueryDocument":
        results = body.get("queryResults")
        body = results.get("resultsBody") if isinstance(results, dict) else None
    return body.get("eventList") if isinstance(body, dict) else None


def _int_token(token: str | None) -> int | None:
    if token is None:
        return None
    if not token.isdigit() or len(token) > 15:
        raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", "nextPageToken: not a token this node issued")
    return int(token)


def _job_json(job: CaptureJob) -> dict[str, Any]:
    out: dict[str, Any] = {
        "captureID": job.id,
        "createdAt": iso_ms(job.created_at_ms),
        "running": bool(job.running),
        "success": bool(job.success),
        "captureErrorBehaviour": job.error_behaviour,
        "errors": orjson.loads(job.errors),
    }
    if job.finished_at_ms is not None:
        out["finishedAt"] = iso_ms(job.finished_at_ms)
    out["eventIDs"] = orjson.loads(job.event_ids)
    return out


def run_job(interface: EpcisInterface, service: CaptureService, job_id: str, body: bytes, document: dict[str, Any], behaviour: str) -> None:
    """A capture job: the whole document (rollback), or event by event (proceed)."""
    errors: list[dict[str, Any]] = []
    ids: list[str] = []
    try:
        if behaviour == "rollback":
            try:
                ids = service.capture(body).event_ids
            except CaptureError as exc:
                errors.append(capture_problem(exc)[1])
        else:
            events = document_events(document) or []
            query_document = document.get("type") == "EPCISQueryDocument"
            prefix = "epcisBody.queryResults.resultsBody.eventList" if query_document else "epcisBody.eventList"
            for i, event in enumerate(events):
                single = dict(document)
                single["type"] = "EPCISDocument"
                single["epcisBody"] = {"eventList": [event]}
                try:
                    ids.extend(service.capture(orjson.dumps(single)).event_ids)
                except CaptureError as exc:
                    problem = capture_problem(exc)[1]
                    moved(problem, "epcisBody.eventList[0]", f"{prefix}[{i}]")
                    errors.append(problem)
    except Exception as exc:  # noqa: BLE001 - a job records why it failed; it never vanishes
        errors.append(problem_body(500, "ImplementationException", "Capture failed", f"{type(exc).__name__}: {exc}"))
    with interface.db.session() as s, s.begin():
        job = s.get(CaptureJob, job_id)
        if job is not None:
            job.running = False
            job.success = not errors
            job.finished_at_ms = now_ms()
            job.errors = orjson.dumps(errors).decode()
            job.event_ids = orjson.dumps(ids).decode()
    if ids:
        interface.delivery_wakeup.set()
