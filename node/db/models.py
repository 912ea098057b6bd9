"""The node's database schema as SQLAlchemy 2 typed models.

Every change to these models comes with an Alembic migration under node/db/migrations.
Byte strings (hashes, signatures, proofs) are stored as raw bytes: half the size of hex
and compared byte for byte by both SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer, "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Batch(Base):
    """A Merkle batch of events. Written (status `prepared`) before its transaction is sent,
    so that a restarted anchorer finds it and settles it against the chain."""

    __tablename__ = "batches"
    __table_args__ = (
        # The passport watermark reads max() of these: one index probe each, however many batches.
        Index("ix_batches_anchored_at_ms", "anchored_at_ms"),
        Index("ix_batches_block_number", "block_number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    event_count: Mapped[int] = mapped_column(Integer)
    # prepared -> anchored -> confirmed; back to prepared if the chain lost the anchor.
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    submitter: Mapped[str | None] = mapped_column(String(42))
    tx_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    anchored_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    sends: Mapped[int] = mapped_column(Integer, default=0)


class Event(Base):
    """One accepted, attested EPCIS event. Pending while `batch_id` is NULL.

    On PostgreSQL the table is vacuumed once 2% of it is dead (migration 0011_scale_event_indexes):
    anchoring rewrites every row once, and the anchorer's queue read visits every dead version."""

    __tablename__ = "events"
    __table_args__ = (
        # The anchorer's queue: only pending rows are in this index.
        Index(
            "ix_events_pending",
            "id",
            sqlite_where=text("batch_id IS NULL"),
            postgresql_where=text("batch_id IS NULL"),
        ),
        # A batch's events in leaf order: a bundle streams them in chunks, each chunk one range
        # read (by batch_id alone every chunk re-read and sorted the whole batch). Anchored
        # events only: with pending ones in it, SQLite answered the queue's `batch_id IS NULL`
        # from this index and sorted the whole queue (migration 0013).
        Index(
            "ix_events_batch_leaf",
            "batch_id",
            "leaf_index",
            sqlite_where=text("batch_id IS NOT NULL"),
            postgresql_where=text("batch_id IS NOT NULL"),
        ),
        # Error declarations are rare: only they are indexed (a full index held a NULL entry
        # for every event and was written at every insert and anchoring).
        Index(
            "ix_events_corrects",
            "corrects",
            sqlite_where=text("corrects IS NOT NULL"),
            postgresql_where=text("corrects IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # sha-256 of the CBV 2.0 pre-hash string: the event id without its `ni:` dressing.
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    event_type: Mapped[str] = mapped_column(String(32))
    action: Mapped[str | None] = mapped_column(String(8))
    biz_step: Mapped[str | None] = mapped_column(String(160))
    # Attested event time, unix seconds (the EIP-712 `eventTime`), and ms for ordering.
    event_time: Mapped[int] = mapped_column(BigInteger)
    event_time_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    subject: Mapped[bytes] = mapped_column(LargeBinary(32))
    signer: Mapped[str] = mapped_column(String(42))
    signature: Mapped[bytes] = mapped_column(LargeBinary(65))
    role: Mapped[str] = mapped_column(String(16))
    # The event exactly as accepted (JSON, without the attestation envelope).
    body: Mapped[str] = mapped_column(Text)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    # The verification record, written when the event was accepted (capture) or imported: its
    # signature recovered to `signer`, who held `role` at the event time as a member of
    # `signer_org`. Passports rely on it instead of recovering every signature again; the
    # browser and the audit re-verify on their own. NULL for rows stored without it.
    signer_org: Mapped[int | None] = mapped_column(BigInteger)
    verified_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    leaf_index: Mapped[int | None] = mapped_column(Integer)
    # Sibling hashes from leaf to root, 32 bytes each, concatenated.
    proof: Mapped[bytes | None] = mapped_column(LargeBinary)
    # An error declaration: the CBV 2.0 digest of the event it declares erroneous (its own
    # `digest` is node.protocol.event_hash.record_digest, which adds the declaration).
    corrects: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class EventEpc(Base):
    """Which identifiers an event names, and how (for unit histories and containment)."""

    __tablename__ = "event_epcs"
    __table_args__ = (Index("ix_event_epcs_epc_event", "epc", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    epc: Mapped[str] = mapped_column(String(512))
    # epc | parent | child | input | output | quantity
    relation: Mapped[str] = mapped_column(String(8))


class ChainCursor(Base):
    """How far a follower (the indexer) has read a chain."""

    __tablename__ = "chain_cursors"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class ChainBlock(Base):
    """Hashes of blocks the indexer took logs from (and of its cursor blocks), to detect reorgs."""

    __tablename__ = "chain_blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    timestamp: Mapped[int] = mapped_column(BigInteger)


class ChainLog(Base):
    """A decoded contract event, exactly once per (chain, transaction, log index)."""

    __tablename__ = "chain_logs"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index"),
        Index("ix_chain_logs_chain_block", "chain_id", "block_number"),
        Index("ix_chain_logs_event_key", "event", "key"),
        # Followers of one contract's logs (the escrow order index) read from a checkpoint id.
        Index("ix_chain_logs_chain_contract_id", "chain_id", "contract", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    block_time: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    log_index: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(42))
    contract: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    # The first indexed argument as lower-case hex (a root, an orgId, a proposal id): the lookup key.
    key: Mapped[str | None] = mapped_column(String(66))
    args: Mapped[str] = mapped_column(Text)


class CaptureJob(Base):
    """An EPCIS 2.0 capture job (POST /epcis/capture): its document runs through capture in
    the background; the outcome and per-event errors are kept for GET /epcis/capture/{id}."""

    __tablename__ = "epcis_capture_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    finished_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    running: Mapped[bool] = mapped_column(Boolean, default=True)
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    error_behaviour: Mapped[str] = mapped_column(String(16))
    # JSON: [{"path", "code", "message"}] and the event ids stored
    errors: Mapped[str] = mapped_column(Text, default="[]")
    event_ids: Mapped[str] = mapped_column(Text, default="[]")
    # the account whose signed request created the job, if the request was signed
    account: Mapped[str | None] = mapped_column(String(42))


class EpcisQuery(Base):
    """A named EPCIS query (POST /epcis/queries): its parameters as JSON."""

    __tablename__ = "epcis_queries"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    query: Mapped[str] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    account: Mapped[str | None] = mapped_column(String(42))


class EpcisSubscription(Base):
    """A subscription to a named query: new matching events are POSTed to `dest` as an
    EPCISQueryDocument, HMAC-signed with `signature_token`, retried with back-off."""

    __tablename__ = "epcis_subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    query_name: Mapped[str] = mapped_column(ForeignKey("epcis_queries.name", ondelete="CASCADE"), index=True)
    dest: Mapped[str] = mapped_column(Text)
    signature_token: Mapped[str | None] = mapped_column(Text)
    report_if_empty: Mapped[bool] = mapped_column(Boolean, default=False)
    # the last events.id delivered (stream subscriptions deliver what came after it)
    delivered_up_to: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    account: Mapped[str | None] = mapped_column(String(42))


class EscrowOrderRow(Base):
    """An escrow order by the shipment it covers, and its state as its logs left it.

    Fed by `node.escrow.orders.OrderIndex` from the TradeEscrow logs in `chain_logs`, so a
    passport finds the orders covering a unit with one indexed read instead of every
    `OrderCreated` ever emitted. `last_block`/`last_log_index` name the log that set `state`:
    an older log never overwrites a newer one.
    """

    __tablename__ = "escrow_orders"
    __table_args__ = (Index("ix_escrow_orders_chain_ref", "chain_id", "shipment_ref"),)

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(66), primary_key=True)  # 0x + 64 hex
    shipment_ref: Mapped[bytes] = mapped_column(LargeBinary(32))
    buyer: Mapped[str] = mapped_column(String(42))
    seller: Mapped[str] = mapped_column(String(42))
    milestones: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    created_block: Mapped[int] = mapped_column(BigInteger)
    created_time: Mapped[int] = mapped_column(BigInteger)
    last_block: Mapped[int] = mapped_column(BigInteger)
    last_log_index: Mapped[int] = mapped_column(Integer)


class IndexCheckpoint(Base):
    """How far a follower of `chain_logs` has read (the id of the last log it applied)."""

    __tablename__ = "index_checkpoints"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    log_id: Mapped[int] = mapped_column(BigInteger)


class ProductMaster(Base):
    """A product's master data (api/readmodel/product_master.py), stored as the exact bytes whose
    keccak256 the manufacturer registered on chain (ProvenanceRegistry product metadata hash)."""

    __tablename__ = "product_master"

    gtin: Mapped[str] = mapped_column(String(14), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    content_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    stored_at_ms: Mapped[int] = mapped_column(BigInteger)


class LocationMaster(Base):
    """Master data of a place where events happen (a readPoint or bizLocation id): its name and
    country, registered by a member organisation (api/readmodel/locations.py)."""

    __tablename__ = "location_master"

    location: Mapped[str] = mapped_column(String(512), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    content: Mapped[str] = mapped_column(Text)
    org_id: Mapped[int] = mapped_column(BigInteger)
    stored_at_ms: Mapped[int] = mapped_column(BigInteger)


# ---- member-node network (node/network): replication state, holders, failures ----------------


class NetworkBatch(Base):
    """A batch anchored on chain by another organisation, as the replicator follows it:
    `waiting` until its bundle is imported (`held`), `withheld` once no peer served it within
    the node's withheld timeout (still retried; `held` when it is served)."""

    __tablename__ = "network_batches"
    __table_args__ = (Index("ix_network_batches_state_next", "state", "next_attempt_ms"),)

    root: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    org_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    event_count: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(Text)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    block_time: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    state: Mapped[str] = mapped_column(String(16))
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    withheld_since_ms: Mapped[int | None] = mapped_column(BigInteger)
    imported_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)


class NetworkFailure(Base):
    """A bundle a peer served that failed verification (or could not be read): who served it,
    which event and which check. Nothing of such a bundle is imported."""

    __tablename__ = "network_failures"
    __table_args__ = (Index("ix_network_failures_root", "root"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(96))
    check: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    at_ms: Mapped[int] = mapped_column(BigInteger)


class NetworkHolder(Base):
    """A member node (by organisation) that said, in its held-batches feed, that it holds a batch."""

    __tablename__ = "network_holders"
    # The newest sighting is the passports' cue that the network section changed (node.member.network.holders).
    __table_args__ = (Index("ix_network_holders_seen_at_ms", "seen_at_ms"),)

    root: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    org_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seen_at_ms: Mapped[int] = mapped_column(BigInteger)


class NetworkPeerCursor(Base):
    """How far this node has read a peer's held-batches feed (`GET /batches/held?after=`)."""

    __tablename__ = "network_peer_cursors"

    org_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    after: Mapped[int] = mapped_column(BigInteger)
