"""Signed requests: how a manufacturer's account authenticates a call, without API keys.

The caller signs EIP-712 typed data

    domain  {name: "Waymark API", version: "1", chainId}
    ApiRequest(string audience,string method,string path,bytes32 bodyHash,uint64 timestamp)

where `audience` is the public base URL of the member node the request is meant for, `path` the
request path with its query string exactly as sent, `bodyHash` the keccak256 of the request
body (of zero bytes for GET) and `timestamp` unix seconds. It sends the headers
`Waymark-Audience`, `Waymark-Account`, `Waymark-Timestamp` and `Waymark-Signature` (0x + 65
bytes). The server first checks the audience names itself (node.protocol.audience: a request
signed for another member's node is refused here, not replayable), then recovers the signer,
checks it is the account named, that the timestamp is within `max_age` seconds of its clock,
and that a write's signature was not seen before; who the account may act for is decided by
the route (its organisation and role on chain).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

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

from node.protocol.audience import WrongAudience, check_audience

from api.errors import Unauthenticated

DOMAIN_NAME = "Waymark API"
DOMAIN_VERSION = "1"
REQUEST_TYPE = "ApiRequest(string audience,string method,string path,bytes32 bodyHash,uint64 timestamp)"
_REQUEST_TYPEHASH = keccak256(REQUEST_TYPE.encode())
AUDIENCE_HEADER = "waymark-audience"
ACCOUNT_HEADER = "waymark-account"
TIMESTAMP_HEADER = "waymark-timestamp"
SIGNATURE_HEADER = "waymark-signature"


def request_digest(chain_id: int, audience: str, method: str, path: str, body: bytes, timestamp: int) -> bytes:
    """The EIP-712 digest a caller signs for one request to the node at `audience`."""
    separator = domain_separator(DOMAIN_NAME, DOMAIN_VERSION, chain_id)
    struct_hash = keccak256(
        _REQUEST_TYPEHASH
        + keccak256(audience.encode())
        + keccak256(method.upper().encode())
        + keccak256(path.encode())
        + keccak256(body)
        + timestamp.to_bytes(32, "big")
    )
    return typed_data_digest(separator, struct_hash)


def sign_request(
    private_key: PrivateKeyLike, chain_id: int, method: str, path: str, body: bytes = b"", timestamp: int | None = None,
    *, audience: str,
) -> dict[str, str]:
    """The headers that authenticate a request as the key's account, for the node at `audience`
    (its public base URL) only (for clients and tests)."""
    when = int(time.time()) if timestamp is None else timestamp
    signature = sign_digest(private_key, request_digest(chain_id, audience, method, path, body, when))
    return {
        "Waymark-Audience": audience,
        "Waymark-Account": address_of(private_key),
        "Waymark-Timestamp": str(when),
        "Waymark-Signature": "0x" + signature.hex(),
    }


@dataclass(frozen=True)
class SignedBy:
    account: str
    timestamp: int


class RequestVerifier:
    """Checks signed-request headers; remembers write signatures for replay protection."""

    def __init__(self, chain_id: int, max_age: int = 300, *, audience: str) -> None:
        self.chain_id = chain_id
        self.max_age = max_age
        self.audience = audience  # this node's public base URL
        self._seen: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def verify(self, method: str, path: str, body: bytes, headers: dict[str, str], *, write: bool) -> SignedBy:
        account_text = headers.get(ACCOUNT_HEADER)
        timestamp_text = headers.get(TIMESTAMP_HEADER)
        signature_text = headers.get(SIGNATURE_HEADER)
        audience = headers.get(AUDIENCE_HEADER, "")
        if not account_text or not timestamp_text or not signature_text or not audience:
            missing = [h for h, v in ((ACCOUNT_HEADER, account_text), (TIMESTAMP_HEADER, timestamp_text),
                                      (SIGNATURE_HEADER, signature_text), (AUDIENCE_HEADER, audience)) if not v]
            raise Unauthenticated(f"missing header(s) {', '.join(missing)}", missing[0])
        try:
            check_audience(audience, self.audience)
        except WrongAudience as error:
            raise Unauthenticated(str(error), AUDIENCE_HEADER) from None
        try:
            account = to_checksum_address(account_text.strip())
        except ValueError:
            raise Unauthenticated("Waymark-Account is not an account address", ACCOUNT_HEADER) from None
        if not timestamp_text.strip().isdigit() or len(timestamp_text.strip()) > 12:
            raise Unauthenticated("Waymark-Timestamp must be unix seconds", TIMESTAMP_HEADER)
        timestamp = int(timestamp_text)
        now = time.time()
        if abs(now - timestamp) > self.max_age:
            raise Unauthenticated(f"the timestamp is more than {self.max_age} s away from the server's clock", TIMESTAMP_HEADER)
        try:
            signature = parse_signature(signature_text.strip())
            recovered = recover_digest(request_digest(self.chain_id, audience, method, path, body, timestamp), signature)
        except SignatureError as error:
            raise Unauthenticated(error.problem, SIGNATURE_HEADER) from None
        if recovered != account:
            raise Unauthenticated("the signature is not by the account named (wrong method, path, body, timestamp or chain?)", SIGNATURE_HEADER)
        if write:
            key = keccak256(signature)
            with self._lock:
                for old, at in list(self._seen.items()):
                    if at < now - 2 * self.max_age:
                        del self._seen[old]
                if key in self._seen:
                    raise Unauthenticated("this signed request was already used; sign it again", SIGNATURE_HEADER)
                self._seen[key] = now
        return SignedBy(account, timestamp)


# --- a buyer's claim by escrow order ----------------------------------------------------------

CLAIM_TYPE = "OwnershipClaim(string unit,uint256 orderId,uint64 issuedAt)"
_CLAIM_TYPEHASH = keccak256(CLAIM_TYPE.encode())


def claim_digest(chain_id: int, unit: str, order_id: int, issued_at: int) -> bytes:
    """EIP-712 digest the buyer's account signs to claim `unit` (its canonical id) by `order_id`."""
    separator = domain_separator(DOMAIN_NAME, DOMAIN_VERSION, chain_id)
    struct_hash = keccak256(_CLAIM_TYPEHASH + keccak256(unit.encode()) + order_id.to_bytes(32, "big") + issued_at.to_bytes(32, "big"))
    return typed_data_digest(separator, struct_hash)


def sign_claim(private_key: PrivateKeyLike, chain_id: int, unit: str, order_id: int, issued_at: int) -> str:
    return "0x" + sign_digest(private_key, claim_digest(chain_id, unit, order_id, issued_at)).hex()
