"""Sealed documents: inspection reports, certificates of origin, invoices, customs values.

Events never carry them, only their SHA-256 (`wm:documents`, see
`node.protocol.epcis.document_ref`); what an event may carry is in
node.documents.confidential. The package, by concern:

* `crypto`      AES-256-GCM per document; its key wrapped per organisation (HPKE: X25519, HKDF-SHA256, AES-256-GCM)
* `keys`        organisations' keystores (private key, kept by the organisation) and the key directory (registry)
* `policy`      access tiers: who may upload, open, erase
* `signing`     signed requests (with the node they are meant for) and signed erasure notices
* `storage`     the sealed store: metadata, wrapped keys, ciphertext, erasure, the replication feed
* `replication` reading peers' sealed feeds (ciphertexts, wrapped keys, erasure notices)
* `settings`    WAYMARK_DOCUMENTS_*
"""

from node.documents.confidential import CONFIDENTIAL_FIELDS, confidential_fields
from node.documents.crypto import decrypt, encrypt, open_sealed, sha256, unwrap_key, wrap_key
from node.documents.errors import (
    AccessDenied,
    DocumentCorrupt,
    DocumentErased,
    DocumentError,
    DocumentInvalid,
    DocumentNotFound,
    DocumentTooLarge,
    KeystoreError,
    NoEncryptionKey,
    SealedForReader,
    Unauthenticated,
)
from node.documents.keys import KeyDirectory, OrgKeystore, RegistryKeyDirectory, StaticKeyDirectory
from node.documents.policy import AccessPolicy, ChainMembership, Membership, MembershipView, role_readers
from node.documents.settings import DocumentSettings
from node.documents.signing import (
    ErasureNotice,
    erasure_headers,
    request_target,
    request_target_digest,
    sign_document_request,
    sign_erasure,
    verify_document_request,
    verify_erasure,
)
from node.documents.storage import BlobStore, DocumentMeta, DocumentState, DocumentStore, FileBlobStore, digest_text, parse_digest

__all__ = [
    "AccessDenied", "AccessPolicy", "BlobStore", "CONFIDENTIAL_FIELDS", "ChainMembership", "DocumentCorrupt",
    "DocumentErased", "DocumentError", "DocumentInvalid", "DocumentMeta", "DocumentNotFound", "DocumentSettings", "DocumentState",
    "DocumentStore", "DocumentTooLarge", "ErasureNotice", "FileBlobStore", "KeyDirectory", "KeystoreError", "Membership",
    "MembershipView", "NoEncryptionKey", "OrgKeystore", "RegistryKeyDirectory", "SealedForReader", "StaticKeyDirectory",
    "Unauthenticated", "confidential_fields", "decrypt", "digest_text", "encrypt", "erasure_headers",
    "open_sealed", "parse_digest", "request_target", "request_target_digest", "role_readers", "sha256", "sign_document_request", "sign_erasure", "unwrap_key",
    "verify_document_request", "verify_erasure", "wrap_key",
]
