"""One strict JSON reader for every HTTP edge of the node and the oracle.

`read_json(request, limits)` reads a request body and decodes it; `loads(raw, limits)` decodes
bytes already read. Either raises `JsonInputError` (status, stable `code`, a message naming
the problem or the limit, and the field where one applies), never anything else for any
input:

| problem | status | code |
|---|---|---|
| Content-Type that is not JSON (`application/json`, `application/ld+json`, `*/*+json`), or a charset other than UTF-8 | 415 | unsupported_media_type |
| Content-Encoding other than identity / gzip | 415 | unsupported_encoding |
| body (or gzip-decoded body) over `max_bytes` | 413 | too_large |
| nesting deeper than `max_depth` | 422 | too_deep |
| not UTF-8, a byte order mark, not JSON | 422 | malformed |
| the same key twice in one object | 422 | duplicate_key |
| NaN / Infinity, a number out of the range of a double, an integer of more than `max_int_digits` digits | 422 | bad_number |
| a string with an unpaired UTF-16 surrogate escape (`"\\ud800"`) | 422 | malformed |

A request without a Content-Type is read as JSON (older clients send none). Nothing here is
lenient by accident: RFC 8259 text, UTF-8, one value.

`ErrorBarrier` is an ASGI middleware that turns an unexpected exception into a JSON 500
answer instead of a dropped connection, so a client's next request on the same keep-alive
connection still works.
"""

from __future__ import annotations

import ctypes
import json
import logging
import re
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)

JSON_MEDIA_TYPES = ("application/json", "application/ld+json")


@dataclass(frozen=True)
class JsonLimits:
    """The limits of one edge. `max_bytes` applies to the body as sent and as decoded."""

    max_bytes: int = 32 * 1024 * 1024
    max_depth: int = 64
    max_int_digits: int = 100


class JsonInputError(ValueError):
    """A request body refused; `status` is the HTTP answer, `field` the path where one applies."""

    def __init__(self, status: int, code: str, message: str, field: str = "(body)") -> None:
        self.status, self.code, self.message, self.field = status, code, message, field
        super().__init__(message)

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "field": self.field}


def _too_large(limits: JsonLimits, what: str) -> JsonInputError:
    return JsonInputError(413, "too_large", f"{what} exceeds the limit of {limits.max_bytes} bytes")


