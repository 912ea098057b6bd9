"""Prefix matches that an ordinary btree index serves, on SQLite and PostgreSQL alike.

`LIKE 'prefix%'` reads the whole table on both: SQLite's LIKE ignores ASCII case, so its
index (BINARY) cannot serve it, and PostgreSQL serves it only under the C collation (our
databases are C.UTF-8) or with a text_pattern_ops index. The range `prefix <= s < successor`
is served by the index as it is, and needs no escaping of `%` or `_`.

The range holds exactly the strings that start with `prefix` where text sorts by code point:
SQLite's BINARY, PostgreSQL's C and C.UTF-8. A database created with a linguistic collation
(en_US.UTF-8, ICU) sorts `/` and case otherwise, and would need the column in COLLATE "C".
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, SQLColumnExpression, and_

_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def prefix_range(column: SQLColumnExpression[str], prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as a range an index on `column` serves."""
    upper = successor(prefix)
    if upper is None:  # only strings starting with `prefix` sort at or after it
        return column >= prefix
    return and_(column >= prefix, column < upper)


def successor(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix` (code point order), or
    None if there is none (`prefix` is empty or all U+10FFFF)."""
    for end in range(len(prefix) - 1, -1, -1):
        point = ord(prefix[end]) + 1
        if point in _SURROGATES:  # not characters: UTF-8 cannot store them
            point = _SURROGATES.stop
        if point <= _MAX_CODE_POINT:
            return prefix[:end] + chr(point)
    return None
