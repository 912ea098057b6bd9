"""Delivery of query subscriptions: every new event matching a subscribed named query is POSTed
to the subscriber's `dest` as an EPCISQueryDocument.

Signed: with the subscription's `signatureToken`, the body's HMAC-SHA256 goes in the
`GS1-Signature` header (lower-case hex), so the receiver knows the node sent it. Retried: a
delivery that fails (no answer, or not 2xx) is tried again after 1, 2, 4 ... s (at most
`max_backoff` s), and the events stay queued (the subscription's `delivered_up_to` only moves
on a 2xx). Events are delivered in the order they were stored, at most `batch` per request; they
commit in the order of their ids (node.db.locks.in_id_order), so none is passed over.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import select

from node.db import Database, EpcisQuery, EpcisSubscription
from node.member.epcis_rest.output import query_document
from node.member.epcis_rest.query import StoredEvent, matches, parse_query, stored_events

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "GS1-Signature"


def signature(token: str, body: bytes) -> str:
    """The `GS1-Signature` of a delivery: HMAC-SHA256 of the body under the subscriber's token."""
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def private_destination(dest: str) -> str | None:
    """Why `dest` must not be delivered to, or None: a subscriber (any member) must not make this
    node post to its own loopback, private, link-local or otherwise non-public addresses (its admin
    RPC, a validator, a metadata service). Checked at each delivery, on the addresses the name
    resolves to then."""
    host = urlsplit(dest).hostname
    if not host:
        return f"{dest} names no host"
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        return f"{host} does not resolve: {exc}"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            return f"{host} resolves to {address}, which is not a public address; subscriptions deliver to public addresses only"
    return None


class Deliverer:
    def __init__(
        self, db: Database, *, wakeup: threading.Event | None = None, batch: int = 500, timeout: float = 10.0,
        max_backoff: float = 300.0, client: httpx.Client | None = None, private_destinations_ok: bool = False,
    ) -> None:
        self.db = db
        self.private_destinations_ok = private_destinations_ok
        self.wakeup = wakeup or threading.Event()
        self.batch = batch
        self.max_backoff = max_backoff
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def run(self, stop: threading.Event, poll: float = 1.0) -> None:
        """Deliver until `stop` is set (woken early when capture stores something)."""
        while not stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # noqa: BLE001 - the loop outlives one bad round; the log says why
                log.exception("subscription delivery failed")
            self.wakeup.wait(poll)
            self.wakeup.clear()

    def deliver_due(self, now_ms: int | None = None) -> int:
        """One round: every subscription whose retry time has come. Returns deliveries made."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        with self.db.session() as s:
            due = [
                (sub.id, sub.query_name, sub.dest, sub.signature_token, sub.delivered_up_to, sub.attempts, orjson.loads(q.query))
                for sub, q in s.execute(
                    select(EpcisSubscription, EpcisQuery).join(EpcisQuery, EpcisQuery.name == EpcisSubscription.query_name)
                    .where(EpcisSubscription.next_attempt_ms <= now)
                ).all()
            ]
        delivered = 0
        for sub_id, name, dest, token, after, attempts, raw in due:
            query = parse_query(raw, allow_paging=False)
            events: list[StoredEvent] = []
            last = after
            for event in stored_events(self.db, query, [after, after, 0], self.batch):
                last = event.row_id
                if matches(query, event.event, event.event_id):
                    events.append(event)
                    if len(events) == self.batch:
                        break
            if not events:
                if last != after:
                    self._update(sub_id, delivered_up_to=last)
                continue
            body = orjson.dumps(query_document(events, query_name=name, subscription_id=sub_id))
            headers = {"Content-Type": "application/json", "GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"}
            if token:
                headers[SIGNATURE_HEADER] = signature(token, body)
            error = None if self.private_destinations_ok else private_destination(dest)
            if error is None:
                try:
                    answer = self.client.post(dest, content=body, headers=headers)
                    if not 200 <= answer.status_code < 300:
                        error = f"{dest} answered {answer.status_code}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
            if error is None:
                delivered += 1
                self._update(sub_id, delivered_up_to=events[-1].row_id, attempts=0, next_attempt_ms=0, last_error=None)
            else:
                wait = min(self.max_backoff, 2.0 ** attempts)
                self._update(sub_id, attempts=attempts + 1, next_attempt_ms=now + int(wait * 1000), last_error=error)
        return delivered

    def _update(self, sub_id: str, **values: Any) -> None:
        with self.db.session() as s, s.begin():
            sub = s.get(EpcisSubscription, sub_id)
            if sub is not None:
                for key, value in values.items():
                    setattr(sub, key, value)
