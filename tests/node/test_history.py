"""Containment edge cases of a unit's history: a children-less DELETE empties the parent, a
unit moved to another case without an unpacking event leaves the first, nesting is followed."""

from __future__ import annotations

import orjson

from node.history import unit_history
from node.provenance import epcis
from node.service import NodeRuntime, build_capture
from tests.node.story import CARRIER, MANUFACTURER, capture_document, iso, lot_story


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
