"""The GS1-conformant Digital Link resolver and the scan API.

Digital Links of every key this network serves resolve here (GS1-Conformant Resolver 1.x):
`/01/{gtin}` (product), `/01/{gtin}/10/{lot}` (lot), `/01/{gtin}[/22/{cpv}][/10/{lot}]/21/{serial}`
(unit), `/00/{sscc}`, `/414/{gln}[/254/{ext}]`, `/417/{gln}`, `/8004/{giai}`:

* no `linkType`, a browser (or a phone camera): 307 to the code's default link (the scanner
  page, `/passport/...`), the query string passed on, with a `Link` header listing the links;
* `Accept: application/json`: the passport (a unit or container), the product or lot view;
* `?linkType=all` / `?linkType=linkset` / `Accept: application/linkset+json`: the RFC 9264
  linkset with the GS1 link types; `?linkType=<type>`: 307 to that link (query passed on), or
  404 if the code has no link of that type;
* HEAD, OPTIONS and CORS (`Access-Control-Allow-Origin: *`, `Link` and `Location` exposed);
* `/.well-known/gs1resolver`: the resolver description file.

Paths are parsed from the raw request path, so percent-encoded characters in a lot or serial
(`%2F` for `/`) are read exactly as the Digital Link standard says; the checks (check digits,
qualifier order, character set, lengths, data attributes per AI) are those of
`node.protocol.gs1`, and a problem is answered 400 naming it. A well-formed code nobody issued
is 404 with verdict `unknown`. A page view or a JSON resolution of a unit is a scan: it is
logged (without personal data) and the clone rules see it. `/api/v1/scan?uri=` does the same for
a link read by the page's camera or typed in; `/api/v1/passport?uri=` returns the passport
without logging a scan.
"""

from __future__ import annotations

from functools import lru_cache
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import anyio
import orjson
from fastapi import APIRouter, Query, Request
from fastapi import Path as FastApiPath
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from starlette.responses import Response

from api.deps import ScanContext, ScanContextDep, ScanRateLimit, ServicesDep, SignedRequest, rate_limit, scan_context
from api.errors import ApiError, BadRequest, ErrorBody, Forbidden, NotAcceptable, UnknownCode, UnknownCodeBody, error_json, field_for, status_for
from api.services import Services
from node.errors import WaymarkError
from api.readmodel.locations import LocationRecord, load_locations, store_location
from api.readmodel.passport import PassportCore, finish, issuance_flag, valid_issuance
from api.readmodel.schema import Passport
from api.readmodel.product_master import MasterDataError, MasterDataHashMismatch, ProductMaster, lot_view, product_view, store_master
from node.protocol.gs1 import (
    SUPPORTED_PRIMARY_KEYS,
    AnyKey,
    ContainerId,
    DigitalLink,
    GS1Key,
    InvalidIdentifier,
    ParsedLink,
    ProductId,
    UnitId,
    normalize_gtin,
    parse_identifier,
    parse_key,
    parse_link,
)
from api.readmodel.clone_rules import Flag

router = APIRouter(tags=["resolver"])

HTML = "text/html"
JSON = "application/json"
LINKSET = "application/linkset+json"
Kind = Literal["html", "json", "linkset"]

GS1_VOC = "https://gs1.org/voc/"
LANGUAGES = ["en", "zh", "es", "fr", "de"]
PAGE_PREFIX = "/passport"
"""Where the scanner page shows a code: the default link of every code is `/passport/<its Digital Link path>`."""
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Link, Location, Content-Type",
}
ALLOW = "GET, HEAD, OPTIONS"


class LinkTarget(BaseModel):
    href: str
    title: str
    type: str
    hreflang: list[str] | None = None


class LinksetEntry(BaseModel):
    model_config = {"extra": "allow"}
    anchor: str = Field(description="The code's canonical id on id.gs1.org")
    description: str | None = Field(None, description="The item's name, when its master data is held")
    itemDescription: str | None = Field(None, description="Same as description (the member older GS1 linksets use)")


class Linkset(BaseModel):
    """RFC 9264 linkset; link relation types are GS1 Web Vocabulary IRIs (https://gs1.org/voc/...)."""

    linkset: list[LinksetEntry]


