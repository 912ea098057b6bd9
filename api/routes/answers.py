"""What the resolver answers for a code: the passport (built or cached, finished per scan and
logged as a scan when asked), the product, lot or location view, the scanner page with its
boot data, and errors in the representation asked for."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response

from api.compression import request_coding
from api.deps import ScanContext
from api.errors import UnknownCode, error_json, field_for, status_for
from api.readmodel.clone_rules import Flag
from api.readmodel.locations import load_locations
from api.readmodel.passport import FinishedPassport, PassportCore, finish, issuance_flag, valid_issuance
from api.readmodel.product_master import lot_view, product_view
from api.routes.digital_link import CORS, LANGUAGES, Kind, base_url
from api.services import Services
from node.errors import WaymarkError
from node.protocol.digital_link import DigitalLink, ParsedLink
from node.protocol.gs1 import GS1Key, ProductId, UnitId


# --- answers ------------------------------------------------------------------------------------


def _script_safe(data: bytes) -> bytes:
    # Inside <script>, no '<' may appear: JSON allows the \u003c escape.
    return data.replace(b"<", b"\\u003c")


def page(services: Services, status: int, passport: bytes | None = None, error: bytes | None = None) -> Response:
    boot = (
        b'{"status":' + str(status).encode()
        + b',"config":' + config_json(services)
        + b',"passport":' + (passport or b"null")
        + b',"error":' + (error or b"null") + b"}"
    )
    html = services.page_template.replace(b"<!--WAYMARK-BOOT-->", b'<script id="waymark-boot" type="application/json">' + _script_safe(boot) + b"</script>", 1)
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store", "Vary": "Accept", **CORS})


def passport_response(request: Request, services: Services, passport: FinishedPassport, headers: dict[str, str]) -> Response:
    """The passport as JSON: to a client whose Accept-Encoding chooses Zstandard (as
    api.compression chooses for every other answer, unless the API is told not to compress), as
    the cached core's frame ended by the scan's own members (`FinishedPassport.zstd`), so the core
    is not unpacked and packed again per scan."""
    if services.settings.compress and request_coding(request.scope) == "zstd":
        return Response(passport.zstd(), media_type="application/json", headers={**headers, "Content-Encoding": "zstd"})
    return Response(passport.json(), media_type="application/json", headers=headers)


_SLIM_VERIFICATION = ("status", "failedCheck", "signer", "signerOrg", "signerRole")


def slim(passport: bytes) -> bytes:
    """The passport as the page needs it for its first paint: the timeline without the EPCIS
    event bodies, signatures, proofs and check details (the page fetches the full passport
    from `/api/v1/passport` when the buyer opens the details or verifies in the browser)."""
    data = orjson.loads(passport)
    for item in data.get("timeline") or ():
        for heavy in ("event", "digest", "readPoint", "bizLocation"):  # `location` names the place
            item.pop(heavy, None)
        full = item.get("verification") or {}
        anchor = full.get("anchor")
        item["verification"] = {key: full.get(key) for key in _SLIM_VERIFICATION}
        item["verification"]["anchored"] = anchor is not None
    data["slim"] = True
    return orjson.dumps(data)


def config_json(services: Services) -> bytes:
    """The chain this API reads, as it states it (boot config, /api/v1/config). The scanner page
    never uses these values: it verifies against the anchors compiled into its approved bundle and
    shows a server whose statement differs as suspicious (scanner_web/README.md), so an honest API
    states the bundle's (WAYMARK_API_BROWSER_RPC_URL = the bundle's rpcUrl)."""
    cached = services.extra.get("config_json")
    if isinstance(cached, bytes):
        return cached
    chain = services.chain
    data = orjson.dumps({
        "chainId": chain.chain_id,
        "rpcUrl": services.settings.browser_rpc_url or services.client.rpc_url,
        "provenanceRegistry": chain.provenance_address,
        "consortiumRegistry": chain.consortium_address,
        "confirmationsRequired": services.builder.confirmations,
        "resolver": services.settings.public_url.rstrip("/"),
        "languages": LANGUAGES,
    })
    services.extra["config_json"] = data
    return data


def error_answer(kind: Kind | None, services: Services, error: WaymarkError) -> Response:
    status = status_for(error)
    extra: dict[str, Any] = {"verdict": "unknown"} if isinstance(error, UnknownCode) else {}
    if isinstance(error, UnknownCode) and error.manufacturer is not None:
        extra["recordsMayBeArriving"] = True
    body = error_json(error.code, str(error), field_for(error), **extra)
    if kind == "html":
        return page(services, status, error=body)
    headers = {"Retry-After": str(getattr(error, "retry_after"))} if hasattr(error, "retry_after") else {}
    return Response(body, status_code=status, media_type="application/json", headers={**headers, **CORS})


class LinkTypeUnavailable(UnknownCode):
    code = "link_type_unavailable"

    def __init__(self, link_type: str, uri: str) -> None:
        self.uri = uri
        self.manufacturer = None  # the unit may be known; only the link type is not offered
        self.field = "linkType"
        WaymarkError.__init__(self, f"{uri} has no link of type {link_type!r}")



# --- what the network knows of a code -------------------------------------------------------------


async def core_for(services: Services, link: ParsedLink) -> PassportCore:
    """The passport core, a code its manufacturer signed without events yet, or UnknownCode."""
    core = await services.passports.get(link.identifier)
    if core is not None:
        return core
    if isinstance(link.identifier, UnitId) and link.signature is not None:
        if await anyio.to_thread.run_sync(valid_issuance, services.chain, link):
            return await anyio.to_thread.run_sync(services.builder.issued_only, link.identifier)
    maker = await anyio.to_thread.run_sync(_maker, services, link.identifier.gtin) if isinstance(link.identifier, UnitId) else None
    raise UnknownCode(link.identifier.canonical_uri, maker)


def _maker(services: Services, gtin: str) -> str | None:
    """The name of the organisation that registered product `gtin`, if any."""
    org_id = services.chain.product_org(gtin)
    org = services.chain.organisation(org_id) if org_id else None
    return org.name if org is not None else None


def _manufacturer(services: Services, gtin: str) -> tuple[dict[str, Any] | None, bytes | None]:
    chain = services.chain
    org_id = chain.product_org(gtin)
    org = chain.organisation(org_id) if org_id else None
    return (org.ref() if org else None), (chain.product_hash(gtin) if org_id else None)


def _product_or_lot(services: Services, key: ProductId) -> dict[str, Any] | None:
    manufacturer, registered_hash = _manufacturer(services, key.gtin)
    if key.lot is not None:
        return lot_view(services.db, key, registered_hash, manufacturer)
    view = product_view(services.db, key, registered_hash, manufacturer)
    return view if view["registered"] or view["lots"] else None


def _location(services: Services, key: GS1Key) -> dict[str, Any] | None:
    found = load_locations(services.db, [key.canonical_uri]).get(key.canonical_uri)
    if found is None or key.ai != "414":
        return None
    return {"kind": "location", **found}


async def view_of(services: Services, link: DigitalLink) -> dict[str, Any]:
    """The product, lot or location view of a non-unit code; UnknownCode if nothing is known."""
    key = link.key
    found: dict[str, Any] | None
    if isinstance(key, ProductId):
        found = await anyio.to_thread.run_sync(_product_or_lot, services, key)
        if found is not None:
            found["link"] = key.uri(base_url(services))
    elif isinstance(key, GS1Key):
        found = await anyio.to_thread.run_sync(_location, services, key)
    else:  # pragma: no cover - units and containers have passports
        found = None
    if found is None:
        raise UnknownCode(key.canonical_uri)
    return found


def description_of(view: dict[str, Any] | None) -> str | None:
    master = (view or {}).get("master") or {}
    name = master.get("name")
    return name if isinstance(name, str) else None


async def _issuance(services: Services, link: ParsedLink, manufacturer_org: int | None) -> Flag | None:
    """The issuance-signature flag of a link, remembered per (signature, code)."""
    cache: dict[tuple[bytes | None, str], Flag | None] = services.extra.setdefault("issuance", {})  # type: ignore[assignment]
    key = (link.signature, link.identifier.canonical_uri)
    if key not in cache:
        if len(cache) > 65_536:
            cache.clear()
        cache[key] = await anyio.to_thread.run_sync(issuance_flag, services.chain, link, manufacturer_org)
    return cache[key]


def lot_flag(link: ParsedLink, core: PassportCore) -> Flag | None:
    """A flag if the link names a lot other than the one the unit was commissioned in."""
    unit = link.identifier
    if not isinstance(unit, UnitId) or unit.lot is None:
        return None
    recorded = core.recorded_lot
    if recorded is None or recorded == unit.lot:
        return None
    return Flag("lot_mismatch", f"the link names lot {unit.lot}, but this unit was commissioned in lot {recorded}")


async def scan(services: Services, link: ParsedLink, context: ScanContext | None) -> FinishedPassport:
    """Resolve a code into its passport; log it as a scan when `context` is given."""
    try:
        core = await core_for(services, link)
    except UnknownCode:
        if context is not None and isinstance(link.identifier, UnitId):
            await _log_unknown(services, link.identifier, context)
        raise
    extra: list[Flag] = []
    if link.signature is not None:
        flag = await _issuance(services, link, core.manufacturer_org)
        if flag is not None:
            extra.append(flag)
    wrong_lot = lot_flag(link, core)
    if wrong_lot is not None:
        extra.append(wrong_lot)
    key = link.identifier.canonical_uri
    if not services.scans.is_loaded(key):  # its first scan: read its window off the event loop
        await anyio.to_thread.run_sync(services.scans.preload, key, limiter=services.passports.limiter)
    if context is None:
        return finish(core, services.scans.status(key), extra)
    outcome = services.scans.record(
        key, device=context.device, region=context.region, region_source=context.region_source,
        gtin=core.gtin, known=True, org_id=core.manufacturer_org, extra_flags=extra,
    )
    metrics = services.metrics
    verdict = "suspicious" if outcome.suspicion or extra else core.verdict
    metrics.scans.labels(verdict).inc()
    for flag in outcome.flags:
        metrics.flags.labels(flag.rule).inc()
    return finish(core, outcome, extra)


async def _log_unknown(services: Services, unit: UnitId, context: ScanContext) -> None:
    org = await anyio.to_thread.run_sync(services.chain.product_org, unit.gtin)
    flags = [Flag("unknown_serial", f"serial {unit.serial} of product {unit.gtin} has no record on this network (yet)")] if org else []
    services.scans.record(
        unit.canonical_uri, device=context.device, region=context.region, region_source=context.region_source,
        gtin=unit.gtin, known=False, org_id=org, extra_flags=flags,
    )
    services.metrics.scans.labels("unknown").inc()
