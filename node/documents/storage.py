"""The sealed document store: ciphertext in a blob folder, keys only wrapped per organisation.

* **Sealing** (`DocumentStore.put`): the node encrypts the uploaded document under a fresh key
  (node.documents.crypto), wraps that key for every organisation the policy resolves to
  (node.documents.policy) and forgets it. The database holds metadata and wrapped keys; the
  blob folder the ciphertext; neither holds anything that opens a document without an
  organisation's private key, which lives in that organisation's keystore.
* **Opening**: `envelope` hands an authorised reader its wrapped key with the ciphertext (it
  opens them with its keystore); `read` opens it here when this node holds the reader
  organisation's keystore (a node's own organisation).
* **Erasure** (`erase`, from an owner's signed notice) deletes every wrapped key and the
  ciphertext and keeps the metadata row, digest and notice included: the anchored event still
  names the hash, and the store answers that the document existed and was erased (the passport
  shows "erased"). An erased document is never stored again, by upload or replication.
* **Feed** (`feed`, `import_sealed`, `import_erasure`): every change gets a sequence number, and
  changes commit in the order of their numbers (node.db.locks.in_id_order), so a peer that read up
  to one number never misses a lower one; peers read the feed and import sealed documents and
  erasure notices (node.documents.replication).
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.db import Database
from node.db.plain import PlainSelect
from node.db.documents import DocumentFeedEntry, DocumentKey, DocumentKeyWrap, StoredDocument
from node.db.locks import DOCUMENT_FEED, in_id_order
from node.documents.crypto import decrypt, encrypt, sha256, unwrap_key, wrap_key
from node.documents.errors import (
    DocumentCorrupt,
    DocumentErased,
    DocumentInvalid,
    DocumentNotFound,
    DocumentTooLarge,
    NoEncryptionKey,
    SealedForReader,
)
from node.documents.keys import KeyDirectory, OrgKeystore
from node.documents.policy import role_readers
from node.documents.signing import ErasureNotice
from node.protocol.crypto import to_checksum_address

DocumentState = Literal["available", "erased", "not_held"]

_DOCUMENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def digest_text(digest: bytes) -> str:
    """``sha256:<hex>``, the form `wm:documents` and the passport use."""
    return "sha256:" + digest.hex()


def parse_digest(text: str) -> bytes:
    """Accept ``sha256:<hex>``, ``0x<hex>`` or bare hex of 32 bytes."""
    raw = text.strip()
    for prefix in ("sha256:", "0x"):
        if raw.startswith(prefix):
            raw = raw[len(prefix):]
    if not _HEX64.fullmatch(raw):
        raise DocumentInvalid(f"a document digest is sha256:<64 hex digits>, got {text!r}", "digest")
    return bytes.fromhex(raw)


_ERASED_AT = PlainSelect(select(StoredDocument.erased_at_ms).where(StoredDocument.digest == bindparam("digest")))  # per passport document: built once


class BlobStore(Protocol):
    def put(self, digest: bytes, blob: bytes) -> None: ...
    def get(self, digest: bytes) -> bytes | None: ...
    def delete(self, digest: bytes) -> None: ...
    def digests(self) -> Iterable[tuple[bytes, float]]:
        """(digest, unix time last written) of every blob."""
        ...


class FileBlobStore:
    """Ciphertext as files `<hex digest>.bin` in one folder, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: bytes) -> Path:
        return self.folder / f"{digest.hex()}.bin"

    def put(self, digest: bytes, blob: bytes) -> None:
        target = self._path(digest)
        temporary = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)

    def get(self, digest: bytes) -> bytes | None:
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, digest: bytes) -> None:
        self._path(digest).unlink(missing_ok=True)

    def digests(self) -> Iterable[tuple[bytes, float]]:
        for path in self.folder.glob("*.bin"):
            if _HEX64.fullmatch(path.stem):
                try:
                    yield bytes.fromhex(path.stem), path.stat().st_mtime
                except FileNotFoundError:
                    continue


