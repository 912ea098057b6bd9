"""Tables of the encrypted document store (node/documents.py).

Metadata and the per-document keys live in the database, in two tables; the ciphertext
lives elsewhere (a blob directory), so that neither place alone reveals a document. An
erased document keeps its metadata row (the digest, its type, when and by whom it was
erased) and loses its key row and its ciphertext.
Migration: node/db/migrations/versions/0003_documents.py.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text
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
    # JSON list of further organisation ids the uploader granted read access.
    readers: Mapped[str] = mapped_column(Text, default="[]")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    erased_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    erased_by: Mapped[str | None] = mapped_column(String(42))
    erasure_reason: Mapped[str | None] = mapped_column(Text)


class DocumentKey(Base):
    """The AES-256-GCM key of one document; deleted on erasure."""

    __tablename__ = "document_keys"

    digest: Mapped[bytes] = mapped_column(ForeignKey("documents.digest"), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary(32))
