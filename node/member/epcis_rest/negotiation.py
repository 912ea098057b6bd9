"""What every EPCIS exchange shares: the GS1-* headers, version and representation
negotiation (406), and THE way a route reads its JSON body."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from node import strict_json
from node.member.epcis_rest.problems import EpcisProblem, json_problem

EPCIS_VERSION = "2.0.0"
CBV_VERSION = "2.0.0"
VENDOR_VERSION = "waymark-1"


def standard_headers(capture_limit: int, size_limit: int) -> dict[str, str]:
    return {
        "GS1-EPCIS-Version": EPCIS_VERSION,
        "GS1-CBV-Version": CBV_VERSION,
        "GS1-EPCIS-Min": EPCIS_VERSION,
        "GS1-EPCIS-Max": EPCIS_VERSION,
        "GS1-CBV-Min": CBV_VERSION,
        "GS1-CBV-Max": CBV_VERSION,
        "GS1-Vendor-Version": VENDOR_VERSION,
        "GS1-EPCIS-Capture-Limit": str(capture_limit),
        "GS1-EPCIS-Capture-File-Size-Limit": str(size_limit),
        "GS1-Capture-Error-Behaviour": "rollback, proceed",
    }


def _version(text: str) -> tuple[int, ...] | None:
    return tuple(int(p) for p in text.split(".")) if re.fullmatch(r"\d{1,6}(\.\d{1,6})*", text) else None


def negotiate(request: Request) -> None:
    """406 when the client asks for versions or a representation this node does not speak."""
    ours = {"EPCIS": _version(EPCIS_VERSION), "CBV": _version(CBV_VERSION)}
    for family, mine in ours.items():
        assert mine is not None
        for bound in ("Min", "Max", "Version"):
            value = request.headers.get(f"GS1-{family}-{bound}")
            if value is None:
                continue
            wanted = _version(value.strip())
            if wanted is None:
                continue  # not a version number: nothing to negotiate on
            padded = wanted + (0,) * (len(mine) - len(wanted))
            if (bound == "Min" and padded > mine) or (bound == "Max" and padded < mine) or (bound == "Version" and padded[:2] != mine[:2]):
                raise EpcisProblem(406, "NotAcceptableException", "Not acceptable", f"this node speaks {family} {EPCIS_VERSION if family == 'EPCIS' else CBV_VERSION}")
    accept = request.headers.get("accept")
    if accept:
        kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
        if not any(k in ("*/*", "application/*", "application/json", "application/ld+json", "application/problem+json") for k in kinds):
            raise EpcisProblem(406, "NotAcceptableException", "Not acceptable", "this node answers application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """THE way an EPCIS route reads its request body: node.strict_json's reader (JSON media types
    only, Content-Encoding undone, bounded by `limit` bytes as sent and as decoded), its refusals
    given as EPCIS problems. Callers parse it with `parse_json`. EPCIS bodies must say what they
    are: a missing Content-Type is refused (415) too."""
    if not (request.headers.get("content-type") or "").strip():
        raise EpcisProblem(415, "UnsupportedMediaTypeException", "Unsupported Media Type", "send application/json or application/ld+json")
    try:
        return await strict_json.read_body(request, strict_json.JsonLimits(max_bytes=limit))
    except strict_json.JsonInputError as exc:
        raise json_problem(exc) from None


def parse_json(body: bytes) -> Any:
    """The request body as JSON, strictly (node.strict_json: duplicate keys, depth, numbers);
    400 ValidationException naming the problem when it is refused."""
    try:
        return strict_json.loads(body, strict_json.JsonLimits(max_bytes=max(len(body), 1)))
    except strict_json.JsonInputError as exc:
        raise json_problem(exc) from None
