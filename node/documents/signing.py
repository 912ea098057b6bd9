"""Signed document requests and erasure notices (EIP-712, domain "Waymark documents").

Requests
--------
The caller signs

    domain  {name: "Waymark documents", version: "2", chainId, verifyingContract: ConsortiumRegistry}
    DocumentRequest(string action,bytes32 digest,uint64 timestamp,string audience)

with `action` one of upload / read / erase / replicate, `digest` the document's SHA-256 (for an
upload, of the body sent: the signature covers the content; for reads that are not about one
document, e.g. an EPCIS query or the sealed feed, the SHA-256 of "<METHOD> <path?query>"),
`timestamp` unix seconds within `max_age` of the server's clock, and `audience` the public
base URL of the node the request is meant for (its `WAYMARK_NODE_PUBLIC_URL`), so that a
request signed for one node is refused by every other. Headers: `Waymark-Account`,
`Waymark-Timestamp`, `Waymark-Signature`, `Waymark-Audience`. Replaying a signature at the
same node inside its window can only repeat the same action on the same document by the same
account, which changes nothing.

Erasure notices
---------------
An erasure is not addressed to one node: every node applies it and passes it on. The owner
(an account of the document's organisation, or an OPERATOR) signs

    DocumentErasure(bytes32 digest,uint64 timestamp,string reason)

in the same domain; nodes keep the notice beside the hash and serve it in their sealed feed.
Replaying it changes nothing: erasure is final.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from node.documents.errors import DocumentInvalid, Unauthenticated
from node.protocol.audience import WrongAudience, check_audience, normalise_audience
from node.protocol.crypto import (
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

Action = Literal["upload", "read", "erase", "replicate"]

DOMAIN_NAME = "Waymark documents"
DOMAIN_VERSION = "2"
REQUEST_TYPE = "DocumentRequest(string action,bytes32 digest,uint64 timestamp,string audience)"
ERASURE_TYPE = "DocumentErasure(bytes32 digest,uint64 timestamp,string reason)"
_REQUEST_TYPEHASH = keccak256(REQUEST_TYPE.encode())
_ERASURE_TYPEHASH = keccak256(ERASURE_TYPE.encode())
ACCOUNT_HEADER = "waymark-account"
TIMESTAMP_HEADER = "waymark-timestamp"
SIGNATURE_HEADER = "waymark-signature"
AUDIENCE_HEADER = "waymark-audience"
ACTIONS: tuple[Action, ...] = ("upload", "read", "erase", "replicate")


def _domain(chain_id: int, registry: str) -> bytes:
    return domain_separator(DOMAIN_NAME, DOMAIN_VERSION, chain_id, registry)


def request_digest(chain_id: int, registry: str, action: str, digest: bytes, timestamp: int, audience: str) -> bytes:
    """The EIP-712 digest of a DocumentRequest."""
    struct_hash = keccak256(
        _REQUEST_TYPEHASH + keccak256(action.encode()) + digest + timestamp.to_bytes(32, "big")
        + keccak256(normalise_audience(audience).encode())
    )
    return typed_data_digest(_domain(chain_id, registry), struct_hash)


def sign_document_request(
    private_key: PrivateKeyLike, chain_id: int, registry: str, action: Action, digest: bytes, *, audience: str,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The headers that authenticate one request, as the key's account, to the node at `audience`."""
    when = int(time.time()) if timestamp is None else timestamp
    audience = normalise_audience(audience)
    signature = sign_digest(private_key, request_digest(chain_id, registry, action, digest, when, audience))
    return {
        "Waymark-Account": address_of(private_key), "Waymark-Timestamp": str(when),
        "Waymark-Signature": "0x" + signature.hex(), "Waymark-Audience": audience,
    }


def request_target(scope: Mapping[str, Any]) -> str:
    """The path and query of an ASGI request exactly as sent (what `request_target_digest` covers)."""
    raw = scope.get("raw_path") or str(scope["path"]).encode()
    query = scope.get("query_string") or b""
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def request_target_digest(method: str, target: str) -> bytes:
    """The `digest` of a signed request that is not about one document (an EPCIS query, the
    sealed feed): SHA-256 of "<METHOD> <path and query exactly as sent>"."""
    return hashlib.sha256(f"{method.upper()} {target}".encode()).digest()


def _account_and_time(headers: Any, max_age: int | None, now: float | None) -> tuple[str, int, str]:
    values = {h: (headers.get(h) or "").strip() for h in (ACCOUNT_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)}
    missing = [h for h, v in values.items() if not v]
    if missing:
        raise Unauthenticated(f"missing header(s) {', '.join(missing)}: document requests are signed (see node.documents.signing)", missing[0])
    try:
        account = to_checksum_address(values[ACCOUNT_HEADER])
    except ValueError:
        raise Unauthenticated("Waymark-Account is not an account address", ACCOUNT_HEADER) from None
    stamp = values[TIMESTAMP_HEADER]
    if not stamp.isdigit() or len(stamp) > 12:
        raise Unauthenticated("Waymark-Timestamp must be unix seconds", TIMESTAMP_HEADER)
    timestamp = int(stamp)
    if max_age is not None and abs((time.time() if now is None else now) - timestamp) > max_age:
        raise Unauthenticated(f"the timestamp is more than {max_age} s away from the server's clock", TIMESTAMP_HEADER)
    return account, timestamp, values[SIGNATURE_HEADER]


