"""Dependencies of the routes, as `Annotated` types."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Request

from api.auth import SignedBy
from api.errors import Forbidden, RateLimited
from api.services import Services
from api.readmodel.claim_codes import device_hash


async def get_services(request: Request) -> Services:
    # async: FastAPI runs plain-def dependencies in a worker thread, a costly hop per request.
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def client_address(request: Request, services: Services) -> str:
    """Who the client is for rate limits: its address, or the proxy's X-Forwarded-For first hop."""
    if services.settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",", 1)[0].strip()
    return request.client.host if request.client else "unknown"


def rate_limit(request: Request, services: Services) -> None:
    try:
        services.limiter.check(client_address(request, services))
    except RateLimited:
        services.metrics.rate_limited.inc()
        raise


async def scan_rate_limit(request: Request, services: ServicesDep) -> None:
    """Per-client rate limit of the public scan routes (429 with Retry-After beyond it)."""
    rate_limit(request, services)


ScanRateLimit = Annotated[None, Depends(scan_rate_limit)]


# --- who is scanning, without personal data ---------------------------------------------------

_REGION_RE = re.compile(r"^[A-Za-z]{2}$")


@dataclass(frozen=True)
class ScanContext:
    device: bytes
    region: str | None
    region_source: str


def region_of(request: Request, services: Services) -> tuple[str | None, str]:
    """The scan's country, from the operator's trusted proxy only: the configured header, on a
    connection from a configured proxy address. Anything a client says about its own place
    (a header, a query parameter, its languages) is ignored: (None, "none")."""
    settings = services.settings
    header = settings.trusted_region_header
    peer = request.client.host if request.client else None
    if not header or peer is None or not settings.trusted_proxies:
        return None, "none"
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None, "none"
    if not any(address in network for network in settings.trusted_proxies):
        return None, "none"
    value = (request.headers.get(header) or "").strip()
    # XX and T1 are what proxies send for an unknown country and for Tor.
    if _REGION_RE.match(value) and value.upper() not in ("XX", "T1"):
        return value.upper(), "proxy"
    return None, "none"


def scan_context(request: Request, services: Services) -> ScanContext:
    """The scanning device's salted hash (its stated id, else address + user agent) and region."""
    device_id = request.headers.get("waymark-device")
    if not device_id or len(device_id) > 128:
        device_id = f"{client_address(request, services)}|{request.headers.get('user-agent', '')}"
    region, source = region_of(request, services)
    return ScanContext(device_hash(services.salt, device_id), region, source)


async def get_scan_context(request: Request, services: ServicesDep) -> ScanContext:
    return scan_context(request, services)


ScanContextDep = Annotated[ScanContext, Depends(get_scan_context)]


# --- signed requests ----------------------------------------------------------------------------


async def signed_request(request: Request, services: ServicesDep) -> SignedBy:
    """The account that signed this request (see api.auth); 401 if none did."""
    body = await request.body()
    path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    target = path + ("?" + query if query else "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    return services.verifier.verify(request.method, target, body, headers, write=request.method not in ("GET", "HEAD"))


SignedRequest = Annotated[SignedBy, Depends(signed_request)]


@dataclass(frozen=True)
class Member:
    """A signed request's account, of an organisation holding the role the route needs."""

    account: str
    org_id: int


async def member_with_role(signed: SignedBy, services: Services, role: str) -> Member:
    """The signer, if its organisation holds `role` now (the registry says); 403 otherwise."""

    def lookup() -> tuple[int, bool]:
        return services.chain.current_org(signed.account), services.chain.has_role(signed.account, role)

    org_id, holds = await anyio.to_thread.run_sync(lookup)
    if not org_id or not holds:
        raise Forbidden(f"{signed.account} is not an account of an organisation holding the {role} role")
    return Member(signed.account, org_id)


async def manufacturer(signed: SignedRequest, services: ServicesDep) -> Member:
    """The signer, if its organisation holds the MANUFACTURER role now; 403 otherwise."""
    return await member_with_role(signed, services, "MANUFACTURER")


ManufacturerDep = Annotated[Member, Depends(manufacturer)]


async def auditor(signed: SignedRequest, services: ServicesDep) -> Member:
    """The signer, if its organisation holds the AUDITOR role now; 403 otherwise."""
    return await member_with_role(signed, services, "AUDITOR")


AuditorDep = Annotated[Member, Depends(auditor)]
