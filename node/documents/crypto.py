"""Document encryption: one AES-256-GCM key per document, wrapped for each reader organisation.

* **Content.** A fresh 256-bit key per document; AES-256-GCM with a random 96-bit nonce and
  the document's SHA-256 as associated data, so one document's ciphertext cannot be passed
  off as another's. Blob layout: ``WMD1 || nonce || ciphertext+tag``.
* **Key wrapping.** The document key is sealed for each authorised organisation's X25519
  public key (the `encryptionKey` of its registry node record) with HPKE (RFC 9180, base
  mode) as `cryptography` implements it: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
  AES-256-GCM. The HPKE `info` binds the document digest and the organisation id, so a
  wrapped key opens only for that document and that organisation.

No construction of our own: the primitives and their composition are the library's.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.documents.errors import DocumentCorrupt, DocumentInvalid

_BLOB_MAGIC = b"WMD1"
_NONCE_BYTES = 12
_WRAP_INFO = b"Waymark document key v1"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
PUBLIC_KEY_BYTES = 32


def sha256(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


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


def _info(digest: bytes, org_id: int) -> bytes:
    return _WRAP_INFO + digest + org_id.to_bytes(8, "big")


def public_key(raw: bytes) -> X25519PublicKey:
    if len(raw) != PUBLIC_KEY_BYTES or raw == bytes(PUBLIC_KEY_BYTES):
        raise DocumentInvalid(f"an X25519 public key is 32 non-zero bytes, got {len(raw)} bytes", "encryptionKey")
    return X25519PublicKey.from_public_bytes(raw)


def public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


def wrap_key(key: bytes, recipient: bytes, digest: bytes, org_id: int) -> bytes:
    """The document key sealed (HPKE) for organisation `org_id`'s raw X25519 public key."""
    return _SUITE.encrypt(key, public_key(recipient), info=_info(digest, org_id))


def unwrap_key(wrapped: bytes, private: X25519PrivateKey, digest: bytes, org_id: int) -> bytes:
    try:
        return _SUITE.decrypt(wrapped, private, info=_info(digest, org_id))
    except (InvalidTag, ValueError):
        raise DocumentCorrupt(digest, f"the key wrapped for organisation {org_id} does not open with this private key") from None


def open_sealed(blob: bytes, wrapped: bytes, private: X25519PrivateKey, digest: bytes, org_id: int) -> bytes:
    """The plaintext of a sealed document, for the organisation holding `private`."""
    return decrypt(unwrap_key(wrapped, private, digest, org_id), blob, digest)
