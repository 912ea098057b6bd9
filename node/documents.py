"""The encrypted document store: inspection reports, certificates of origin, invoices.

Events never carry documents, only their SHA-256 (`wm:documents`, see
`node.provenance.epcis.document_ref`). The documents themselves are kept here:

* **Encryption.** Each document gets its own random 256-bit key and is encrypted with
  AES-256-GCM (random 96-bit nonce; the digest is the associated data, so a ciphertext
  cannot be passed off as another document's). The ciphertext is written to a blob
  directory; the key and the metadata go to the database (tables `documents` and
  `document_keys`). Neither place alone reveals a document.
* **Erasure** deletes the key and the ciphertext and keeps the metadata row, digest
  included: the anchored event still names the hash, and the store answers that this
  document existed and was erased (the passport shows "erased", not "missing"). An erased
  document cannot be uploaded again.
* **Access** is decided per request from the chain (`ConsortiumRegistry`) by `AccessPolicy`.

Access policy
-------------
Every caller is an account of a member organisation; requests are signed (below).

| action | allowed to |
|---|---|
| upload | an account of an Active organisation holding an attesting role (MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS, ORACLE) |
| read | any account of the uploading organisation; an account of an organisation the uploader named as a reader; an account of an Active organisation holding a role that `READ_ROLES` lists for the document's type |
| erase | any account of the uploading organisation; an OPERATOR (the consortium's handling of erasure requests) |
| status | anyone (digest, type and available/erased only: what the passport shows) |

Signed requests
---------------
The caller signs EIP-712 typed data

    domain  {name: "Waymark documents", version: "1", chainId, verifyingContract: ConsortiumRegistry}
    DocumentRequest(string action,bytes32 digest,uint64 timestamp)

with `action` one of upload / read / erase, `digest` the document's SHA-256 (for an upload,
of the body sent: the signature covers the content) and `timestamp` unix seconds within
`max_age` of the server's clock, and sends the headers `Waymark-Account`,
`Waymark-Timestamp`, `Waymark-Signature`. Replaying a signature inside its window can only
repeat the same action on the same document by the same account, which changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from node.db import Database
from node.db.documents import DocumentKey, StoredDocument
from node.errors import WaymarkError
from node.paths import PROJECT_ROOT
from node.provenance.attestation import (
    PrivateKeyLike,
    SignatureError,
    address_of,
    domain_separator,
    keccak256,
    parse_signature,
    recover_digest,
    sign_digest,
    to_checksum_address,
    typed_data_digest,
)

DocumentState = Literal["available", "erased", "not_held"]
Action = Literal["upload", "read", "erase"]

ATTESTING_ROLES = ("MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE")
READ_ROLES: dict[str, tuple[str, ...]] = {
    "inspection_report": ("INSPECTOR", "MANUFACTURER", "CUSTOMS", "AUDITOR", "ARBITRATOR"),
    "certificate_of_origin": ("CUSTOMS", "MANUFACTURER", "AUDITOR", "ARBITRATOR"),
    "customs_declaration": ("CUSTOMS", "AUDITOR", "ARBITRATOR"),
    "customs_decision": ("CUSTOMS", "AUDITOR", "ARBITRATOR"),
    "commercial_invoice": ("CUSTOMS", "AUDITOR", "ARBITRATOR"),
    "packing_list": ("CARRIER", "CUSTOMS", "AUDITOR", "ARBITRATOR"),
    "bill_of_lading": ("CARRIER", "CUSTOMS", "AUDITOR", "ARBITRATOR"),
}
"""Roles (besides the uploader's organisation and named readers) that may read a document type."""
DEFAULT_READ_ROLES = ("AUDITOR", "ARBITRATOR")
"""Readers of a document type not listed in READ_ROLES."""

_BLOB_MAGIC = b"WMD1"
_NONCE_BYTES = 12
_DOCUMENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class DocumentSettings(BaseSettings):
    """Where the node keeps document ciphertext and how long a signed request stays valid."""

    model_config = SettingsConfigDict(env_prefix="WAYMARK_DOCUMENTS_", env_file=".env", extra="ignore")

    blob_dir: Path = PROJECT_ROOT / "var" / "documents"
    """Folder of the encrypted blobs (keys are in the database, never here)."""

    max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    """Largest document accepted."""

    max_age: int = Field(300, ge=1)
    """Seconds a signed document request stays valid (either side of the server's clock)."""

    membership_ttl: float = Field(5.0, ge=0)
    """Seconds an account's organisation and roles, read from the chain, are reused."""


# --- errors -------------------------------------------------------------------------------


class DocumentError(WaymarkError):
    code = "document_error"
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class DocumentNotFound(DocumentError):
    code = "document_not_found"
    status = 404

    def __init__(self, digest: bytes) -> None:
        super().__init__(f"no document sha256:{digest.hex()} in this store")


class DocumentErased(DocumentError):
    code = "document_erased"
    status = 410

    def __init__(self, digest: bytes, erased_at_ms: int | None) -> None:
        self.digest = digest
        self.erased_at_ms = erased_at_ms
        super().__init__(f"document sha256:{digest.hex()} was erased; only its hash remains")


class DocumentInvalid(DocumentError):
    code = "malformed"
    status = 422


class DocumentTooLarge(DocumentError):
    code = "too_large"
    status = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a document of {size} bytes exceeds the limit of {limit}")


class Unauthenticated(DocumentError):
    code = "unauthenticated"
    status = 401


class AccessDenied(DocumentError):
    code = "forbidden"
    status = 403

    def __init__(self, account: str, action: str, why: str) -> None:
        self.account = account
        super().__init__(f"{account} may not {action} this document: {why}")


class DocumentCorrupt(DocumentError):
    code = "document_corrupt"
    status = 500

    def __init__(self, digest: bytes, why: str) -> None:
        super().__init__(f"document sha256:{digest.hex()} cannot be decrypted: {why}")


# --- digests ------------------------------------------------------------------------------


def sha256(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


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


# --- encryption ---------------------------------------------------------------------------


def encrypt(content: bytes, digest: bytes) -> tuple[bytes, bytes]:
    """(key, blob): a fresh AES-256 key and ``magic || nonce || ciphertext+tag``."""
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE_BYTES)
    return key, _BLOB_MAGIC + nonce + AESGCM(key).encrypt(nonce, content, digest)


def decrypt(key: bytes, blob: bytes, digest: bytes) -> bytes:
    if not blob.startswith(_BLOB_MAGIC) or len(blob) < len(_BLOB_MAGIC) + _NONCE_BYTES + 16:
        raise DocumentCorrupt(digest, "not a Waymark document blob")
    nonce = blob[len(_BLOB_MAGIC) : len(_BLOB_MAGIC) + _NONCE_BYTES]
    try:
        content = AESGCM(key).decrypt(nonce, blob[len(_BLOB_MAGIC) + _NONCE_BYTES :], digest)
    except InvalidTag:
        raise DocumentCorrupt(digest, "authentication failed (wrong key or altered ciphertext)") from None
    if sha256(content) != digest:
        raise DocumentCorrupt(digest, "the plaintext does not hash to the digest")
    return content


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


# --- the store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentMeta:
    digest: bytes
    document_type: str
    media_type: str
    size: int
    owner_org: int
    uploaded_by: str
    readers: tuple[int, ...]
    created_at_ms: int
    erased_at_ms: int | None
    erased_by: str | None
    erasure_reason: str | None

    @property
    def status(self) -> DocumentState:
        return "erased" if self.erased_at_ms is not None else "available"

    def public(self) -> dict[str, Any]:
        """What anyone may see: the hash, the type, available or erased (and when)."""
        body: dict[str, Any] = {"digest": digest_text(self.digest), "documentType": self.document_type, "status": self.status}
        if self.erased_at_ms is not None:
            body["erasedAtMs"] = self.erased_at_ms
        return body


def _meta(row: StoredDocument) -> DocumentMeta:
    return DocumentMeta(
        bytes(row.digest), row.document_type, row.media_type, int(row.size), int(row.owner_org), row.uploaded_by,
        tuple(int(r) for r in orjson.loads(row.readers or "[]")), int(row.created_at_ms),
        row.erased_at_ms, row.erased_by, row.erasure_reason,
    )


class DocumentStore:
    """Encrypted documents: ciphertext in `blobs`, keys and metadata in `db`."""

    def __init__(self, db: Database, blobs: BlobStore, *, max_bytes: int = 20 * 1024 * 1024) -> None:
        self.db = db
        self.blobs = blobs
        self.max_bytes = max_bytes

    def put(
        self,
        content: bytes,
        *,
        document_type: str,
        media_type: str,
        owner_org: int,
        uploaded_by: str,
        readers: Sequence[int] = (),
    ) -> tuple[DocumentMeta, bool]:
        """Store a document; (its metadata, whether it is new). Storing it again changes nothing."""
        if len(content) > self.max_bytes:
            raise DocumentTooLarge(len(content), self.max_bytes)
        if not _DOCUMENT_TYPE.fullmatch(document_type):
            raise DocumentInvalid(f"document type {document_type!r}: lower-case letters, digits and _ (e.g. inspection_report)", "documentType")
        if not _MEDIA_TYPE.fullmatch(media_type):
            raise DocumentInvalid(f"media type {media_type!r} is not type/subtype", "mediaType")
        digest = sha256(content)
        existing = self.meta(digest)
        if existing is None:
            key, blob = encrypt(content, digest)
            try:
                with self.db.write() as s:
                    if s.get(StoredDocument, digest) is None:
                        s.add(StoredDocument(
                            digest=digest, document_type=document_type, media_type=media_type, size=len(content),
                            owner_org=owner_org, uploaded_by=to_checksum_address(uploaded_by),
                            readers=orjson.dumps(sorted({int(r) for r in readers})).decode(),
                            created_at_ms=int(time.time() * 1000),
                        ))
                        s.flush()
                        s.add(DocumentKey(digest=digest, key=key))
                        s.flush()
                        # Written inside the transaction: a concurrent upload of the same content
                        # waits on the row (or fails on the key) and never writes its own blob. A
                        # crash before the commit leaves an orphan blob that `sweep` removes.
                        self.blobs.put(digest, blob)
                        return self._meta_in(s, digest), True
            except IntegrityError:
                pass  # the concurrent upload of the same content won
            existing = self._require(digest)
        if existing.erased_at_ms is not None:
            raise DocumentErased(digest, existing.erased_at_ms)
        return existing, False

    @staticmethod
    def _meta_in(session: Any, digest: bytes) -> DocumentMeta:
        row = session.get(StoredDocument, digest)
        assert row is not None
        return _meta(row)

    def meta(self, digest: bytes) -> DocumentMeta | None:
        with self.db.session() as s:
            row = s.get(StoredDocument, digest)
            return _meta(row) if row is not None else None

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
        found = self.meta(raw)
        return found.status if found is not None else "not_held"

    def read(self, digest: bytes) -> tuple[DocumentMeta, bytes]:
        """The metadata and the plaintext. Raises DocumentNotFound / DocumentErased."""
        meta = self._require(digest)
        if meta.erased_at_ms is not None:
            raise DocumentErased(digest, meta.erased_at_ms)
        with self.db.session() as s:
            key = s.scalar(select(DocumentKey.key).where(DocumentKey.digest == digest))
        blob = self.blobs.get(digest)
        if key is None or blob is None:
            raise DocumentCorrupt(digest, "its key or its ciphertext is missing")
        return meta, decrypt(bytes(key), blob, digest)

    def erase(self, digest: bytes, *, by: str, reason: str | None = None) -> DocumentMeta:
        """Delete key and ciphertext; keep the hash and the fact of erasure. Erasing twice is a no-op."""
        meta = self._require(digest)
        if meta.erased_at_ms is None:
            with self.db.write() as s:
                s.execute(delete(DocumentKey).where(DocumentKey.digest == digest))
                row = s.get(StoredDocument, digest)
                assert row is not None
                if row.erased_at_ms is None:
                    row.erased_at_ms = int(time.time() * 1000)
                    row.erased_by = to_checksum_address(by)
                    row.erasure_reason = reason
        # The key is gone once the transaction committed; the ciphertext goes now (or at the next sweep).
        self.blobs.delete(digest)
        return self._require(digest)

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


# --- signed requests ----------------------------------------------------------------------

DOMAIN_NAME = "Waymark documents"
DOMAIN_VERSION = "1"
REQUEST_TYPE = "DocumentRequest(string action,bytes32 digest,uint64 timestamp)"
_REQUEST_TYPEHASH = keccak256(REQUEST_TYPE.encode())
ACCOUNT_HEADER = "waymark-account"
TIMESTAMP_HEADER = "waymark-timestamp"
SIGNATURE_HEADER = "waymark-signature"
ACTIONS: tuple[Action, ...] = ("upload", "read", "erase")


def request_digest(chain_id: int, registry: str, action: str, digest: bytes, timestamp: int) -> bytes:
    """The EIP-712 digest of a DocumentRequest."""
    separator = domain_separator(DOMAIN_NAME, DOMAIN_VERSION, chain_id, registry)
    struct_hash = keccak256(_REQUEST_TYPEHASH + keccak256(action.encode()) + digest + timestamp.to_bytes(32, "big"))
    return typed_data_digest(separator, struct_hash)


def sign_document_request(
    private_key: PrivateKeyLike, chain_id: int, registry: str, action: Action, digest: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The headers that authenticate one document request as the key's account."""
    when = int(time.time()) if timestamp is None else timestamp
    signature = sign_digest(private_key, request_digest(chain_id, registry, action, digest, when))
    return {"Waymark-Account": address_of(private_key), "Waymark-Timestamp": str(when), "Waymark-Signature": "0x" + signature.hex()}


def verify_document_request(
    chain_id: int, registry: str, action: Action, digest: bytes, headers: Any, *, max_age: int, now: float | None = None
) -> str:
    """The account that signed this request, or Unauthenticated naming the header at fault."""
    values = {h: (headers.get(h) or "").strip() for h in (ACCOUNT_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)}
    missing = [h for h, v in values.items() if not v]
    if missing:
        raise Unauthenticated(f"missing header(s) {', '.join(missing)}: document requests are signed (see node.documents)", missing[0])
    try:
        account = to_checksum_address(values[ACCOUNT_HEADER])
    except ValueError:
        raise Unauthenticated("Waymark-Account is not an account address", ACCOUNT_HEADER) from None
    stamp = values[TIMESTAMP_HEADER]
    if not stamp.isdigit() or len(stamp) > 12:
        raise Unauthenticated("Waymark-Timestamp must be unix seconds", TIMESTAMP_HEADER)
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > max_age:
        raise Unauthenticated(f"the timestamp is more than {max_age} s away from the server's clock", TIMESTAMP_HEADER)
    try:
        recovered = recover_digest(request_digest(chain_id, registry, action, digest, timestamp), parse_signature(values[SIGNATURE_HEADER]))
    except SignatureError as error:
        raise Unauthenticated(error.problem, SIGNATURE_HEADER) from None
    if recovered != account:
        raise Unauthenticated(f"the signature is not by {account} for {action} of this document (wrong action, digest, timestamp or chain?)", SIGNATURE_HEADER)
    return account


# --- membership and policy ----------------------------------------------------------------


@dataclass(frozen=True)
class Membership:
    org_id: int
    active: bool
    roles: frozenset[str]


class MembershipView(Protocol):
    def membership(self, account: str) -> Membership | None: ...


class ChainMembership:
    """An account's organisation, its status and roles, read from the ConsortiumRegistry
    (cached for `ttl` seconds, so a revocation is seen within that time)."""

    def __init__(self, client: Any, registry_address: str, *, ttl: float = 5.0) -> None:
        from node.registry import ROLE_IDS

        self.client = client
        self.contract = client.contract("ConsortiumRegistry", registry_address)
        self.ttl = ttl
        self._roles = ROLE_IDS
        self._cache: dict[str, tuple[float, Membership | None]] = {}
        self._lock = threading.Lock()

    def membership(self, account: str) -> Membership | None:
        account = to_checksum_address(account)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(account)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        fns = self.contract.functions
        org_id = int(self.client.call(fns.organisationOf(account)))
        found: Membership | None = None
        if org_id:
            organisation = self.client.call(fns.organisation(org_id))
            roles = frozenset(self._roles.get(bytes(r), "") for r in self.client.call(fns.rolesOf(org_id))) - {""}
            found = Membership(org_id, int(organisation[4]) == 1, roles)
        with self._lock:
            self._cache[account] = (now, found)
        return found


class AccessPolicy:
    """Decides upload / read / erase for an account (module docstring, 'Access policy')."""

    def __init__(self, members: MembershipView) -> None:
        self.members = members

    def _member(self, account: str, action: str) -> Membership:
        member = self.members.membership(account)
        if member is None:
            raise AccessDenied(account, action, "the account belongs to no member organisation")
        if not member.active:
            raise AccessDenied(account, action, f"organisation {member.org_id} is not active")
        return member

    def check_upload(self, account: str) -> Membership:
        member = self._member(account, "upload")
        if not member.roles & set(ATTESTING_ROLES):
            raise AccessDenied(account, "upload", f"organisation {member.org_id} holds none of {', '.join(ATTESTING_ROLES)}")
        return member

    def check_read(self, account: str, meta: DocumentMeta) -> Membership:
        member = self._member(account, "read")
        if member.org_id == meta.owner_org or member.org_id in meta.readers:
            return member
        allowed = READ_ROLES.get(meta.document_type, DEFAULT_READ_ROLES)
        if member.roles & set(allowed):
            return member
        raise AccessDenied(
            account, "read",
            f"a {meta.document_type} is readable by its uploader's organisation, named readers and {', '.join(allowed)}; "
            f"organisation {member.org_id} holds {', '.join(sorted(member.roles)) or 'no role'}",
        )

    def check_erase(self, account: str, meta: DocumentMeta) -> Membership:
        member = self._member(account, "erase")
        if member.org_id == meta.owner_org or "OPERATOR" in member.roles:
            return member
        raise AccessDenied(account, "erase", "only the uploading organisation or an OPERATOR may erase a document")