@dataclass(frozen=True)
class DocumentMeta:
    digest: bytes
    document_type: str
    media_type: str
    size: int
    owner_org: int
    uploaded_by: str
    readers: tuple[int, ...]
    reader_roles: tuple[str, ...]
    created_at_ms: int
    erased_at_ms: int | None
    erased_by: str | None
    erasure_reason: str | None
    erasure_notice: ErasureNotice | None = None
    sealed_for: tuple[int, ...] = field(default=())

    @property
    def status(self) -> DocumentState:
        return "erased" if self.erased_at_ms is not None else "available"

    def public(self) -> dict[str, Any]:
        """What anyone may see: the hash, the type, available or erased (and when)."""
        body: dict[str, Any] = {"digest": digest_text(self.digest), "documentType": self.document_type, "status": self.status}
        if self.erased_at_ms is not None:
            body["erasedAtMs"] = self.erased_at_ms
        return body

    def members(self) -> dict[str, Any]:
        """What a member may see besides: the policy and whom the document is sealed for."""
        return {**self.public(), "ownerOrg": self.owner_org, "policy": {"organisations": list(self.readers), "roles": list(self.reader_roles)},
                "sealedFor": list(self.sealed_for)}


def _meta(row: StoredDocument, sealed_for: Sequence[int]) -> DocumentMeta:
    notice = ErasureNotice.from_json(orjson.loads(row.erasure_notice)) if row.erasure_notice else None
    return DocumentMeta(
        bytes(row.digest), row.document_type, row.media_type, int(row.size), int(row.owner_org), row.uploaded_by,
        tuple(int(r) for r in orjson.loads(row.readers or "[]")), tuple(str(r) for r in orjson.loads(row.reader_roles or "[]")),
        int(row.created_at_ms), row.erased_at_ms, row.erased_by, row.erasure_reason, notice, tuple(sorted(int(o) for o in sealed_for)),
    )


@dataclass(frozen=True)
class Sealed:
    """The outcome of an upload: the metadata, whether it is new, named organisations with no key."""

    meta: DocumentMeta
    fresh: bool
    unsealed: tuple[int, ...]


