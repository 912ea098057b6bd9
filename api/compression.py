"""Answers compressed for the clients that accept it (RFC 9110, 8.4.1 and 12.5.3).

A passport is about 50 KB of JSON, about 9 KB compressed: what a buyer's phone downloads at
each scan; the page's script bundle is 390 KB. Zstandard where the client accepts it (browsers
since 2024: Chrome 123, Firefox 126), else gzip (every browser), else the body as it is. Only
bodies of a textual type, not encoded already, and of at least MIN_SIZE bytes (a streamed body
always). Every answer of a textual type says `Vary: Accept-Encoding`, so that a cache keeps the
encodings apart.

Passports come here packed already where the client chooses Zstandard: the cache holds each
passport's core as the start of a frame left open (`zstd_open_frame`), and the route ends that
frame with the scan's own members as raw blocks (`zstd_closing_blocks`,
`api.routes.answers.passport_response`): one frame, so any decoder reads it whole (some clients
stop after a body's first frame), and nothing is packed per scan.
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
_TEXTUAL = (b"application/json", b"application/linkset+json", b"application/ld+json", b"application/problem+json",
            b"application/javascript", b"text/")


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


def request_coding(scope: Any) -> str | None:
    """`chosen_coding` of an ASGI request's Accept-Encoding (every such header, joined)."""
    return chosen_coding(b",".join(value for name, value in scope["headers"] if name == b"accept-encoding").decode("latin-1"))


_compressors = threading.local()


def _compressor(kind: str, **params: Any) -> zstandard.ZstdCompressor:
    """This thread's Zstandard compressor of `kind` (level 1 and `params`): a compressor is not
    safe to share between threads, and a new one for each call costs about 25 us more."""
    compressor = getattr(_compressors, kind, None)
    if compressor is None:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, **params)
        setattr(_compressors, kind, compressor)
    return compressor


def zstd(data: bytes) -> bytes:
    """`data` as one Zstandard frame of level 1."""
    return _compressor("whole").compress(data)


def zstd_open_frame(data: bytes) -> bytes:
    """`data` as the start of a Zstandard frame left open (RFC 8878, 3.1.1): all of it in blocks
    none of which is the frame's last, without a content size or checksum, so that
    `zstd_closing_blocks` can end the frame with more data. Decoded alone it gives `data`."""
    packer = _compressor("open", write_content_size=False, write_checksum=False).compressobj()
    return packer.compress(data) + packer.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


# A raw block's size fits any frame: Block_Maximum_Size is the smaller of the frame's window
# (never under 1 KiB, Window_Log >= 10) and 128 KiB (RFC 8878, 3.1.1.2.4).
_RAW_BLOCK_SIZE = 1024


def zstd_closing_blocks(data: bytes) -> bytes:
    """`data` as raw (stored) blocks, the last of them the frame's last (RFC 8878, 3.1.1.2): what
    ends a frame `zstd_open_frame` began, so that the whole is one frame decoding to both."""
    blocks = []
    for start in range(0, max(len(data), 1), _RAW_BLOCK_SIZE):
        chunk = data[start:start + _RAW_BLOCK_SIZE]
        last = start + _RAW_BLOCK_SIZE >= len(data)
        # Block_Header, 3 bytes little-endian: Last_Block (bit 0), Block_Type 0 = Raw (bits 1-2), Block_Size.
        blocks.append((len(chunk) << 3 | last).to_bytes(3, "little") + chunk)
    return b"".join(blocks)


def compress(coding: str, body: bytes) -> bytes:
    """A whole body: Zstandard by this thread's compressor, gzip as a stream of one chunk."""
    return zstd(body) if coding == "zstd" else _Stream(coding).next(body, more=False)


class CompressedAnswers:
    """ASGI middleware: each textual answer of MIN_SIZE bytes or more compressed with the coding
    the request's Accept-Encoding chooses (`chosen_coding`). A whole body is compressed at once;
    a streamed one (a large static file, such as the page's 390 KB bundle) chunk by chunk, sent
    without a length (chunked)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        stream: _Stream | None = None

        async def answer(message: dict[str, Any]) -> None:
            nonlocal start, stream
            if message["type"] == "http.response.start":
                start = message  # held until the first body shows whether the body is whole
                return
            if stream is not None and message["type"] == "http.response.body":
                await send({**message, "body": stream.next(message.get("body", b""), more=bool(message.get("more_body")))})
                return
            if start is None:
                await send(message)
                return
            head, start = start, None
            headers = list(head.get("headers", ()))
            # An extension's message (a file to send) or a type not worth compressing: as it is.
            if message["type"] != "http.response.body" or not any(
                name.lower() == b"content-type" and _textual(value) for name, value in headers
            ):
                await send(head)
                await send(message)
                return
            headers = _with_vary(headers)
            body, more = message.get("body", b""), bool(message.get("more_body"))
            encoded = any(name.lower() == b"content-encoding" for name, value in headers)
            # Accept-Encoding is read only for a body worth compressing.
            coding = None if encoded or not (more or len(body) >= MIN_SIZE) else request_coding(scope)
            if coding is not None:
                headers = [(name, _weak(value) if name.lower() == b"etag" else value)
                           for name, value in headers if name.lower() != b"content-length"]
                headers.append((b"content-encoding", coding.encode()))
                if more:
                    stream = _Stream(coding)
                    body = stream.next(body, more=True)
                else:
                    body = compress(coding, body)
                    headers.append((b"content-length", str(len(body)).encode()))
                message = {**message, "body": body}
            await send({**head, "headers": headers})
            await send(message)

        await self.app(scope, receive, answer)


class _Stream:
    """One streamed body's compressor: each chunk compressed as it comes, the end flushed."""

    def __init__(self, coding: str) -> None:
        self._compressor: Any = (zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj() if coding == "zstd"
                                 else zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31))  # wbits 31: the gzip format

    def next(self, chunk: bytes, *, more: bool) -> bytes:
        packed: bytes = self._compressor.compress(chunk)
        return packed if more else packed + self._compressor.flush()


def _textual(content_type: bytes) -> bool:
    """A type worth compressing. Not an event stream: a compressor holds back what it was given
    until it has enough, and each event must reach the client when it is sent."""
    kind = content_type.lower()
    return kind.startswith(_TEXTUAL) and not kind.startswith(b"text/event-stream")


def _weak(etag: bytes) -> bytes:
    """A strong validator made weak: the compressed answer is not byte for byte the one it names
    (RFC 9110, 8.8.3); If-None-Match still compares weakly, so revalidation still answers 304."""
    return etag if etag.startswith(b"W/") else b"W/" + etag


def _with_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with Accept-Encoding named in Vary (added to the Vary there is, if any)."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            fields = [f.strip().lower() for f in value.split(b",")]
            if b"accept-encoding" in fields or b"*" in fields:
                return headers
            return [*headers[:index], (name, value + b", Accept-Encoding"), *headers[index + 1:]]
    return [*headers, (b"vary", b"Accept-Encoding")]
