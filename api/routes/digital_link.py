"""Digital Links as this resolver reads and publishes them: parsing a request's raw path or a
code a camera read, content negotiation, and the GS1 links (linkset, Link header) of a code.

Paths are parsed from the raw request path, so percent-encoded characters in a lot or serial
(`%2F` for `/`) are read exactly as the Digital Link standard says; the checks are those of
`node.protocol.gs1`."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote

from fastapi import Path as FastApiPath
from fastapi import Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from starlette.responses import Response

from api.services import Services
from node.protocol.gs1 import AnyKey, ContainerId, InvalidIdentifier, ProductId, UnitId
from node.protocol.digital_link import DigitalLink, ParsedLink, parse_identifier, parse_key, parse_link, unit_or_container


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


@lru_cache(maxsize=4_096)  # hot codes; small, so that a day of new codes does not grow memory
def parse_path(raw_target: str) -> DigitalLink:
    """Parse `/01/...`, `/00/...`, `/414/...` (raw, percent-encoded, with its query) as a Digital Link."""
    return _parse_any_link("https://resolver.invalid" + raw_target)


@lru_cache(maxsize=4_096)  # hot codes; small, so that a day of new codes does not grow memory
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
    return unit_or_container(parse_any_key(text), text)


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



# --- links ---------------------------------------------------------------------------------------


def base_url(services: Services) -> str:
    return services.settings.public_url.rstrip("/")


def page_url(services: Services, key: AnyKey) -> str:
    """The scanner page of a code: its default link."""
    return key.uri(base_url(services) + PAGE_PREFIX)


def links_for(services: Services, key: AnyKey) -> dict[str, list[dict[str, Any]]]:
    """The links this resolver publishes for a code, by GS1 link type IRI."""
    base = base_url(services)
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
    linkset_url = key.uri(base_url(services)) + "?linkType=linkset"
    parts = [f'<{linkset_url}>; rel="linkset"; type="{LINKSET}"']
    for rel, targets in links_for(services, key).items():
        for target in targets:
            item = f"<{target['href']}>; rel={_quoted(rel)}; type={_quoted(target['type'])}; title={_quoted(target['title'])}"
            if target.get("hreflang"):
                item += "".join(f"; hreflang={lang}" for lang in target["hreflang"])
            parts.append(item)
    return ", ".join(parts)


def redirect(href: str, query: str, headers: dict[str, str]) -> Response:
    target, hash_mark, fragment = href.partition("#")
    location = with_query(target, query) + (hash_mark + fragment if hash_mark else "")
    return RedirectResponse(location, status_code=307, headers={**headers, **CORS})


def select_link(services: Services, key: AnyKey, link_type: str) -> dict[str, Any] | None:
    wanted = link_type if link_type.startswith("http") else GS1_VOC + link_type.removeprefix("gs1:")
    if wanted.startswith("https://ref.gs1.org/voc/"):
        wanted = GS1_VOC + wanted.removeprefix("https://ref.gs1.org/voc/")
    targets = links_for(services, key).get(wanted)
    return targets[0] if targets else None



GTIN_PATTERN = r"^(\d{8}|\d{12,14})$"
AI82_PATTERN = r"^[A-Za-z0-9_.-]{1,20}$"


def PathParam(pattern: str, key_format: str | None = None) -> Any:  # noqa: N802 - reads like FastAPI's Path
    """A path parameter documented with the pattern (and GS1 key format: valid check digit) the
    resolver's parser enforces; the parser itself answers a violation (400 naming the problem)."""
    extra: dict[str, Any] = {"pattern": pattern}
    if key_format is not None:
        extra["format"] = key_format
    return FastApiPath(json_schema_extra=extra)
