"""What the EPCIS routes share: the node's database and capture limits, the readers, the capture
job worker, and the three shapes of answer a read takes (a page of events, a page of a
collection's members, one resource), each negotiated and signed-read checked the same way."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import anyio
import orjson
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select

from node.db import Database, EpcisQuery, Event
from node.member.epcis_rest.negotiation import negotiate, standard_headers
from node.member.epcis_rest.output import collection, query_document
from node.member.epcis_rest.problems import EpcisProblem, problem_body
from node.member.epcis_rest.query import EventQuery, parse_query, per_page, run_query
from node.member.epcis_rest.readers import Readers

PREFIX = "/epcis"
PAGING = ("perPage", "nextPageToken")
# Parameters of a named query's events that only matter to a WebSocket subscription.
_WEBSOCKET_PARAMETERS = frozenset(("second", "minute", "hour", "dayOfMonth", "month", "dayOfWeek", "stream", "reportIfEmpty", "initialRecordTime"))
_BODY_SCAN = 2000  # stored bodies read per round when collecting values that have no column


def now_ms() -> int:
    return int(time.time() * 1000)


def link_next(request: Request, token: str | None) -> dict[str, str]:
    """The `Link: <...>; rel="next"` header of a page that has a next one."""
    if token is None:
        return {}
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"] + [("nextPageToken", token)]
    return {"Link": f'<{request.url.path}?{urlencode(items)}>; rel="next"'}


def paging_only(request: Request) -> int:
    """The page size of a listing that takes no parameter but perPage and nextPageToken."""
    limit = per_page(dict(request.query_params))
    if any(k not in PAGING for k in request.query_params):
        raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", "only perPage and nextPageToken")
    return limit


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

    # ---- answers -------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return standard_headers(self.capture_limit, self.size_limit)

    def json(self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None, media: str = "application/json") -> Response:
        return Response(orjson.dumps(body), status_code=status, media_type=media, headers={**self.headers(), **(headers or {})})

    def empty(self, status: int, headers: Mapping[str, str] | None = None) -> Response:
        return Response(status_code=status, headers={**self.headers(), **(headers or {})})

    def problem(self, exc: EpcisProblem) -> Response:
        # GS1's description gives 409 a status enum of [406] (an error in it): leave status out there
        status_field = None if exc.status == 409 else exc.status
        # GS1's description gives subscription problems (400SubscriptionIssues) as application/json
        media = "application/json" if exc.kind == "SubscriptionControlsException" else "application/problem+json"
        return self.json(problem_body(status_field, exc.kind, exc.title, exc.detail, exc.instance), exc.status, media=media)

    # ---- reads ---------------------------------------------------------------------------------

    def reader(self, request: Request) -> str | None:
        """Negotiate, then check the signed read: the reading account (None when reads are open)."""
        negotiate(request)
        return self.readers.check(request)

    def resource(self, request: Request, members: Sequence[str]) -> Response:
        """One resource, answered as the collection of what is under it."""
        self.reader(request)
        return self.json(collection(members))

    async def events_page(self, request: Request, fixed: Sequence[tuple[str, str]] = (), *,
                          query_name: str | None = None) -> Response:
        """A page of events: the request's query, `fixed` parameters the path sets, or a named query."""
        self.reader(request)
        given = [(k, v) for k, v in request.query_params.multi_items() if k not in PAGING]
        names = {k for k, _ in fixed}
        clashing = [k for k, _ in given if k in names]
        if clashing:
            raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", f"{clashing[0]} is fixed by the path")
        query = parse_query(list(fixed) + given) if not query_name else self._named_query(query_name, given)
        limit = per_page(dict(request.query_params))
        token = request.query_params.get("nextPageToken")
        page = await anyio.to_thread.run_sync(lambda: run_query(self.db, query, limit=limit, token=token))
        return self.json(query_document(page.events, query_name=query_name), headers=link_next(request, page.next_token))

    def _named_query(self, name: str, given: list[tuple[str, str]]) -> EventQuery:
        given = [(k, v) for k, v in given if k not in _WEBSOCKET_PARAMETERS]
        if given:
            raise EpcisProblem(400, "QueryParameterException", "Invalid query parameter", "a named query takes only perPage and nextPageToken")
        with self.db.session() as s:
            stored = s.get(EpcisQuery, name)
        if stored is None:
            raise EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no query named {name!r}")
        return parse_query(orjson.loads(stored.query), allow_paging=False)

    async def distinct_values(self, request: Request, column: Any, field: str) -> Response:
        """A page of the distinct values of `column`, or of the events' `field` where no column holds it."""
        self.reader(request)
        limit = paging_only(request)
        after = request.query_params.get("nextPageToken")

        def work() -> list[str]:
            if column is None:
                return [v for v in self._body_values(field) if not after or v > after][: limit + 1]
            with self.db.session() as s:
                statement = select(column).distinct().where(column.is_not(None)).order_by(column)
                if after:
                    statement = statement.where(column > after)
                return [str(v) for v in s.scalars(statement.limit(limit + 1)).all()]

        values = await anyio.to_thread.run_sync(work)
        more = len(values) > limit
        values = values[:limit]
        return self.json(collection(values), headers=link_next(request, values[-1] if more and values else None))

    def _body_values(self, field: str) -> list[str]:
        """Distinct readPoint / bizLocation ids or dispositions, read from the stored bodies (there
        is no column for them)."""
        values: set[str] = set()
        last = 0
        while True:
            with self.db.session() as s:
                rows = s.execute(select(Event.id, Event.body).where(Event.id > last).order_by(Event.id).limit(_BODY_SCAN)).all()
            for row in rows:
                event = orjson.loads(row.body)
                value = event.get(field)
                if isinstance(value, Mapping):
                    value = value.get("id")
                if isinstance(value, str):
                    values.add(value)
            if len(rows) < _BODY_SCAN:
                return sorted(values)
            last = int(rows[-1].id)
