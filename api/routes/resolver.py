"""The GS1 Digital Link resolver and the scan API.

`/01/{gtin}[/22/{cpv}][/10/{lot}]/21/{serial}` and `/00/{sscc}` answer by content negotiation:

* `text/html` (browsers, phone cameras): the scanner page with the unit's passport in it;
* `application/json`: the passport;
* `application/linkset+json`, or `?linkType=all` / `?linkType=linkset`: the links a GS1
  resolver publishes for the code (RFC 9264 linkset); `?linkType=<type>` redirects (307) to
  the link of that type.

Paths are parsed from the raw request path, so percent-encoded characters in a lot or serial
(`%2F` for `/`) are read exactly as the Digital Link standard says; the checks (check digits,
qualifier order, character set, lengths) are those of `node.provenance.gs1`, and a problem
is answered 400 naming it. A well-formed code nobody issued is 404 with verdict `unknown`.
An HTML or JSON resolution is a scan: it is logged (without personal data) and the clone
rules see it. `/api/v1/scan?uri=` does the same for a link read by the page's camera or typed
in; `/api/v1/passport?uri=` returns the passport without logging a scan.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote

import anyio
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from starlette.responses import Response

from api.deps import ScanContext, ScanContextDep, ScanRateLimit, ServicesDep, rate_limit, scan_context
from api.errors import BadRequest, ErrorBody, NotAcceptable, UnknownCode, UnknownCodeBody, error_json, field_for, status_for
from api.services import Services
from node.errors import WaymarkError
from node.passport import Passport, PassportCore, finish, issuance_flag, valid_issuance
from node.provenance.gs1 import InvalidIdentifier, ParsedLink, UnitId, parse_digital_link, parse_identifier
from node.scans import Flag

router = APIRouter(tags=["resolver"])

HTML = "text/html"
JSON = "application/json"
LINKSET = "application/linkset+json"
Kind = Literal["html", "json", "linkset"]

GS1_VOC = "https://gs1.org/voc/"
LANGUAGES = ["en", "zh", "es", "fr", "de"]


class LinkTarget(BaseModel):
    href: str
    title: str
    type: str
    hreflang: list[str] | None = None


class LinksetEntry(BaseModel):
    model_config = {"extra": "allow"}
    anchor: str = Field(description="The code's canonical id on id.gs1.org")


class Linkset(BaseModel):
    """RFC 9264 linkset; link relation types are GS1 Web Vocabulary IRIs (https://gs1.org/voc/...)."""

    linkset: list[LinksetEntry]


# --- parsing ------------------------------------------------------------------------------------


def _parse_link(uri: str) -> ParsedLink:
    try:
        return parse_digital_link(uri)
    except InvalidIdentifier:
        raise
    except ValueError as error:  # urlsplit's own complaints, e.g. "Invalid IPv6 URL" for "https://["
        raise InvalidIdentifier(uri, f"not a URL: {error}") from None


@lru_cache(maxsize=65_536)
def parse_path(raw_target: str) -> ParsedLink:
    """Parse `/01/...` or `/00/...` (raw, percent-encoded, with its query) as a Digital Link."""
    return _parse_link("https://resolver.invalid" + raw_target)


@lru_cache(maxsize=65_536)
def parse_any(text: str) -> ParsedLink:
    """Parse what a camera read or a person typed: a Digital Link on any host, a path, or an EPC URN."""
    value = text.strip()
    if not value:
        raise InvalidIdentifier(text, "empty")
    if value.startswith("urn:"):
        return ParsedLink(parse_identifier(value), "", None)
    if value.startswith("/"):
        value = "https://resolver.invalid" + value
    elif "://" not in value:
        # "01/0952.../21/..." is a bare path; "id.gs1.org/01/..." a link without its scheme.
        value = ("https://resolver.invalid/" if value[0].isdigit() else "https://") + value
    return _parse_link(value)


def raw_target(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


# --- negotiation --------------------------------------------------------------------------------


def negotiate(accept: str | None) -> Kind | None:
    """The representation to send for an Accept header; None if none is acceptable."""
    if not accept:
        return "html"
    best: tuple[float, int, int] | None = None
    chosen: Kind | None = None
    offers: list[tuple[str, Kind]] = [(HTML, "html"), (JSON, "json"), (LINKSET, "linkset"), ("application/xhtml+xml", "html")]
    for position, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        for offer, kind in offers:
            if media == offer:
                specificity = 2
            elif media == offer.split("/")[0] + "/*":
                specificity = 1
            elif media == "*/*":
                specificity = 0
            else:
                continue
            rank = (q, specificity, -position)
            if best is None or rank > best:
                best, chosen = rank, kind
            break  # the first offer a wildcard matches is the server's preference (HTML)
    return chosen


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
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store", "Vary": "Accept"})


def config_json(services: Services) -> bytes:
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
    headers = {"Retry-After": str(getattr(error, "retry_after"))} if hasattr(error, "retry_after") else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def linkset(services: Services, link: ParsedLink) -> dict[str, Any]:
    identifier = link.identifier
    base = services.settings.public_url.rstrip("/")
    page_url = identifier.uri(base)
    encoded = quote(identifier.canonical_uri, safe="")
    html = {"href": page_url, "title": "Product passport and verification", "type": HTML, "hreflang": LANGUAGES}
    return {
        "linkset": [
            {
                "anchor": identifier.canonical_uri,
                GS1_VOC + "defaultLink": [html],
                GS1_VOC + "pip": [html],
                GS1_VOC + "traceability": [{"href": f"{base}/api/v1/passport?uri={encoded}", "title": "Passport with its verified timeline (JSON)", "type": JSON}],
                GS1_VOC + "verificationService": [{"href": page_url + "#verify", "title": "Verify the history in your browser", "type": HTML, "hreflang": LANGUAGES}],
            }
        ]
    }


def linkset_header(services: Services, link: ParsedLink) -> str:
    url = link.identifier.uri(services.settings.public_url.rstrip("/"))
    return f'<{url}?linkType=linkset>; rel="linkset"; type="{LINKSET}"'


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


async def _issuance(services: Services, link: ParsedLink, manufacturer_org: int | None) -> Flag | None:
    """The issuance-signature flag of a link, remembered per (signature, code)."""
    cache: dict[tuple[bytes | None, str], Flag | None] = services.extra.setdefault("issuance", {})  # type: ignore[assignment]
    key = (link.signature, link.identifier.canonical_uri)
    if key not in cache:
        if len(cache) > 65_536:
            cache.clear()
        cache[key] = await anyio.to_thread.run_sync(issuance_flag, services.chain, link, manufacturer_org)
    return cache[key]


async def scan(services: Services, link: ParsedLink, context: ScanContext | None) -> bytes:
    """Resolve a code into passport JSON; log it as a scan when `context` is given."""
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
    key = link.identifier.canonical_uri
    if context is None:
        return finish(core, None, services.scans.ownership(key), extra)
    outcome = services.scans.record(
        key, device=context.device, region=context.region, region_source=context.region_source,
        gtin=core.gtin, known=True, org_id=core.manufacturer_org, extra_flags=extra,
    )
    metrics = services.metrics
    verdict = "suspicious" if outcome.flags else core.verdict
    metrics.scans.labels(verdict).inc()
    for flag in outcome.flags:
        metrics.flags.labels(flag.rule).inc()
    return finish(core, outcome, outcome.ownership)


async def _log_unknown(services: Services, unit: UnitId, context: ScanContext) -> None:
    org = await anyio.to_thread.run_sync(services.chain.product_org, unit.gtin)
    flags = [Flag("unknown_serial", f"serial {unit.serial} of product {unit.gtin} has no record on this network (yet)")] if org else []
    services.scans.record(
        unit.canonical_uri, device=context.device, region=context.region, region_source=context.region_source,
        gtin=unit.gtin, known=False, org_id=org, extra_flags=flags,
    )
    services.metrics.scans.labels("unknown").inc()


async def resolve(request: Request, services: Services) -> Response:
    link_type = request.query_params.get("linkType")
    kind: Kind | None = "linkset" if link_type in ("all", "linkset") else negotiate(request.headers.get("accept"))
    try:
        link = parse_path(raw_target(request))
    except InvalidIdentifier as error:
        return error_answer(kind or "json", services, error)
    if link_type and link_type not in ("all", "linkset"):
        wanted = link_type if link_type.startswith("http") else GS1_VOC + link_type.removeprefix("gs1:")
        targets = linkset(services, link)["linkset"][0].get(wanted)
        if not targets:
            return error_answer("json", services, BadRequest(f"no link of type {link_type!r} for this code", "linkType", "unknown_link_type"))
        return RedirectResponse(targets[0]["href"], status_code=307)
    if kind is None:
        return error_answer("json", services, NotAcceptable(f"{HTML}, {JSON} or {LINKSET}"))
    try:
        rate_limit(request, services)
    except WaymarkError as error:
        return error_answer(kind, services, error)
    headers = {"Link": linkset_header(services, link), "Vary": "Accept", "Cache-Control": "no-store"}
    try:
        if kind == "linkset":
            await core_for(services, link)  # 404 for codes nobody issued
            return Response(orjson.dumps(linkset(services, link)), media_type=LINKSET, headers=headers)
        body = await scan(services, link, scan_context(request, services))
    except WaymarkError as error:
        return error_answer(kind, services, error)
    if kind == "html":
        response = page(services, 200, passport=body)
        response.headers["Link"] = headers["Link"]
        return response
    return Response(body, media_type=JSON, headers=headers)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The passport (JSON), the scanner page with it (HTML), or the code's linkset",
        "content": {
            JSON: {"schema": {"$ref": "#/components/schemas/Passport"}},
            HTML: {"schema": {"type": "string"}},
            LINKSET: {"schema": {"$ref": "#/components/schemas/Linkset"}},
        },
    },
    307: {"description": "Redirect to the link of the requested `linkType`"},
    400: {"model": ErrorBody, "description": "Malformed code (check digit, qualifier order, characters, length) or unknown linkType", "content": {HTML: {"schema": {"type": "string"}}}},
    404: {"model": UnknownCodeBody, "description": "Well-formed code unknown to this network (verdict `unknown`)", "content": {HTML: {"schema": {"type": "string"}}}},
    406: {"model": ErrorBody, "description": "None of HTML, JSON or linkset JSON is acceptable to the client"},
    429: {"model": ErrorBody, "description": "Rate limit of this client exceeded", "content": {HTML: {"schema": {"type": "string"}}}},
    503: {"model": ErrorBody, "description": "Chain or database unavailable", "content": {HTML: {"schema": {"type": "string"}}}},
}

