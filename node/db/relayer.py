"""The escrow relayer's tables (node/relayer/store.py): the milestone signatures it accepted, and
each milestone's submission state. Migration 0004."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from node.db.models import Base, BigId


class RelaySignature(Base):
    """One accepted signature, kept until its milestone is settled (then kept as the record)."""

    __tablename__ = "relay_signatures"
    __table_args__ = (UniqueConstraint("chain_id", "escrow", "kind", "order_id", "milestone", "signer"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    escrow: Mapped[str] = mapped_column(String(42))
    kind: Mapped[str] = mapped_column(String(16))  # milestone | customs_return
    order_id: Mapped[str] = mapped_column(String(66))  # 0x + 64 hex digits
    milestone: Mapped[int] = mapped_column(Integer)
    duty: Mapped[str] = mapped_column(String(78))  # uint256 in decimal
    duty_payee: Mapped[str] = mapped_column(String(42))
    signer: Mapped[str] = mapped_column(String(42))
    org_id: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)


class RelaySubmission(Base):
    """The submission state of one milestone: collecting -> submitting -> reached (or abandoned)."""

    __tablename__ = "relay_submissions"
    __table_args__ = (UniqueConstraint("chain_id", "escrow", "kind", "order_id", "milestone"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    escrow: Mapped[str] = mapped_column(String(42))
    kind: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str] = mapped_column(String(66))
    milestone: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    tx_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    detail: Mapped[str | None] = mapped_column(Text)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
