"""The EPCIS 2.0 REST routes (GS1's OpenAPI description, REST Bindings/openapi.yaml), mounted
by `install_epcis` under `/epcis` of the node app. See the package docstring for what is
implemented and what is left out. Here: discovery (OPTIONS, the top level), events and the
collections over them; capture in node.member.epcis_rest.capture, named queries and
subscriptions in node.member.epcis_rest.queries.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from node.db import Event, EventEpc
from node.errors import WaymarkError
from node.member.epcis_rest.capture import add_capture_routes
from node.member.epcis_rest.interface import PREFIX, EpcisInterface
from node.member.epcis_rest.negotiation import negotiate
from node.member.epcis_rest.output import collection, query_document
from node.member.epcis_rest.problems import EpcisProblem
from node.member.epcis_rest.queries import add_query_routes
from node.member.epcis_rest.query import EVENT_TYPES, QueryParameterError, QueryTooLarge, parse_query, run_query
from node.member.epcis_rest.subscriptions import Deliverer
from node.protocol.event_hash import digest_from_hash

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
TOP_LEVEL = ["events", "eventTypes", "epcs", "bizSteps", "bizLocations", "readPoints", "dispositions", "capture", "queries"]


def install_epcis(app: FastAPI, runtime: Any, *, signed_reads: bool = True) -> Callable[[threading.Event], None]:
    """Mount the EPCIS 2.0 interface under /epcis; return the subscription delivery loop (run it
    in one thread per database, with a stop event)."""
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

    # Raised by query parsing and running wherever a route reads events.
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


@dataclass(frozen=True)
class EventCollection:
    """A top-level resource whose members each name a set of events: GET /{name} lists the
    members, /{name}/{member} is the member, /{name}/{member}/events its events (the query
    parameter `param` fixed to the member)."""

    name: str
    param: str
    members: Callable[[EpcisInterface, Request], Awaitable[Response]]
    member_path: str = "{value:path}"


async def _event_types(interface: EpcisInterface, request: Request) -> Response:
    return interface.resource(request, EVENT_TYPES)


def _distinct(column: Any, field: str) -> Callable[[EpcisInterface, Request], Awaitable[Response]]:
    """Members: the distinct values of `column`, or of the events' `field` where no column holds it."""

    async def members(interface: EpcisInterface, request: Request) -> Response:
        return await interface.distinct_values(request, column, field)

    return members


COLLECTIONS = (
    EventCollection("eventTypes", "eventType", _event_types, member_path="{value}"),
    EventCollection("epcs", "MATCH_anyEPC", _distinct(EventEpc.epc, "epc")),
    EventCollection("bizSteps", "EQ_bizStep", _distinct(Event.biz_step, "bizStep")),
    EventCollection("bizLocations", "EQ_bizLocation", _distinct(None, "bizLocation")),
    EventCollection("readPoints", "EQ_readPoint", _distinct(None, "readPoint")),
    EventCollection("dispositions", "EQ_disposition", _distinct(None, "disposition")),
)


def _add_collection(router: APIRouter, interface: EpcisInterface, resource: EventCollection) -> None:
    async def members(request: Request) -> Response:
        return await resource.members(interface, request)

    async def events(value: str, request: Request) -> Response:
        return await interface.events_page(request, [(resource.param, value)])

    async def member(value: str, request: Request) -> Response:
        return interface.resource(request, ["events"])

    path = f"/{resource.name}/{resource.member_path}"
    router.add_api_route(f"/{resource.name}", members, methods=["GET"], name=resource.name)
    router.add_api_route(f"{path}/events", events, methods=["GET"], name=f"{resource.name}_events")
    router.add_api_route(path, member, methods=["GET"], name=f"{resource.name}_member")


def build_router(interface: EpcisInterface) -> APIRouter:
    router = APIRouter(tags=["EPCIS 2.0"])

    async def options(request: Request) -> Response:
        rest = request.url.path[len(PREFIX):] or "/"
        for pattern, allow in _ALLOW:
            if pattern.match(rest):
                return interface.empty(204, {"Allow": allow})
        raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no EPCIS resource {rest}")

    # `path` parameters stop at a newline (an encoded %0A): one route per depth as well
    router.add_api_route("/", options, methods=["OPTIONS"], include_in_schema=False)
    for depth in range(1, 7):
        router.add_api_route("".join(f"/{{p{i}}}" for i in range(depth)), options, methods=["OPTIONS"], include_in_schema=False)
    router.add_api_route("/{rest:path}", options, methods=["OPTIONS"], include_in_schema=False)

    @router.get("/")
    async def top_level(request: Request) -> Response:
        negotiate(request)
        return interface.json(collection(TOP_LEVEL))

    add_capture_routes(router, interface)

    @router.get("/events")
    async def events(request: Request) -> Response:
        return await interface.events_page(request)

    @router.get("/events/{event_id:path}")
    async def one_event(event_id: str, request: Request) -> Response:
        interface.reader(request)
        if request.query_params:
            raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", "an event takes no query parameters")
        try:
            digest = digest_from_hash(event_id)
        except (ValueError, WaymarkError):
            raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"{event_id!r} is not an event id of this node") from None
        page = await anyio.to_thread.run_sync(lambda: run_query(interface.db, parse_query([("EQ_eventID", event_id)]), limit=100))
        found = [e for e in page.events if e.digest == digest or e.corrects == digest]
        if not found:
            raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no event {event_id}")
        return interface.json(query_document(found))

    for resource in COLLECTIONS:
        _add_collection(router, interface, resource)
    add_query_routes(router, interface)
    return router


__all__ = ["COLLECTIONS", "EventCollection", "build_router", "install_epcis"]
