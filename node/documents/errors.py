"""Errors of the document store; the routes map each to its HTTP status and stable `code`."""

from __future__ import annotations

from node.errors import WaymarkError


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


class SealedForReader(DocumentError):
    """The reader is authorised but this node does not hold its organisation's private key."""

    code = "sealed"
    status = 409

    def __init__(self, digest: bytes, org_id: int) -> None:
        super().__init__(
            f"document sha256:{digest.hex()} is sealed for organisation {org_id}, whose private key this node does not hold: "
            f"GET /documents/sha256:{digest.hex()}/sealed and open it with that organisation's keystore"
        )


class NoEncryptionKey(DocumentError):
    code = "no_encryption_key"
    status = 422

    def __init__(self, org_id: int) -> None:
        super().__init__(
            f"organisation {org_id} has published no document-encryption key (NodeRecord.encryptionKey in the registry), "
            "so nothing can be sealed for it"
        )


class DocumentCorrupt(DocumentError):
    code = "document_corrupt"
    status = 500

    def __init__(self, digest: bytes, why: str) -> None:
        super().__init__(f"document sha256:{digest.hex()} cannot be decrypted: {why}")


class KeystoreError(DocumentError):
    code = "keystore_error"
    status = 500
