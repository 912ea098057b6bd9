"""A unit's history, including what happened to every container it was inside at the time.

Containment comes from AggregationEvents: `ADD` (or `OBSERVE`) of a child into `parentID`
opens an interval, `DELETE` of that child (or a `DELETE` naming no children, which empties
the parent) closes it, and a child added to another parent leaves the previous one. The
intervals are followed upwards (unit -> case -> pallet -> container) and intersected, so
a container's event is part of a unit's history only if it happened while the unit was
(transitively) inside it. Both ends of an interval are inclusive: the packing event and an
event at the same instant count.

Which events of a container count: those naming it as an object (epcList, input/output
lists, TransactionEvent parent) or as a child (it was itself packed or unpacked);
aggregation events that name it only as the parent are about its other children and are
left out, except a DELETE with no children, which unpacks the unit too.

Events at the same instant (EPCIS times are milliseconds; many sources send whole seconds)
follow one rule, never the order in which they reached the database (row ids):

    order = (event time in ms, phase, event hash)
    phase 0: aggregations that put something into a parent (ADD, OBSERVE)
    phase 1: every other event (object, transaction, transformation, association events)
    phase 2: aggregations that take something out (DELETE)

So at one instant packing happens first and unpacking last: an event about a container
at the instant a unit is packed into it, or unpacked from it, applies to the unit (the
carrier's acceptance of a container in the second it is loaded is part of the unit's
history, whichever of the two arrived first). A unit added to and removed from the same
parent at one instant was inside it for that instant. Remaining ties are broken by the
event hash (the digest bytes), a total order every node computes alike. The timeline is
returned in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection, and_, bindparam, case, exists, select
from sqlalchemy.orm import aliased

from node.db import Batch, Database, Event, EventEpc
from node.ingest.capture import canonical_epc
from node.provenance.event_hash import hash_from_digest

FOREVER = 2**62
MAX_DEPTH = 8  # unit -> case -> pallet -> container -> ...; deeper nesting is cut off


@dataclass(frozen=True)
class Interval:
    """`child` was inside `parent` from `start_ms` to `end_ms` (inclusive)."""

    child: str
    parent: str
    start_ms: int
    end_ms: int
    path: tuple[str, ...] = ()  # containers from the unit's direct parent up to `parent`


@dataclass(frozen=True)
class HistoryEntry:
    event_id: str
    event_time_ms: int
    event_type: str
    biz_step: str | None
    signer: str
    role: str
    anchored: bool
    via: tuple[str, ...]  # () for events about the unit itself, else the container path
    event: dict[str, object] = field(compare=False)


def phase(event_type: str, action: str | None) -> int:
    """The event's place among events of the same instant (see the module's rule)."""
    if event_type == "AggregationEvent":
        return 2 if action == "DELETE" else 0
    return 1


def order_key(event_time_ms: int, event_type: str, action: str | None, digest: bytes) -> tuple[int, int, bytes]:
    """The one order of events: time, then phase, then event hash; never arrival order."""
    return (event_time_ms, phase(event_type, action), bytes(digest))


def _phase_column() -> object:
    return case((Event.event_type != "AggregationEvent", 1), (Event.action == "DELETE", 2), else_=0)


# The statements are built once (with bind parameters): building a SQLAlchemy statement costs
# more than running it on an index, and a cold passport runs a dozen of them.
_as_child = aliased(EventEpc)
_parent = aliased(EventEpc)
_AGGREGATIONS_OF = (
    select(Event.event_time_ms, Event.id, Event.action, _parent.epc)
    .join(_as_child, and_(_as_child.event_id == Event.id, _as_child.relation == "child", _as_child.epc == bindparam("child")))
    .outerjoin(_parent, and_(_parent.event_id == Event.id, _parent.relation == "parent"))
    .where(Event.event_type == "AggregationEvent")
    .order_by(Event.event_time_ms, _phase_column(), Event.digest)  # type: ignore[arg-type]
)
_own = aliased(EventEpc)
_any_child = aliased(EventEpc)
_EMPTIED = (
    select(Event.event_time_ms)
    .join(_own, and_(_own.event_id == Event.id, _own.relation == "parent", _own.epc == bindparam("parent")))
    .where(
        Event.event_type == "AggregationEvent",
        Event.action == "DELETE",
        ~exists().where(_any_child.event_id == Event.id, _any_child.relation == "child"),
    )
    .order_by(Event.event_time_ms)
)
_DIRECT = select(EventEpc.event_id).where(EventEpc.epc == bindparam("epc"))
_CONTAINER_EVENTS = (
    select(Event.id, Event.event_type, EventEpc.relation, Event.action)
    .join(EventEpc, EventEpc.event_id == Event.id)
    .where(EventEpc.epc == bindparam("epc"), Event.event_time_ms >= bindparam("start"), Event.event_time_ms <= bindparam("end"))
)
_WITH_CHILDREN = select(EventEpc.event_id).where(EventEpc.event_id.in_(bindparam("ids", expanding=True)), EventEpc.relation == "child").distinct()
_ROWS = (
    select(
        Event.id, Event.digest, Event.event_time_ms, Event.event_type, Event.action, Event.biz_step,
        Event.signer, Event.role, Event.body, Batch.status,
    )
    .outerjoin(Batch, Batch.id == Event.batch_id)
    .where(Event.id.in_(bindparam("ids", expanding=True)))
)


def _aggregations_of(conn: Connection, child: str) -> list[tuple[int, int, str | None, str | None]]:
    """(time, id, action, parent) of the aggregation events that name `child` as a child, in
    the module's order (time, phase, event hash)."""
    rows = conn.execute(_AGGREGATIONS_OF, {"child": child}).all()
    return [(int(t), int(i), a, p) for t, i, a, p in rows]


