"""Alembic environment: runs on the connection handed over by `Database.migrate()`, or on
`sqlalchemy.url` when invoked from the alembic command line (autogenerate, during development)."""

from __future__ import annotations

import importlib
import pkgutil

from alembic import context
from sqlalchemy import create_engine

import node.db
from node.db.models import Base

# Every module of node/db may declare tables on Base (models.py, scans.py, documents.py, ...):
# import them all so that autogenerate compares the whole schema.
for module in pkgutil.iter_modules(node.db.__path__):
    if module.name not in ("migrations", "engine", "upsert"):
        importlib.import_module(f"node.db.{module.name}")

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///var/waymark.sqlite3")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
