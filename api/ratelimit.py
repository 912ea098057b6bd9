"""Per-client token buckets for the public scan routes.

A client (its address, or the first X-Forwarded-For hop behind a trusted proxy) may make
`burst` requests at once and `per_minute` requests per minute sustained. The buckets live
in this process; idle ones are dropped.
"""

from __future__ import annotations

import threading
import time

from api.errors import RateLimited


class RateLimiter:
    def __init__(self, per_minute: int, burst: int, *, max_clients: int = 200_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def check(self, client: str, cost: float = 1.0) -> None:
        """Take `cost` tokens from the client's bucket or raise RateLimited."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < cost:
                self._buckets[client] = (tokens, now)
                raise RateLimited((cost - tokens) / self.rate)
            self._buckets[client] = (tokens - cost, now)
            if len(self._buckets) > self.max_clients or now - self._last_sweep > 60:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        self._last_sweep = now