class DocumentStore:
    """Sealed documents: ciphertext in `blobs`, metadata and wrapped keys in `db`."""

    def __init__(
        self, db: Database, blobs: BlobStore, *, directory: KeyDirectory | None = None, keystore: OrgKeystore | None = None,
        max_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.directory = directory
        self.keystore = keystore
        self.max_bytes = max_bytes

    # --- keys ---------------------------------------------------------------------------------

    def _public_key(self, org_id: int) -> bytes | None:
        found = self.directory.encryption_key(org_id) if self.directory is not None else None
        if found is None and self.keystore is not None and self.keystore.org_id == org_id:
            return self.keystore.public_key  # our own key, before (or without) its registry record
        return found

    def recipients(self, owner_org: int, readers: Iterable[int], roles: Iterable[str]) -> tuple[dict[int, bytes], list[int]]:
        """({org: public key} the policy seals for, [named organisations without a key])."""
        wanted = [owner_org, *readers]
        for role in roles:
            wanted.extend(self.directory.organisations_with_role(role) if self.directory is not None else [])
        keys: dict[int, bytes] = {}
        missing: list[int] = []
        for org in dict.fromkeys(wanted):
            key = self._public_key(org)
            if key is not None:
                keys[org] = key
            elif org == owner_org:
                raise NoEncryptionKey(org)
            elif org in readers:
                missing.append(org)
        return keys, missing

    # --- writing ------------------------------------------------------------------------------

    def put(
        self, content: bytes, *, document_type: str, media_type: str, owner_org: int, uploaded_by: str,
        readers: Sequence[int] = (), reader_roles: Sequence[str] | None = None, upload_proof: dict[str, Any] | None = None,
    ) -> Sealed:
        """Seal and store a document. Storing it again changes nothing (the first policy stays)."""
        if len(content) > self.max_bytes:
            raise DocumentTooLarge(len(content), self.max_bytes)
        if not _DOCUMENT_TYPE.fullmatch(document_type):
            raise DocumentInvalid(f"document type {document_type!r}: lower-case letters, digits and _ (e.g. inspection_report)", "documentType")
        if not _MEDIA_TYPE.fullmatch(media_type):
            raise DocumentInvalid(f"media type {media_type!r} is not type/subtype", "mediaType")
        digest = sha256(content)
        existing = self.meta(digest)
        if existing is not None:
            if existing.erased_at_ms is not None:
                raise DocumentErased(digest, existing.erased_at_ms)
            return Sealed(existing, False, ())
        roles = tuple(role_readers(document_type) if reader_roles is None else reader_roles)
        named = sorted({int(r) for r in readers} - {owner_org})
        keys, missing = self.recipients(owner_org, named, roles)
        key, blob = encrypt(content, digest)
        wraps = {org: wrap_key(key, public, digest, org) for org, public in keys.items()}
        del key  # from here on only the wrapped copies exist
        row = StoredDocument(
            digest=digest, document_type=document_type, media_type=media_type, size=len(content), owner_org=owner_org,
            uploaded_by=to_checksum_address(uploaded_by), readers=orjson.dumps(named).decode(), reader_roles=orjson.dumps(list(roles)).decode(),
            created_at_ms=int(time.time() * 1000), upload_proof=orjson.dumps(upload_proof).decode() if upload_proof else None,
        )
        if not self._insert(row, blob, wraps):
            return self.put(content, document_type=document_type, media_type=media_type, owner_org=owner_org,
                            uploaded_by=uploaded_by, readers=readers, reader_roles=reader_roles, upload_proof=upload_proof)
        return Sealed(self._require(digest), True, tuple(missing))

    @contextmanager
    def _changing(self) -> Iterator[Session]:
        """A write transaction that enters a change in the feed: every write of this store does,
        so each holds the feed's lock from its start (node.db.locks.in_id_order)."""
        with self.db.write() as s:
            in_id_order(s, DOCUMENT_FEED)
            yield s

    def _insert(self, row: StoredDocument, blob: bytes, wraps: dict[int, bytes]) -> bool:
        """Store a new document; False if one with the same digest got there first."""
        digest = bytes(row.digest)
        try:
            with self._changing() as s:
                if s.get(StoredDocument, digest) is not None:
                    return False
                s.add(row)
                s.flush()
                for org, wrapped in wraps.items():
                    s.add(DocumentKeyWrap(digest=digest, org_id=org, wrapped=wrapped))
                s.add(DocumentFeedEntry(digest=digest))
                s.flush()
                # Written inside the transaction: a concurrent writer of the same digest waits on
                # the row (or fails on the key) and never writes its own blob. A crash before the
                # commit leaves an orphan blob that `sweep` removes.
                self.blobs.put(digest, blob)
        except IntegrityError:
            return False
        return True

    def erase(self, notice: ErasureNotice) -> DocumentMeta:
        """Apply a verified erasure notice: every wrapped key and the ciphertext go, the hash and
        the notice stay, and the change enters the feed. Erasing twice is a no-op."""
        meta = self._require(notice.digest)
        if meta.erased_at_ms is None:
            with self._changing() as s:
                row = s.get(StoredDocument, notice.digest)
                assert row is not None
                if row.erased_at_ms is None:
                    self._mark_erased(s, row, notice)
        # The keys are gone once the transaction committed; the ciphertext goes now (or at the next sweep).
        self.blobs.delete(notice.digest)
        return self._require(notice.digest)

    @staticmethod
    def _mark_erased(s: Session, row: StoredDocument, notice: ErasureNotice) -> None:
        """In a `_changing` transaction."""
        s.execute(delete(DocumentKeyWrap).where(DocumentKeyWrap.digest == row.digest))
        s.execute(delete(DocumentKey).where(DocumentKey.digest == row.digest))
        row.erased_at_ms = int(time.time() * 1000)
        row.erased_by = notice.account
        row.erasure_reason = notice.reason or None
        row.erasure_notice = orjson.dumps(notice.to_json()).decode()
        s.add(DocumentFeedEntry(digest=bytes(row.digest)))

    def seal_legacy_keys(self) -> int:
        """Wrap each key kept in the clear before migration 0008 for its document's readers, then
        delete it. Keys whose owner has no encryption key yet stay (and are counted as left)."""
        with self.db.session() as s:
            legacy = [(bytes(d), bytes(k)) for d, k in s.execute(select(DocumentKey.digest, DocumentKey.key)).all()]
        left = 0
        for digest, key in legacy:
            meta = self._require(digest)
            try:
                keys, _missing = self.recipients(meta.owner_org, meta.readers, meta.reader_roles)
            except NoEncryptionKey:
                left += 1
                continue
            with self._changing() as s:
                for org, public in keys.items():
                    if s.get(DocumentKeyWrap, (digest, org)) is None:
                        s.add(DocumentKeyWrap(digest=digest, org_id=org, wrapped=wrap_key(key, public, digest, org)))
                s.execute(delete(DocumentKey).where(DocumentKey.digest == digest))
                s.add(DocumentFeedEntry(digest=digest))
        return left

    # --- reading ------------------------------------------------------------------------------

    def meta(self, digest: bytes) -> DocumentMeta | None:
        with self.db.session() as s:
            row = s.get(StoredDocument, digest)
            if row is None:
                return None
            sealed_for = s.scalars(select(DocumentKeyWrap.org_id).where(DocumentKeyWrap.digest == digest)).all()
            return _meta(row, sealed_for)

    def _require(self, digest: bytes) -> DocumentMeta:
        found = self.meta(digest)
        if found is None:
            raise DocumentNotFound(digest)
        return found

    def status(self, digest: str) -> DocumentState:
        """available / erased / not_held for ``sha256:<hex>`` (the passport's DocumentStatus hook)."""
        try:
            raw = parse_digest(digest)
        except DocumentInvalid:
            return "not_held"
        with self.db.connect() as conn:  # one indexed read per passport document (not the whole metadata)
            held = _ERASED_AT.rows(conn, {"digest": raw})
        if not held:
            return "not_held"
        return "erased" if held[0][0] is not None else "available"

    def envelope(self, digest: bytes, org_id: int) -> tuple[DocumentMeta, bytes, bytes]:
        """(metadata, ciphertext, the key wrapped for `org_id`): what that organisation opens itself."""
        meta = self._require(digest)
        if meta.erased_at_ms is not None:
            raise DocumentErased(digest, meta.erased_at_ms)
        with self.db.session() as s:
            wrapped = s.scalar(select(DocumentKeyWrap.wrapped).where(DocumentKeyWrap.digest == digest, DocumentKeyWrap.org_id == org_id))
        blob = self.blobs.get(digest)
        if wrapped is None or blob is None:
            raise DocumentCorrupt(digest, f"its ciphertext or the key wrapped for organisation {org_id} is missing")
        return meta, blob, bytes(wrapped)

    def read(self, digest: bytes, org_id: int) -> tuple[DocumentMeta, bytes]:
        """The plaintext for a reader of `org_id`, when this node holds that organisation's keystore."""
        if self.keystore is None or self.keystore.org_id != org_id:
            self._require(digest)
            raise SealedForReader(digest, org_id)
        meta, blob, wrapped = self.envelope(digest, org_id)
        return meta, decrypt(unwrap_key(wrapped, self.keystore.private_key, digest, org_id), blob, digest)

    # --- the replication feed -----------------------------------------------------------------

    def feed(self, after: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The changes after position `after` (each document once, in its current state) and the last position read."""
        with self.db.session() as s:
            rows = s.execute(
                select(DocumentFeedEntry.seq, DocumentFeedEntry.digest).where(DocumentFeedEntry.seq > after)
                .order_by(DocumentFeedEntry.seq).limit(limit)
            ).all()
        entries: dict[bytes, dict[str, Any]] = {}
        last = after
        for seq, digest in rows:
            last = int(seq)
            entry = self._feed_entry(bytes(digest))
            if entry is not None:
                entries.pop(bytes(digest), None)
                entries[bytes(digest)] = {"seq": last, **entry}
        return list(entries.values()), last

    def _feed_entry(self, digest: bytes) -> dict[str, Any] | None:
        meta = self.meta(digest)
        with self.db.session() as s:
            proof = s.scalar(select(StoredDocument.upload_proof).where(StoredDocument.digest == digest))
        if meta is None or proof is None:
            return None  # not uploaded through a node that keeps the proof: peers could not check its owner
        body: dict[str, Any] = {
            "digest": digest_text(digest), "documentType": meta.document_type, "mediaType": meta.media_type, "size": meta.size,
            "ownerOrg": meta.owner_org, "uploadedBy": meta.uploaded_by, "createdAtMs": meta.created_at_ms,
            "policy": {"organisations": list(meta.readers), "roles": list(meta.reader_roles)}, "status": meta.status,
            "upload": orjson.loads(proof),
        }
        if meta.erasure_notice is not None:
            body["erasure"] = meta.erasure_notice.to_json()
            return body
        with self.db.session() as s:
            wraps = s.execute(select(DocumentKeyWrap.org_id, DocumentKeyWrap.wrapped).where(DocumentKeyWrap.digest == digest)).all()
        blob = self.blobs.get(digest)
        if blob is None or not wraps:
            return None  # not sealed (yet): a legacy document, or a blob lost to a crash
        body["ciphertext"] = base64.b64encode(blob).decode()
        body["keys"] = {str(org): base64.b64encode(bytes(w)).decode() for org, w in wraps}
        return body

    def import_sealed(self, entry: dict[str, Any]) -> bool:
        """Store a sealed document a peer serves (its ciphertext and wrapped keys, as they are:
        this node cannot open them unless it holds a reader's keystore). False if already held or erased."""
        try:
            digest = parse_digest(str(entry["digest"]))
            blob = base64.b64decode(str(entry["ciphertext"]), validate=True)
            wraps = {int(org): base64.b64decode(str(w), validate=True) for org, w in dict(entry["keys"]).items()}
            policy = dict(entry.get("policy") or {})
            row = StoredDocument(
                digest=digest, document_type=str(entry["documentType"]), media_type=str(entry["mediaType"]), size=int(entry["size"]),
                owner_org=int(entry["ownerOrg"]), uploaded_by=to_checksum_address(str(entry["uploadedBy"])),
                readers=orjson.dumps(sorted(int(o) for o in policy.get("organisations", []))).decode(),
                reader_roles=orjson.dumps([str(r) for r in policy.get("roles", [])]).decode(),
                created_at_ms=int(entry["createdAtMs"]), upload_proof=orjson.dumps(entry["upload"]).decode(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DocumentInvalid(f"a sealed feed entry lacks or mangles a field: {exc}", "feed") from None
        if not _DOCUMENT_TYPE.fullmatch(row.document_type) or not _MEDIA_TYPE.fullmatch(row.media_type) or row.size > self.max_bytes:
            raise DocumentInvalid(f"sealed entry {digest_text(digest)}: bad document type, media type or size", "feed")
        if not wraps or row.owner_org not in wraps:
            raise DocumentInvalid(f"sealed entry {digest_text(digest)} carries no key for its owner", "feed")
        if self.meta(digest) is not None:
            return False
        return self._insert(row, blob, wraps)

    def import_erasure(self, entry: dict[str, Any], notice: ErasureNotice) -> bool:
        """Apply a verified erasure a peer passes on; for a document never seen here, keep its
        hash as erased so a late copy from a lagging peer is refused. True if it changed anything."""
        meta = self.meta(notice.digest)
        if meta is not None:
            if meta.erased_at_ms is not None:
                return False
            self.erase(notice)
            return True
        try:
            row = StoredDocument(
                digest=notice.digest, document_type=str(entry["documentType"]), media_type=str(entry["mediaType"]), size=int(entry["size"]),
                owner_org=int(entry["ownerOrg"]), uploaded_by=to_checksum_address(str(entry["uploadedBy"])),
                readers="[]", reader_roles="[]", created_at_ms=int(entry["createdAtMs"]), upload_proof=orjson.dumps(entry["upload"]).decode(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DocumentInvalid(f"an erased feed entry lacks or mangles a field: {exc}", "feed") from None
        try:
            with self._changing() as s:
                s.add(row)
                s.flush()
                self._mark_erased(s, row, notice)
        except IntegrityError:
            return self.import_erasure(entry, notice)
        return True

    def sweep(self, min_age: float = 300.0) -> int:
        """Delete ciphertext left behind by a crash: of erased documents, and of unknown ones
        older than `min_age` seconds (younger ones may be uploads in flight). Returns the count."""
        removed = 0
        now = time.time()
        for digest, written in list(self.blobs.digests()):
            meta = self.meta(digest)
            if (meta is not None and meta.erased_at_ms is not None) or (meta is None and now - written >= min_age):
                self.blobs.delete(digest)
                removed += 1
        return removed
