"""EPCIS timestamps: reading and writing ``xsd:dateTimeStamp`` event times and offsets.

:func:`parse_timestamp` is strict (a time zone is required, ASCII digits, a real date), as
validation and ingest want; :func:`format_timestamp` writes what Waymark's builders emit
(UTC, milliseconds, ``Z``). The CBV event hash's own lenient reading of times is in
:mod:`node.protocol.cbv_values`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_TIMESTAMP_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
, re.ASCII  # ASCII digits only: full-width digits are not a time
)
_OFFSET_RE = re.compile(r"^[+-](?:[01]\d|2[0-3]):[0-5]\d$")


def parse_timestamp(text: str) -> tuple[datetime, str]:
    """Parse an xsd:dateTimeStamp (time zone required); return (UTC datetime, fraction digits).

    The fraction digits are returned as written so that callers can round exactly; the
    datetime carries microseconds truncated to 6 digits.
    """
    match = _TIMESTAMP_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp with time zone: {text!r}")
    year, month, day, hour, minute, second = map(int, match.groups()[:6])
    fraction = match.group(7) or ""
    micro = int((fraction + "000000")[:6])
    zone = match.group(8)
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone.utc)
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    except (ValueError, OverflowError):  # no such date, or out of the range of dates (year 1-9999 in UTC)
        raise ValueError(f"not a date and time in the years 1-9999 UTC: {text!r}") from None
    return moment, fraction


def format_timestamp(moment: datetime | str) -> str:
    """Format a time as EPCIS writes it here: UTC, milliseconds, ``Z``."""
    if isinstance(moment, str):
        moment = parse_timestamp(moment)[0]
    if moment.tzinfo is None:
        raise ValueError("event times must be time-zone aware")
    utc = moment.astimezone(timezone.utc)
    # Not strftime: glibc's %Y writes the years 1-999 without their leading zeros, which
    # xsd:dateTime (and parse_timestamp) does not accept.
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}."
            f"{utc.microsecond // 1000:03d}Z")


UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def moment_ms(moment: datetime) -> int:
    """Unix milliseconds of an aware datetime (exact integer arithmetic, for ordering)."""
    return (moment - UNIX_EPOCH) // _MS


def unix_ms(timestamp: str) -> int:
    """Unix milliseconds of an EPCIS time."""
    return moment_ms(parse_timestamp(timestamp)[0])


def iso_ms(ms: int) -> str:
    """Unix milliseconds as EPCIS writes a time (`2025-01-31T12:00:00.250Z`): exact, integer
    arithmetic (a float of milliseconds rounds x.999 to x.998 in far years)."""
    return format_timestamp(UNIX_EPOCH + ms * _MS)


def format_offset(moment: datetime | None = None, offset: str | None = None) -> str:
    """``eventTimeZoneOffset`` (``+HH:MM``) from an explicit offset or an aware datetime."""
    if offset is not None:
        if not _OFFSET_RE.match(offset):
            raise ValueError(f"a time zone offset looks like +01:00, got {offset!r}")
        return offset
    if moment is None or moment.utcoffset() is None:
        return "+00:00"
    minutes = int(moment.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
