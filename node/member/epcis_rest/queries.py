"""Named queries and their stream subscriptions (`/queries...`): a query is stored under its
name and answered at `/queries/{name}/events`; a subscription is delivered by webhook
(node.member.epcis_rest.subscriptions)."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import delete, func, select

from node.db import EpcisQuery, EpcisSubscription, Event
from node.member.epcis_rest.interface import PREFIX, EpcisInterface, now_ms
from node.member.epcis_rest.negotiation import parse_json, read_body
from node.protocol.timestamps import iso_ms
from node.member.epcis_rest.problems import EpcisProblem
from node.member.epcis_rest.query import QueryParameterError, parse_query, timestamp_ms


def _no_query(name: str) -> EpcisProblem:
    return EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no query named {name!r}")


def _no_subscription(subscription_id: str) -> EpcisProblem:
    return EpcisProblem(404, "NoSuchNameException", "Resource not found", f"no subscription {subscription_id}")


def _invalid_subscription(detail: str | None) -> EpcisProblem:
    return EpcisProblem(400, "SubscriptionControlsException", "Invalid subscription", detail)


def add_query_routes(router: APIRouter, interface: EpcisInterface) -> None:
    db, reader = interface.db, interface.reader

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
            s.add(EpcisQuery(name=name, query=orjson.dumps(definition["query"]).decode(), created_at_ms=now_ms(), account=account))
        return interface.empty(201, {"Location": f"{PREFIX}/queries/{name}"})

    @router.get("/queries/{query_name}/events")
    async def query_events(query_name: str, request: Request) -> Response:
        if (request.headers.get("upgrade") or "").strip().lower() == "websocket":
            raise EpcisProblem(400, "SubscriptionControlsException", "Subscription error", "WebSocket subscriptions are not offered; subscribe with a webhook")
        return await interface.events_page(request, query_name=query_name)

    @router.get("/queries/{query_name}/subscriptions/{subscription_id}")
    async def subscription(query_name: str, subscription_id: str, request: Request) -> Response:
        reader(request)
        with db.session() as s:
            found = s.get(EpcisSubscription, subscription_id)
            if found is None or found.query_name != query_name:
                raise _no_subscription(subscription_id)
            return interface.json(_subscription_json(found))

    @router.delete("/queries/{query_name}/subscriptions/{subscription_id}")
    async def unsubscribe(query_name: str, subscription_id: str, request: Request) -> Response:
        reader(request)
        with db.session() as s, s.begin():
            found = s.get(EpcisSubscription, subscription_id)
            if found is None or found.query_name != query_name:
                raise _no_subscription(subscription_id)
            s.delete(found)
        return interface.empty(204)

    @router.get("/queries/{query_name}/subscriptions")
    async def subscriptions(query_name: str, request: Request) -> Response:
        reader(request)
        with db.session() as s:
            if s.get(EpcisQuery, query_name) is None:
                raise _no_query(query_name)
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
            raise _invalid_subscription(exc.detail) from None
        dest, token = _subscription_request(body)
        initial = body.get("initialRecordTime")
        with db.session() as s, s.begin():
            if s.get(EpcisQuery, query_name) is None:
                raise _no_query(query_name)
            last_event = select(func.coalesce(func.max(Event.id), 0))
            if initial is not None:
                try:
                    since = timestamp_ms(str(initial))
                except ValueError:
                    raise _invalid_subscription("initialRecordTime is a date-time") from None
                last_event = last_event.where(Event.received_at_ms < since)
            # Without initialRecordTime: only what comes next.
            start = int(s.scalar(last_event) or 0)
            subscription_id = secrets.token_hex(16)
            s.add(EpcisSubscription(
                id=subscription_id, query_name=query_name, dest=dest, signature_token=token,
                report_if_empty=bool(body.get("reportIfEmpty", False)), delivered_up_to=start, attempts=0,
                next_attempt_ms=0, created_at_ms=now_ms(), account=account,
            ))
        interface.delivery_wakeup.set()
        location = f"{PREFIX}/queries/{query_name}/subscriptions/{subscription_id}"
        return interface.json({"subscriptionID": subscription_id, "dest": dest, "stream": True, "createdAt": iso_ms(now_ms())},
                              201, headers={"Location": location})

    @router.get("/queries/{query_name}")
    async def named_query(query_name: str, request: Request) -> Response:
        reader(request)
        with db.session() as s:
            found = s.get(EpcisQuery, query_name)
            if found is None:
                raise _no_query(query_name)
            return interface.json({"name": found.name, "query": orjson.loads(found.query)})

    @router.delete("/queries/{query_name}")
    async def delete_query(query_name: str, request: Request) -> Response:
        reader(request)
        with db.session() as s, s.begin():
            found = s.get(EpcisQuery, query_name)
            if found is None:
                raise _no_query(query_name)
            s.execute(delete(EpcisSubscription).where(EpcisSubscription.query_name == query_name))
            s.delete(found)
        return interface.empty(204)

    @router.delete("/nextPageToken/{token}")
    async def forget_token(token: str, request: Request) -> Response:
        reader(request)
        return interface.empty(204)  # tokens are stateless: nothing to forget


def _subscription_request(body: Any) -> tuple[str, str | None]:
    """(dest, signatureToken) of a stream subscription request, or why it is refused."""
    if not isinstance(body, dict) or not isinstance(body.get("dest"), str):
        raise _invalid_subscription("expected {dest, stream: true, signatureToken?}")
    dest = body["dest"]
    parts = urlsplit(dest)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid_subscription("dest is an http(s) URL (WebSocket subscriptions are not offered)")
    if "schedule" in body:
        raise _invalid_subscription("this node offers stream subscriptions only (stream: true), not scheduled ones")
    if body.get("stream") is not True:
        raise _invalid_subscription("stream must be true (the only kind offered)")
    token = body.get("signatureToken")
    if token is not None and not isinstance(token, str):
        raise _invalid_subscription("signatureToken is a string")
    return dest, token


def _subscription_json(sub: EpcisSubscription) -> dict[str, Any]:
    return {"subscriptionID": sub.id, "queryName": sub.query_name, "dest": sub.dest, "stream": True,
            "createdAt": iso_ms(sub.created_at_ms), "reportIfEmpty": bool(sub.report_if_empty)}
