"""Reads on the DB-API cursor (node.db.plain) give the rows SQLAlchemy gives, on both backends,
for every length of their lists; refuse what would need SQLAlchemy's type processing; and are
seen by the engine's statement listeners like any other statement."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    Boolean, Column, Integer, LargeBinary, MetaData, String, Table, bindparam, event, exists, insert, select,
)
from sqlalchemy.types import TypeDecorator

from node.db import Database
from node.db import plain as plain_module
from node.db.plain import PlainSelect, PlainStatementRefused

class _Upper(TypeDecorator[str]):
    """A type whose values SQLAlchemy converts on the way out, as dates and JSON are on some backends."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return value.upper() if value is not None else None


_META = MetaData()
_PROBE = Table(
    "plain_probe", _META,
    Column("id", Integer, primary_key=True), Column("kind", String(8)), Column("digest", LargeBinary(32)),
    Column("note", String(40), nullable=True), Column("flag", Boolean), Column("at", _Upper(40), nullable=True),
)
_ROWS = [
    {"id": i, "kind": "a" if i % 3 else "b", "digest": bytes([i]) * 32, "note": None if i % 4 == 0 else f"n{i}", "flag": i % 2 == 0, "at": None}
    for i in range(1, 21)
]
# A list parameter, a value written into the statement ("a"), bytes compared, and a boolean column.
_BY_IDS = (
    select(_PROBE.c.id, _PROBE.c.digest, _PROBE.c.note, exists().where(_PROBE.c.flag).label("any_flag"))
    .where(_PROBE.c.id.in_(bindparam("ids", expanding=True)), _PROBE.c.kind == "a", _PROBE.c.digest != bindparam("not_digest"))
    .order_by(_PROBE.c.id)
)


@pytest.fixture
def probe(db: Database) -> Database:
    _PROBE.create(db.engine)
    with db.connect(write=True) as conn:
        conn.execute(insert(_PROBE), _ROWS)
    return db


def test_the_rows_are_sqlalchemys_for_every_length_of_a_list(probe: Database) -> None:
    plain = PlainSelect(_BY_IDS)
    with probe.connect() as conn:
        for ids in ([], [3], [20, 2, 11, 99], list(range(1, 21)), [3], [1, 2, 3, 4, 5]):
            params = {"ids": ids, "not_digest": bytes([5]) * 32}
            expected = [(r[0], bytes(r[1]), r[2], bool(r[3])) for r in conn.execute(_BY_IDS, params).all()]
            got = [(r[0], bytes(r[1]), r[2], bool(r[3])) for r in plain.rows(conn, params)]
            assert got == expected, ids
        assert [r[0] for r in plain.rows(conn, params)] == [1, 2, 4]  # 3 is of kind "b", 5 the digest left out
        assert all(isinstance(r[1], bytes) for r in plain.rows(conn, params))


def test_a_statement_needing_type_processing_is_refused_naming_what(probe: Database) -> None:
    with probe.connect() as conn:
        with pytest.raises(PlainStatementRefused, match="column 'at'"):
            PlainSelect(select(_PROBE.c.id, _PROBE.c.at)).rows(conn)
        with pytest.raises(PlainStatementRefused, match="parameter 'flag'"):
            PlainSelect(select(_PROBE.c.id).where(_PROBE.c.flag == bindparam("flag"))).rows(conn, {"flag": True})


def test_the_engines_statement_listeners_see_each_read(probe: Database) -> None:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "plain_probe" in statement:  # not the transaction's BEGIN
            seen.append((statement, parameters))

    plain = PlainSelect(select(_PROBE.c.note).where(_PROBE.c.id == bindparam("id")))
    event.listen(probe.engine, "before_cursor_execute", record)
    try:
        with probe.connect() as conn:
            assert plain.rows(conn, {"id": 7}) == [("n7",)]
            assert plain.rows(conn, {"id": 8}) == [(None,)]
    finally:
        event.remove(probe.engine, "before_cursor_execute", record)
    assert [list(parameters.values()) if isinstance(parameters, dict) else list(parameters) for _, parameters in seen] == [[7], [8]]


def test_the_texts_kept_per_statement_stay_bounded(probe: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plain_module, "TEXTS_KEPT", 3)
    plain = PlainSelect(select(_PROBE.c.id).where(_PROBE.c.id.in_(bindparam("ids", expanding=True))).order_by(_PROBE.c.id))
    with probe.connect() as conn:
        for n in range(1, 9):
            assert [r[0] for r in plain.rows(conn, {"ids": list(range(1, n + 1))})] == list(range(1, n + 1))
        assert [r[0] for r in plain.rows(conn, {"ids": [2]})] == [2]  # a length no longer kept: compiled again
    assert len(plain._texts) == 3
