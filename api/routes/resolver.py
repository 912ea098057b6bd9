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

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api.deps import ScanContextDep, ScanRateLimit, ServicesDep, rate_limit, scan_context
from api.errors import ErrorBody, NotAcceptable, UnknownCodeBody
from api.readmodel.schema import Passport
from api.routes import master_data
from api.routes.answers import LinkTypeUnavailable, core_for, error_answer, page, passport_response, scan, slim, view_of, description_of
from api.routes.digital_link import (
    AI82_PATTERN,
    ALLOW,
    CORS,
    GS1_VOC,
    GTIN_PATTERN,
    HTML,
    JSON,
    LINKSET,
    PAGE_PREFIX,
    Kind,
    ResolverDescription,
    PathParam,
    base_url,
    link_header,
    linkset,
    negotiate,
    page_url,
    parse_any_key,
    parse_path,
    passed_on_query,
    raw_target,
    redirect,
    select_link,
)
from api.services import Services
from node.errors import WaymarkError
from node.protocol.digital_link import SUPPORTED_PRIMARY_KEYS
from node.protocol.gs1 import InvalidIdentifier


router = APIRouter(tags=["resolver"])


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
            target = select_link(services, key, link_type)
            if target is None:
                raise LinkTypeUnavailable(link_type, key.canonical_uri)
            return redirect(target["href"], passed_on_query(request), headers)
        if kind is None:
            return error_answer("json", services, NotAcceptable(f"{HTML}, {JSON} or {LINKSET}"))
        if kind == "linkset":
            body = orjson.dumps(linkset(services, key, description_of(view)))
            return Response(body, media_type=LINKSET, headers={**headers, **CORS})
        if kind == "html":
            return redirect(page_url(services, key), passed_on_query(request), headers)
        if parsed is None:
            return Response(orjson.dumps(view), media_type=JSON, headers={**headers, **CORS})
        passport = await scan(services, parsed, scan_context(request, services))
    except WaymarkError as error:
        return error_answer(kind if kind != "linkset" else "json", services, error)
    return passport_response(request, services, passport, {**headers, **CORS})


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
            body = slim((await scan(services, parsed, scan_context(request, services))).json())
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



@resolver_route("/01/{gtin}", "Resolve a product (GTIN)")
async def product(request: Request, services: ServicesDep, gtin: str = PathParam(GTIN_PATTERN, "gtin"), link_type: str | None = _LINK_TYPE) -> Response:
    """A product class by GTIN-8, -12, -13 or -14: its master data and lots."""
    return await resolve(request, services)


@resolver_route("/01/{gtin}/10/{lot}", "Resolve a lot")
async def lot(request: Request, services: ServicesDep, gtin: str = PathParam(GTIN_PATTERN, "gtin"), lot: str = PathParam(AI82_PATTERN), link_type: str | None = _LINK_TYPE) -> Response:
    """One lot (AI 10) of a product: its production, inspection and recall state."""
    return await resolve(request, services)


@resolver_route("/01/{gtin}/10/{lot}/21/{serial}", "Resolve a serialised unit with its lot")
async def unit_with_lot(request: Request, services: ServicesDep, gtin: str = PathParam(GTIN_PATTERN, "gtin"), lot: str = PathParam(AI82_PATTERN), serial: str = PathParam(AI82_PATTERN), link_type: str | None = _LINK_TYPE, s: str | None = _SIG) -> Response:
    """A unit: GTIN (8, 12, 13 or 14 digits, valid check digit), lot (AI 10), serial (AI 21)."""
    return await resolve(request, services)


@resolver_route("/01/{gtin}/21/{serial}", "Resolve a serialised unit")
async def unit(request: Request, services: ServicesDep, gtin: str = PathParam(GTIN_PATTERN, "gtin"), serial: str = PathParam(AI82_PATTERN), link_type: str | None = _LINK_TYPE, s: str | None = _SIG) -> Response:
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
async def sub_location(request: Request, services: ServicesDep, gln: str = PathParam(r"^\d{13}$", "gln"), extension: str = PathParam(AI82_PATTERN), link_type: str | None = _LINK_TYPE) -> Response:
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
        "resolverRoot": base_url(services),
        "supportedPrimaryKeys": list(SUPPORTED_PRIMARY_KEYS),
        "supportedLinkType": [{"namespace": GS1_VOC, "prefix": "gs1:"}],
        "linkTypeDefaultCanBeLinkset": False,
        "supportedContextValuesEnumerated": [],
    }
    return Response(orjson.dumps(body), media_type=JSON, headers=CORS)


for _path in [*(f"/{prefix}/{{rest:path}}" for prefix in ("01", "00", "414", "417", "8004", "gtin", "sscc", "gln", "party", "giai")),
              PAGE_PREFIX + "/{rest:path}", "/.well-known/gs1resolver", "/api/v1/scan", "/api/v1/passport"]:
    router.add_api_route(_path, options, methods=["OPTIONS"], include_in_schema=False)



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
async def scan_uri(request: Request, _limit: ScanRateLimit, services: ServicesDep, context: ScanContextDep, uri: str = _URI) -> Response:
    """Resolve a code read by the page's camera or typed in, and log the scan (for clone detection).

    Send `Waymark-Device` (a random id the page keeps; stored only as a salted hash). The
    scan's country comes only from the operator's trusted proxy, never from the client.
    Product- and lot-level codes
    answer their product or lot view (not logged as scans).
    """
    link = parse_any_key(uri)
    parsed = link.as_parsed()
    headers = {"Cache-Control": "no-store", **CORS}
    if parsed is None:
        return Response(orjson.dumps(await view_of(services, link)), media_type=JSON, headers=headers)
    return passport_response(request, services, await scan(services, parsed, context), headers)


@router.get("/api/v1/passport", responses=_SCAN_RESPONSES, response_class=Response, tags=["scan"], summary="Read a passport without scanning")
async def passport(request: Request, _limit: ScanRateLimit, services: ServicesDep, uri: str = _URI) -> Response:
    """The passport of a code, without logging a scan (for linkset consumers and auditors)."""
    link = parse_any_key(uri)
    parsed = link.as_parsed()
    headers = {"Cache-Control": "no-store", **CORS}
    if parsed is None:
        return Response(orjson.dumps(await view_of(services, link)), media_type=JSON, headers=headers)
    return passport_response(request, services, await scan(services, parsed, None), headers)


router.include_router(master_data.router)
