"""Where an audit takes its off-chain evidence from: the node's database, or a bundle.

`Evidence` is the protocol the engine (node.audit.verify) reads through. It hands out events
in *parts*: opaque, picklable keys of roughly `target_size` events each, every stored event in
exactly one part and all the events of one batch in the same part (the engine rebuilds each
batch's Merkle root inside the part). With `workers > 1` the engine pickles the evidence object
once into each worker process and calls `events(part)` there, so an implementation should
pickle cheaply (a URL, a path) and open its source lazily; one that cannot be pickled is read
in the parent and its rows are shipped to the workers instead.

Partial evidence (a bundle for a product, a lot, an order or a time range) says so with a
class attribute `partial = True` and names its orders with `orders() -> frozenset[int]`: the
engine then checks the events and orders it holds, and does not ask for the rest (no
EVENT_DATA_MISSING for roots or leaves outside it; escrow transitions of its orders only).
Both are optional; without them the evidence is taken as complete (the node's database).

Rows are plain named tuples (no ORM objects): 100k+ events never sit in memory at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from sqlalchemy import select, text

from node.db import Batch, Database, Event

EventPart = Hashable
"""An opaque, picklable key naming one part of the stored events."""


class StoredEvent(NamedTuple):
    """One event as the evidence holds it."""

    digest: bytes
    """Stored event id: sha-256 of the CBV 2.0 pre-hash string (32 bytes)."""
    body: str
    """The event JSON exactly as accepted (without the attestation envelope)."""
    signer: str
    """The attesting account, 0x-hex (any case)."""
    signature: bytes
    """65-byte EIP-712 attestation signature (r || s || v)."""
    role: str
    """The role the node recorded for the signer (informative; the audit re-derives the role
    the event needs from its bizStep)."""
    event_time: int
    """Attested event time, unix seconds (the EIP-712 `eventTime`)."""
    subject: bytes
    """Attested subject (32 bytes)."""
    batch_root: bytes | None
    """Root of the stored batch the event belongs to; None while pending."""
    leaf_index: int | None
    proof: bytes | None
    """Sibling hashes from leaf to root, 32 bytes each, concatenated."""
    received_at_ms: int | None = None
    """When the node accepted it (used only to tell a young pending event from a lost one)."""


class StoredBatch(NamedTuple):
    """One batch (root) the evidence refers to."""

    root: bytes
    event_count: int
    status: str
    """prepared | anchored | confirmed (bundles: anchored). A `prepared` batch whose root is
    not on chain is in flight, not a fault."""
    tx_hash: bytes | None
    block_number: int | None


class StoredEscrowAttestation(NamedTuple):
    """One milestone (or customs-return) signature collected for an order (relay_signatures)."""

    chain_id: int
    escrow: str
    """TradeEscrow address, 0x-hex."""
    kind: str
    """"milestone" or "customs_return"."""
    order_id: int
    milestone: int
    signer: str
    signature: bytes
    deadline: int
    duty: int
    duty_payee: str


@runtime_checkable
class Evidence(Protocol):
    def describe(self) -> str:
        """One line naming the source, for the report (`database sqlite:///...`)."""
        ...

    def batches(self) -> Sequence[StoredBatch]:
        """Every stored batch."""
        ...

    def event_parts(self, target_size: int) -> Sequence[EventPart]:
        """Keys covering every stored event once, whole batches per part."""
        ...

    def events(self, part: EventPart) -> Sequence[StoredEvent]:
        """The events of one part."""
        ...

    def escrow_attestations(self) -> Iterator[StoredEscrowAttestation]:
        """Every stored escrow attestation (the engine keeps those of its chain and escrow)."""
        ...


def is_partial(evidence: Evidence) -> bool:
    return bool(getattr(evidence, "partial", False))


def evidence_orders(evidence: Evidence) -> frozenset[int] | None:
    """The orders partial evidence covers; None for complete evidence (every order)."""
    if not is_partial(evidence):
        return None
    orders = getattr(evidence, "orders", None)
    return frozenset(orders()) if callable(orders) else frozenset()


_EVENT_COLUMNS = (
    Event.digest, Event.body, Event.signer, Event.signature, Event.role, Event.event_time, Event.subject,
    Batch.root, Event.leaf_index, Event.proof, Event.received_at_ms,
)


class DatabaseEvidence:
    """The node's own database (SQLite or PostgreSQL), read with Core selects in parts."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._owned = False

    @classmethod
    def _from_url(cls, url: str, schema: str | None) -> DatabaseEvidence:
        evidence = cls(Database(url, schema=schema, pool_size=1))
        evidence._owned = True
        return evidence

    def __reduce__(self) -> tuple[Any, tuple[str, str | None]]:
        # A worker process opens its own engine on the same database.
        return (DatabaseEvidence._from_url, (self.db.url.render_as_string(hide_password=False), self.db.schema))

    def close(self) -> None:
        if self._owned:
            self.db.dispose()

    def describe(self) -> str:
        return f"database {self.db.url.render_as_string(hide_password=True)}"

    def batches(self) -> list[StoredBatch]:
        with self.db.connect() as conn:
            rows = conn.execute(select(Batch.root, Batch.event_count, Batch.status, Batch.tx_hash,
                                       Batch.block_number).order_by(Batch.id))
            return [StoredBatch(bytes(r[0]), r[1], r[2], _opt_bytes(r[3]), r[4]) for r in rows]

    def event_parts(self, target_size: int) -> list[EventPart]:
        """("batches", first batch id, last batch id) ranges, then ("pending", first id, last id)."""
        return self.event_parts_since(target_size, frozenset())

    def event_parts_since(self, target_size: int, covered: frozenset[bytes]) -> list[EventPart]:
        """Like `event_parts`, leaving out the batches whose root is in `covered` (verified by an
        earlier audit, node.audit.checkpoint): runs of the other batches' ids, then pending events."""
        parts: list[EventPart] = []
        with self.db.connect() as conn:
            sizes = conn.execute(select(Batch.id, Batch.root, Batch.event_count).order_by(Batch.id)).all()
            start: int | None = None
            previous: int | None = None
            total = 0
            for batch_id, root, count in sizes:
                if bytes(root) in covered:
                    if start is not None:
                        parts.append(("batches", start, previous))
                        start, total = None, 0
                    continue
                if start is None:
                    start = batch_id
                previous = batch_id
                total += count
                if total >= target_size:
                    parts.append(("batches", start, batch_id))
                    start, total = None, 0
            if start is not None:
                parts.append(("batches", start, previous))
            pending = conn.execute(select(Event.id).where(Event.batch_id.is_(None)).order_by(Event.id)).scalars().all()
        for i in range(0, len(pending), target_size):
            chunk = pending[i:i + target_size]
            parts.append(("pending", chunk[0], chunk[-1]))
        return parts

    def events(self, part: EventPart) -> list[StoredEvent]:
        kind, first, last = _part_key(part)
        query = select(*_EVENT_COLUMNS).select_from(Event).outerjoin(Batch, Batch.id == Event.batch_id)
        if kind == "batches":
            query = query.where(Event.batch_id.between(first, last))
        else:
            query = query.where(Event.batch_id.is_(None), Event.id.between(first, last))
        with self.db.connect() as conn:
            return [
                StoredEvent(bytes(r[0]), r[1], r[2], bytes(r[3]), r[4], r[5], bytes(r[6]), _opt_bytes(r[7]), r[8],
                            _opt_bytes(r[9]), r[10])
                for r in conn.execute(query.order_by(Event.id))
            ]

    def escrow_attestations(self) -> Iterator[StoredEscrowAttestation]:
        # Plain SQL: the relayer's models are moving between modules; the table is stable.
        query = text("SELECT chain_id, escrow, kind, order_id, milestone, signer, signature, deadline, duty, "
                     "duty_payee FROM relay_signatures ORDER BY id")
        with self.db.connect() as conn:
            for r in conn.execute(query):
                yield StoredEscrowAttestation(int(r[0]), r[1], r[2], int(r[3], 16), int(r[4]), r[5], bytes(r[6]),
                                              int(r[7]), int(r[8]), r[9])


def _part_key(part: EventPart) -> tuple[str, int, int]:
    if not (isinstance(part, tuple) and len(part) == 3):
        raise TypeError(f"not a part of this database's events: {part!r}")
    return str(part[0]), int(part[1]), int(part[2])


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