class ResolverDescription(BaseModel):
    """The GS1 resolver description file (/.well-known/gs1resolver)."""

    name: str
    resolverRoot: str
    supportedPrimaryKeys: list[str]
    supportedLinkType: list[dict[str, str]]
    linkTypeDefaultCanBeLinkset: bool
    supportedContextValuesEnumerated: list[str] = []


# --- parsing ------------------------------------------------------------------------------------


def _parse_any_link(uri: str) -> DigitalLink:
    try:
        return parse_link(uri)
    except InvalidIdentifier:
        raise
    except ValueError as error:  # urlsplit's own complaints, e.g. "Invalid IPv6 URL" for "https://["
        raise InvalidIdentifier(uri, f"not a URL: {error}") from None


def _unit_or_container(link: DigitalLink, uri: str) -> ParsedLink:
    parsed = link.as_parsed()
    if parsed is None:
        if isinstance(link.key, ProductId):
            raise InvalidIdentifier(uri, "a unit link needs a serial (/21/<serial>)")
        ai = link.key.ai if isinstance(link.key, GS1Key) else "?"
        raise InvalidIdentifier(uri, f"({ai}) is not a unit's or container's primary key")
    return parsed


@lru_cache(maxsize=65_536)
def parse_path(raw_target: str) -> DigitalLink:
    """Parse `/01/...`, `/00/...`, `/414/...` (raw, percent-encoded, with its query) as a Digital Link."""
    return _parse_any_link("https://resolver.invalid" + raw_target)


@lru_cache(maxsize=65_536)
def parse_any_key(text: str) -> DigitalLink:
    """Parse what a camera read or a person typed: a Digital Link on any host, a path, or an EPC URN."""
    value = text.strip()
    if not value:
        raise InvalidIdentifier(text, "empty")
    if value.startswith("urn:"):
        return DigitalLink(parse_identifier(value), "", None)
    if value.isascii() and value.isdigit():  # a bare GTIN or SSCC: the same key as its Digital Link
        return DigitalLink(parse_key(value), "", None)
    if value.startswith("/"):
        value = "https://resolver.invalid" + value
    elif "://" not in value:
        # "01/0952.../21/..." is a bare path; "id.gs1.org/01/..." a link without its scheme.
        value = ("https://resolver.invalid/" if value[0].isdigit() else "https://") + value
    return _parse_any_link(value)


def parse_any(text: str) -> ParsedLink:
    """A unit or container code, as `parse_any_key` reads it (for claims and ownership)."""
    return _unit_or_container(parse_any_key(text), text)


