"""How the API writes a time: as EPCIS does (node.protocol.timestamps: UTC, milliseconds, `Z`),
so that an answer never mixes precisions and a stored millisecond is never rounded away."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from node.protocol.timestamps import format_timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_ms(ms: int) -> str:
    """Unix milliseconds as `2025-01-31T12:00:00.250Z`."""
    return format_timestamp(_EPOCH + timedelta(milliseconds=ms))
