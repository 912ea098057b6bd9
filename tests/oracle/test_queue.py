"""The oracle's durable queue: idempotent puts, exponential backoff with jitter, survival of a
reopen (a restart), rejection kept for an operator."""

from __future__ import annotations

from pathlib import Path

from oracle.queue import DurableQueue, backoff_delay


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_put_is_idempotent_by_key_and_survives_a_reopen(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.sqlite3")
    assert queue.put_many([("event", "ni:a", {"n": 1}), ("event", "ni:b", {"n": 2}), ("event", "ni:a", {"n": 3})]) == [True, True, False]
    assert queue.put("event", "ni:b", {"n": 4}) is False
    queue.close()
    reopened = DurableQueue(tmp_path / "q.sqlite3")
    jobs = reopened.due("event")
    assert [(j.key, j.payload) for j in jobs] == [("ni:a", {"n": 1}), ("ni:b", {"n": 2})]
    reopened.mark_delivered({jobs[0].id: {"ok": True}})
    assert reopened.put("event", "ni:a", {"n": 5}) is False  # delivered jobs still count: no resend
    assert reopened.counts() == {"event": {"delivered": 1, "pending": 1}}


def test_failed_sends_back_off_exponentially_with_a_cap(tmp_path: Path) -> None:
    clock = Clock()
    queue = DurableQueue(tmp_path / "q.sqlite3", base_delay=1.0, max_delay=8.0, clock=clock)
    queue.put("event", "k", {})
    waits = []
    for _ in range(6):
        (job,) = queue.due("event")
        queue.retry_later([job.id], "node unreachable")
        assert queue.due("event") == []
        wait = queue.next_due_in()
        assert wait is not None
        waits.append(wait)
        clock.now += wait
    # base * 2^(n-1), capped at 8, the upper half jittered
    for attempt, wait in enumerate(waits, start=1):
        full = min(8.0, 2 ** (attempt - 1))
        assert full / 2 <= wait <= full
    info = queue.info("k")
    assert info is not None and info.attempts == 6 and info.status == "pending" and info.last_error == "node unreachable"


def test_backoff_delay_bounds() -> None:
    assert backoff_delay(1, 0.5, 60, rng=lambda: 1.0) == 0.5
    assert backoff_delay(4, 0.5, 60, rng=lambda: 0.0) == 2.0
    assert backoff_delay(30, 0.5, 60, rng=lambda: 1.0) == 60


def test_rejected_jobs_are_kept_with_the_reason_and_can_be_requeued(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.sqlite3")
    queue.put("event", "k", {"x": 1})
    (job,) = queue.due("event")
    queue.mark_rejected([job.id], "HTTP 403: signer did not hold CARRIER")
    assert queue.due("event") == [] and queue.pending() == 0
    (kept,) = queue.rejected()
    assert kept.key == "k" and "CARRIER" in (kept.last_error or "")
    assert queue.requeue_rejected("event") == 1
    assert [j.key for j in queue.due("event")] == ["k"]