def check_content_type(content_type: str | None) -> None:
    """Refuse a declared media type that is not JSON, or a charset that is not UTF-8 (415)."""
    if content_type is None or not content_type.strip():
        return
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media not in JSON_MEDIA_TYPES and not (media.startswith("application/") and media.endswith("+json")):
        raise JsonInputError(
            415, "unsupported_media_type",
            f"Content-Type {media!r} is not JSON; send application/json or application/ld+json", "Content-Type",
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise JsonInputError(415, "unsupported_media_type", f"charset {value.strip()!r}: JSON is read as UTF-8 only", "Content-Type")


def decode_content(raw: bytes, content_encoding: str | None, limits: JsonLimits) -> bytes:
    """The body with its Content-Encoding undone: identity or gzip (decoded up to `max_bytes`)."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return raw
    if codings not in (["gzip"], ["x-gzip"]):
        raise JsonInputError(
            415, "unsupported_encoding", f"Content-Encoding {content_encoding!r} is not supported; send identity or gzip", "Content-Encoding"
        )
    decoder = zlib.decompressobj(wbits=31)
    try:
        out = decoder.decompress(raw, limits.max_bytes + 1)
        if len(out) > limits.max_bytes or decoder.unconsumed_tail:
            raise _too_large(limits, "the gzip-decoded body")
        out += decoder.flush()
    except zlib.error as exc:
        raise JsonInputError(422, "malformed", f"the body is labelled gzip but is not valid gzip: {exc}", "Content-Encoding") from None
    if len(out) > limits.max_bytes:
        raise _too_large(limits, "the gzip-decoded body")
    if not decoder.eof:
        raise JsonInputError(422, "malformed", "the gzip body is truncated", "Content-Encoding")
    if decoder.unused_data:
        raise JsonInputError(422, "malformed", "bytes after the end of the gzip body", "Content-Encoding")
    return out


_KEEP = bytes(range(256)).translate(None, b'[]{}"')  # every byte but brackets and quotes
_STRING = re.compile(rb'"[^"]*"')
_INNERMOST = re.compile(rb"\[\]|\{\}")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _check_depth(raw: bytes, limit: int) -> None:
    """Refuse nesting deeper than `limit` before any recursive parser sees it (C-speed passes:
    escapes out, strings out, then innermost bracket pairs peeled off once per level)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw
    # an empty pair of quotes is a string without brackets (or two strings with none between
    # them): taken out at C speed first, since most strings hold no bracket
    brackets = _STRING.sub(b"", unescaped.translate(None, _KEEP).replace(b'""', b""))
    for _ in range(limit):
        brackets, removed = _INNERMOST.subn(b"", brackets)
        if not brackets or not removed:
            return  # balanced within the limit (or unbalanced: the parser says where)
    if brackets:
        raise JsonInputError(422, "too_deep", f"JSON nested deeper than the limit of {limit} levels")


class _Refusal(ValueError):
    def __init__(self, error: JsonInputError) -> None:
        self.error = error
        super().__init__(error.message)


def _objects_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _Refusal(JsonInputError(422, "duplicate_key", f"the key {key!r} appears twice in one object", key))
            seen.add(key)
    return result


def _refuse_constant(name: str) -> Any:
    raise _Refusal(JsonInputError(422, "bad_number", f"{name} is not a JSON number"))


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refusal(JsonInputError(422, "bad_number", f"the number {text[:40]} is out of the range of a double (about ±1.8e308)"))
    return value


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _int_parser(max_digits: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if len(text.lstrip("-")) > max_digits:
            raise _Refusal(JsonInputError(422, "bad_number", f"an integer of {len(text.lstrip('-'))} digits; at most {max_digits}"))
        value = int(text)
        if not _INT_MIN <= value <= _INT_MAX:
            # Beyond 64 bits a number cannot be stored and written back exactly (nor read alike
            # by every JSON implementation): refused, not silently rounded.
            raise _Refusal(JsonInputError(422, "bad_number", f"the integer {text[:40]} is outside -2^63 .. 2^64-1"))
        return value

    return parse


def _unpaired_surrogate(value: Any, path: str) -> str | None:
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    return where
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


def loads(raw: bytes | str, limits: JsonLimits = JsonLimits()) -> Any:
    """Decode one JSON value strictly (see the module docstring). Raises JsonInputError only."""
    if len(raw) > limits.max_bytes:
        raise _too_large(limits, f"a body of {len(raw)} bytes")
    if isinstance(raw, bytes):
        if raw.startswith(b"\xef\xbb\xbf"):
            raise JsonInputError(422, "malformed", "the body starts with a byte order mark; JSON text must not (RFC 8259 section 8.1)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError(422, "malformed", f"not UTF-8: byte {exc.start} ({raw[exc.start:exc.start + 1]!r}) is invalid") from None
    else:
        text = raw
    if not text.strip():
        raise JsonInputError(422, "malformed", "empty body: expected a JSON value")
    _check_depth(raw if isinstance(raw, bytes) else text.encode(), limits.max_depth)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_objects_without_duplicates,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_int_parser(limits.max_int_digits),
        )
    except _Refusal as refusal:
        raise refusal.error from None
    except json.JSONDecodeError as exc:
        raise JsonInputError(422, "malformed", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise JsonInputError(422, "too_deep", f"JSON nested deeper than the limit of {limits.max_depth} levels") from None
    except ValueError as exc:  # anything else the decoder refuses
        raise JsonInputError(422, "malformed", f"not JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        where = _unpaired_surrogate(value, "")
        if where is not None:
            raise JsonInputError(422, "malformed", "a string with an unpaired UTF-16 surrogate (\\uD800-\\uDFFF)", where or "(body)")
    return value


class _Request(Protocol):
    @property
    def headers(self) -> Any: ...

    def stream(self) -> Any: ...


async def read_body(request: _Request, limits: JsonLimits = JsonLimits()) -> bytes:
    """The body's bytes with the Content-Type checked and the Content-Encoding undone."""
    check_content_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limits.max_bytes:
        raise _too_large(limits, f"a body of {int(declared)} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_large(limits, "the body")
        chunks.append(chunk)
    raw = b"".join(chunks)
    del chunks
    return decode_content(raw, request.headers.get("content-encoding"), limits)


async def read_json(request: _Request, limits: JsonLimits = JsonLimits()) -> Any:
    """Read and strictly decode a JSON request body (raises JsonInputError)."""
    return loads(await read_body(request, limits), limits)


LARGE_BODY = 4 * 1024 * 1024  # bytes: after a body this large, free heap pages go back to the system


def release_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc `malloc_trim`): after a large body
    Python has freed its buffers, but glibc keeps the pages, so a process that once read 30 MB
    would keep them for good. A no-op where there is no glibc."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)


_trim: Any = None


def error_body(exc: JsonInputError) -> bytes:
    return orjson.dumps(exc.as_json())


# ---- the error barrier -----------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ErrorBarrier:
    """ASGI middleware: an exception the app did not answer becomes a JSON 500 (logged), and the
    connection stays open for the client's next request (uvicorn closes it when an exception
    escapes the app)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the barrier answers instead of dropping the connection
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = orjson.dumps({"code": "internal_error", "message": f"unexpected {type(exc).__name__}; see the service's log"})
            await send({
                "type": "http.response.start", "status": 500,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            })
            await send({"type": "http.response.body", "body": body})