def _emptied(conn: Connection, parent: str) -> list[int]:
    """Times of DELETE aggregations that name `parent` and no children (they empty it)."""
    return [int(t) for t in conn.execute(_EMPTIED, {"parent": parent}).scalars()]


def containment(conn: Connection, child: str) -> list[Interval]:
    """The intervals during which `child` was directly inside some parent."""
    intervals: list[Interval] = []
    open_parent: str | None = None
    opened = 0
    for at, _id, action, parent in _aggregations_of(conn, child):
        if parent is None:
            continue
        if action in ("ADD", "OBSERVE"):
            if open_parent == parent:
                continue
            if open_parent is not None:  # moved without an unpacking event: it left the old parent
                intervals.append(Interval(child, open_parent, opened, at))
            open_parent, opened = parent, at
        elif action == "DELETE" and open_parent == parent:
            intervals.append(Interval(child, parent, opened, at))
            open_parent = None
    if open_parent is not None:
        intervals.append(Interval(child, open_parent, opened, FOREVER))
    # A children-less DELETE of the parent ends the interval too.
    closed = []
    emptied: dict[str, list[int]] = {}
    for interval in intervals:
        if interval.parent not in emptied:
            emptied[interval.parent] = _emptied(conn, interval.parent)
        ends = [t for t in emptied[interval.parent] if interval.start_ms <= t <= interval.end_ms]
        closed.append(Interval(child, interval.parent, interval.start_ms, min(ends)) if ends else interval)
    return closed


def ancestry(conn: Connection, unit: str) -> list[Interval]:
    """Every (transitive) container of `unit`, with the time it was (transitively) inside it."""
    result: list[Interval] = []
    frontier = [Interval(unit, unit, -FOREVER, FOREVER)]
    known: dict[str, list[Interval]] = {}
    for _depth in range(MAX_DEPTH):
        next_frontier = []
        for outer in frontier:
            if outer.parent not in known:
                known[outer.parent] = containment(conn, outer.parent)
            for direct in known[outer.parent]:
                start, end = max(outer.start_ms, direct.start_ms), min(outer.end_ms, direct.end_ms)
                if start > end or direct.parent in outer.path or direct.parent == unit:
                    continue  # no overlap in time, or a cycle in bad data
                path = (*outer.path, direct.parent)
                next_frontier.append(Interval(unit, direct.parent, start, end, path))
        if not next_frontier:
            break
        result.extend(next_frontier)
        frontier = next_frontier
    return result


def unit_history(db: Database, identifier: str) -> list[HistoryEntry]:
    """Events about the unit and about its containers while it was inside them, oldest first."""
    unit = canonical_epc(identifier)
    with db.connect() as conn:
        found: dict[int, tuple[str, ...]] = {}
        direct = conn.execute(_DIRECT, {"epc": unit}).scalars()
        for event_id in direct:
            found[int(event_id)] = ()
        for interval in ancestry(conn, unit):
            container_events = conn.execute(
                _CONTAINER_EVENTS, {"epc": interval.parent, "start": interval.start_ms, "end": interval.end_ms}
            ).all()
            has_children = _events_with_children(conn, [int(r[0]) for r in container_events if r[2] == "parent"])
            for event_id, event_type, relation, action in container_events:
                event_id = int(event_id)
                if relation == "parent" and event_type == "AggregationEvent":
                    if not (action == "DELETE" and event_id not in has_children):
                        continue  # about the container's other children
                found.setdefault(event_id, interval.path)
        if not found:
            return []
        rows = conn.execute(_ROWS, {"ids": list(found)}).all()
    rows = sorted(rows, key=lambda r: order_key(int(r.event_time_ms), r.event_type, r.action, bytes(r.digest)))
    return [
        HistoryEntry(
            event_id=hash_from_digest(bytes(r.digest)),
            event_time_ms=int(r.event_time_ms),
            event_type=r.event_type,
            biz_step=r.biz_step,
            signer=r.signer,
            role=r.role,
            anchored=r.status in ("anchored", "confirmed"),
            via=found[int(r.id)],
            event=orjson.loads(r.body),
        )
        for r in rows
    ]


def _events_with_children(conn: Connection, event_ids: list[int]) -> set[int]:
    if not event_ids:
        return set()
    rows = conn.execute(_WITH_CHILDREN, {"ids": event_ids}).scalars()
    return {int(r) for r in rows}
