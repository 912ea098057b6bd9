"""The oracle's outbox: a small durable queue in one SQLite file.

Whatever an adapter accepts is written here (and committed) before the adapter answers, so
a restart, a crash or a node outage loses nothing. A delivery worker takes due jobs, sends
them, and marks them delivered; a failed send is retried with exponential backoff and
jitter, for as long as it takes (delivery is at-least-once). Every job has an idempotency
key (for an event, its CBV 2.0 event hash): putting a job whose key is already queued is a
no-op, so accepting the same source record twice queues it once, and the receivers
(ingest, relayer) are idempotent on the same key, so a resend after a lost answer is
harmless.

Job states: `pending` (waiting or due), `delivered`, `rejected` (the receiver refused it
for good, e.g. a signer without the role: kept, with the receiver's message, for an
operator to look at, never retried by itself).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

JobStatus = Literal["pending", "delivered", "rejected"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    payload BLOB,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    done_at REAL,
    result BLOB
);
CREATE INDEX IF NOT EXISTS ix_jobs_due ON jobs (kind, next_attempt_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    keys BLOB NOT NULL,
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int
    created_at: float


@dataclass(frozen=True)
class JobInfo:
    kind: str
    key: str
    status: JobStatus
    attempts: int
    last_error: str | None
    result: Any


def backoff_delay(attempts: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before attempt `attempts + 1`: base * 2^(attempts-1), capped, with the
    upper half jittered so that many oracles retrying one node do not return in step."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return float(delay * (0.5 + 0.5 * rng()))


class DurableQueue:
    """A thread-safe outbox in one SQLite file (WAL, synchronous=FULL: an acknowledged put
    survives a crash of the process and of the machine)."""

    def __init__(
        self,
        path: Path | str,
        *,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(threading.Lock())
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=60000")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ---- producers -------------------------------------------------------------------------

    def put(self, kind: str, key: str, payload: dict[str, Any]) -> bool:
        """Queue a job; False if a job with this key was queued before (in any state)."""
        return self.put_many([(kind, key, payload)])[0]

    def put_many(self, jobs: Sequence[tuple[str, str, dict[str, Any]]], *, submission: str | None = None) -> list[bool]:
        """Queue several jobs in one transaction (all or none); per job, whether it is new.
        With `submission`, the jobs' keys are remembered under that id (see `submission`)."""
        now = self.clock()
        fresh: list[bool] = []
        with self._tx() as conn:
            if submission is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO submissions (id, keys, created_at) VALUES (?, ?, ?)",
                    (submission, orjson.dumps([key for _kind, key, _payload in jobs]), now),
                )
            for kind, key, payload in jobs:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO jobs (kind, key, payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                    (kind, key, orjson.dumps(payload), now, now),
                )
                fresh.append(cursor.rowcount == 1)
        if any(fresh):
            with self._wakeup:
                self._wakeup.notify_all()
        return fresh

    def known(self, key: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone() is not None

    # ---- the delivery worker ---------------------------------------------------------------

    def due(self, kind: str, limit: int = 100) -> list[Job]:
        """Pending jobs of `kind` whose next attempt is due, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, kind, key, payload, attempts, created_at FROM jobs"
                " WHERE status = 'pending' AND kind = ? AND next_attempt_at <= ? ORDER BY id LIMIT ?",
                (kind, self.clock(), limit),
            ).fetchall()
        return [Job(r[0], r[1], r[2], orjson.loads(r[3]), r[4], r[5]) for r in rows]

    def next_due_in(self, kinds: Sequence[str] | None = None) -> float | None:
        """Seconds until the earliest pending job (of these kinds) is due (0 if one is due now); None if none pending."""
        where = "status = 'pending'"
        if kinds:
            where += f" AND kind IN ({', '.join('?' for _ in kinds)})"
        with self._lock:
            row = self._conn.execute(f"SELECT MIN(next_attempt_at) FROM jobs WHERE {where}", tuple(kinds or ())).fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - self.clock())

    def wait(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds, or until a producer queues a new job."""
        with self._wakeup:
            self._wakeup.wait(timeout)

    def wake(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()

    def mark_delivered(self, results: dict[int, Any], *, drop_payload: bool = False) -> None:
        """Jobs the receiver has (their result, e.g. the receiver's answer, is kept).
        `drop_payload` forgets the payload (documents: the oracle keeps no plaintext it no longer needs)."""
        now = self.clock()
        with self._tx() as conn:
            for job_id, result in results.items():
                conn.execute(
                    "UPDATE jobs SET status = 'delivered', done_at = ?, result = ?, last_error = NULL"
                    + (", payload = NULL" if drop_payload else "")
                    + " WHERE id = ? AND status = 'pending'",
                    (now, orjson.dumps(result), job_id),
                )

    def retry_later(self, job_ids: Iterable[int], error: str) -> None:
        """The send failed for a passing reason (receiver down, 5xx): back off and try again."""
        now = self.clock()
        with self._tx() as conn:
            for job_id in job_ids:
                row = conn.execute("SELECT attempts FROM jobs WHERE id = ? AND status = 'pending'", (job_id,)).fetchone()
                if row is None:
                    continue
                attempts = int(row[0]) + 1
                conn.execute(
                    "UPDATE jobs SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                    (attempts, now + backoff_delay(attempts, self.base_delay, self.max_delay), error[:2000], job_id),
                )

    def mark_rejected(self, job_ids: Iterable[int], error: str) -> None:
        """The receiver refused the job for good: keep it, with the reason, and stop sending it."""
        now = self.clock()
        with self._tx() as conn:
            for job_id in job_ids:
                conn.execute(
                    "UPDATE jobs SET status = 'rejected', attempts = attempts + 1, done_at = ?, last_error = ?"
                    " WHERE id = ? AND status = 'pending'",
                    (now, error[:2000], job_id),
                )

    def requeue_rejected(self, kind: str | None = None) -> int:
        """Send rejected jobs again (after an operator fixed the cause, e.g. granted a role)."""
        now = self.clock()
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET status = 'pending', next_attempt_at = ?, done_at = NULL"
                " WHERE status = 'rejected'" + (" AND kind = ?" if kind else ""),
                (now, kind) if kind else (now,),
            )
        self.wake()
        return int(cursor.rowcount)

    # ---- inspection ------------------------------------------------------------------------

    def info(self, key: str) -> JobInfo | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT kind, key, status, attempts, last_error, result FROM jobs WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return JobInfo(row[0], row[1], row[2], row[3], row[4], orjson.loads(row[5]) if row[5] is not None else None)

    def infos(self, keys: Sequence[str]) -> dict[str, JobInfo]:
        """The jobs of these keys that exist, by key."""
        found: dict[str, JobInfo] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                rows = self._conn.execute(
                    "SELECT kind, key, status, attempts, last_error, result FROM jobs"
                    f" WHERE key IN ({', '.join('?' for _ in chunk)})", chunk,
                ).fetchall()
                for r in rows:
                    found[r[1]] = JobInfo(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5]) if r[5] is not None else None)
        return found

    def submission(self, submission_id: str) -> list[JobInfo] | None:
        """The jobs one accepted record queued, in order; None for an unknown id."""
        with self._lock:
            row = self._conn.execute("SELECT keys FROM submissions WHERE id = ?", (submission_id,)).fetchone()
        if row is None:
            return None
        keys: list[str] = orjson.loads(row[0])
        infos = self.infos(keys)
        return [infos[k] for k in keys if k in infos]

    def counts(self) -> dict[str, dict[str, int]]:
        """{kind: {status: count}}."""
        with self._lock:
            rows = self._conn.execute("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status").fetchall()
        out: dict[str, dict[str, int]] = {}
        for kind, status, count in rows:
            out.setdefault(kind, {})[status] = int(count)
        return out

    def pending(self, kind: str | None = None) -> int:
        with self._lock:
            if kind is None:
                row = self._conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'pending'").fetchone()
            else:
                row = self._conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'pending' AND kind = ?", (kind,)).fetchone()
        return int(row[0])

    def rejected(self, kind: str | None = None) -> list[JobInfo]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT kind, key, status, attempts, last_error, result FROM jobs WHERE status = 'rejected'"
                + (" AND kind = ?" if kind else "") + " ORDER BY id",
                (kind,) if kind else (),
            ).fetchall()
        return [JobInfo(r[0], r[1], r[2], r[3], r[4], None) for r in rows]
