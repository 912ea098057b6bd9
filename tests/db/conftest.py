"""The storage tests run on each backend: the node tests' `db` fixture (SQLite, and PostgreSQL
in a schema of its own per test)."""

from tests.node.conftest import db, db_backend

__all__ = ["db", "db_backend"]
