"""Settings of the buyer-facing API (resolver, scan, ownership, alerts), prefix WAYMARK_API_.

Chain and database come from `node.settings` (WAYMARK_CHAIN_, WAYMARK_DB_); this class
holds what the API adds. Only entry points (`waymark api run`, tests, the benchmark) build it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, IPvAnyNetwork, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from node.paths import PROJECT_ROOT


class ApiSettings(BaseSettings):
    """How the API listens, what it tells the scanner page, and how it guards public routes."""

    model_config = SettingsConfigDict(env_prefix="WAYMARK_API_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    """Address the API listens on."""

    port: int = Field(8700, ge=1, le=65535)
    """Port the API listens on."""

    public_url: str = "http://127.0.0.1:8700"
    """Base URL buyers reach this resolver at (printed in QR codes, used in linksets)."""

    browser_rpc_url: str | None = None
    """Read-only JSON-RPC URL the scanner page verifies against; the chain's RPC URL when unset."""

    rate_limit_per_minute: int = Field(120, ge=1)
    """Sustained requests per minute one client may make to the public scan routes."""

    rate_limit_burst: int = Field(40, ge=1)
    """Requests one client may make at once before the per-minute rate applies."""

    trust_forwarded_for: bool = False
    """Take the client address from X-Forwarded-For (only behind a proxy that sets it)."""

    region_header: str | None = None
    """No longer read (any client could set it): refused at start-up; set trusted_region_header
    and trusted_proxies instead."""

    trusted_region_header: str | None = None
    """Header the operator's reverse proxy sets to the client's country (ISO 3166-1 alpha-2, e.g.
    CF-IPCountry or X-Country-Code); read only on connections from `trusted_proxies`. Unset: every
    scan's region is unknown (the clone rules then count devices, not places)."""

    trusted_proxies: list[IPvAnyNetwork] = []
    """Addresses or networks of the reverse proxies whose region header is believed, as JSON
    (e.g. ["127.0.0.1", "10.0.0.0/8"]); a region header from any other peer is ignored."""

    device_salt_file: Path = PROJECT_ROOT / "var" / "api-device-salt"
    """File holding the secret salt of device hashes; created with random bytes when missing."""

    passport_ttl: float = Field(10.0, gt=0)
    """Seconds a passport whose events are all anchored is served from the cache."""

    pending_passport_ttl: float = Field(2.0, gt=0)
    """Seconds a passport with events still pending is served from the cache."""

    passport_max_age: float = Field(300.0, gt=0)
    """Seconds after which a cached passport is rebuilt even if the node's tables look unchanged."""

    passport_cache_size: int = Field(50_000, ge=1)
    """Most passports kept in the cache."""

    passport_cache_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    """Most bytes of passports kept in the cache, held compressed (one passport's JSON is from about
    1 KB to a few hundred KB, about five times less packed); the least recently used go first."""

    passport_build_threads: int | None = Field(None, ge=1, le=64)
    """Most passports built at once, with the scan path's other database reads (the rest queue).
    Default: 1 on SQLite, 4 on PostgreSQL. On SQLite a build is CPU work that releases the GIL
    around each of its short statements, so builds in more threads contend for it and get fewer
    done (scripts/bench/scan.py: 131 cold scans/s with one, 85 with four); on PostgreSQL a
    build also waits for the server's answers, which more threads overlap. With build processes,
    at least 4 per process: these threads then only wait for the processes' answers."""

    passport_build_processes: int = Field(0, ge=0, le=64)
    """Worker processes that build passports (api.build_pool); 0 builds them in the API process's
    own threads. One process builds on one core at a time, so on a server with cores to spare a
    few processes raise the cold scans per second; each opens its own database connections."""

    scan_flush_interval: float = Field(0.2, gt=0)
    """Seconds between writes of buffered scan records to the database."""

    clone_window_hours: float = Field(24.0, gt=0)
    """Window the clone rules look back over."""

    clone_max_devices: int = Field(5, ge=1)
    """More distinct devices than this scanning one code within the window is flagged."""

    clone_max_scans: int = Field(30, ge=1)
    """More scans than this of one code within the window is flagged."""

    clone_max_regions: int = Field(2, ge=1)
    """More distinct regions than this scanning one code within the window is flagged."""

    clone_min_travel_minutes: float = Field(120.0, ge=0)
    """Scans of one code in two regions closer in time than this are flagged as implausible."""

    clone_evidence_days: float = Field(45.0, gt=0)
    """Window the device rules (too_many_devices, devices_in_two_places) look back over: copies
    of one code are sold over weeks, not within a day."""

    clone_max_devices_across_regions: int = Field(3, ge=1)
    """More distinct devices than this scanning one code within the evidence window, when it was
    scanned in two or more regions, is a clone signal (devices_in_two_places)."""

    clone_claim_handover_devices: int = Field(2, ge=0)
    """Devices other than the claimer's that may scan a claimed unit before it is suspicious (a
    household member, a gift, a resale); each one alerts the manufacturer (handed_on_after_claim)."""

    clone_trade_device_units: int = Field(5, ge=2)
    """A device that scanned this many different units in a row is a shop's or an inspector's and
    is not counted by the device rules."""

    clone_suspicion_days: float = Field(30.0, gt=0)
    """How long a unit stays suspicious after its last clone signal (shown in its passport)."""

    signed_request_max_age: int = Field(300, ge=1)
    """Seconds a signed request's timestamp may differ from the server's clock."""

    docs: bool = True
    """Serve the OpenAPI documentation at /docs and the spec at /openapi.json."""

    compress: bool = True
    """Answer with Zstandard or gzip where the client accepts it (api.compression): a passport
    is about 50 KB of JSON and 9 KB compressed. Off where a proxy in front compresses already."""

    static_dir: Path = PROJECT_ROOT / "scanner_web"
    """Folder of the scanner page (index.html and its built dist/)."""

    @model_validator(mode="after")
    def _region_header_moved(self) -> "ApiSettings":
        if self.region_header is not None:
            raise ValueError(
                "WAYMARK_API_REGION_HEADER is no longer read, because any client could set it: name the header in "
                "WAYMARK_API_TRUSTED_REGION_HEADER and the proxies allowed to set it in WAYMARK_API_TRUSTED_PROXIES"
            )
        return self
