"""Engines, sessions and schema migration for SQLite (default) and PostgreSQL (by URL).

SQLite runs in WAL mode with a busy timeout, and write transactions start with
`BEGIN IMMEDIATE`, so several processes (ingest, anchorer, indexer) can share one file
without a reader's snapshot going stale under a writer. PostgreSQL may be given a schema,
which becomes the connection's search path (the tests give each test its own). A pooled
PostgreSQL connection that the server closed (a restart, pg_terminate_backend, an idle
timeout) is replaced when it is checked out, found by asking the kernel rather than the
server (`_discard_closed_connections`).
"""

from __future__ import annotations

import fcntl
import re
import select
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from node.errors import WaymarkError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# TCP keepalives (libpq's; the URL may set its own): an idle pooled connection whose server
# vanished without closing it (host gone, a firewall dropping the flow) errors within about
# 90 s, which the checkout sees (`_discard_closed_connections`); they also keep firewalls'
# idle flows alive. Not used over a Unix socket, where the kernel always knows.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 10, "keepalives_count": 3}


class DatabaseError(WaymarkError):
    code = "database_error"


class UnsupportedDatabase(DatabaseError):
    def __init__(self, url: str) -> None:
        super().__init__(f"unsupported database URL {url!r}: use sqlite:///<path> or postgresql+psycopg://...")


class InvalidSchemaName(DatabaseError):
    def __init__(self, name: str) -> None:
        super().__init__(f"invalid schema name {name!r}: lower-case letters, digits and _ only")


class Database:
    """One database: an engine for reads and one whose transactions take the write lock at once."""

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 5) -> None:
        self.url = make_url(url)
        self.schema = schema
        backend = self.url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise UnsupportedDatabase(url)
        self.is_sqlite = backend == "sqlite"
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url, connect_args={"timeout": 60})
            _sqlite_pragmas(self.engine)
        else:
            connect_args: dict[str, Any] = {k: v for k, v in _KEEPALIVES.items() if k not in self.url.query}
            if schema is not None:
                if not _SCHEMA_NAME.fullmatch(schema):
                    raise InvalidSchemaName(schema)
                connect_args["options"] = f"-csearch_path={schema}"
            self.engine = create_engine(self.url, connect_args=connect_args, pool_size=pool_size)
            _discard_closed_connections(self.engine)
            if schema is not None:
                with self.engine.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        self.write_engine = self.engine.execution_options(waymark_write=True)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.write_engine, expire_on_commit=False)
        self._snapshot = threading.local()  # this thread's open `snapshot()` connection, if any

    def session(self) -> Session:
        """A session for reads (and writes that cannot race: none in the services)."""
        return self._reader()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed when the block ends without an exception."""
        with self._writer() as session, session.begin():
            yield session

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Connection]:
        """A Core connection inside a transaction (the hot paths use Core, not the ORM). A read
        inside this thread's `snapshot()` uses the snapshot's connection and transaction."""
        shared = None if write else getattr(self._snapshot, "conn", None)
        if shared is not None:
            yield shared
            return
        with (self.write_engine if write else self.engine).begin() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read of this thread inside the block shares one connection, so a reader that asks
        many small questions (a passport build: ten or so) checks out a connection once, not per
        question. On SQLite the reads share one transaction too, and see one state of the
        database. On PostgreSQL, whose reads are READ COMMITTED (each statement sees what was
        committed when it began, inside a transaction or not), they run without one: that saves
        the BEGIN and COMMIT round trips, two of a passport build's eight. Nested blocks join the
        outer one; writes take their own, and on SQLite what they commit is not seen by the block's
        reads: write before or after it."""
        if getattr(self._snapshot, "conn", None) is not None:
            yield
            return
        with self._snapshot_connection() as conn:
            self._snapshot.conn = conn
            try:
                yield
            finally:
                self._snapshot.conn = None

    @contextmanager
    def _snapshot_connection(self) -> Iterator[Connection]:
        if self.is_sqlite:
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            # The pool sets the connection back to transactions when it takes it back.
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def read_threads(self) -> int:
        """How many threads of one process usefully read at once: on SQLite one (its short
        statements release and retake the GIL each time, so readers in more threads contend for
        it and get fewer reads done), on PostgreSQL four (a read also waits for the server, and
        more threads overlap the waits)."""
        return 1 if self.is_sqlite else 4

    def write_turns(self) -> AbstractContextManager[Any]:
        """A new gate for threads of this process that write through one service: a lock where
        the database takes one writer at a time (SQLite: the threads take turns here rather than
        in SQLite's busy handler, which sleeps in steps of up to 100 ms), nothing where writers
        run side by side (PostgreSQL)."""
        return threading.Lock() if self.is_sqlite else nullcontext()

    def migrate(self) -> None:
        """Bring the schema to the newest migration. Safe to call from several processes at once."""
        with self._migration_lock(), self.engine.begin() as conn:
            if not self.is_sqlite:
                # Serialise concurrent starters on PostgreSQL; released at commit.
                conn.execute(text("SELECT pg_advisory_xact_lock(727377)"))
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        database = self.url.database
        if not self.is_sqlite or not database or database == ":memory:":
            yield
            return
        with open(database + ".migrate.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def drop_schema(self) -> None:
        """Drop this database's PostgreSQL schema with everything in it (tests)."""
        if self.schema is not None and not self.is_sqlite:
            with self.engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))

    def dispose(self) -> None:
        self.engine.dispose()


def _discard_closed_connections(engine: Engine) -> None:
    """Replace a pooled connection that the server has closed, at checkout, without a round trip.

    A connection resting in the pool has nothing to read: its socket is readable only when the
    server has written its goodbye and closed it (restart, pg_terminate_backend, idle timeout),
    or, rarely, sent something unasked (then it is replaced all the same). So the kernel is
    asked, not the server: pool_pre_ping's `SELECT 1` cost a round trip at each of the ten or so
    checkouts of a passport build. A checkout listener raising DisconnectionError makes the pool
    open a new connection in its place."""

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_conn.closed or _readable(dbapi_conn.fileno()):
            raise DisconnectionError("the server closed this pooled connection")


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)  # POLLHUP and POLLERR are always reported
    return bool(poller.poll(0))


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); pysqlite's implicit transactions would defer it.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a killed process (the WAL is on disk); only power loss may drop the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("waymark_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
