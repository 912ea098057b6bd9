"""Compressed answers (api.compression): the coding chosen from Accept-Encoding as RFC 9110 reads
it, and the passport, page and linkset answered compressed, the same once decoded."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import orjson
import pytest
import zstandard
from fastapi.testclient import TestClient

from api.compression import MIN_SIZE, CompressedAnswers, chosen_coding, zstd_closing_blocks, zstd_open_frame
from api.main import create_app
from node.paths import PROJECT_ROOT
from tests.api.conftest import JSON, path_of
from tests.api.world import World, api_settings
from tests.node.story import GTIN


@pytest.mark.parametrize(("header", "chosen"), [
    (None, None),
    ("", None),
    ("identity", None),
    ("gzip", "gzip"),
    ("x-gzip", "gzip"),
    ("GZip", "gzip"),
    ("deflate, gzip", "gzip"),
    ("gzip, deflate, br, zstd", "zstd"),  # a browser's: equal weights, zstd preferred
    ("gzip;q=1.0, zstd;q=0.5", "gzip"),
    ("zstd;q=0, gzip", "gzip"),
    ("gzip;q=0, zstd;q=0", None),
    ("*", "zstd"),
    ("*;q=0.5, gzip", "gzip"),
    ("*, zstd;q=0", "gzip"),
    ("gzip;q=abc", None),  # a weight that is not a number accepts nothing
    ("gzip;q=2", None),  # outside 0-1
    ("gzip ; q=0.001", "gzip"),
    (" , ,gzip", "gzip"),
    ("br", None),
])
def test_the_coding_follows_the_weights_of_accept_encoding(header: str | None, chosen: str | None) -> None:
    assert chosen_coding(header) == chosen


def _raw(client: TestClient, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """The answer as it came over the wire (not decoded)."""
    with client.stream(method, path, headers=headers) as response:
        return response.status_code, dict(response.headers), b"".join(response.iter_raw())


def _timeline(body: bytes) -> list[dict[str, object]]:
    timeline: list[dict[str, object]] = orjson.loads(body)["timeline"]
    return timeline


def test_a_passport_is_answered_in_the_coding_accepted_and_is_the_same_once_decoded(client: TestClient, world: World) -> None:
    path = path_of(world, "genuine")
    status, headers, plain = _raw(client, "GET", path, {**JSON, "Accept-Encoding": "identity"})
    assert status == 200 and "content-encoding" not in headers and len(plain) >= MIN_SIZE
    assert "accept-encoding" in headers["vary"].lower() and "accept" in headers["vary"].lower()

    status, headers, packed = _raw(client, "GET", path, {**JSON, "Accept-Encoding": "gzip, deflate, br, zstd"})
    assert status == 200 and headers["content-encoding"] == "zstd" and int(headers["content-length"]) == len(packed)
    assert len(packed) < len(plain) / 3
    assert _timeline(zstandard.ZstdDecompressor().decompressobj().decompress(packed)) == _timeline(plain)

    status, headers, packed = _raw(client, "GET", path, {**JSON, "Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip" and int(headers["content-length"]) == len(packed)
    assert _timeline(gzip.decompress(packed)) == _timeline(plain)


@pytest.mark.parametrize("route", ["resolver", "scan", "passport"])
def test_a_zstd_passport_is_one_frame_the_cached_core_ended_by_the_scans_members_and_decodes_to_the_plain_answer(
    client: TestClient, world: World, route: str,
) -> None:
    """The core is sent as the cache holds it (not unpacked and packed again per scan), ended by
    the scan's own members as raw blocks: one frame (a client that reads only a body's first
    frame reads it whole), which decodes to the plain answer (but for the scan's own counts and
    time)."""
    path = path_of(world, "genuine")
    url = path if route == "resolver" else f"/api/v1/{route}?uri=" + quote("https://id.example" + path, safe="")
    status, headers, packed = _raw(client, "GET", url, {**JSON, "Accept-Encoding": "zstd"})
    assert status == 200 and headers["content-encoding"] == "zstd" and "accept-encoding" in headers["vary"].lower()
    one_frame = zstandard.ZstdDecompressor().decompressobj()  # stops at the end of the first frame
    decoded_bytes = one_frame.decompress(packed)
    assert one_frame.eof and one_frame.unused_data == b""
    assert decoded_bytes.startswith(b'{"id":') and decoded_bytes.endswith(b"}")
    cached = client.app.state.services.passports._entries[world.unit("genuine").canonical_uri].core  # type: ignore[attr-defined]
    assert cached is not None and packed.startswith(cached.frame)  # the frame the cache holds, as it is
    decoded = orjson.loads(decoded_bytes)
    plain = orjson.loads(_raw(client, "GET", url, {**JSON, "Accept-Encoding": "identity"})[2])
    assert list(decoded) == list(plain)
    for moving in ("scans", "generatedAt"):  # this scan's own: counted and timed per request
        del decoded[moving], plain[moving]
    assert decoded == plain


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 5000])
def test_raw_blocks_close_an_open_frame_into_one_frame_of_both(size: int) -> None:
    start = orjson.dumps({"timeline": list(range(3000))})[:-1]
    end = b',"x":"' + b"y" * size + b'"}'
    frame = zstd_open_frame(start) + zstd_closing_blocks(end)
    decoder = zstandard.ZstdDecompressor().decompressobj()
    assert decoder.decompress(frame) == start + end and decoder.eof and decoder.unused_data == b""
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zstd_open_frame(start)) == start  # decodable while open


def test_the_scanner_page_and_the_product_view_are_compressed_and_head_says_the_compressed_length(
    client: TestClient, world: World,
) -> None:
    status, headers, packed = _raw(client, "GET", path_of(world, "genuine"), {"Accept": "text/html", "Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert b"waymark-boot" in gzip.decompress(packed)

    product = "/01/" + GTIN
    status, headers, packed = _raw(client, "GET", product, {**JSON, "Accept-Encoding": "zstd"})
    plain = _raw(client, "GET", product, {**JSON, "Accept-Encoding": "identity"})[2]
    assert status == 200 and headers["content-encoding"] == "zstd" and len(plain) >= MIN_SIZE
    assert zstandard.ZstdDecompressor().decompressobj().decompress(packed) == plain
    status, head, nothing = _raw(client, "HEAD", product, {**JSON, "Accept-Encoding": "zstd"})
    assert status == 200 and nothing == b"" and head["content-encoding"] == "zstd" and head["content-length"] == str(len(packed))


def test_a_small_answer_is_not_compressed(client: TestClient) -> None:
    status, headers, body = _raw(client, "GET", "/health/live", {"Accept-Encoding": "gzip, zstd"})
    assert status == 200 and len(body) < MIN_SIZE and "content-encoding" not in headers


def test_an_api_told_not_to_compress_answers_as_it_is(world: World, api_folder: Path) -> None:
    """WAYMARK_API_COMPRESS=false, for a proxy in front that compresses."""
    app = create_app(api_settings(world, api_folder, public_url="https://scan.example", compress=False), world.chain_settings, world.database)
    with TestClient(app, base_url="https://scan.example") as plain_client:
        status, headers, body = _raw(plain_client, "GET", "/01/" + GTIN, {**JSON, "Accept-Encoding": "zstd, gzip"})
    assert status == 200 and "content-encoding" not in headers and len(body) >= MIN_SIZE
    assert orjson.loads(body)


@pytest.mark.parametrize("coding", ["zstd", "gzip"])
def test_the_page_bundle_is_streamed_compressed_and_revalidates_with_its_weakened_etag(client: TestClient, coding: str) -> None:
    """The bundle (about 390 KB) is sent in chunks: compressed chunk by chunk, without a length."""
    bundle = (PROJECT_ROOT / "scanner_web" / "dist" / "app.js").read_bytes()
    status, headers, packed = _raw(client, "GET", "/static/app.js", {"Accept-Encoding": coding})
    assert status == 200 and headers["content-encoding"] == coding and "content-length" not in headers
    assert len(packed) < len(bundle) / 2
    plain = gzip.decompress(packed) if coding == "gzip" else zstandard.ZstdDecompressor().decompressobj().decompress(packed)
    assert plain == bundle
    assert headers["etag"].startswith("W/")
    status, _, body = _raw(client, "GET", "/static/app.js", {"Accept-Encoding": coding, "If-None-Match": headers["etag"]})
    assert status == 304 and body == b""


def test_an_event_stream_is_passed_on_as_it_is_sent() -> None:
    """A compressor would hold each event back until it had enough bytes: events go as they come."""
    async def events(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: two\n\n", "more_body": False})

    sent: list[dict[str, Any]] = []

    async def record(message: dict[str, Any]) -> None:
        sent.append(message)

    async def nothing() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "path": "/events", "headers": [(b"accept-encoding", b"gzip, zstd")]}
    anyio.run(CompressedAnswers(events), scope, nothing, record)
    assert [m.get("body") for m in sent] == [None, b"data: one\n\n", b"data: two\n\n"]
    assert (b"content-encoding", b"gzip") not in sent[0]["headers"] and all(name != b"content-encoding" for name, _ in sent[0]["headers"])
