"""Containment edge cases of a unit's history: a children-less DELETE empties the parent, a
unit moved to another case without an unpacking event leaves the first, nesting is followed;
events at the same instant follow node.member.history's rule, whatever order they arrived in."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event as sa_event, text
from sqlalchemy.dialects import postgresql
from eth_account.signers.local import LocalAccount

from node.member.history import _NAMING, unit_history
from node.protocol import epcis
from node.member.runtime import NodeRuntime, build_capture
from tests.node.conftest import make_database
from tests.node.story import CARRIER, MANUFACTURER, capture_document, iso, lot_story, sscc


def test_emptied_parent_and_moved_unit(runtime: NodeRuntime, chain_now: int) -> None:
    s = lot_story(chain_now, size=2)
    t = chain_now
    unit, other = s.units
    obj, agg = epcis.object_event, epcis.aggregation_event
    events = [
        (agg(parent_id=s.case, child_epcs=[unit, other], action="ADD", event_time=iso(t + 1), biz_step="packing"), MANUFACTURER),
        (obj(epcs=[s.case], action="OBSERVE", event_time=iso(t + 2), biz_step="shipping"), CARRIER),
        (agg(parent_id=s.pallet, child_epcs=[unit], action="ADD", event_time=iso(t + 3), biz_step="packing"), CARRIER),  # moved
        (obj(epcs=[s.case], action="OBSERVE", event_time=iso(t + 4), biz_step="arriving"), CARRIER),  # unit no longer inside
        (obj(epcs=[s.pallet], action="OBSERVE", event_time=iso(t + 5), biz_step="shipping"), CARRIER),
        (agg(parent_id=s.pallet, child_epcs=[], action="DELETE", event_time=iso(t + 6), biz_step="unpacking"), CARRIER),  # emptied
        (obj(epcs=[s.pallet], action="OBSERVE", event_time=iso(t + 7), biz_step="departing"), CARRIER),
    ]
    build_capture(runtime).capture(orjson.dumps(capture_document(events, runtime.domain)))

    history = [(h.biz_step, h.via) for h in unit_history(runtime.db, unit.canonical_uri)]
    assert history == [
        ("packing", ()),
        ("shipping", (s.case.canonical_uri,)),
        ("packing", ()),
        ("shipping", (s.pallet.canonical_uri,)),
        ("unpacking", (s.pallet.canonical_uri,)),
    ]
    other_history = [h.biz_step for h in unit_history(runtime.db, other.canonical_uri)]
    assert other_history == ["packing", "shipping", "arriving"]  # still in the case


def _same_instant_groups(t: int, s: Any) -> list[list[tuple[dict[str, Any], LocalAccount]]]:
    """Events in groups that share an instant (whole seconds, as many sources send them)."""
    obj, agg = epcis.object_event, epcis.aggregation_event
    unit = s.units[0]
    second_case = sscc(4000 + t % 10**6)
    return [
        [(agg(parent_id=s.case, child_epcs=[unit], action="ADD", event_time=iso(t + 1), biz_step="packing"), MANUFACTURER)],
        [(agg(parent_id=s.pallet, child_epcs=[s.case], action="ADD", event_time=iso(t + 2), biz_step="packing"), CARRIER)],
        [  # the case: the carrier accepts the container in the second the pallet is loaded
            (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 3), biz_step="accepting", disposition="in_progress"), CARRIER),
            (agg(parent_id=s.container, child_epcs=[s.pallet], action="ADD", event_time=iso(t + 3), biz_step="loading"), CARRIER),
        ],
        [(obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 4), biz_step="shipping"), CARRIER)],
        [  # arrival and unloading in one second: the arrival still applies to the unit
            (agg(parent_id=s.container, child_epcs=[s.pallet], action="DELETE", event_time=iso(t + 5), biz_step="unloading"), CARRIER),
            (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 5), biz_step="arriving"), CARRIER),
        ],
        [  # moved to another case in one second, which is observed in that second
            (agg(parent_id=second_case, child_epcs=[unit], action="ADD", event_time=iso(t + 6), biz_step="packing"), CARRIER),
            (agg(parent_id=s.case, child_epcs=[unit], action="DELETE", event_time=iso(t + 6), biz_step="unpacking"), CARRIER),
            (obj(epcs=[second_case], action="OBSERVE", event_time=iso(t + 6), biz_step="receiving"), CARRIER),
        ],
        [(obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 7), biz_step="departing"), CARRIER)],  # the unit left it
    ]


def test_events_at_the_same_instant_give_one_history_whatever_their_arrival_order(runtime: NodeRuntime, db_backend: str, chain_now: int, tmp_path: Path) -> None:
    s = lot_story(chain_now, size=1)
    unit = s.units[0]
    groups = _same_instant_groups(chain_now, s)
    tied = [g for g in groups if len(g) > 1]
    orders = [
        [event for group in groups for event in (dict(zip(map(id, tied), choice)).get(id(group), group))]
        for choice in itertools.product(*(list(itertools.permutations(g)) for g in tied))
    ]
    orders.append([event for group in reversed(groups) for event in reversed(group)])  # everything backwards
    assert len(orders) == 2 * 2 * 6 + 1

    histories = set()
    for number, arrival in enumerate(orders):
        db = make_database(db_backend, tmp_path / f"order-{number}")
        db.migrate()
        try:
            node = NodeRuntime(runtime.node, runtime.chain, db, runtime.client, runtime.deployment)
            capture = build_capture(node)
            for event, signer in arrival:  # one capture each: arrival order is row order
                capture.capture(orjson.dumps(capture_document([(event, signer)], node.domain)))
            histories.add(tuple((h.biz_step, h.via, h.event_id) for h in unit_history(db, unit.canonical_uri)))
        finally:
            db.drop_schema()
            db.dispose()
    assert len(histories) == 1
    history = [(step, via) for step, via, _id in histories.pop()]
    case, pallet, container = s.case.canonical_uri, s.pallet.canonical_uri, s.container.canonical_uri
    second_case = sscc(4000 + chain_now % 10**6).canonical_uri
    assert history == [
        ("packing", ()),
        ("packing", (case,)),
        ("loading", (case, pallet)),  # packing first at one instant,
        ("accepting", (case, pallet, container)),  # so the acceptance applies to the unit
        ("shipping", (case, pallet, container)),
        ("arriving", (case, pallet, container)),  # unpacking last at one instant
        ("unloading", (case, pallet)),
        ("packing", ()),
        ("receiving", (second_case,)),
        ("unpacking", ()),
    ]


def test_a_history_is_read_in_two_statements_however_deep_the_nesting_and_a_cycle_ends(runtime: NodeRuntime, chain_now: int) -> None:
    """Unit in case in pallet in container: the namings of all four come in one statement, the
    events in a second. Bad data that packs the container into the case (a cycle) ends."""
    s = lot_story(chain_now, size=1)
    t = chain_now
    unit = s.units[0]
    obj, agg = epcis.object_event, epcis.aggregation_event
    events = [
        (agg(parent_id=s.case, child_epcs=[unit], action="ADD", event_time=iso(t + 1), biz_step="packing"), MANUFACTURER),
        (agg(parent_id=s.pallet, child_epcs=[s.case], action="ADD", event_time=iso(t + 2), biz_step="packing"), CARRIER),
        (agg(parent_id=s.container, child_epcs=[s.pallet], action="ADD", event_time=iso(t + 3), biz_step="loading"), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 4), biz_step="shipping"), CARRIER),
        (agg(parent_id=s.case, child_epcs=[s.container], action="ADD", event_time=iso(t + 5), biz_step="packing"), CARRIER),  # a cycle
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 6), biz_step="arriving"), CARRIER),
    ]
    build_capture(runtime).capture(orjson.dumps(capture_document(events, runtime.domain)))
    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            selects.append(statement)

    sa_event.listen(runtime.db.engine, "before_cursor_execute", count)
    try:
        history = [(h.biz_step, h.via) for h in unit_history(runtime.db, unit.canonical_uri)]
    finally:
        sa_event.remove(runtime.db.engine, "before_cursor_execute", count)
    assert len(selects) == 2
    inside = (s.case.canonical_uri, s.pallet.canonical_uri, s.container.canonical_uri)
    assert history == [
        ("packing", ()),
        ("packing", inside[:1]),  # the case into the pallet
        ("loading", inside[:2]),  # the pallet into the container
        ("shipping", inside),
        ("packing", inside),  # the container, named as a child, into the case
        ("arriving", inside),
    ]


def test_postgresql_plans_the_history_statement_once_per_connection(runtime: NodeRuntime, chain_now: int) -> None:
    """The naming statement's one parameter is the unit (its constants are in its SQL), so the
    server settles on one generic plan for it instead of planning it again at every passport.
    (With its constants as parameters, a server holding 5,114,000 events planned it at every
    execution, 25 custom plans of 25, about 0.8 ms each; this small database does not show
    that, so the statement's parameters are checked as well.)"""
    compiled = _NAMING.statement.compile(dialect=postgresql.psycopg.dialect())  # type: ignore[no-untyped-call]
    assert list(compiled.params) == ["unit"]
    if runtime.db.is_sqlite:
        return  # SQLite has no plan cache to speak of; the [postgres] case runs the server's check
    s = lot_story(chain_now, size=3)
    events = [(epcis.aggregation_event(parent_id=s.case, child_epcs=s.units, action="ADD", event_time=iso(chain_now + 1), biz_step="packing"), MANUFACTURER)]
    build_capture(runtime).capture(orjson.dumps(capture_document(events, runtime.domain)))
    with runtime.db.snapshot():  # one connection: its prepared statements and their plans
        for _ in range(4):
            for unit in s.units:
                assert [h.biz_step for h in unit_history(runtime.db, unit.canonical_uri)] == ["packing"]
        with runtime.db.connect() as conn:
            generic, custom = conn.execute(
                text("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE :start"), {"start": "WITH RECURSIVE above%"}
            ).one()
    assert generic + custom == 12 - 5  # psycopg prepares a statement at its sixth execution
    assert custom <= 5 and generic >= 2  # PostgreSQL tries five custom plans, then keeps the generic one
