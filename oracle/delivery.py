"""The delivery worker: sends what the oracle queued until the receivers have it.

* documents -> the node's document store (`POST /documents`, a signed upload);
* events    -> the node's ingest (`POST /capture`, EPCIS documents of up to `batch` attested
  events; the node answers duplicates like new events, so a resend is harmless);
* escrow facts -> the escrow agent (oracle.escrow), which signs milestone attestations and
  posts them to the relayer.

A receiver that cannot be reached, times out, or answers 5xx / 429 is retried with
exponential backoff (per job, and for the whole receiver, so a node that is down is not
hammered). A definite refusal (another 4xx) marks the job rejected with the receiver's
message; if a batch of events is refused, its events are sent one by one so that only the
offending one is set aside.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from node.documents import sign_document_request
from oracle.queue import DurableQueue, Job, backoff_delay
from oracle.service import DOCUMENT, ESCROW, EVENT

log = logging.getLogger(__name__)


class Transient(Exception):
    """Try again later. `status` is the receiver's HTTP answer, None if it could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)

    @property
    def poison_suspect(self) -> bool:
        """The receiver is up and failed on this very input (500: neither an outage, 503, nor load, 429)."""
        return self.status == 500


class Refused(Exception):
    """The receiver will not take this job; retrying would not help. `code` is the receiver's
    error code when it gave one (e.g. the relayer's `milestone_already_reached`)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class EscrowSink(Protocol):
    def deliver_fact(self, payload: Mapping[str, Any]) -> Any: ...


def answer_of(response: httpx.Response) -> Any:
    """The decoded answer of a 2xx; Transient or Refused otherwise."""
    if response.status_code < 300:
        return orjson.loads(response.content) if response.content else None
    code = message = None
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict):
            message, code = body.get("message"), body.get("code")
    except orjson.JSONDecodeError:
        pass
    detail = f"HTTP {response.status_code}: {message or response.text[:300]}"
    if response.status_code >= 500 or response.status_code in (408, 425, 429):
        raise Transient(detail, response.status_code)
    raise Refused(detail, response.status_code, code if isinstance(code, str) else None)


@dataclass
class NodeClient:
    """The node's ingest and document store, as the oracle's organisation."""

    base_url: str
    account: Any  # LocalAccount
    chain_id: int
    consortium_registry: str
    timeout: float = 15.0
    # The node's public URL, which signed document requests name (default: base_url).
    audience: str | None = None

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=self.timeout)
        self._skew: tuple[float, int | None] = (-1e9, None)

    def max_future_skew(self, ttl: float = 60.0) -> int | None:
        """How far ahead of its clock the node accepts event times (its GET /health), read again
        at most every `ttl` seconds; None while the node cannot tell (down, or an older node)."""
        read_at, value = self._skew
        if time.monotonic() - read_at < ttl:
            return value
        try:
            found = self.http.get("/health", timeout=min(self.timeout, 5.0)).json().get("maxFutureSkew")
            if isinstance(found, int):
                value = found
        except (httpx.HTTPError, ValueError, AttributeError):
            pass  # the last figure read, if any; asked again after `ttl`
        self._skew = (time.monotonic(), value)
        return value

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.post(path, **kwargs)
        except httpx.TransportError as exc:
            raise Transient(f"{self.base_url}{path} unreachable: {type(exc).__name__}: {exc}") from None

    def capture(self, events: list[Mapping[str, Any]]) -> Any:
        """POST one EPCIS document of attested events (all sharing one @context)."""
        context = events[0]["event"].get("@context")
        body_events = []
        for item in events:
            event = {k: v for k, v in item["event"].items() if k != "@context"}
            event["wm:attestation"] = {"signer": item["signer"], "signature": item["signature"]}
            body_events.append(event)
        document = {
            "@context": context,
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "epcisBody": {"eventList": body_events},
        }
        return answer_of(self._post("/capture", content=orjson.dumps(document), headers={"Content-Type": "application/ld+json"}))

    def upload(self, payload: Mapping[str, Any]) -> Any:
        content = base64.b64decode(payload["content"])
        digest = hashlib.sha256(content).digest()
        headers = sign_document_request(
            self.account.key, self.chain_id, self.consortium_registry, "upload", digest, audience=self.audience or self.base_url
        )
        headers["Content-Type"] = payload.get("mediaType") or "application/octet-stream"
        headers["Waymark-Document-Type"] = payload["documentType"]
        if payload.get("readers"):
            headers["Waymark-Readers"] = ",".join(str(r) for r in payload["readers"])
        return answer_of(self._post("/documents", content=content, headers=headers))


class Delivery:
    """Serves the queue: documents, events, escrow facts (in that order)."""

    def __init__(
        self,
        queue: DurableQueue,
        node: NodeClient,
        escrow: EscrowSink | None = None,
        *,
        batch: int = 200,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_poison_tries: int = 5,
    ) -> None:
        self.max_poison_tries = max_poison_tries
        self.queue = queue
        self.node = node
        self.escrow = escrow
        self.batch = batch
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        # Receiver-level backoff: after a transient failure nothing goes to that receiver until then.
        self._paused_until: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    # ---- receiver backoff ------------------------------------------------------------------

    def _available(self, receiver: str) -> bool:
        return self.clock() >= self._paused_until.get(receiver, 0.0)

    def _failed(self, receiver: str, error: str) -> None:
        count = self._failures.get(receiver, 0) + 1
        self._failures[receiver] = count
        delay = backoff_delay(count, self.base_delay, self.max_delay)
        self._paused_until[receiver] = self.clock() + delay
        log.warning("%s: %s (retrying in %.1fs)", receiver, error, delay)

    def _succeeded(self, receiver: str) -> None:
        self._failures.pop(receiver, None)
        self._paused_until.pop(receiver, None)

    # ---- one pass --------------------------------------------------------------------------

    def step(self) -> int:
        """Deliver what is due now; the number of jobs settled (delivered or rejected)."""
        settled = 0
        if self._available("node"):
            settled += self._documents()
        if self._available("node"):
            settled += self._events()
        if self.escrow is not None and self._available("relayer"):
            settled += self._escrow(ESCROW, self.escrow.deliver_fact)
        return settled

    def _one_by_one(self, receiver: str, jobs: list[Job], send: Callable[[Job], Any], *, drop_payload: bool = False) -> int:
        settled = 0
        for i, job in enumerate(jobs):
            try:
                result = send(job)
            except Transient as exc:
                if exc.poison_suspect:
                    settled += self._poison(receiver, job, exc)
                    continue
                self.queue.retry_later([j.id for j in jobs[i:]], str(exc))
                self._failed(receiver, str(exc))
                return settled
            except Refused as exc:
                self.queue.mark_rejected([job.id], str(exc))
                log.error("%s refused %s: %s", receiver, job.key, exc)
            else:
                self.queue.mark_delivered({job.id: result}, drop_payload=drop_payload)
                self._succeeded(receiver)
            settled += 1
        return settled

    def _poison(self, receiver: str, job: Job, exc: Transient) -> int:
        """The receiver is up and fails on this job: after `max_poison_tries` tries it is set
        aside (rejected, with the reason; the submission's status says so), never blocking the
        next job. 1 if it was set aside now."""
        if job.attempts + 1 >= self.max_poison_tries:
            self.queue.mark_rejected([job.id], f"set aside after {job.attempts + 1} tries, each failing: {exc}")
            log.error("%s fails on %s every time; set aside: %s", receiver, job.key, exc)
            return 1
        self.queue.retry_later([job.id], str(exc))
        return 0

    def _documents(self) -> int:
        jobs = self.queue.due(DOCUMENT, 20)
        return self._one_by_one("node", jobs, lambda job: self.node.upload(job.payload), drop_payload=True)

    def _events(self) -> int:
        jobs = self.queue.due(EVENT, self.batch)
        if not jobs:
            return 0
        # One capture document per @context (adapters share one; EPCIS capture may bring others).
        groups: dict[bytes, list[Job]] = {}
        for job in jobs:
            groups.setdefault(orjson.dumps(job.payload["event"].get("@context")), []).append(job)
        settled = 0
        for group in groups.values():
            try:
                answer = self.node.capture([j.payload for j in group])
            except Transient as exc:
                if exc.poison_suspect and len(group) > 1:  # find the event the node fails on
                    settled += self._one_by_one("node", group, lambda job: self.node.capture([job.payload]))
                    continue
                if exc.poison_suspect:
                    settled += self._poison("node", group[0], exc)
                    continue
                self.queue.retry_later([j.id for j in group], str(exc))
                self._failed("node", str(exc))
                return settled
            except Refused as exc:
                if len(group) == 1:
                    self.queue.mark_rejected([group[0].id], str(exc))
                    log.error("node refused event %s: %s", group[0].key, exc)
                    settled += 1
                    continue
                # Find the offending event(s): the rest go through on their own.
                settled += self._one_by_one("node", group, lambda job: self.node.capture([job.payload]))
                continue
            self._succeeded("node")
            ids = answer.get("eventIds", []) if isinstance(answer, dict) else []
            self.queue.mark_delivered({j.id: {"eventId": ids[i] if i < len(ids) else None} for i, j in enumerate(group)})
            settled += len(group)
        return settled

    def _escrow(self, kind: str, send: Callable[[Mapping[str, Any]], Any]) -> int:
        return self._one_by_one("relayer", self.queue.due(kind, 20), lambda job: send(job.payload))

    # ---- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event, idle: float = 1.0) -> None:
        """Deliver until `stop` is set; sleeps while nothing is due (woken by new jobs)."""
        while not stop.is_set():
            try:
                settled = self.step()
            except Exception:  # noqa: BLE001 - the worker must outlive any one bad job
                log.exception("delivery pass failed")
                settled = 0
            if settled:
                continue
            kinds = (DOCUMENT, EVENT, ESCROW) if self.escrow is not None else (DOCUMENT, EVENT)
            due_in = self.queue.next_due_in(kinds)
            now = self.clock()
            pause = min((until - now for until in self._paused_until.values() if until > now), default=None)
            if due_in is None:
                wait = idle
            elif due_in > 0:
                wait = due_in
            else:  # due now, but its receiver is backing off
                wait = pause if pause is not None else 0.05
            self.queue.wait(min(max(wait, 0.01), idle))
