"""The EPCIS 2.0 REST routes (GS1's OpenAPI description, REST Bindings/openapi.yaml), mounted
by `install_epcis` under `/epcis` of the node app. See the package docstring for what is
implemented and what is left out.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import anyio
import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from sqlalchemy import delete, func, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from node.db import CaptureJob, Database, EpcisQuery, EpcisSubscription, Event, EventEpc
from node.documents import ChainMembership, Unauthenticated, verify_document_request
from node.member.epcis_rest.output import collection, query_document
from node.member.epcis_rest.query import (
    EVENT_TYPES,
    QueryParameterError,
    QueryTooLarge,
    StoredEvent,
    parse_query,
    per_page,
    run_query,
)
from node import strict_json
from node.errors import WaymarkError
from node.member.ingest.capture import CaptureError, CaptureService
from node.protocol.timestamps import format_timestamp
from node.protocol.vocabulary import EPCIS_CONTEXT_URL
from node.protocol.event_hash import digest_from_hash

EPCIS_VERSION = "2.0.0"
CBV_VERSION = "2.0.0"
VENDOR_VERSION = "waymark-1"
PREFIX = "/epcis"


# --- problems (RFC 7807, the types GS1's description names) ---------------------------------


class EpcisProblem(WaymarkError):
    """An EPCIS exception answered as application/problem+json."""

    code = "epcis_problem"

    def __init__(self, status: int, kind: str, title: str, detail: str | None = None, instance: str | None = None) -> None:
        self.status, self.kind, self.title, self.detail, self.instance = status, kind, title, detail, instance
        super().__init__(f"{title}: {detail}" if detail else title)


def _problem_body(status: int | None, kind: str, title: str, detail: str | None = None, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"epcisException:{kind}", "title": title}
    if status is not None:
        body["status"] = status
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    return body


def _capture_problem(exc: CaptureError) -> tuple[int, dict[str, Any]]:
    """A capture refusal as (status, problem). The offending value travels in two extension
    members (RFC 7807 3.2): `field`, its path as the node writes it everywhere
    (`epcisBody.eventList[3].epcList[0]`), and `pointer`, the same as a JSON pointer; the rule
    broken is in `detail`."""
    status = {"bad_signature": 401, "missing_role": 403, "wrong_node": 403, "too_large": 413}.get(exc.code, 400)
    kind = {401: "SecurityException", 403: "SecurityException", 413: "CaptureLimitExceededException"}.get(status, "ValidationException")
    body = _problem_body(status, kind, type(exc).__name__, str(exc))
    field = getattr(exc, "field", None)
    if field:
        body["field"] = field
        body["pointer"] = _pointer(field)
    return status, body


def _moved(problem: dict[str, Any], old: str, new: str) -> None:
    """Re-root a problem's location from the `old` path prefix to `new`."""
    field = problem.get("field")
    if isinstance(field, str) and field.startswith(old):
        rest = field[len(old):].lstrip(".")
        problem["field"] = (new + ("." if rest and not rest.startswith("[") and new else "") + rest) or "(event)"
        problem["pointer"] = _pointer(problem["field"]) if problem["field"] != "(event)" else ""


def _pointer(path: str) -> str:
    """`epcisBody.eventList[3].epcList[0]` as a JSON pointer (`/epcisBody/eventList/3/epcList/0`)."""
    parts = [p for p in re.split(r"\.|\[(\d+)\]", path) if p]
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


# --- headers, negotiation, bodies ------------------------------------------------------------


def standard_headers(capture_limit: int, size_limit: int) -> dict[str, str]:
    return {
        "GS1-EPCIS-Version": EPCIS_VERSION,
        "GS1-CBV-Version": CBV_VERSION,
        "GS1-EPCIS-Min": EPCIS_VERSION,
        "GS1-EPCIS-Max": EPCIS_VERSION,
        "GS1-CBV-Min": CBV_VERSION,
        "GS1-CBV-Max": CBV_VERSION,
        "GS1-Vendor-Version": VENDOR_VERSION,
        "GS1-EPCIS-Capture-Limit": str(capture_limit),
        "GS1-EPCIS-Capture-File-Size-Limit": str(size_limit),
        "GS1-Capture-Error-Behaviour": "rollback, proceed",
    }


def _version(text: str) -> tuple[int, ...] | None:
    return tuple(int(p) for p in text.split(".")) if re.fullmatch(r"\d{1,6}(\.\d{1,6})*", text) else None


