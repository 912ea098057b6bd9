"""Answers compressed for the clients that accept it (RFC 9110, 8.4.1 and 12.5.3).

A passport is about 50 KB of JSON, about 7 KB compressed: what a buyer's phone downloads at
each scan. Zstandard where the client accepts it (browsers since 2024: Chrome 123, Firefox 126),
else gzip (every browser), else the body as it is. Only whole bodies (not streamed ones, such as
static files) of at least MIN_SIZE bytes, of a textual type and not encoded already. Every
answer of a textual type says `Vary: Accept-Encoding`, so that a cache keeps the encodings apart.
"""

from __future__ import annotations

import threading
import zlib
from typing import Any

import zstandard

MIN_SIZE = 1024
# Level 1 of both: a passport is compressed at every scan (about 0.1 ms at level 1), and the
# higher levels save a few hundred bytes more of 9 KB.
ZSTD_LEVEL = 1
GZIP_LEVEL = 1
CODINGS = ("zstd", "gzip")  # in order of preference at equal weight (zstd is faster at both ends)
_ALIASES = {"x-gzip": "gzip"}  # RFC 9110, 8.4.1.3
_TEXTUAL = (b"application/json", b"application/linkset+json", b"application/ld+json", b"application/problem+json", b"text/")


def chosen_coding(accept_encoding: str | None) -> str | None:
    """The content coding to answer with: of zstd and gzip, the one the header accepts with the
    higher weight (q > 0; `*` stands for the codings it does not name); None: the body as it is."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        coding = name.strip().lower()
        if not coding:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0  # a weight that is not a number accepts nothing
                if not 0.0 <= weight <= 1.0:
                    weight = 0.0
        coding = _ALIASES.get(coding, coding)
        weights[coding] = max(weight, weights.get(coding, 0.0))
    best, best_weight = None, 0.0
    for coding in CODINGS:
        weight = weights.get(coding, weights.get("*", 0.0))
        if weight > best_weight:
            best, best_weight = coding, weight
    return best


_compressors = threading.local()


def zstd(data: bytes) -> bytes:
    """`data` as one Zstandard frame of level 1, by this thread's compressor (a compressor is not
    safe to share between threads, and a new one for each call costs about 25 us more)."""
    compressor = getattr(_compressors, "zstd", None)
    if compressor is None:
        compressor = _compressors.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor.compress(data)


def compress(coding: str, body: bytes) -> bytes:
    if coding == "zstd":
        return zstd(body)
    gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    return gzip.compress(body) + gzip.flush()


class CompressedAnswers:
    """ASGI middleware: each whole textual body of MIN_SIZE bytes or more compressed with the
    coding the request's Accept-Encoding chooses (`chosen_coding`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accepted = b",".join(value for name, value in scope["headers"] if name == b"accept-encoding")
        coding = chosen_coding(accepted.decode("latin-1"))
        start: dict[str, Any] | None = None

        async def answer(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message  # held until the body shows whether it is whole
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            head, start = start, None
            headers = [(name, value) for name, value in head.get("headers", ())]
            textual = any(name.lower() == b"content-type" and value.lower().startswith(_TEXTUAL) for name, value in headers)
            if textual:
                headers = _with_vary(headers)
                body = message.get("body", b"")
                encoded = any(name.lower() == b"content-encoding" for name, value in headers)
                if coding is not None and not message.get("more_body") and len(body) >= MIN_SIZE and not encoded:
                    body = compress(coding, body)
                    headers = [(name, value) for name, value in headers if name.lower() != b"content-length"]
                    headers += [(b"content-encoding", coding.encode()), (b"content-length", str(len(body)).encode())]
                    message = {**message, "body": body}
            await send({**head, "headers": headers})
            await send(message)

        await self.app(scope, receive, answer)


def _with_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with Accept-Encoding named in Vary (added to the Vary there is, if any)."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            fields = [f.strip().lower() for f in value.split(b",")]
            if b"accept-encoding" in fields or b"*" in fields:
                return headers
            return [*headers[:index], (name, value + b", Accept-Encoding"), *headers[index + 1:]]
    return [*headers, (b"vary", b"Accept-Encoding")]