_LINK_TYPE = Query(None, alias="linkType", description="`all`/`linkset` for the linkset, or a GS1 link type (gs1:pip, gs1:traceability, ...) to be redirected to")
_SIG = Query(None, alias="s", description="The manufacturer's issuance signature (hex), as printed in the code")


@router.get("/01/{gtin}/10/{lot}/21/{serial}", responses=_RESPONSES, response_class=Response, summary="Resolve a serialised unit with its lot")
async def unit_with_lot(request: Request, services: ServicesDep, gtin: str, lot: str, serial: str, link_type: str | None = _LINK_TYPE, s: str | None = _SIG) -> Response:
    """A unit: GTIN (8, 12, 13 or 14 digits, valid check digit), lot (AI 10), serial (AI 21)."""
    return await resolve(request, services)


@router.get("/01/{gtin}/21/{serial}", responses=_RESPONSES, response_class=Response, summary="Resolve a serialised unit")
async def unit(request: Request, services: ServicesDep, gtin: str, serial: str, link_type: str | None = _LINK_TYPE, s: str | None = _SIG) -> Response:
    """A unit by GTIN and serial (AI 21), without its lot."""
    return await resolve(request, services)


@router.get("/00/{sscc}", responses=_RESPONSES, response_class=Response, summary="Resolve a logistic unit (case, pallet, container)")
async def logistic_unit(request: Request, services: ServicesDep, sscc: str, link_type: str | None = _LINK_TYPE) -> Response:
    """A case, pallet or container by its 18-digit SSCC (valid check digit)."""
    return await resolve(request, services)


