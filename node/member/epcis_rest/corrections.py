"""Corrections (EPCIS error declarations) of an event, for the passport and the query interface.

An error declaration repeats the event it declares erroneous, plus `errorDeclaration`
(declarationTime, reason, correctiveEventIDs). Its CBV 2.0 event hash is the original's;
capture stores it under its own record id with `events.corrects` = the original's digest
(node.member.ingest.capture). `corrections_for` lists them for one event hash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import aliased

from node.db import Batch, Database, Event
from node.db.plain import PlainSelect
from node.protocol.event_hash import digest_from_hash, hash_from_digest


@dataclass(frozen=True)
class Correction:
    """One error declaration of an event."""

    record_id: str  # ni:///sha-256;<record digest>: what was attested, anchored and proven
    event_id: str  # the corrected event's CBV 2.0 hash
    declaration_time: str | None
    reason: str | None
    corrective_event_ids: tuple[str, ...]
    signer: str
    role: str
    status: str  # pending | anchored | confirmed
    event: dict[str, Any]  # the declaration as captured

    def as_json(self) -> dict[str, Any]:
        return {
            "recordId": self.record_id,
            "eventId": self.event_id,
            "declarationTime": self.declaration_time,
            "reason": self.reason,
            "correctiveEventIDs": list(self.corrective_event_ids),
            "signer": self.signer,
            "role": self.role,
            "status": self.status,
        }


def corrections_for(db: Database, event_id: str | bytes) -> list[Correction]:
    """Every error declaration stored for the event (its hash `ni:///sha-256;...` or its 32-byte
    digest), in the order they were captured."""
    digest = event_id if isinstance(event_id, bytes) else digest_from_hash(event_id)
    return corrections_of(db, [digest]).get(digest, [])


_CORRECTIONS = PlainSelect(  # built once: building a statement costs more than running it
    select(Event.digest, Event.corrects, Event.body, Event.signer, Event.role, Batch.status)
    .outerjoin(Batch, Batch.id == Event.batch_id)
    .where(Event.corrects.in_(bindparam("digests", expanding=True)))
    .order_by(Event.id)
)


# Whether an error declaration names an event, as a column of a statement that reads events (the
# passport reads it with the unit's history, an index probe of ix_events_corrects per event), so
# `corrections_of` runs only for the rare timeline that has one.
_declaration = aliased(Event)
DECLARED_ERRONEOUS = exists().where(_declaration.corrects == Event.digest).correlate(Event)


def corrections_of(db: Database, digests: Sequence[bytes]) -> dict[bytes, list[Correction]]:
    """The error declarations of several events in one indexed read, by corrected digest."""
    if not digests:
        return {}
    with db.connect() as conn:  # the passport build reads this for every timeline
        rows = _CORRECTIONS.rows(conn, {"digests": list(digests)})
    found: dict[bytes, list[Correction]] = {}
    for digest, corrects, body, signer, role, status in rows:
        corrected = bytes(corrects)
        event = orjson.loads(body)
        declaration = event.get("errorDeclaration") or {}
        found.setdefault(corrected, []).append(
            Correction(
                record_id=hash_from_digest(bytes(digest)),
                event_id=hash_from_digest(corrected),
                declaration_time=declaration.get("declarationTime"),
                reason=declaration.get("reason"),
                corrective_event_ids=tuple(declaration.get("correctiveEventIDs") or ()),
                signer=signer,
                role=role,
                status="pending" if status in (None, "prepared") else str(status),
                event=event,
            )
        )
    return found


def passport_corrections(db: Database) -> Callable[[Sequence[str]], Mapping[str, dict[str, Any]]]:
    """The passport's corrections hook: for the timeline's event ids, the latest declaration of
    each corrected event as {reason, declaredAt, correctiveEventIds}."""

    def corrections(event_ids: Sequence[str]) -> Mapping[str, dict[str, Any]]:
        by_digest = corrections_of(db, [digest_from_hash(e) for e in event_ids])
        return {
            hash_from_digest(digest): {
                "reason": latest.reason,
                "declaredAt": latest.declaration_time,
                "correctiveEventIds": list(latest.corrective_event_ids),
            }
            for digest, found in by_digest.items()
            for latest in found[-1:]
        }

    return corrections
