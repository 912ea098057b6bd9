"""One piece of work repeated every few seconds in a daemon thread of its own, until stopped.

A failing round is logged and the next round retries: the work itself must leave what it
could not finish for the next round (the scan log keeps its buffer, the order index its
checkpoint)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, work: Callable[[], object]) -> None:
        self.name = name
        self.work = work
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float) -> None:
        """Run the work every `interval` seconds (first after one interval); no-op if running."""
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.work()
                except Exception:  # noqa: BLE001 - keep going; the next round retries
                    log.exception("%s failed; retrying", self.name)

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the round under way, if any (waiting at most `timeout` seconds for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
