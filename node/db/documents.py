"""Tables of the encrypted document store (node/documents/).

Metadata lives in `documents`; the ciphertext in a blob directory; the document key only
wrapped, once per authorised organisation, in `document_key_wraps` (each opens with that
organisation's private key, which no node database holds). An erased document keeps its
metadata row (the digest, its type, the signed erasure notice) and loses its wrapped keys and
its ciphertext. `document_feed` orders every change (sealed, erased) for the nodes that
replicate this one; `document_peer_cursors` is how far this node has read each peer's feed.
Migrations: 0003_documents.py, 0009_confidential_sealed.py.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db.models import Base


class StoredDocument(Base):
    """One document, by the SHA-256 of its plaintext (the digest events carry in `wm:documents`)."""

    __tablename__ = "documents"

    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    document_type: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    # The organisation whose account uploaded it (its accounts may always read and erase it).
    owner_org: Mapped[int] = mapped_column(BigInteger, index=True)
    uploaded_by: Mapped[str] = mapped_column(String(42))
    # JSON list of the organisation ids the policy names (parties, destination customs, ...).
    readers: Mapped[str] = mapped_column(Text, default="[]")
    # JSON list of the roles whose holders the policy admits (e.g. AUDITOR).
    reader_roles: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    erased_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    erased_by: Mapped[str | None] = mapped_column(String(42))
    erasure_reason: Mapped[str | None] = mapped_column(Text)
    # The owner's signed erasure notice (JSON), passed on to every peer.
    erasure_notice: Mapped[str | None] = mapped_column(Text)
    # The uploader's signed upload request (JSON {account, timestamp, audience, signature}): peers
    # check with it that the owner named in a replicated copy is who uploaded the document.
    upload_proof: Mapped[str | None] = mapped_column(Text)


class DocumentKey(Base):
    """Legacy (before 0008): a document key in the clear. `DocumentStore.seal_legacy_keys`
    wraps each for its readers and deletes the row; nothing writes here any more."""

    __tablename__ = "document_keys"

    digest: Mapped[bytes] = mapped_column(ForeignKey("documents.digest"), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary(32))


class DocumentKeyWrap(Base):
    """The document key sealed (HPKE, X25519) for one organisation's encryption key."""

    __tablename__ = "document_key_wraps"

    digest: Mapped[bytes] = mapped_column(ForeignKey("documents.digest"), primary_key=True)
    org_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)


class DocumentFeedEntry(Base):
    """One change of one document (sealed here or imported, erased), in the order peers read them."""

    __tablename__ = "document_feed"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)


class DocumentPeerCursor(Base):
    """The last feed position this node imported from one peer node."""

    __tablename__ = "document_peer_cursors"

    peer_url: Mapped[str] = mapped_column(String(256), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
