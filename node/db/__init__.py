"""The node's database: typed models, engines and sessions, Alembic migrations."""

from node.db.engine import Database, DatabaseError
from node.db.models import Base, Batch, ChainBlock, ChainCursor, ChainLog, EscrowOrderRow, Event, EventEpc, IndexCheckpoint

__all__ = [
    "Base", "Batch", "ChainBlock", "ChainCursor", "ChainLog", "Database", "DatabaseError", "EscrowOrderRow", "Event", "EventEpc",
    "IndexCheckpoint",
]
