"""The schema migrates on both backends, twice without harm, and keeps its unique keys."""

from __future__ import annotations

import importlib
import pkgutil

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
