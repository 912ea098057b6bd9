"""Reads run on the DB-API cursor, for the statements a cold passport build runs a dozen of.

SQLAlchemy Core spends 10-25 us of Python on each execution before and after the driver's own
1-2 us: parameters processed, an expanding `IN (...)` rendered again, result metadata and Row
objects set up. A passport build runs about thirteen small reads, so that work was a fifth of a
build process's time. A `PlainSelect` compiles its statement once per dialect and per length of
each list parameter (SQLAlchemy's own `construct_expanded_state`), then hands the driver the SQL
text and the arguments in the order it takes them, and returns the driver's rows.

So its rows are plain tuples of what the driver returns: integers, text, bytes, None; a boolean
is 0 or 1 on SQLite. Parameters go to the driver as given (bytes for a BLOB or bytea). A statement
whose columns or parameters need SQLAlchemy's type processing (dates, decimals, JSON, a boolean
parameter) is refused when it is first compiled, not converted wrongly.

Listeners of the engine's `before_cursor_execute` are told of each statement, as for any other.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from sqlalchemy import Boolean, Connection, LargeBinary, literal_column, select, true
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import FromClause, Select, Subquery

from node.db.engine import DatabaseError


_ONE_ROW = select(literal_column("1").label("one")).subquery("one")


def side_by_side(*parts: Subquery) -> FromClause:
    """Several small reads as one statement (one round trip): a row that is always there, each of
    `parts` left-joined to it on true. A part with no rows gives one row of NULLs, so every
    statement answers at least one row; a part's rows repeat the other parts' columns, so at most
    one part may have more than one row."""
    joined: FromClause = _ONE_ROW
    for part in parts:
        joined = joined.outerjoin(part, true())
    return joined


class PlainStatementRefused(DatabaseError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"a statement that cannot run on the DB-API cursor: {problem}")


# SQL texts kept per statement: one per dialect and length of each list (a history of 12 events
# and one of 40 read their rows with two texts), the oldest leaving first.
TEXTS_KEPT = 256


@dataclass(frozen=True)
class _Arg:
    """Where one driver argument comes from: a parameter (and the item of it, for a list), or the
    statement itself (a value written into it, such as `column == "withheld"`)."""

    name: str | None
    index: int | None = None
    value: Any = None


@dataclass(frozen=True)
class _Text:
    sql: str
    args: tuple[_Arg, ...]
    named: tuple[str, ...] | None  # the driver's names for `args` (pyformat), None for positional


class _Item:
    """Stands for an argument while a statement is expanded, to see where each one goes."""

    def __init__(self, arg: _Arg) -> None:
        self.arg = arg


class PlainSelect:
    """A Core SELECT run on the connection's DB-API cursor (see the module docstring)."""

    def __init__(self, statement: Select[Unpack[tuple[Any, ...]]]) -> None:
        self.statement = statement
        self._texts: dict[tuple[str, tuple[tuple[str, int], ...]], _Text] = {}
        self._lock = threading.Lock()

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The statement's rows on `conn` (in its transaction), with `params` (lists for `IN`)."""
        params = params or {}
        shape = tuple((name, len(value)) for name, value in params.items() if isinstance(value, (list, tuple)))
        text = self._texts.get((conn.dialect.name, shape))
        if text is None:
            text = self._compile(conn.dialect, params, shape)
        values = [a.value if a.name is None else params[a.name] if a.index is None else params[a.name][a.index] for a in text.args]
        args: Sequence[Any] | dict[str, Any] = values if text.named is None else dict(zip(text.named, values))
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if conn.dispatch.before_cursor_execute:
                conn.dispatch.before_cursor_execute(conn, cursor, text.sql, args, None, False)
            cursor.execute(text.sql, args)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _compile(self, dialect: Dialect, params: Mapping[str, Any], shape: tuple[tuple[str, int], ...]) -> _Text:
        compiled = self.statement.compile(dialect=dialect)
        _refuse_processed_types(self.statement, compiled, dialect)
        stand_ins = {
            name: [_Item(_Arg(name, i)) for i in range(len(value))] if isinstance(value, (list, tuple)) else _Item(_Arg(name, None))
            for name, value in params.items()
        }
        expanded = compiled.construct_expanded_state(stand_ins)
        names = expanded.positiontup if expanded.positiontup is not None else tuple(expanded.parameters)
        given = (expanded.parameters[name] for name in names)
        args = tuple(item.arg if isinstance(item, _Item) else _Arg(None, value=item) for item in given)
        text = _Text(expanded.statement, args, None if compiled.positional else tuple(names))
        with self._lock:
            if len(self._texts) >= TEXTS_KEPT:
                del self._texts[next(iter(self._texts))]  # the oldest: one list length or another
            self._texts[(dialect.name, shape)] = text
        return text


def _refuse_processed_types(statement: Select[Unpack[tuple[Any, ...]]], compiled: Any, dialect: Dialect) -> None:
    for column in statement.selected_columns:
        if isinstance(column.type, Boolean):
            continue  # 0/1 on SQLite: callers take bool() of it
        if dialect.type_descriptor(column.type).result_processor(dialect, None) is not None:
            raise PlainStatementRefused(f"column {column.key!r} ({column.type}) needs SQLAlchemy's result processing")
    for name, bind in compiled.binds.items():
        if isinstance(bind.type, LargeBinary):
            continue  # wrapped in the driver's Binary by SQLAlchemy; every driver takes bytes as they are
        if dialect.type_descriptor(bind.type).bind_processor(dialect) is not None:
            raise PlainStatementRefused(f"parameter {name!r} ({bind.type}) needs SQLAlchemy's bind processing")
