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
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Integer, and_, bindparam, case, cast, exists, false, literal_column, select
from sqlalchemy.orm import aliased

from node.db import Batch, Database, Event, EventEpc
from node.db.plain import PlainSelect
from node.protocol.canonical_ids import canonical_epc
from node.protocol.event_hash import hash_from_digest

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
    body: str = field(compare=False, repr=False)  # the event as stored (JSON text), which `event` parses
    extra: tuple[Any, ...] = field(default=(), compare=False)  # the values of the caller's extra columns


def phase(event_type: str, action: str | None) -> int:
    """The event's place among events of the same instant (see the module's rule)."""
    if event_type == "AggregationEvent":
        return 2 if action == "DELETE" else 0
    return 1


def order_key(event_time_ms: int, event_type: str, action: str | None, digest: bytes) -> tuple[int, int, bytes]:
    """The one order of events: time, then phase, then event hash; never arrival order."""
    return (event_time_ms, phase(event_type, action), bytes(digest))


def _sql(value: str | int) -> ColumnElement[Any]:
    """A constant of this module written into the SQL text (never a caller's value)."""
    return literal_column(f"'{value}'" if isinstance(value, str) else str(int(value)))


# One statement, built once (building a SQLAlchemy statement costs more than running it on an
# index): every event naming the unit or any identifier above it, with how it names it, the
# parent of an aggregation, and whether that aggregation names children. "Above" is every
# parent an aggregation put the unit into, and theirs, MAX_DEPTH levels up, whenever it
# happened: one round trip for the whole history, whose containment and what applies are
# then decided from these rows, not a query per level of nesting, interval or check.
# Its constants are written into the SQL, the unit is its one parameter: PostgreSQL then plans
# it once per connection (a generic plan) instead of at every execution. With the constants as
# parameters too, the generic plan's estimates were worse than each value's own plan, so the
# server planned it again at every build: about 0.8 ms of its CPU per cold passport, more than
# the statement's execution on a warm cache.
_parent = aliased(EventEpc)
_child = aliased(EventEpc)
_up_child = aliased(EventEpc)
_up_parent = aliased(EventEpc)
_above = select(cast(bindparam("unit", type_=EventEpc.epc.type), EventEpc.epc.type).label("epc"), cast(_sql(0), Integer).label("depth")).cte("above", recursive=True)
_above = _above.union(
    select(_up_parent.epc, _above.c.depth + _sql(1))
    .select_from(_above)
    .join(_up_child, and_(_up_child.epc == _above.c.epc, _up_child.relation == _sql("child")))
    .join(Event, and_(Event.id == _up_child.event_id, Event.event_type == _sql("AggregationEvent")))
    .join(_up_parent, and_(_up_parent.event_id == _up_child.event_id, _up_parent.relation == _sql("parent")))
    .where(_above.c.depth < _sql(MAX_DEPTH))
)
# The parent, and whether children are named, matter for aggregations alone: the CASE keeps
# the two lookups from running for every other event (most of a history's rows).
_aggregation = Event.event_type == _sql("AggregationEvent")
_NAMING = PlainSelect(
    select(
        Event.id, Event.event_time_ms, Event.event_type, Event.action, Event.digest, EventEpc.epc, EventEpc.relation,
        case((_aggregation, select(_parent.epc).where(_parent.event_id == Event.id, _parent.relation == _sql("parent")).limit(_sql(1)).scalar_subquery())),
        case((_aggregation, exists().where(_child.event_id == Event.id, _child.relation == _sql("child"))), else_=false()),
    )
    .join(EventEpc, EventEpc.event_id == Event.id)
    .where(EventEpc.epc.in_(select(_above.c.epc)))
)


@lru_cache(maxsize=8)
def _rows(extra: tuple[Any, ...]) -> PlainSelect:
    """The history's events by id, with the `extra` columns a caller asks for (built once per set)."""
    return PlainSelect(
        select(
            Event.id, Event.digest, Event.event_time_ms, Event.event_type, Event.action, Event.biz_step,
            Event.signer, Event.role, Event.body, Batch.status, *extra,
        )
        .outerjoin(Batch, Batch.id == Event.batch_id)
        .where(Event.id.in_(bindparam("ids", expanding=True)))
    )