@router.get("/01/{rest:path}", include_in_schema=False)
async def other_gtin_paths(request: Request, services: ServicesDep) -> Response:
    # Other /01/ shapes (qualifiers out of order, /22/, percent-encoded '/', missing serial):
    # parsed the same way, so that each problem is named.
    return await resolve(request, services)


@router.get("/00/{rest:path}", include_in_schema=False)
async def other_sscc_paths(request: Request, services: ServicesDep) -> Response:
    return await resolve(request, services)


# --- the scan API used by the page ------------------------------------------------------------------

_URI = Query(..., min_length=1, max_length=2048, description="A Digital Link (any resolver host), a path /01/.../21/..., or an EPC URN")
_SCAN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Passport, "description": "The passport"},
    400: {"model": ErrorBody, "description": "Malformed code"},
    404: {"model": UnknownCodeBody, "description": "Unknown code (verdict `unknown`)"},
    422: {"model": ErrorBody, "description": "Missing or oversized `uri`"},
    429: {"model": ErrorBody, "description": "Rate limit of this client exceeded"},
    503: {"model": ErrorBody, "description": "Chain or database unavailable"},
}


@router.get("/api/v1/scan", responses=_SCAN_RESPONSES, response_class=Response, tags=["scan"], summary="Scan a code")
async def scan_uri(_limit: ScanRateLimit, services: ServicesDep, context: ScanContextDep, uri: str = _URI) -> Response:
    """Resolve a code read by the page's camera or typed in, and log the scan (for clone detection).

    Send `Waymark-Device` (a random id the page keeps) and optionally `Waymark-Region`
    (ISO country code) headers; neither is stored as such.
    """
    link = parse_any(uri)
    return Response(await scan(services, link, context), media_type=JSON, headers={"Cache-Control": "no-store"})


@router.get("/api/v1/passport", responses=_SCAN_RESPONSES, response_class=Response, tags=["scan"], summary="Read a passport without scanning")
async def passport(_limit: ScanRateLimit, services: ServicesDep, uri: str = _URI) -> Response:
    """The passport of a code, without logging a scan (for linkset consumers and auditors)."""
    link = parse_any(uri)
    return Response(await scan(services, link, None), media_type=JSON, headers={"Cache-Control": "no-store"})
