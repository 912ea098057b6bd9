"""Batch bundles (node/member/network/BUNDLE.md): writing one from the database as a gzip stream,
and reading one back into a header and its leaves.

Writing never parses an event: the stored body is the exact JSON that was accepted, and it is
spliced into the leaf line as is, so a bundle of thousands of events streams at the speed of
the database read and the compressor.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select

from node.db import Batch, Database, Event
from node.errors import WaymarkError
from node.member.indexer import indexed_anchors
from node.protocol.event_hash import hash_from_digest

MEDIA_TYPE = "application/vnd.waymark.batch-bundle.v1+ndjson"
FORMAT = "waymark-batch-bundle"
VERSION = 1
# Rows per database read while streaming; gzip level 1: the bundle is dominated by JSON
# that compresses ~8x at level 1 already, and level 6 costs three times the CPU.
_CHUNK = 2000
_LEVEL = 1


class BundleError(WaymarkError):
    code = "bad_bundle"


class MalformedBundle(BundleError):
    """A bundle that cannot be read: `line` is its 1-based line number (0: the whole bundle)."""

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(f"bundle line {line}: {problem}" if line else f"bundle: {problem}")


@dataclass(frozen=True)
class BundleHeader:
    chain_id: int
    registry: str
    root: bytes
    event_count: int
    org_id: int | None


@dataclass(frozen=True)
class BundleLeaf:
    index: int
    event_id: str
    attester: str
    signature: str
    event: dict[str, Any]


def held_batch(db: Database, root: bytes) -> tuple[int, int] | None:
    """(batch id, event count) of an anchored batch this node holds (its own or imported)."""
    with db.session() as s:
        row = s.execute(select(Batch.id, Batch.event_count, Batch.status).where(Batch.root == root)).first()
    if row is None or row[2] == "prepared":
        return None
    return int(row[0]), int(row[1])


def anchoring_org(db: Database, chain_id: int, registry: str, root: bytes) -> int | None:
    """The organisation whose BatchAnchored log (as indexed) carries `root` first; None if not indexed yet."""
    with db.connect() as conn:
        anchors = indexed_anchors(conn, chain_id, registry, root)
    return anchors[0].org_id if anchors else None


def stream_bundle(db: Database, batch_id: int, header: BundleHeader) -> Iterator[bytes]:
    """The bundle of a held batch as gzip-compressed chunks."""
    gz = zlib.compressobj(_LEVEL, zlib.DEFLATED, 31)
    head = {
        "format": FORMAT,
        "version": VERSION,
        "chainId": header.chain_id,
        "registry": header.registry,
        "root": "0x" + header.root.hex(),
        "eventCount": header.event_count,
        "orgId": header.org_id,
    }
    yield gz.compress(orjson.dumps(head) + b"\n")
    last = -1
    while True:
        with db.connect() as conn:
            rows = conn.execute(
                select(Event.leaf_index, Event.digest, Event.signer, Event.signature, Event.body)
                .where(Event.batch_id == batch_id, Event.leaf_index > last)
                .order_by(Event.leaf_index)
                .limit(_CHUNK)
            ).all()
        if not rows:
            break
        parts = []
        for leaf, digest, signer, signature, body in rows:
            parts.append(
                b'{"leaf":%d,"eventId":"%s","attester":"%s","signature":"0x%s","event":%s}\n'
                % (int(leaf or 0), hash_from_digest(bytes(digest)).encode(), signer.encode(), bytes(signature).hex().encode(), body.encode())
            )
        last = int(rows[-1][0] or 0)
        yield gz.compress(b"".join(parts))
    yield gz.flush()


def read_bundle(raw: bytes, *, compressed: bool = True, max_bytes: int = 1 << 30) -> tuple[BundleHeader, list[bytes]]:
    """A bundle (gzip, or already decompressed NDJSON) split into its header and its leaf lines.
    Shape only: whether it is true is for node.member.network.verify."""
    if compressed:
        try:
            inflater = zlib.decompressobj(31)
            text = inflater.decompress(raw, max_bytes)
            if inflater.unconsumed_tail:
                raise MalformedBundle(0, f"larger than {max_bytes} bytes once decompressed")
        except zlib.error as exc:
            raise MalformedBundle(0, f"not gzip: {exc}") from None
    else:
        text = raw
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise MalformedBundle(0, "empty")
    try:
        head = orjson.loads(lines[0])
    except orjson.JSONDecodeError as exc:
        raise MalformedBundle(1, f"not JSON: {exc}") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT or head.get("version") != VERSION:
        raise MalformedBundle(1, f"not a {FORMAT} version {VERSION} header")
    try:
        header = BundleHeader(
            chain_id=int(head["chainId"]),
            registry=str(head["registry"]),
            root=bytes.fromhex(str(head["root"])[2:]),
            event_count=int(head["eventCount"]),
            org_id=None if head.get("orgId") is None else int(head["orgId"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBundle(1, f"header field missing or malformed: {exc}") from None
    return header, lines[1:]


def parse_leaf(number: int, line: bytes) -> BundleLeaf:
    """One leaf line (`number`: its 1-based line number in the bundle, for errors)."""
    try:
        item = orjson.loads(line)
        leaf = BundleLeaf(
            index=int(item["leaf"]),
            event_id=str(item["eventId"]),
            attester=str(item["attester"]),
            signature=str(item["signature"]),
            event=item["event"],
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedBundle(number, f"not a leaf line: {exc}") from None
    if not isinstance(leaf.event, dict):
        raise MalformedBundle(number, "the event is not a JSON object")
    return leaf
