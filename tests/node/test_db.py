"""The schema migrates on both backends, twice without harm, and keeps its unique keys."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

import node.db
from node.db import Batch, Database
from node.db.models import Base


def test_migrate_creates_every_table_and_is_idempotent(db: Database) -> None:
    db.migrate()  # second run: nothing to do
    names = set(inspect(db.engine).get_table_names())
    assert {"events", "batches", "event_epcs", "chain_logs", "chain_blocks", "chain_cursors", "alembic_version"} <= names


def test_batch_root_is_unique(db: Database) -> None:
    with db.write() as s:
        s.add(Batch(root=b"\x01" * 32, event_count=1, status="prepared", created_at_ms=0, sends=0))
    with pytest.raises(IntegrityError):
        with db.write() as s:
            s.add(Batch(root=b"\x01" * 32, event_count=2, status="prepared", created_at_ms=0, sends=0))


def test_migrations_build_exactly_the_models(db: Database) -> None:
    for module in pkgutil.iter_modules(node.db.__path__):
        if module.name not in ("migrations", "engine", "upsert"):
            importlib.import_module(f"node.db.{module.name}")
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_sqlite_reads_the_anchorers_queue_from_the_index_of_pending_events(tmp_path: Path) -> None:
    # While (batch_id, leaf_index) also held pending events, SQLite answered `batch_id IS NULL`
    # from it and sorted the whole queue in a temporary tree for every batch (migration 0013).
    db = Database(f"sqlite:///{tmp_path / 'node.sqlite3'}")
    db.migrate()
    with db.connect() as conn:
        plan = " | ".join(str(row[-1]) for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT id, digest, signer FROM events WHERE batch_id IS NULL ORDER BY id LIMIT 4000"))
        by_batch = " | ".join(str(row[-1]) for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT digest FROM events WHERE batch_id = 7 AND leaf_index > 100 ORDER BY leaf_index"))
    db.dispose()
    assert "ix_events_pending" in plan and "TEMP B-TREE" not in plan, plan
    assert "ix_events_batch_leaf" in by_batch and "TEMP B-TREE" not in by_batch, by_batch
