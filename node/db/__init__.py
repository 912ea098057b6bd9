"""The node's database: typed models, engines and sessions, Alembic migrations."""

from node.db.engine import Database, DatabaseError
from node.db.models import (
    Base,
    Batch,
    CaptureJob,
    ChainBlock,
    ChainCursor,
    ChainLog,
    EpcisQuery,
    EpcisSubscription,
    EscrowOrderRow,
    Event,
    EventEpc,
    IndexCheckpoint,
)

__all__ = [
    "Base", "Batch", "CaptureJob", "ChainBlock", "ChainCursor", "ChainLog", "Database", "DatabaseError", "EpcisQuery",
    "EpcisSubscription", "EscrowOrderRow", "Event", "EventEpc", "IndexCheckpoint",
]
