"""Capture: check an attested EPCIS 2.0 document, event by event, and store it before answering.

The wire format
---------------
A capture request is an EPCISDocument (JSON-LD binding) whose events each carry their
attestation in the extension field `wm:attestation` (`wm` = https://ns.waymark.example/epcis/):

    {"@context": [...], "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "...",
     "epcisBody": {"eventList": [
        {"type": "ObjectEvent", ..., "wm:attestation": {"signer": "0x<address>", "signature": "0x<65 bytes>"}}
     ]}}

`wm:attestation` is taken out of the event before anything else: it is not part of the
event, not validated as an extension, not hashed and not stored in the event body. The
signature is the EIP-712 `Attestation(eventHash, subject, eventTime)` of
`node.protocol.attestation` by `signer`.

Checks, in order, for every event of the document (the first failure rejects the whole
document, nothing is stored): the document is valid EPCIS 2.0 - an EPCISDocument or an
EPCISQueryDocument, checked against GS1's official JSON schema and then Waymark's own rules
(`MalformedCapture`, naming the field path and the rule); the event time is not too far in the
future; the attestation is present and well formed and its signature recovers to `signer`
(`BadAttestation`: the signature is the writer's credential); the signer held, at the event
time, one of the roles the role table gives the bizStep, or any attesting role for a step
outside the table (`node.member.ingest.roles.roles_for_bizstep`; `SignerLacksRole`). Then all new events are stored
as pending in one transaction; events already stored (same id) are reported as duplicates and
left alone.

Error declarations (corrections): an event with `errorDeclaration` shares its CBV 2.0 event
hash with the event it declares erroneous. It is stored, attested and anchored under its own
id (`node.protocol.event_hash.record_digest`: the hash plus the declaration), with
`corrects` = the original's digest, so it is never mistaken for a duplicate. Its signature
is over that id.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import orjson

from node import strict_json
from node.db import Database
from node.db.event_rows import EVENT_COLUMNS, event_rows
from node.db.locks import EVENTS_FEED, in_id_order
from node.errors import WaymarkError
from node.member.ingest.roles import RoleMirror
from node.protocol.attestation import AttestationDomain, attestation_digest, event_subject
from node.protocol.crypto import SignatureError, parse_signature
from node.protocol.epcis_validation import EpcisValidationError, validate_document
from node.protocol.timestamps import UNIX_EPOCH, moment_ms, parse_timestamp
from node.protocol.canonical_ids import event_epcs
from node.protocol.event_hash import EventHashError, event_digest, hash_from_digest, record_digest
from node.protocol.verification import check_attestation_signature, held_role, required_roles

ATTESTATION_KEY = "wm:attestation"


class CaptureError(WaymarkError):
    """A capture request was refused; `field` is the path of the offending value, if one."""

    code = "capture_error"
    _init_args: tuple[Any, ...] = ()

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Checks may run in worker processes: rebuild from the constructor's own arguments.
        return (type(self), self._init_args)


class MalformedCapture(CaptureError):
    code = "malformed"

    def __init__(self, field: str, problem: str) -> None:
        self._init_args = (field, problem)
        self.problem = problem
        super().__init__(f"{field}: {problem}", field)


class BadAttestation(CaptureError):
    code = "bad_signature"

    def __init__(self, field: str, problem: str) -> None:
        self._init_args = (field, problem)
        self.problem = problem
        super().__init__(f"{field}: {problem}", field)


class SignerLacksRole(CaptureError):
    code = "missing_role"

    def __init__(self, field: str, signer: str, roles: Sequence[str], at: int) -> None:
        self._init_args = (field, signer, tuple(roles), at)
        self.signer, self.roles, self.at = signer, tuple(roles), at
        super().__init__(f"{field}: {signer} did not hold {' or '.join(roles)} at {at} (unix time)", field)


class CaptureTooLarge(CaptureError):
    code = "too_large"

    def __init__(self, what: str, limit: int) -> None:
        self._init_args = (what, limit)
        super().__init__(f"{what} exceeds the limit of {limit}")


class CaptureRefused(CaptureError):
    """The body itself refused by the strict JSON reader (node.strict_json): its status and code."""

    def __init__(self, status: int, code: str, message: str, field: str) -> None:
        self._init_args = (status, code, message, field)
        self.status = status
        self.code = code
        super().__init__(message, field)


@dataclass(slots=True)
class CheckedEvent:
    """An event that passed every check, ready to store."""

    digest: bytes
    event_type: str
    action: str | None
    biz_step: str | None
    event_time: int
    event_time_ms: int
    subject: bytes
    signer: str
    signature: bytes
    role: str
    body: str
    epcs: tuple[tuple[str, str], ...]
    roles: tuple[str, ...] = ()  # the roles the bizStep accepts
    path: str = ""  # where the event was in its document
    corrects: bytes | None = None  # an error declaration: the CBV digest of the event it corrects
    org: int = 0  # the signer's organisation at the event time (recorded with the role)

    @property
    def event_id(self) -> str:
        return hash_from_digest(self.digest)

    def __reduce__(self) -> tuple[Any, ...]:
        # Checked in worker processes, thousands a second: a plain tuple of the fields pickles
        # and unpickles several times faster than the slots' default state.
        return (CheckedEvent, _checked_fields(self))


_checked_fields = attrgetter(*(f.name for f in fields(CheckedEvent)))


@dataclass(frozen=True)
class CaptureResult:
    event_ids: list[str]
    new: int
    duplicates: int


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# An attestation's eventTime is a uint64 of unix seconds: nothing before 1970 can be signed.
MAX_FUTURE_SKEW = 300  # the node's default (WAYMARK_NODE_MAX_FUTURE_SKEW); oracles check the same


def checked_event_time(timestamp: Any, now: float | None, max_future_skew: int = MAX_FUTURE_SKEW) -> datetime:
    """An event time as the node accepts it, as a UTC datetime: a dateTimeStamp with a time
    zone, in the years 1970-9999 UTC, at most `max_future_skew` seconds after `now` (not
    checked if `now` is None); otherwise ValueError saying what is wrong.
    One rule for the node's capture and the oracles' inputs (what an oracle acknowledges,
    the node will not refuse for its time)."""
    if not isinstance(timestamp, str):
        raise ValueError(f"expected an ISO 8601 time with a time zone, got {type(timestamp).__name__}")
    moment, _fraction = parse_timestamp(timestamp)
    if moment < UNIX_EPOCH:
        raise ValueError(f"{timestamp!r} is before 1970-01-01T00:00:00Z, the earliest time an attestation can carry")
    if now is not None and (moment - UNIX_EPOCH).total_seconds() > now + max_future_skew:
        raise ValueError(f"{timestamp!r} is more than {max_future_skew}s in the future")
    return moment


def event_time_problem(timestamp: Any, now: float | None, max_future_skew: int = MAX_FUTURE_SKEW) -> str | None:
    """What `checked_event_time` finds wrong with an event time, or None."""
    try:
        checked_event_time(timestamp, now, max_future_skew)
    except ValueError as exc:
        return str(exc)
    return None


def precheck_document(
    body: bytes, domain: AttestationDomain, max_events: int, max_future_skew: int, limits: strict_json.JsonLimits = strict_json.JsonLimits()
) -> list[CheckedEvent]:
    """Every check but the role check (which needs the registry's history): parse, validate,
    hash, recover. A pure function of its arguments, so it can run in a worker process.
    The events come back with `role` empty and the bizStep's candidate roles in `roles`."""
    try:
        document = strict_json.loads(body, limits)
    except strict_json.JsonInputError as exc:
        if exc.code == "malformed":
            raise MalformedCapture(exc.field, exc.message) from None
        raise CaptureRefused(exc.status, exc.code, exc.message, exc.field) from None
    if not isinstance(document, dict):
        raise MalformedCapture("(body)", "expected an EPCISDocument object")
    body_part = document.get("epcisBody")
    if document.get("type") == "EPCISQueryDocument" and isinstance(body_part, dict):
        # a query document's events sit in queryResults.resultsBody
        results = body_part.get("queryResults")
        body_part = results.get("resultsBody") if isinstance(results, dict) else None
    raw_events = body_part.get("eventList") if isinstance(body_part, dict) else None
    if isinstance(raw_events, list) and len(raw_events) > max_events:
        raise CaptureTooLarge(f"a document of {len(raw_events)} events", max_events)
    attestations: list[Any] = []
    if isinstance(raw_events, list):
        stripped = []
        for event in raw_events:
            if isinstance(event, dict):
                attestations.append(event.get(ATTESTATION_KEY))
                event = {k: v for k, v in event.items() if k != ATTESTATION_KEY}
            else:
                attestations.append(None)
            stripped.append(event)
        assert isinstance(body_part, dict)
        body_part["eventList"] = stripped
    try:
        validate_document(document)
    except EpcisValidationError as exc:
        raise MalformedCapture(exc.field, exc.problem) from None
    context = document.get("@context")
    latest = int(time.time()) + max_future_skew
    where = "epcisBody.queryResults.resultsBody.eventList" if document["type"] == "EPCISQueryDocument" else "epcisBody.eventList"
    assert isinstance(body_part, dict)
    return [
        _precheck_event(f"{where}[{i}]", event, attestations[i], context, latest, domain, max_future_skew)
        for i, event in enumerate(body_part["eventList"])
    ]


def _precheck_event(
    path: str, event: dict[str, Any], attestation: Any, context: Any, latest: int, domain: AttestationDomain, skew: int
) -> CheckedEvent:
    where = f"{path}.{ATTESTATION_KEY}"
    # The attestation is the writer's credential: anything wrong with it is a 401.
    if not isinstance(attestation, dict):
        raise BadAttestation(where, "missing: every event needs {signer, signature}")
    signer, signature_text = attestation.get("signer"), attestation.get("signature")
    if not isinstance(signer, str) or not _ADDRESS.fullmatch(signer):
        raise BadAttestation(f"{where}.signer", "expected a 0x-prefixed account address")
    if not isinstance(signature_text, str):
        raise BadAttestation(f"{where}.signature", "expected 0x-prefixed hex of 65 bytes")
    try:
        moment = checked_event_time(event.get("eventTime"), latest - skew, skew)
    except ValueError as exc:
        raise MalformedCapture(f"{path}.eventTime", str(exc)) from None
    event_time_ms = moment_ms(moment)  # from the time parsed once
    # The attested seconds: what signers compute (event_unix_time, fractions dropped) for every
    # time this check accepts, 1970 or later (tests/node/test_capture_fuzz.py holds them equal).
    event_time = event_time_ms // 1000
    if event_time > latest:
        raise MalformedCapture(f"{path}.eventTime", f"more than {skew}s in the future")
    if "@context" not in event and context is not None:
        event = {"@context": context, **event}
    try:
        digest = record_digest(event)  # an error declaration gets an id of its own
        corrects = event_digest(event) if "errorDeclaration" in event else None
        subject = event_subject(event)
    except EventHashError as exc:  # validation should have caught it; never a 500 for bad input
        raise MalformedCapture(path, str(exc)) from None
    try:
        signature = parse_signature(signature_text)
    except SignatureError as exc:
        raise BadAttestation(f"{where}.signature", exc.problem) from None
    # node.protocol.verification's check 2 over the fields derived above (as check_signature derives them)
    signed, recovered = check_attestation_signature(attestation_digest(domain, digest, subject, event_time), signer, signature)
    if signed.status != "passed" or recovered is None:
        raise BadAttestation(f"{where}.signature", f"signed by {signed.found}, not by the declared signer {signer}"
                             if signed.found else signed.detail.removeprefix("the signature does not verify: "))
    biz_step = event.get("bizStep")
    roles = required_roles(event)
    return CheckedEvent(
        digest=digest,
        event_type=event["type"],
        action=event.get("action"),
        biz_step=biz_step,
        event_time=event_time,
        event_time_ms=event_time_ms,
        subject=subject,
        signer=recovered,
        signature=signature,
        role="",
        body=orjson.dumps(event).decode(),
        epcs=event_epcs(event),
        roles=roles,
        path=path,
        corrects=corrects,
    )


class CaptureService:
    """Checks and stores capture documents for one chain and one ProvenanceRegistry.

    With `executor` (a process pool), the CPU-heavy part of the checks of each document runs
    in a worker process, so ingest uses every core; the role check and the database write
    stay here.
    """

    def __init__(
        self,
        db: Database,
        domain: AttestationDomain,
        roles: RoleMirror,
        *,
        max_events: int = 20_000,
        max_future_skew: int = 300,
        executor: Executor | None = None,
        limits: strict_json.JsonLimits = strict_json.JsonLimits(),
    ) -> None:
        self.limits = limits
        self.db = db
        self.domain = domain
        self.roles = roles
        self.max_events = max_events
        self.max_future_skew = max_future_skew
        self.executor = executor
        self._write_turns = db.write_turns()

    def capture(self, body: bytes) -> CaptureResult:
        return self.store(self.check(body))

    def precheck(self, body: bytes) -> list[CheckedEvent]:
        if self.executor is None:
            return precheck_document(body, self.domain, self.max_events, self.max_future_skew, self.limits)
        return self.executor.submit(precheck_document, body, self.domain, self.max_events, self.max_future_skew, self.limits).result()

    def check(self, body: bytes) -> list[CheckedEvent]:
        """All checks; raises the first failure (a CaptureError)."""
        return self.check_roles(self.precheck(body))

    def check_roles(self, events: list[CheckedEvent]) -> list[CheckedEvent]:
        checked = []
        for event in events:
            # node.protocol.verification's role check, over the registry history this node mirrors.
            role = held_role(self.roles, event.signer, event.roles, event.event_time)
            if role is None:
                raise SignerLacksRole(f"{event.path}.{ATTESTATION_KEY}", event.signer, event.roles, event.event_time)
            event.role = role
            event.org = self.roles.organisation_at(event.signer, event.event_time)
            checked.append(event)
        return checked

    # ---- storing -------------------------------------------------------------------------

    def store(self, events: Sequence[CheckedEvent]) -> CaptureResult:
        """Store new events as pending (one transaction); report the others as duplicates.

        The hot path talks to the DB-API cursor directly: SQLAlchemy's per-row parameter
        processing cost more than the inserts themselves.
        """
        unique = list({e.digest: e for e in events}.values())
        with self._write_turns, self.db.connect(write=True) as conn, event_rows(conn) as stored:
            in_id_order(conn, EVENTS_FEED)  # subscriptions deliver events by id
            # The record time (EPCIS recordTime), taken once the events may be written, so record
            # times follow commit order: a client asking for GE_recordTime of the last one it saw
            # misses none committed after it (unless this machine's clock steps back).
            now = int(time.time() * 1000)
            known = stored.existing([e.digest for e in unique])
            fresh = [e for e in unique if e.digest not in known]
            rows = [
                (e.digest, e.event_type, e.action, e.biz_step, e.event_time, e.event_time_ms, e.subject,
                 e.signer, e.signature, e.role, e.body, now, e.corrects, e.org or None, now)
                for e in fresh
            ]
            ids = stored.insert(EVENT_COLUMNS, rows)
            stored.insert_epcs([(ids[e.digest], epc, relation) for e in fresh if e.digest in ids for epc, relation in e.epcs])
        return CaptureResult([hash_from_digest(e.digest) for e in events], len(ids), len(events) - len(ids))