def raw_target(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def passed_on_query(request: Request) -> str:
    """The request's query string without `linkType`, to carry on a redirect (raw, as sent)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    kept = [item for item in query.split("&") if item and item.partition("=")[0] != "linkType"]
    return "&".join(kept)


def with_query(href: str, query: str) -> str:
    if not query:
        return href
    return href + ("&" if "?" in href else "?") + query


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
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store", "Vary": "Accept", **CORS})


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


# --- links ---------------------------------------------------------------------------------------


def _base(services: Services) -> str:
    return services.settings.public_url.rstrip("/")


def page_url(services: Services, key: AnyKey) -> str:
    """The scanner page of a code: its default link."""
    return key.uri(_base(services) + PAGE_PREFIX)


def links_for(services: Services, key: AnyKey) -> dict[str, list[dict[str, Any]]]:
    """The links this resolver publishes for a code, by GS1 link type IRI."""
    base = _base(services)
    json_url = f"{base}/api/v1/passport?uri={quote(key.canonical_uri, safe='')}"
    html_page = page_url(services, key)

    def html(title: str, href: str = html_page) -> list[dict[str, Any]]:
        return [{"href": href, "title": title, "type": HTML, "hreflang": LANGUAGES}]

    if isinstance(key, (UnitId, ContainerId)):
        return {
            GS1_VOC + "defaultLink": html("Product passport and verification"),
            GS1_VOC + "pip": html("Product passport and verification"),
            GS1_VOC + "traceability": [{"href": json_url, "title": "Passport with its verified timeline (JSON)", "type": JSON}],
            GS1_VOC + "verificationService": html("Verify the history in your browser", html_page + "#verify"),
        }
    if isinstance(key, ProductId):
        links = {
            GS1_VOC + "defaultLink": html("Product information" if key.lot is None else "Lot: production, inspection, recall"),
            GS1_VOC + "pip": html("Product information" if key.lot is None else "Lot: production, inspection, recall"),
            GS1_VOC + "masterData": [{"href": f"{base}/api/v1/products/{key.gtin}/master", "title": "Product master data (JSON, hashed on chain)", "type": JSON}],
        }
        if key.lot is not None:
            links[GS1_VOC + "traceability"] = [{"href": json_url, "title": "The lot's production, inspection and recall state (JSON)", "type": JSON}]
            links[GS1_VOC + "recallStatus"] = [{"href": json_url, "title": "Recall state of the lot (JSON)", "type": JSON}]
        return links
    return {
        GS1_VOC + "defaultLink": [{"href": json_url, "title": "Location master data (JSON)", "type": JSON}],
        GS1_VOC + "locationInfo": [{"href": json_url, "title": "Location master data (JSON)", "type": JSON}],
    }


def linkset(services: Services, key: AnyKey, description: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"anchor": key.canonical_uri}
    if description:
        entry["description"] = description
        entry["itemDescription"] = description
    entry.update(links_for(services, key))
    return {"linkset": [entry]}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def link_header(services: Services, key: AnyKey) -> str:
    """RFC 8288 Link header: the linkset, and each link with its GS1 relation type."""
    linkset_url = key.uri(_base(services)) + "?linkType=linkset"
    parts = [f'<{linkset_url}>; rel="linkset"; type="{LINKSET}"']
    for rel, targets in links_for(services, key).items():
        for target in targets:
            item = f"<{target['href']}>; rel={_quoted(rel)}; type={_quoted(target['type'])}; title={_quoted(target['title'])}"
            if target.get("hreflang"):
                item += "".join(f"; hreflang={lang}" for lang in target["hreflang"])
            parts.append(item)
    return ", ".join(parts)


def _redirect(href: str, query: str, headers: dict[str, str]) -> Response:
    target, hash_mark, fragment = href.partition("#")
    location = with_query(target, query) + (hash_mark + fragment if hash_mark else "")
    return RedirectResponse(location, status_code=307, headers={**headers, **CORS})


def _select_link(services: Services, key: AnyKey, link_type: str) -> dict[str, Any] | None:
    wanted = link_type if link_type.startswith("http") else GS1_VOC + link_type.removeprefix("gs1:")
    if wanted.startswith("https://ref.gs1.org/voc/"):
        wanted = GS1_VOC + wanted.removeprefix("https://ref.gs1.org/voc/")
    targets = links_for(services, key).get(wanted)
    return targets[0] if targets else None


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
            found["link"] = key.uri(_base(services))
    elif isinstance(key, GS1Key):
        found = await anyio.to_thread.run_sync(_location, services, key)
    else:  # pragma: no cover - units and containers have passports
        found = None
    if found is None:
        raise UnknownCode(key.canonical_uri)
    return found


def _description(view: dict[str, Any] | None) -> str | None:
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
    wrong_lot = lot_flag(link, core)
    if wrong_lot is not None:
        extra.append(wrong_lot)
    key = link.identifier.canonical_uri
    if not services.scans.is_loaded(key):  # its first scan: read its window off the event loop
        await anyio.to_thread.run_sync(services.scans.preload, key)
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


async def resolve(request: Request, services: Services) -> Response:
    """Answer a Digital Link (GET or HEAD) as the GS1-Conformant Resolver standard says."""
    link_type = request.query_params.get("linkType")
    kind: Kind | None = "linkset" if link_type in ("all", "linkset") else negotiate(request.headers.get("accept"))
    try:
        link = parse_path(raw_target(request))
    except InvalidIdentifier as error:
        return error_answer(kind or "json", services, error)
    try:
        rate_limit(request, services)
    except WaymarkError as error:
        return error_answer(kind or "json", services, error)
    key = link.key
    headers = {"Link": link_header(services, key), "Vary": "Accept", "Cache-Control": "no-store"}
    parsed = link.as_parsed()
    try:
        # A code nobody issued has no links: 404 before any redirect.
        view = await view_of(services, link) if parsed is None else None
        if parsed is not None and (kind != "json" or link_type):
            await core_for(services, parsed)
        if link_type and link_type not in ("all", "linkset"):
            target = _select_link(services, key, link_type)
            if target is None:
                raise LinkTypeUnavailable(link_type, key.canonical_uri)
            return _redirect(target["href"], passed_on_query(request), headers)
        if kind is None:
            return error_answer("json", services, NotAcceptable(f"{HTML}, {JSON} or {LINKSET}"))
        if kind == "linkset":
            body = orjson.dumps(linkset(services, key, _description(view)))
            return Response(body, media_type=LINKSET, headers={**headers, **CORS})
        if kind == "html":
            return _redirect(page_url(services, key), passed_on_query(request), headers)
        if parsed is None:
            return Response(orjson.dumps(view), media_type=JSON, headers={**headers, **CORS})
        body = await scan(services, parsed, scan_context(request, services))
    except WaymarkError as error:
        return error_answer(kind if kind != "linkset" else "json", services, error)
    return Response(body, media_type=JSON, headers={**headers, **CORS})


async def show_page(request: Request, services: Services) -> Response:
    """The scanner page of a code (its default link): the passport, or the product or lot view,
    in the page for its first paint; a page view of a unit is a scan."""
    raw = raw_target(request).removeprefix(PAGE_PREFIX)
    try:
        link = parse_path(raw)
        rate_limit(request, services)
        parsed = link.as_parsed()
        if parsed is None:
            body = orjson.dumps(await view_of(services, link))
        else:
            body = slim(await scan(services, parsed, scan_context(request, services)))
    except WaymarkError as error:
        return error_answer("html", services, error)
    response = page(services, 200, passport=body)
    response.headers["Link"] = link_header(services, link.key)
    return response


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The passport, product or lot view (JSON), or the code's linkset",
        "content": {
            JSON: {"schema": {"anyOf": [{"$ref": "#/components/schemas/Passport"}, {"type": "object"}]}},
            LINKSET: {"schema": {"$ref": "#/components/schemas/Linkset"}},
        },
    },
    307: {"description": "Redirect to the default link (the scanner page) or to the link of the requested `linkType`, the query string passed on"},
    400: {"model": ErrorBody, "description": "Malformed code (check digit, qualifier order, characters, length, data attribute)", "content": {HTML: {"schema": {"type": "string"}}}},
    404: {"model": UnknownCodeBody, "description": "Well-formed code unknown to this network (verdict `unknown`), or no link of the requested `linkType`", "content": {HTML: {"schema": {"type": "string"}}}},
    406: {"model": ErrorBody, "description": "None of HTML, JSON or linkset JSON is acceptable to the client"},
    429: {"model": ErrorBody, "description": "Rate limit of this client exceeded", "content": {HTML: {"schema": {"type": "string"}}}},
    503: {"model": ErrorBody, "description": "Chain or database unavailable", "content": {HTML: {"schema": {"type": "string"}}}},
}

_LINK_TYPE = Query(None, alias="linkType", description="`all`/`linkset` for the linkset, or a GS1 link type (gs1:pip, gs1:traceability, ...) to be redirected to")
_SIG = Query(None, alias="s", json_schema_extra={"pattern": r"^(0x)?[0-9a-fA-F]{130}$"}, description="The manufacturer's issuance signature (hex), as printed in the code")
_GTIN = r"^(\d{8}|\d{12,14})$"
_AI82 = r"^[A-Za-z0-9_.-]{1,20}$"
_METHODS = ["GET", "HEAD"]


Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Response]])


def resolver_route(path: str, summary: str) -> Callable[[Endpoint], Endpoint]:
    """Register a resolver path for GET and HEAD (each with its own OpenAPI operation id)."""
    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path, endpoint, methods=["GET"], responses=_RESPONSES, response_class=Response, summary=summary)
        router.add_api_route(path, endpoint, methods=["HEAD"], responses=_RESPONSES, response_class=Response, summary=summary + " (headers only)",
                             operation_id=f"{endpoint.__name__}_head")
        return endpoint

    return register


def PathParam(pattern: str, key_format: str | None = None) -> Any:  # noqa: N802 - reads like FastAPI's Path
    """A path parameter documented with the pattern (and GS1 key format: valid check digit) the
    resolver's parser enforces; the parser itself answers a violation (400 naming the problem)."""
    extra: dict[str, Any] = {"pattern": pattern}
    if key_format is not None:
        extra["format"] = key_format
    return FastApiPath(json_schema_extra=extra)


class Conflict(ApiError):
    code = "conflict"
    status = 409

    def __init__(self, problem: str, code: str | None = None) -> None:
        if code:
            self.code = code
        super().__init__(problem)


@resolver_route("/01/{gtin}", "Resolve a product (GTIN)")
async def product(request: Request, services: ServicesDep, gtin: str = PathParam(_GTIN, "gtin"), link_type: str | None = _LINK_TYPE) -> Response:
    """A product class by GTIN-8, -12, -13 or -14: its master data and lots."""
    return await resolve(request, services)


@resolver_route("/01/{gtin}/10/{lot}", "Resolve a lot")
async def lot(request: Request, services: ServicesDep, gtin: str = PathParam(_GTIN, "gtin"), lot: str = PathParam(_AI82), link_type: str | None = _LINK_TYPE) -> Response:
    """One lot (AI 10) of a product: its production, inspection and recall state."""
    return await resolve(request, services)


@resolver_route("/01/{gtin}/10/{lot}/21/{serial}", "Resolve a serialised unit with its lot")
async def unit_with_lot(request: Request, services: ServicesDep, gtin: str = PathParam(_GTIN, "gtin"), lot: str = PathParam(_AI82), serial: str = PathParam(_AI82), link_type: str | None = _LINK_TYPE, s: str | None = _SIG) -> Response:
    """A unit: GTIN (8, 12, 13 or 14 digits, valid check digit), lot (AI 10), serial (AI 21)."""
    return await resolve(request, services)


@resolver_route("/01/{gtin}/21/{serial}", "Resolve a serialised unit")
async def unit(request: Request, services: ServicesDep, gtin: str = PathParam(_GTIN, "gtin"), serial: str = PathParam(_AI82), link_type: str | None = _LINK_TYPE, s: str | None = _SIG) -> Response:
    """A unit by GTIN and serial (AI 21), without its lot."""
    return await resolve(request, services)


@resolver_route("/00/{sscc}", "Resolve a logistic unit (case, pallet, container)")
async def logistic_unit(request: Request, services: ServicesDep, sscc: str = PathParam(r"^\d{18}$", "sscc"), link_type: str | None = _LINK_TYPE) -> Response:
    """A case, pallet or container by its 18-digit SSCC (valid check digit)."""
    return await resolve(request, services)


@resolver_route("/414/{gln}", "Resolve a location (GLN)")
async def location(request: Request, services: ServicesDep, gln: str = PathParam(r"^\d{13}$", "gln"), link_type: str | None = _LINK_TYPE) -> Response:
    """A physical location by GLN (AI 414): its master data, when a member registered it."""
    return await resolve(request, services)


@resolver_route("/414/{gln}/254/{extension}", "Resolve a sub-location (GLN + extension)")
async def sub_location(request: Request, services: ServicesDep, gln: str = PathParam(r"^\d{13}$", "gln"), extension: str = PathParam(_AI82), link_type: str | None = _LINK_TYPE) -> Response:
    """A location by GLN and GLN extension (AI 254)."""
    return await resolve(request, services)


async def other_paths(request: Request, services: ServicesDep) -> Response:
    # Other Digital Link shapes (417, 8004, qualifiers out of order, /22/, percent-encoded '/',
    # short names): parsed the same way, so that each problem is named.
    return await resolve(request, services)


for _prefix in ("01", "00", "414", "417", "8004", "gtin", "sscc", "gln", "party", "giai"):
    router.add_api_route(f"/{_prefix}/{{rest:path}}", other_paths, methods=_METHODS, include_in_schema=False)


@router.get(PAGE_PREFIX + "/{rest:path}", include_in_schema=False)
async def passport_page(request: Request, services: ServicesDep, rest: str) -> Response:
    return await show_page(request, services)


async def options() -> Response:
    """CORS preflight and OPTIONS for every resolver and scan path."""
    return Response(status_code=204, headers={
        **CORS,
        "Allow": ALLOW,
        "Access-Control-Allow-Methods": ALLOW,
        "Access-Control-Allow-Headers": "Accept, Accept-Language, Waymark-Device",
        "Access-Control-Max-Age": "86400",
    })


@router.get("/.well-known/gs1resolver", response_model=ResolverDescription, summary="GS1 resolver description file")
async def resolver_description(services: ServicesDep) -> Response:
    """What this resolver resolves, as the GS1-Conformant Resolver standard describes it."""
    body = {
        "name": "Waymark resolver",
        "resolverRoot": _base(services),
        "supportedPrimaryKeys": list(SUPPORTED_PRIMARY_KEYS),
        "supportedLinkType": [{"namespace": GS1_VOC, "prefix": "gs1:"}],
        "linkTypeDefaultCanBeLinkset": False,
        "supportedContextValuesEnumerated": [],
    }
    return Response(orjson.dumps(body), media_type=JSON, headers=CORS)


for _path in [*(f"/{prefix}/{{rest:path}}" for prefix in ("01", "00", "414", "417", "8004", "gtin", "sscc", "gln", "party", "giai")),
              PAGE_PREFIX + "/{rest:path}", "/.well-known/gs1resolver", "/api/v1/scan", "/api/v1/passport"]:
    router.add_api_route(_path, options, methods=["OPTIONS"], include_in_schema=False)


# --- master data --------------------------------------------------------------------------------------


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its $defs inlined (an OpenAPI operation cannot use local $defs)."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


@router.put(
    "/api/v1/products/{gtin}/master",
    tags=["products"],
    summary="Store a product's master data",
    responses={400: {"model": ErrorBody}, 409: {"model": ErrorBody, "description": "The content does not hash to the metadata hash registered on chain"}},
    openapi_extra={"requestBody": {"required": True, "content": {JSON: {"schema": _inline_schema(ProductMaster)}}}},
)
async def put_master(request: Request, services: ServicesDep, gtin: str = PathParam(_GTIN, "gtin")) -> dict[str, str]:
    """Store the master data (name, description, images, brand, countryOfOrigin, materials,
    certifications; a JSON object, at most 64 KiB) of a registered product. The body's bytes
    must hash (keccak256) to the metadata hash its manufacturer registered on chain with
    `registerProduct`: that hash is the authorisation, so no signature is needed."""
    content = await request.body()
    normalized = normalize_gtin(gtin)
    registered = await anyio.to_thread.run_sync(services.chain.product_hash, normalized)
    try:
        await anyio.to_thread.run_sync(store_master, services.db, normalized, content, registered)
    except MasterDataError as error:
        raise BadRequest(str(error), error.field or "body", error.code) from None
    except MasterDataHashMismatch as error:
        raise Conflict(str(error), error.code) from None
    services.passports.clear()
    return {"gtin": normalized, "metadataHash": "0x" + (registered or b"").hex()}


@router.get("/api/v1/products/{gtin}/master", tags=["products"], summary="A product's master data", responses={400: {"model": ErrorBody, "description": "Malformed GTIN"}, 404: {"model": ErrorBody}})
async def get_master(services: ServicesDep, gtin: str = PathParam(_GTIN, "gtin")) -> Response:
    """The master data bytes exactly as stored (their keccak256 is the product's metadata hash on chain)."""
    from node.db.models import ProductMaster

    from sqlalchemy import select

    normalized = normalize_gtin(gtin)

    def load() -> bytes | None:
        with services.db.connect() as conn:
            row = conn.execute(select(ProductMaster.content).where(ProductMaster.gtin == normalized)).scalar()
        return bytes(row) if row is not None else None

    content = await anyio.to_thread.run_sync(load)
    if content is None:
        raise UnknownCode(f"https://id.gs1.org/01/{normalized}")
    return Response(content, media_type=JSON, headers=CORS)


@router.put("/api/v1/locations", tags=["locations"], summary="Register a location's master data", responses={400: {"model": ErrorBody, "description": "Malformed location record"}, 401: {"model": ErrorBody}, 403: {"model": ErrorBody}})
async def put_location(record: LocationRecord, signed: SignedRequest, services: ServicesDep) -> dict[str, Any]:
    """Store a readPoint/bizLocation's master data (name, country; optional unlocode, address).
    Signed request (headers Waymark-Account, Waymark-Timestamp, Waymark-Signature; see api.auth)
    by an account of an active member organisation; the organisation is recorded."""
    org_id = await anyio.to_thread.run_sync(services.chain.current_org, signed.account)
    if not org_id:
        raise Forbidden(f"{signed.account} belongs to no member organisation")
    await anyio.to_thread.run_sync(store_location, services.db, record, org_id)
    services.passports.clear()
    return {"id": record.id, "orgId": org_id}


# --- the scan API used by the page ------------------------------------------------------------------

SCAN_URI_PATTERN = (
    r"^(?:urn:epc:id:(?:sgtin:\d{6,12}\.\d{1,7}\.[A-Za-z0-9_.-]{1,20}|sscc:\d{6,12}\.\d{5,11})"
    r"|(?:https?://[a-z0-9.-]{1,60}(?::\d{1,5})?/|/)?"
    r"(?:01/(?:\d{8}|\d{12,14})(?:/22/[A-Za-z0-9_.-]{1,20})?(?:/10/[A-Za-z0-9_.-]{1,20})?(?:/21/[A-Za-z0-9_.-]{1,20})?"
    r"|00/\d{18}|414/\d{13}(?:/254/[A-Za-z0-9_.-]{1,20})?))$"
)
"""What `uri` may look like: an EPC URN, or a Digital Link (optionally with its host) of a
product, lot, unit, SSCC or location. Check digits are checked too (format `gs1-key`).
Documented, not enforced by the framework: the parser reads more (path prefixes, short names,
data attributes, 417 and 8004 keys) and answers the rest with 400 naming what is wrong."""

_URI = Query(
    ..., min_length=1, max_length=2048, json_schema_extra={"pattern": SCAN_URI_PATTERN, "format": "gs1-key"},
    description="A Digital Link (any resolver host, any path prefix, with GS1 data attributes), a path /01/.../21/..., or an EPC URN. "
    "The pattern is the common form; format gs1-key: valid GS1 check digits. The parser answers any other input with 400 naming the problem.",
)
_SCAN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Passport, "description": "The passport (a unit or container), or the product, lot or location view",
          "content": {JSON: {"schema": {"anyOf": [{"$ref": "#/components/schemas/Passport"}, {"type": "object"}]}}}},
    400: {"model": ErrorBody, "description": "Malformed code"},
    404: {"model": UnknownCodeBody, "description": "Unknown code (verdict `unknown`)"},
    422: {"model": ErrorBody, "description": "Missing, oversized or malformed `uri`"},
    429: {"model": ErrorBody, "description": "Rate limit of this client exceeded"},
    503: {"model": ErrorBody, "description": "Chain or database unavailable"},
}