def _negotiate(request: Request) -> None:
    """406 when the client asks for versions or a representation this node does not speak."""
    ours = {"EPCIS": _version(EPCIS_VERSION), "CBV": _version(CBV_VERSION)}
    for family, mine in ours.items():
        assert mine is not None
        for bound in ("Min", "Max", "Version"):
            value = request.headers.get(f"GS1-{family}-{bound}")
            if value is None:
                continue
            wanted = _version(value.strip())
            if wanted is None:
                continue  # not a version number: nothing to negotiate on
            padded = wanted + (0,) * (len(mine) - len(wanted))
            if (bound == "Min" and padded > mine) or (bound == "Max" and padded < mine) or (bound == "Version" and padded[:2] != mine[:2]):
                raise EpcisProblem(406, "NotAcceptableException", "Not acceptable", f"this node speaks {family} {EPCIS_VERSION if family == 'EPCIS' else CBV_VERSION}")
    accept = request.headers.get("accept")
    if accept:
        kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
        if not any(k in ("*/*", "application/*", "application/json", "application/ld+json", "application/problem+json") for k in kinds):
            raise EpcisProblem(406, "NotAcceptableException", "Not acceptable", "this node answers application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """THE way an EPCIS route reads its request body: node.strict_json's reader (JSON media types
    only, Content-Encoding undone, bounded by `limit` bytes as sent and as decoded), its refusals
    given as EPCIS problems. Callers parse it with `parse_json`. EPCIS bodies must say what they
    are: a missing Content-Type is refused (415) too."""
    if not (request.headers.get("content-type") or "").strip():
        raise EpcisProblem(415, "UnsupportedMediaTypeException", "Unsupported Media Type", "send application/json or application/ld+json")
    try:
        return await strict_json.read_body(request, strict_json.JsonLimits(max_bytes=limit))
    except strict_json.JsonInputError as exc:
        raise _problem_of(exc) from None


def parse_json(body: bytes) -> Any:
    """The request body as JSON, strictly (node.strict_json: duplicate keys, depth, numbers);
    400 ValidationException naming the problem when it is refused."""
    try:
        return strict_json.loads(body, strict_json.JsonLimits(max_bytes=max(len(body), 1)))
    except strict_json.JsonInputError as exc:
        raise _problem_of(exc) from None


def _problem_of(exc: strict_json.JsonInputError) -> EpcisProblem:
    if exc.status == 415:
        return EpcisProblem(415, "UnsupportedMediaTypeException", "Unsupported Media Type", f"{exc.field}: {exc.message}")
    if exc.status == 413:
        return EpcisProblem(413, "CaptureLimitExceededException", "Capture Payload too large", exc.message)
    return EpcisProblem(400, "ValidationException", "Not acceptable JSON", f"{exc.field}: {exc.message}")


# --- signed reads -----------------------------------------------------------------------------


def request_target_digest(method: str, target: str) -> bytes:
    """What a signed EPCIS read signs (as the `digest` of a node.documents DocumentRequest with
    action "read"): SHA-256 of "<METHOD> <path and query exactly as sent>"."""
    return hashlib.sha256(f"{method.upper()} {target}".encode()).digest()


def _target(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


class Readers:
    """Who may read: signed requests (node.documents' EIP-712 DocumentRequest, action "read",
    over `request_target_digest`) by an account of an active member organisation."""

    def __init__(self, runtime: Any, *, max_age: int = 300, required: bool = True) -> None:
        self.required = required
        self.max_age = max_age
        if required:
            self.chain_id = runtime.client.chain_id
            self.registry = runtime.deployment.address("ConsortiumRegistry")
            self.members = ChainMembership(runtime.client, self.registry)
            self.audience: str = runtime.node.public_url

    def check(self, request: Request) -> str | None:
        if not self.required:
            return None
        digest = request_target_digest(request.method, _target(request))
        try:
            account = verify_document_request(
                self.chain_id, self.registry, "read", digest, request.headers, audience=self.audience, max_age=self.max_age
            )
        except Unauthenticated as exc:
            raise EpcisProblem(401, "SecurityException", "Unauthorised request", str(exc)) from None
        member = self.members.membership(account)
        if member is None or not member.active:
            raise EpcisProblem(403, "SecurityException", "Client unauthorised", f"{account} is not an account of an active member organisation")
        return account


# --- the router -------------------------------------------------------------------------------

_ALLOW: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), a)
    for p, a in [
        (r"^/?$", "OPTIONS, GET"),
        (r"^/capture$", "OPTIONS, GET, POST"),
        (r"^/capture/[^/]+$", "OPTIONS, GET"),
        (r"^/events$", "OPTIONS, GET, POST"),
        (r"^/queries$", "OPTIONS, GET, POST"),
        (r"^/queries/[^/]+$", "OPTIONS, GET, DELETE"),
        (r"^/queries/[^/]+/subscriptions$", "OPTIONS, GET, POST"),
        (r"^/queries/[^/]+/subscriptions/[^/]+$", "OPTIONS, GET, DELETE"),
        (r"^/nextPageToken/.+$", "OPTIONS, DELETE"),
        (r"^/(eventTypes|epcs|bizSteps|bizLocations|readPoints|dispositions|events)(/.*)?$", "OPTIONS, GET"),
    ]
]
_WEBSOCKET_PARAMETERS = frozenset(("second", "minute", "hour", "dayOfMonth", "month", "dayOfWeek", "stream", "reportIfEmpty", "initialRecordTime"))
TOP_LEVEL = ["events", "eventTypes", "epcs", "bizSteps", "bizLocations", "readPoints", "dispositions", "capture", "queries"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return format_timestamp(datetime.fromtimestamp(ms / 1000, tz=timezone.utc))


class EpcisInterface:
    """State shared by the routes: the database, capture, readers, the capture job worker."""

    def __init__(self, runtime: Any, *, signed_reads: bool = True) -> None:
        self.runtime = runtime
        self.db: Database = runtime.db
        self.readers = Readers(runtime, required=signed_reads)
        self.size_limit: int = runtime.node.max_body_bytes
        self.capture_limit: int = runtime.node.max_events_per_document
        self.jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epcis-capture")
        self.delivery_wakeup = threading.Event()

    def headers(self) -> dict[str, str]:
        return standard_headers(self.capture_limit, self.size_limit)

    def json(self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None, media: str = "application/json") -> Response:
        return Response(orjson.dumps(body), status_code=status, media_type=media, headers={**self.headers(), **(headers or {})})

    def problem(self, exc: EpcisProblem) -> Response:
        # GS1's description gives 409 a status enum of [406] (an error in it): leave status out there
        status_field = None if exc.status == 409 else exc.status
        # GS1's description gives subscription problems (400SubscriptionIssues) as application/json
        media = "application/json" if exc.kind == "SubscriptionControlsException" else "application/problem+json"
        return self.json(_problem_body(status_field, exc.kind, exc.title, exc.detail, exc.instance), exc.status, media=media)


def install_epcis(app: FastAPI, runtime: Any, *, signed_reads: bool = True) -> Callable[[threading.Event], None]:
    """Mount the EPCIS 2.0 interface under /epcis; return the subscription delivery loop (run it
    in one thread per database, with a stop event)."""
    from node.member.epcis_rest.subscriptions import Deliverer

    interface = EpcisInterface(runtime, signed_reads=signed_reads)
    app.include_router(build_router(interface), prefix=PREFIX)

    @app.exception_handler(EpcisProblem)
    async def _problem(_request: Request, exc: EpcisProblem) -> Response:
        return interface.problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/"):
            kind = {404: "NoSuchNameException", 405: "ImplementationException"}.get(exc.status_code, "ImplementationException")
            return interface.problem(EpcisProblem(exc.status_code, kind, str(exc.detail)))
        return await http_exception_handler(request, exc)

    @app.exception_handler(QueryParameterError)
    async def _query_parameter(_request: Request, exc: QueryParameterError) -> Response:
        return interface.problem(EpcisProblem(400, "QueryParameterException", "Invalid query parameter", str(exc)))

    @app.exception_handler(QueryTooLarge)
    async def _too_large(_request: Request, exc: QueryTooLarge) -> Response:
        return interface.problem(EpcisProblem(413, "QueryTooLargeException", "Query too large", str(exc)))

    deliverer = Deliverer(
        runtime.db, wakeup=interface.delivery_wakeup,
        private_destinations_ok=runtime.node.epcis_webhooks_to_private_addresses,
    )
    return deliverer.run


def _guard(interface: EpcisInterface, work: Callable[[], Any]) -> Awaitable[Any]:
    async def run() -> Any:
        try:
            return await anyio.to_thread.run_sync(work)
        except QueryParameterError as exc:
            raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", str(exc)) from None
        except QueryTooLarge as exc:
            raise EpcisProblem(413, "QueryTooLargeException", "Query too large", str(exc)) from None

    return run()


def build_router(interface: EpcisInterface) -> APIRouter:
    router = APIRouter(tags=["EPCIS 2.0"])
    db = interface.db

    def reader(request: Request) -> str | None:
        _negotiate(request)
        return interface.readers.check(request)

    def params_of(request: Request) -> list[tuple[str, str]]:
        return [(k, v) for k, v in request.query_params.multi_items() if k not in ("perPage", "nextPageToken")]

    def link_next(request: Request, token: str | None) -> dict[str, str]:
        if token is None:
            return {}
        items = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"] + [("nextPageToken", token)]
        return {"Link": f'<{request.url.path}?{urlencode(items)}>; rel="next"'}

    async def events_page(request: Request, fixed: Sequence[tuple[str, str]] = (), *, query_name: str | None = None) -> Response:
        reader(request)
        given = params_of(request)
        names = {k for k, _ in fixed}
        clashing = [k for k, _ in given if k in names]
        if clashing:
            raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", f"{clashing[0]} is fixed by the path")
        query = parse_query(list(fixed) + given) if not query_name else _named_query(query_name, given)
        limit = per_page(dict(request.query_params))
        token = request.query_params.get("nextPageToken")
        page = await _guard(interface, lambda: run_query(db, query, limit=limit, token=token))
        return interface.json(query_document(page.events, query_name=query_name), headers=link_next(request, page.next_token))

    def _named_query(name: str, given: list[tuple[str, str]]) -> Any:
        given = [(k, v) for k, v in given if k not in _WEBSOCKET_PARAMETERS]  # they only matter to a WebSocket
        if given:
            raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", "a named query takes only perPage and nextPageToken")
        with db.session() as s:
            stored = s.get(EpcisQuery, name)
        if stored is None:
            raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no query named {name!r}")
        return parse_query(orjson.loads(stored.query), allow_paging=False)

    # -- discovery ------------------------------------------------------------------------

    async def options(request: Request) -> Response:
        rest = request.url.path[len(PREFIX):] or "/"
        for pattern, allow in _ALLOW:
            if pattern.match(rest):
                return Response(status_code=204, headers={**interface.headers(), "Allow": allow})
        raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no EPCIS resource {rest}")

    # `path` parameters stop at a newline (an encoded %0A): one route per depth as well
    router.add_api_route("/", options, methods=["OPTIONS"], include_in_schema=False)
    for depth in range(1, 7):
        router.add_api_route("".join(f"/{{p{i}}}" for i in range(depth)), options, methods=["OPTIONS"], include_in_schema=False)
    router.add_api_route("/{rest:path}", options, methods=["OPTIONS"], include_in_schema=False)

    @router.get("/")
    async def top_level(request: Request) -> Response:
        _negotiate(request)
        return interface.json(collection(TOP_LEVEL))

    # -- capture ----------------------------------------------------------------------------

    @router.post("/capture")
    async def capture(request: Request) -> Response:
        _negotiate(request)
        behaviour = (request.headers.get("GS1-Capture-Error-Behaviour") or "rollback").strip().lower()
        if behaviour == "all":
            behaviour = "proceed"
        if behaviour not in ("rollback", "proceed"):
            raise EpcisProblem(400, "ValidationException", "Invalid GS1-Capture-Error-Behaviour", "rollback or proceed")
        body = await read_body(request, interface.size_limit)
        document = parse_json(body)
        if not isinstance(document, dict) or document.get("type") not in ("EPCISDocument", "EPCISQueryDocument"):
            raise EpcisProblem(400, "ValidationException", "Not an EPCIS document", "expected an EPCISDocument or EPCISQueryDocument object")
        events = _document_events(document)
        if isinstance(events, list) and len(events) > interface.capture_limit:
            raise EpcisProblem(413, "CaptureLimitExceededException", "Capture Payload too large",
                               f"{len(events)} events exceed GS1-EPCIS-Capture-Limit {interface.capture_limit}")
        job_id = secrets.token_hex(16)
        with db.session() as s, s.begin():
            s.add(CaptureJob(id=job_id, created_at_ms=_now_ms(), running=True, success=False, error_behaviour=behaviour,
                             errors="[]", event_ids="[]"))
        service: CaptureService = request.app.state.capture
        interface.jobs.submit(_run_job, interface, service, job_id, body, document, behaviour)
        return Response(status_code=202, headers={**interface.headers(), "Location": f"{PREFIX}/capture/{job_id}"})

    @router.get("/capture")
    async def capture_jobs(request: Request) -> Response:
        reader(request)
        limit = per_page(dict(request.query_params))
        token = request.query_params.get("nextPageToken")
        if any(k not in ("perPage", "nextPageToken") for k in request.query_params):
            raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", "only perPage and nextPageToken")
        before = _int_token(token)

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
        reader(request)
        with db.session() as s:
            job = s.get(CaptureJob, capture_id)
            if job is None:
                raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no capture job {capture_id}")
            return interface.json(_job_json(job))

    @router.post("/events")
    async def capture_one(request: Request) -> Response:
        _negotiate(request)
        body = await read_body(request, interface.size_limit)
        event = parse_json(body)
        if not isinstance(event, dict):
            raise EpcisProblem(400, "ValidationException", "Not an EPCIS event", "expected one event object")
        context = event.pop("@context", [EPCIS_CONTEXT_URL])
        document = {"@context": context, "type": "EPCISDocument", "schemaVersion": "2.0",
                    "creationDate": _iso(_now_ms()), "epcisBody": {"eventList": [event]}}
        service: CaptureService = request.app.state.capture
        try:
            result = await anyio.to_thread.run_sync(service.capture, orjson.dumps(document))
        except CaptureError as exc:
            status, problem = _capture_problem(exc)
            _moved(problem, "epcisBody.eventList[0]", "")  # the document is ours: point into the event itself
            return interface.json(problem, status, media="application/problem+json")
        location = f"{PREFIX}/events/{quote(result.event_ids[0], safe='')}"
        interface.delivery_wakeup.set()
        if not result.new:
            raise EpcisProblem(409, "ResourceAlreadyExistsException", "A resource with the provided identifier already exists.",
                               f"{result.event_ids[0]} is already stored")
        return Response(status_code=201, headers={**interface.headers(), "Location": location})

    # -- queries over events -----------------------------------------------------------------

    @router.get("/events")
    async def events(request: Request) -> Response:
        return await events_page(request)

    @router.get("/events/{event_id:path}")
    async def one_event(event_id: str, request: Request) -> Response:
        reader(request)
        if request.query_params:
            raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", "an event takes no query parameters")
        try:
            digest = digest_from_hash(event_id)
        except (ValueError, WaymarkError):
            raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"{event_id!r} is not an event id of this node") from None
        page = await _guard(interface, lambda: run_query(db, parse_query([("EQ_eventID", event_id)]), limit=100))
        found = [e for e in page.events if e.digest == digest or e.corrects == digest]
        if not found:
            raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no event {event_id}")
        return interface.json(query_document(found))

    @router.get("/eventTypes")
    async def event_types(request: Request) -> Response:
        reader(request)
        return interface.json(collection(list(EVENT_TYPES)))

    @router.get("/eventTypes/{event_type}/events")
    async def event_type_events(event_type: str, request: Request) -> Response:
        return await events_page(request, [("eventType", event_type)])

    @router.get("/eventTypes/{event_type}")
    async def event_type(event_type: str, request: Request) -> Response:
        reader(request)
        return interface.json(collection(["events"]))

    def distinct_values(request: Request, column: Any, kind: str) -> Awaitable[Response]:
        async def run() -> Response:
            reader(request)
            limit = per_page(dict(request.query_params))
            after = request.query_params.get("nextPageToken")
            if any(k not in ("perPage", "nextPageToken") for k in request.query_params):
                raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", "only perPage and nextPageToken")

            def work() -> list[str]:
                with db.session() as s:
                    if column is not None:
                        statement = select(column).distinct().where(column.is_not(None)).order_by(column)
                        if after:
                            statement = statement.where(column > after)
                        return [str(v) for v in s.scalars(statement.limit(limit + 1)).all()]
                    values = _body_values(db, kind)
                    return [v for v in values if not after or v > after][: limit + 1]

            values = await anyio.to_thread.run_sync(work)
            more = len(values) > limit
            values = values[:limit]
            return interface.json(collection(values), headers=link_next(request, values[-1] if more and values else None))

        return run()

    def sub_resource(request: Request) -> Response:
        reader(request)
        return interface.json(collection(["events"]))

    @router.get("/epcs")
    async def epcs(request: Request) -> Response:
        return await distinct_values(request, EventEpc.epc, "epc")

    @router.get("/epcs/{epc:path}/events")
    async def epc_events(epc: str, request: Request) -> Response:
        return await events_page(request, [("MATCH_anyEPC", epc)])

    @router.get("/epcs/{epc:path}")
    async def epc(epc: str, request: Request) -> Response:
        return sub_resource(request)

    @router.get("/bizSteps")
    async def biz_steps(request: Request) -> Response:
        return await distinct_values(request, Event.biz_step, "bizStep")

    @router.get("/bizSteps/{biz_step:path}/events")
    async def biz_step_events(biz_step: str, request: Request) -> Response:
        return await events_page(request, [("EQ_bizStep", biz_step)])

    @router.get("/bizSteps/{biz_step:path}")
    async def biz_step(biz_step: str, request: Request) -> Response:
        return sub_resource(request)

    for resource, field_name, param in (
        ("bizLocations", "bizLocation", "EQ_bizLocation"),
        ("readPoints", "readPoint", "EQ_readPoint"),
        ("dispositions", "disposition", "EQ_disposition"),
    ):
        _add_body_resource(router, resource, field_name, param, distinct_values, events_page, sub_resource)

    # -- named queries and subscriptions ----------------------------------------------------

    @router.get("/queries")
    async def queries(request: Request) -> Response:
        reader(request)
        with db.session() as s:
            rows = s.scalars(select(EpcisQuery).order_by(EpcisQuery.name)).all()
            return interface.json([{"name": q.name, "query": orjson.loads(q.query)} for q in rows])

    @router.post("/queries")
    async def create_query(request: Request) -> Response:
        account = reader(request)
        definition = parse_json(await read_body(request, interface.size_limit))
        if not isinstance(definition, dict) or not isinstance(definition.get("name"), str) or not isinstance(definition.get("query"), dict):
            raise EpcisProblem(400, "QueryValidationException", "Invalid query", "expected {name: string, query: object}")
        name = definition["name"]
        if not re.fullmatch(r"[A-Za-z0-9._~-]{1,128}", name):
            raise EpcisProblem(400, "QueryValidationException", "Invalid query", "a query name is 1-128 of A-Z a-z 0-9 . _ ~ -")
        try:
            parse_query(definition["query"], allow_paging=False)
        except QueryParameterError as exc:
            raise EpcisProblem(400, "QueryValidationException", "Invalid query", str(exc)) from None
        with db.session() as s, s.begin():
            if s.get(EpcisQuery, name) is not None:
                raise EpcisProblem(409, "ResourceAlreadyExistsException", "A resource with the provided identifier already exists.", f"query {name!r} exists")
            s.add(EpcisQuery(name=name, query=orjson.dumps(definition["query"]).decode(), created_at_ms=_now_ms(), account=account))
        return Response(status_code=201, headers={**interface.headers(), "Location": f"{PREFIX}/queries/{name}"})

    @router.get("/queries/{query_name}/events")
    async def query_events(query_name: str, request: Request) -> Response:
        if (request.headers.get("upgrade") or "").strip().lower() == "websocket":
            raise EpcisProblem(400, "SubscriptionControlsException", "Subscription error", "WebSocket subscriptions are not offered; subscribe with a webhook")
        return await events_page(request, query_name=query_name)

    @router.get("/queries/{query_name}/subscriptions/{subscription_id}")
    async def subscription(query_name: str, subscription_id: str, request: Request) -> Response:
        reader(request)
        with db.session() as s:
            found = s.get(EpcisSubscription, subscription_id)
            if found is None or found.query_name != query_name:
                raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no subscription {subscription_id}")
            return interface.json(_subscription_json(found))

    @router.delete("/queries/{query_name}/subscriptions/{subscription_id}")
    async def unsubscribe(query_name: str, subscription_id: str, request: Request) -> Response:
        reader(request)
        with db.session() as s, s.begin():
            found = s.get(EpcisSubscription, subscription_id)
            if found is None or found.query_name != query_name:
                raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no subscription {subscription_id}")
            s.delete(found)
        return Response(status_code=204, headers=interface.headers())

    @router.get("/queries/{query_name}/subscriptions")
    async def subscriptions(query_name: str, request: Request) -> Response:
        reader(request)
        with db.session() as s:
            if s.get(EpcisQuery, query_name) is None:
                raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no query named {query_name!r}")
            rows = s.scalars(select(EpcisSubscription).where(EpcisSubscription.query_name == query_name).order_by(EpcisSubscription.created_at_ms)).all()
            return interface.json([_subscription_json(r) for r in rows])

    @router.post("/queries/{query_name}/subscriptions")
    async def subscribe(query_name: str, request: Request) -> Response:
        account = reader(request)
        try:
            body = parse_json(await read_body(request, interface.size_limit))
        except EpcisProblem as exc:
            if exc.status != 400:
                raise
            raise EpcisProblem(400, "SubscriptionControlsException", "Invalid subscription", exc.detail) from None
        if not isinstance(body, dict) or not isinstance(body.get("dest"), str):
            raise EpcisProblem(400, "SubscriptionControlsException", "Invalid subscription", "expected {dest, stream: true, signatureToken?}")
        dest = body["dest"]
        parts = urlsplit(dest)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise EpcisProblem(400, "SubscriptionControlsException", "Invalid subscription", "dest is an http(s) URL (WebSocket subscriptions are not offered)")
        if "schedule" in body:
            raise EpcisProblem(400, "SubscriptionControlsException", "Invalid subscription", "this node offers stream subscriptions only (stream: true), not scheduled ones")
        if body.get("stream") is not True:
            raise EpcisProblem(400, "SubscriptionControlsException", "Invalid subscription", "stream must be true (the only kind offered)")
        token = body.get("signatureToken")
        if token is not None and not isinstance(token, str):
            raise EpcisProblem(400, "SubscriptionControlsException", "Invalid subscription", "signatureToken is a string")
        start = 0
        initial = body.get("initialRecordTime")
        with db.session() as s, s.begin():
            if s.get(EpcisQuery, query_name) is None:
                raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no query named {query_name!r}")
            if initial is None:
                start = int(s.scalar(select(func.coalesce(func.max(Event.id), 0))) or 0)  # only what comes next
            else:
                try:
                    from node.member.epcis_rest.query import _ms

                    since = _ms(str(initial))
                except ValueError:
                    raise EpcisProblem(400, "SubscriptionControlsException", "Invalid subscription", "initialRecordTime is a date-time") from None
                start = int(s.scalar(select(func.coalesce(func.max(Event.id), 0)).where(Event.received_at_ms < since)) or 0)
            subscription_id = secrets.token_hex(16)
            s.add(EpcisSubscription(
                id=subscription_id, query_name=query_name, dest=dest, signature_token=token,
                report_if_empty=bool(body.get("reportIfEmpty", False)), delivered_up_to=start, attempts=0,
                next_attempt_ms=0, created_at_ms=_now_ms(), account=account,
            ))
        interface.delivery_wakeup.set()
        location = f"{PREFIX}/queries/{query_name}/subscriptions/{subscription_id}"
        return interface.json({"subscriptionID": subscription_id, "dest": dest, "stream": True, "createdAt": _iso(_now_ms())},
                              201, headers={"Location": location})

    @router.get("/queries/{query_name}")
    async def named_query(query_name: str, request: Request) -> Response:
        reader(request)
        with db.session() as s:
            found = s.get(EpcisQuery, query_name)
            if found is None:
                raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no query named {query_name!r}")
            return interface.json({"name": found.name, "query": orjson.loads(found.query)})

    @router.delete("/queries/{query_name}")
    async def delete_query(query_name: str, request: Request) -> Response:
        reader(request)
        with db.session() as s, s.begin():
            found = s.get(EpcisQuery, query_name)
            if found is None:
                raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no query named {query_name!r}")
            s.execute(delete(EpcisSubscription).where(EpcisSubscription.query_name == query_name))
            s.delete(found)
        return Response(status_code=204, headers=interface.headers())

    @router.delete("/nextPageToken/{token}")
    async def forget_token(token: str, request: Request) -> Response:
        reader(request)
        return Response(status_code=204, headers=interface.headers())  # tokens are stateless: nothing to forget

    return router


def _add_body_resource(router: APIRouter, resource: str, field_name: str, param: str, distinct_values: Any, events_page: Any, sub_resource: Any) -> None:
    column = Event.biz_step if field_name == "bizStep" else None

    async def listing(request: Request) -> Response:
        result: Response = await distinct_values(request, column, field_name)
        return result

    async def events(value: str, request: Request) -> Response:
        result: Response = await events_page(request, [(param, value)])
        return result

    async def one(value: str, request: Request) -> Response:
        result: Response = sub_resource(request)
        return result

    router.add_api_route(f"/{resource}", listing, methods=["GET"], name=resource)
    router.add_api_route(f"/{resource}/{{value:path}}/events", events, methods=["GET"], name=f"{resource}_events")
    router.add_api_route(f"/{resource}/{{value:path}}", one, methods=["GET"], name=f"{resource}_one")


def _body_values(db: Database, kind: str) -> list[str]:
    """Distinct readPoint / bizLocation ids or dispositions, read from the stored bodies (there
    is no column for them)."""
    values: set[str] = set()
    last = 0
    while True:
        with db.session() as s:
            rows = s.execute(select(Event.id, Event.body).where(Event.id > last).order_by(Event.id).limit(2000)).all()
        for row in rows:
            event = orjson.loads(row.body)
            value = event.get(kind)
            if isinstance(value, Mapping):
                value = value.get("id")
            if isinstance(value, str):
                values.add(value)
        if len(rows) < 2000:
            return sorted(values)
        last = int(rows[-1].id)


def _int_token(token: str | None) -> int | None:
    if token is None:
        return None
    if not token.isdigit() or len(token) > 15:
        raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", "nextPageToken: not a token this node issued")
    return int(token)


def _document_events(document: Mapping[str, Any]) -> Any:
    body = document.get("epcisBody")
    if not isinstance(body, dict):
        return None
    if document.get("type") == "EPCISQueryDocument":
        results = body.get("queryResults")
        body = results.get("resultsBody") if isinstance(results, dict) else None
    return body.get("eventList") if isinstance(body, dict) else None


def _job_json(job: CaptureJob) -> dict[str, Any]:
    out: dict[str, Any] = {
        "captureID": job.id,
        "createdAt": _iso(job.created_at_ms),
        "running": bool(job.running),
        "success": bool(job.success),
        "captureErrorBehaviour": job.error_behaviour,
        "errors": orjson.loads(job.errors),
    }
    if job.finished_at_ms is not None:
        out["finishedAt"] = _iso(job.finished_at_ms)
    out["eventIDs"] = orjson.loads(job.event_ids)
    return out


def _subscription_json(sub: EpcisSubscription) -> dict[str, Any]:
    out: dict[str, Any] = {"subscriptionID": sub.id, "queryName": sub.query_name, "dest": sub.dest, "stream": True,
                           "createdAt": _iso(sub.created_at_ms), "reportIfEmpty": bool(sub.report_if_empty)}
    return out


def _run_job(interface: EpcisInterface, service: CaptureService, job_id: str, body: bytes, document: dict[str, Any], behaviour: str) -> None:
    """A capture job: the whole document (rollback), or event by event (proceed)."""
    errors: list[dict[str, Any]] = []
    ids: list[str] = []
    try:
        if behaviour == "rollback":
            try:
                ids = service.capture(body).event_ids
            except CaptureError as exc:
                errors.append(_capture_problem(exc)[1])
        else:
            events = _document_events(document) or []
            query_document = document.get("type") == "EPCISQueryDocument"
            prefix = "epcisBody.queryResults.resultsBody.eventList" if query_document else "epcisBody.eventList"
            for i, event in enumerate(events):
                single = dict(document)
                single["type"] = "EPCISDocument"
                single["epcisBody"] = {"eventList": [event]}
                try:
                    ids.extend(service.capture(orjson.dumps(single)).event_ids)
                except CaptureError as exc:
                    problem = _capture_problem(exc)[1]
                    _moved(problem, "epcisBody.eventList[0]", f"{prefix}[{i}]")
                    errors.append(problem)
    except Exception as exc:  # noqa: BLE001 - a job records why it failed; it never vanishes
        errors.append(_problem_body(500, "ImplementationException", "Capture failed", f"{type(exc).__name__}: {exc}"))
    with interface.db.session() as s, s.begin():
        job = s.get(CaptureJob, job_id)
        if job is not None:
            job.running = False
            job.success = not errors
            job.finished_at_ms = _now_ms()
            job.errors = orjson.dumps(errors).decode()
            job.event_ids = orjson.dumps(ids).decode()
    if ids:
        interface.delivery_wakeup.set()


__all__ = ["EpcisProblem", "StoredEvent", "install_epcis", "read_body", "request_target_digest"]
