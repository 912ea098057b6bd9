"""Prometheus metrics of the API, in a registry of its own (one per app), served at /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_KNOWN = ("/health", "/health/live", "/metrics", "/", "/api/v1/scan", "/api/v1/passport", "/api/v1/config",
          "/api/v1/ownership", "/api/v1/ownership/claims", "/api/v1/claim-codes", "/api/v1/alerts", "/openapi.json", "/docs")


def route_label(path: str) -> str:
    """A bounded label for a request path (codes are not labels: too many of them)."""
    if path.startswith("/01/"):
        return "/01/{gtin}/..."
    if path.startswith("/00/"):
        return "/00/{sscc}"
    if path.startswith("/static/"):
        return "/static"
    return path if path in _KNOWN else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("waymark_api_requests_total", "HTTP requests answered", ("route", "status"), registry=self.registry)
        self.latency = Histogram("waymark_api_request_seconds", "Time to answer a request", ("route",), buckets=_BUCKETS, registry=self.registry)
        self.scans = Counter("waymark_api_scans_total", "Codes scanned, by verdict", ("verdict",), registry=self.registry)
        self.flags = Counter("waymark_api_clone_flags_total", "Clone rules tripped", ("rule",), registry=self.registry)
        self.claims = Counter("waymark_api_ownership_claims_total", "Ownership claims, by outcome", ("method", "outcome"), registry=self.registry)
        self.rate_limited = Counter("waymark_api_rate_limited_total", "Requests refused by the rate limit", registry=self.registry)
        self.passport_builds = Counter("waymark_api_passport_builds_total", "Passports built (cache misses)", registry=self.registry)
        self.cache_size = Gauge("waymark_api_passport_cache_entries", "Passports held in the cache", registry=self.registry)
        self.cache_bytes = Gauge("waymark_api_passport_cache_bytes", "Bytes of passports held in the cache (compressed)", registry=self.registry)
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._builds_counted = 0

    def count_builds(self, total: int) -> None:
        """Bring the builds counter up to the passport cache's own count (read when scraped)."""
        self.passport_builds.inc(total - self._builds_counted)
        self._builds_counted = total

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        pair = self._children.get(key)
        if pair is None:  # labelled children are looked up once, not per request
            pair = (self.requests.labels(route, str(status)), self.latency.labels(route))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task switch) timing every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            metrics = self.metrics()
            if metrics is not None:
                metrics.observe(route_label(scope["path"]), status, time.perf_counter() - started)