@router.get("/api/v1/scan", responses=_SCAN_RESPONSES, response_class=Response, tags=["scan"], summary="Scan a code")
async def scan_uri(_limit: ScanRateLimit, services: ServicesDep, context: ScanContextDep, uri: str = _URI) -> Response:
    """Resolve a code read by the page's camera or typed in, and log the scan (for clone detection).

    Send `Waymark-Device` (a random id the page keeps; stored only as a salted hash). The
    scan's country comes only from the operator's trusted proxy, never from the client.
    Product- and lot-level codes
    answer their product or lot view (not logged as scans).
    """
    link = parse_any_key(uri)
    parsed = link.as_parsed()
    body = orjson.dumps(await view_of(services, link)) if parsed is None else await scan(services, parsed, context)
    return Response(body, media_type=JSON, headers={"Cache-Control": "no-store", **CORS})


@router.get("/api/v1/passport", responses=_SCAN_RESPONSES, response_class=Response, tags=["scan"], summary="Read a passport without scanning")
async def passport(_limit: ScanRateLimit, services: ServicesDep, uri: str = _URI) -> Response:
    """The passport of a code, without logging a scan (for linkset consumers and auditors)."""
    link = parse_any_key(uri)
    parsed = link.as_parsed()
    body = orjson.dumps(await view_of(services, link)) if parsed is None else await scan(services, parsed, None)
    return Response(body, media_type=JSON, headers={"Cache-Control": "no-store", **CORS})