@dataclass(frozen=True)
class _Naming:
    """One event naming one identifier."""

    event_id: int
    time_ms: int
    event_type: str
    action: str | None
    digest: bytes
    relation: str
    parent: str | None  # the aggregation's parent
    has_children: bool

    @property
    def order(self) -> tuple[int, int, bytes]:
        return order_key(self.time_ms, self.event_type, self.action, self.digest)


class _Namings:
    """The events naming a unit and every identifier above it, read at once for one history."""

    def __init__(self, conn: Connection, unit: str) -> None:
        self.of: dict[str, list[_Naming]] = {unit: []}
        for r in _NAMING.rows(conn, {"unit": unit}):
            self.of.setdefault(r[5], []).append(_Naming(int(r[0]), int(r[1]), r[2], r[3], bytes(r[4]), r[6], r[7], bool(r[8])))
        for namings in self.of.values():
            namings.sort(key=lambda n: n.order)


def containment(namings: _Namings, child: str) -> list[Interval]:
    """The intervals during which `child` was directly inside some parent (the rows of `child`
    and of every parent it names must be loaded)."""
    intervals: list[Interval] = []
    open_parent: str | None = None
    opened = 0
    for n in namings.of.get(child, ()):  # in the module's order (time, phase, event hash)
        if n.relation != "child" or n.event_type != "AggregationEvent" or n.parent is None:
            continue
        at, action, parent = n.time_ms, n.action, n.parent
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
    for interval in intervals:
        ends = [
            n.time_ms for n in namings.of.get(interval.parent, ())
            if n.relation == "parent" and n.event_type == "AggregationEvent" and n.action == "DELETE" and not n.has_children
            and interval.start_ms <= n.time_ms <= interval.end_ms
        ]
        closed.append(Interval(child, interval.parent, interval.start_ms, min(ends)) if ends else interval)
    return closed


def ancestry(namings: _Namings, unit: str) -> list[Interval]:
    """Every (transitive) container of `unit`, with the time it was (transitively) inside it."""
    result: list[Interval] = []
    frontier = [Interval(unit, unit, -FOREVER, FOREVER)]
    known: dict[str, list[Interval]] = {}
    for _depth in range(MAX_DEPTH):
        next_frontier = []
        for outer in frontier:
            if outer.parent not in known:
                known[outer.parent] = containment(namings, outer.parent)
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


def unit_history(db: Database, identifier: str, extra: tuple[Any, ...] = ()) -> list[HistoryEntry]:
    """Events about the unit and about its containers while it was inside them, oldest first.
    `extra` columns (of `events`, its batch in `batches`, or correlated to them) are read with
    the events, in the same statement, and returned in each entry's `extra`."""
    unit = canonical_epc(identifier)
    with db.connect() as conn:
        namings = _Namings(conn, unit)
        intervals = ancestry(namings, unit)
        found: dict[int, tuple[str, ...]] = {n.event_id: () for n in namings.of[unit]}
        for interval in intervals:
            for n in namings.of.get(interval.parent, ()):
                if not interval.start_ms <= n.time_ms <= interval.end_ms:
                    continue
                if n.relation == "parent" and n.event_type == "AggregationEvent":
                    if not (n.action == "DELETE" and not n.has_children):
                        continue  # about the container's other children
                found.setdefault(n.event_id, interval.path)
        if not found:
            return []
        rows = _rows(extra).rows(conn, {"ids": list(found)})
    # (id, digest, event_time_ms, event_type, action, biz_step, signer, role, body, status, *extra)
    rows.sort(key=lambda r: order_key(int(r[2]), r[3], r[4], bytes(r[1])))
    return [
        HistoryEntry(
            event_id=hash_from_digest(bytes(r[1])),
            event_time_ms=int(r[2]),
            event_type=r[3],
            biz_step=r[5],
            signer=r[6],
            role=r[7],
            anchored=r[9] in ("anchored", "confirmed"),
            via=found[int(r[0])],
            event=orjson.loads(r[8]),
            body=r[8],
            extra=tuple(r[10:]),
        )
        for r in rows
    ]
