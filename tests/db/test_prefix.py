"""Prefix matches (node.db.prefix) select exactly the strings with the prefix, and the index on
event_epcs.epc serves the product page's event read on both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, event, insert, select

from api.readmodel.product_master import lots_of
from node.db import Database
from node.db.prefix import prefix_range, successor
from node.protocol.gs1 import CANONICAL_RESOLVER

UNITS = f"https://{CANONICAL_RESOLVER}/01/09521234000013/21/"
# Prefixes whose range ends at a changed last character, at a carried one (U+10FFFF), past the
# surrogates (U+D7FF -> U+E000), nowhere (all U+10FFFF), and LIKE's wildcards taken literally.
PREFIXES = [UNITS, "a_b%", "ab\U0010ffff", "x\ud7ff", "\U0010ffff", ""]
STRINGS = sorted({
    *PREFIXES, *(p + tail for p in PREFIXES for tail in ("", "0", "S1", "\U0010ffff", "%")),
    *(successor(p) or "" for p in PREFIXES),
    UNITS[:-1] + "0", UNITS[:-1], UNITS.upper(), UNITS.replace("/21/", "/10/") + "L1",
    "axb%", "a_bz", "a_b", "ac", "ab", "x\ue000", "y", "\U0010ffff\U0010ffff",
})


def test_successor_is_the_least_string_above_the_prefixed_ones() -> None:
    assert successor("ab/") == "ab0"
    assert successor("a\U0010ffff") == "b"
    assert successor("\ud7ff") == "\ue000"
    assert successor("\U0010ffff") is None and successor("") is None


def test_a_prefix_range_selects_exactly_the_strings_with_the_prefix(db: Database) -> None:
    table = Table("prefix_probe", MetaData(), Column("id", Integer, primary_key=True), Column("s", String(600)), Index("ix_prefix_probe_s", "s"))
    table.create(db.engine)
    with db.connect(write=True) as conn:
        conn.execute(insert(table), [{"s": s} for s in STRINGS])
        for prefix in PREFIXES:
            found = set(conn.execute(select(table.c.s).where(prefix_range(table.c.s, prefix))).scalars())
            assert found == {s for s in STRINGS if s.startswith(prefix)}, repr(prefix)


def test_the_lots_event_read_is_served_by_the_epc_index(db: Database, db_backend: str) -> None:
    """The read of every event naming a unit or lot of one GTIN is two index ranges, not a
    scan of event_epcs (`LIKE 'prefix%'` was one on both backends)."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "event_epcs" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        lots_of(db, "09521234000013")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    (statement, parameters), = seen
    with db.connect() as conn:
        if db_backend == "sqlite":
            plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert not any(step.startswith("SCAN event_epcs") for step in plan), plan
            assert plan.count("SEARCH event_epcs USING COVERING INDEX ix_event_epcs_epc_event (epc>? AND epc<?)") == 2, plan
        else:
            # The planner may prefer a scan of a small table; forbidding it shows whether the index can serve.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = [row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
            ranges = [line for line in plan if "Index Cond:" in line and "(epc)::text >=" in line and "(epc)::text <" in line]
            assert len(ranges) == 2 and any("ix_event_epcs_epc_event" in line for line in plan), "\n".join(plan)