def verify_document_request(
    chain_id: int, registry: str, action: Action, digest: bytes, headers: Any, *, audience: str, max_age: int | None,
    now: float | None = None,
) -> str:
    """The account that signed this request for this node (`audience`), or Unauthenticated naming the header at fault."""
    account, timestamp, signature = _account_and_time(headers, max_age, now)
    ours = normalise_audience(audience)
    named = (headers.get(AUDIENCE_HEADER) or "").strip()
    if named:  # without the header the signature still covers this node's audience only
        try:
            check_audience(named, ours)
        except WrongAudience as exc:
            raise Unauthenticated(str(exc), AUDIENCE_HEADER) from None
    try:
        recovered = recover_digest(request_digest(chain_id, registry, action, digest, timestamp, ours), parse_signature(signature))
    except SignatureError as error:
        raise Unauthenticated(error.problem, SIGNATURE_HEADER) from None
    if recovered != account:
        raise Unauthenticated(
            f"the signature is not by {account} for {action} of this document at this node "
            "(wrong action, digest, timestamp, audience or chain?)", SIGNATURE_HEADER,
        )
    return account


def upload_proof(headers: Any, audience: str) -> dict[str, Any]:
    """The signed upload request, kept with the document and passed on with its replicas."""
    return {"account": to_checksum_address(str(headers.get(ACCOUNT_HEADER))), "timestamp": int(str(headers.get(TIMESTAMP_HEADER))),
            "audience": normalise_audience(audience), "signature": str(headers.get(SIGNATURE_HEADER)).strip()}


def verify_upload_proof(chain_id: int, registry: str, digest: bytes, proof: Any) -> str:
    """The account that signed the upload of `digest` (at whichever node it was uploaded to)."""
    try:
        headers = {ACCOUNT_HEADER: str(proof["account"]), TIMESTAMP_HEADER: str(proof["timestamp"]),
                   SIGNATURE_HEADER: str(proof["signature"]), AUDIENCE_HEADER: str(proof["audience"])}
    except (KeyError, TypeError):
        raise DocumentInvalid("an upload proof is {account, timestamp, audience, signature}", "upload") from None
    return verify_document_request(chain_id, registry, "upload", digest, headers, audience=headers[AUDIENCE_HEADER], max_age=None)


# --- erasure notices ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureNotice:
    digest: bytes
    account: str
    timestamp: int
    reason: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {"digest": "sha256:" + self.digest.hex(), "account": self.account, "timestamp": self.timestamp,
                "reason": self.reason, "signature": self.signature}

    @classmethod
    def from_json(cls, data: Any) -> "ErasureNotice":
        try:
            digest = bytes.fromhex(str(data["digest"]).removeprefix("sha256:"))
            notice = cls(digest, to_checksum_address(str(data["account"])), int(data["timestamp"]), str(data["reason"]), str(data["signature"]))
        except (KeyError, TypeError, ValueError):
            raise DocumentInvalid("an erasure notice is {digest, account, timestamp, reason, signature}", "erasure") from None
        if len(digest) != 32:
            raise DocumentInvalid("an erasure notice's digest is sha256:<64 hex>", "erasure.digest")
        return notice


def erasure_digest(chain_id: int, registry: str, digest: bytes, timestamp: int, reason: str) -> bytes:
    struct_hash = keccak256(_ERASURE_TYPEHASH + digest + timestamp.to_bytes(32, "big") + keccak256(reason.encode()))
    return typed_data_digest(_domain(chain_id, registry), struct_hash)


def sign_erasure(
    private_key: PrivateKeyLike, chain_id: int, registry: str, digest: bytes, reason: str = "", timestamp: int | None = None
) -> ErasureNotice:
    when = int(time.time()) if timestamp is None else timestamp
    signature = sign_digest(private_key, erasure_digest(chain_id, registry, digest, when, reason))
    return ErasureNotice(digest, address_of(private_key), when, reason, "0x" + signature.hex())


def erasure_headers(notice: ErasureNotice) -> dict[str, str]:
    """The notice as the headers of `DELETE /documents/{digest}` (reason percent-free UTF-8 in its header)."""
    return {"Waymark-Account": notice.account, "Waymark-Timestamp": str(notice.timestamp),
            "Waymark-Signature": notice.signature, "Waymark-Erasure-Reason": notice.reason}


def erasure_from_headers(digest: bytes, headers: Any, *, max_age: int) -> ErasureNotice:
    account, timestamp, signature = _account_and_time(headers, max_age, None)
    return ErasureNotice(digest, account, timestamp, (headers.get("waymark-erasure-reason") or "").strip(), signature)


def verify_erasure(chain_id: int, registry: str, notice: ErasureNotice) -> str:
    """The account that signed the notice (no freshness: a notice is passed on for as long as it takes)."""
    try:
        recovered = recover_digest(
            erasure_digest(chain_id, registry, notice.digest, notice.timestamp, notice.reason), parse_signature(notice.signature)
        )
    except SignatureError as error:
        raise Unauthenticated(error.problem, SIGNATURE_HEADER) from None
    if recovered != notice.account:
        raise Unauthenticated(f"the erasure notice is not signed by {notice.account}", SIGNATURE_HEADER)
    return notice.account
