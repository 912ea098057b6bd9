"""The only place where Waymark errors become HTTP statuses.

Every error answer is JSON `{code, message, field?}` (plus `verdict` for an unknown code):
`code` is stable for programs, `message` is for people, `field` names the offending part of
the request where there is one. Nothing else leaks: an unexpected exception is logged with a
reference and answered 500 with that reference only, never a stack trace.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from node.chain.errors import ChainError, DeploymentMissing, RpcUnreachable, WrongChainId
from node.db.engine import DatabaseError
from node.errors import WaymarkError
from node.protocol.attestation import SignatureError
from node.protocol.gs1 import InvalidIdentifier
from api.readmodel.claim_codes import AlreadyClaimed, AlreadyDecommissioned, ClaimRejected, InvalidClaimCode

log = logging.getLogger("waymark.api")


class ErrorBody(BaseModel):
    """An error answer."""

    code: str = Field(description="Stable machine-readable error code", examples=["invalid_identifier"])
    message: str = Field(description="What went wrong, for people")
    field: str | None = Field(None, description="The part of the request at fault, when one is")


class UnknownCodeBody(ErrorBody):
    """A well-formed code this network knows nothing about."""

    verdict: str = Field("unknown", description="Always `unknown`", examples=["unknown"])
    recordsMayBeArriving: bool | None = Field(
        None, description="True when the code's product is registered: a unit made recently may have records still on their way (scan again later)"
    )


class ApiError(WaymarkError):
    """Errors raised by the API layer itself (authentication, limits)."""

    code = "api_error"
    status = 400
    field: str | None = None


class RateLimited(ApiError):
    code = "rate_limited"
    status = 429

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"too many requests from this client; retry in {self.retry_after} s")


class Unauthenticated(ApiError):
    code = "unauthenticated"
    status = 401

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"the request is not signed correctly: {problem}")


class Forbidden(ApiError):
    code = "forbidden"
    status = 403

    def __init__(self, problem: str) -> None:
        super().__init__(problem)


class UnknownCode(ApiError):
    code = "unknown_code"
    status = 404

    def __init__(self, uri: str, manufacturer: str | None = None) -> None:
        self.uri = uri
        self.manufacturer = manufacturer
        if manufacturer is None:
            super().__init__(f"{uri} is a well-formed code, but no product of this network carries it")
        else:
            # Its product is registered: records of a unit made recently may still be on their
            # way (an oracle queues while its node is down), so "unknown" is not the whole story.
            super().__init__(
                f"{uri}: no record of this unit on this network yet. Its product is registered by {manufacturer}; if the unit "
                "was made recently, members may still be delivering its records: scan again later. Otherwise it was not issued."
            )


class BadRequest(ApiError):
    code = "bad_request"
    status = 400

    def __init__(self, problem: str, field: str | None = None, code: str | None = None) -> None:
        self.field = field
        if code:
            self.code = code
        super().__init__(problem)


class NotAcceptable(ApiError):
    code = "not_acceptable"
    status = 406
    field = "accept"

    def __init__(self, offered: str) -> None:
        super().__init__(f"this resolver answers {offered}")


class ServiceUnavailable(ApiError):
    code = "unavailable"
    status = 503

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not available right now; try again shortly")


# Status per error class, first match wins (subclasses before their parents).
STATUS: list[tuple[type[BaseException], int]] = [
    (InvalidIdentifier, 400),
    (InvalidClaimCode, 400),
    (AlreadyClaimed, 409),
    (AlreadyDecommissioned, 409),
    (ClaimRejected, 422),
    (SignatureError, 401),
    (RpcUnreachable, 503),
    (WrongChainId, 503),
    (DeploymentMissing, 503),
    (DatabaseError, 503),
    (ChainError, 502),
]


def status_for(error: WaymarkError) -> int:
    if isinstance(error, ApiError):
        return error.status
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 400


def field_for(error: WaymarkError) -> str | None:
    explicit = getattr(error, "field", None)
    if isinstance(explicit, str):
        return explicit
    if isinstance(error, InvalidIdentifier):
        return identifier_field(error.problem)
    return None


def identifier_field(problem: str) -> str:
    """Which part of a Digital Link a GS1 parsing problem is about."""
    lowered = problem.lower()
    for word, name in (("gtin", "gtin"), ("sscc", "sscc"), ("serial", "serial"), ("lot", "lot"), ("signature", "s")):
        if word in lowered:
            return name
    return "path"


def error_json(code: str, message: str, field: str | None = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return orjson.dumps(body)


def error_response(status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return Response(error_json(code, message, field, **extra), status_code=status, media_type="application/json", headers=headers)


def waymark_error_response(error: WaymarkError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else None
    extra = {"verdict": "unknown"} if isinstance(error, UnknownCode) else {}
    return error_response(status_for(error), error.code, str(error), field_for(error), headers, **extra)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 406: "not_acceptable", 413: "too_large", 415: "unsupported_media_type"}


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a structured JSON answer."""

    @app.exception_handler(WaymarkError)
    async def on_waymark_error(_request: Request, error: WaymarkError) -> Response:
        status = status_for(error)
        if status >= 500:
            log.warning("%s: %s", type(error).__name__, error)
        return waymark_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, error: RequestValidationError) -> Response:
        problems = error.errors()
        first = problems[0] if problems else {}
        location = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        message = str(first.get("msg", "invalid request"))
        if location:
            message = f"{'.'.join(location)}: {message}"
        return error_response(422, "invalid_request", message, ".".join(location) or None)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, error: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
        message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
        return error_response(error.status_code, code, message, headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, error: Exception) -> Response:
        reference = secrets.token_hex(6)
        log.error("unexpected error (reference %s)", reference, exc_info=error)
        return error_response(500, "internal_error", f"internal error; reference {reference}")
