"""EIP-712 attestations over EPCIS events, and the secp256k1/keccak primitives they use.

An attestation is the attesting account's EIP-712 signature over

    Attestation(bytes32 eventHash,bytes32 subject,uint64 eventTime)

with the domain ``{name: "Waymark", version: "1", chainId, verifyingContract}`` where
``verifyingContract`` is the ProvenanceRegistry. ``eventHash`` is the 32-byte CBV 2.0 event
digest (:func:`node.protocol.event_hash.event_digest`), ``subject`` is
``keccak256(utf8(canonical Digital Link URI of the event's primary object))`` and
``eventTime`` the event time in unix seconds.

Ingest verifies thousands of these per second, so the digest is computed by hand from a
precomputed domain separator and type hash. The signature primitives (keccak, secp256k1,
EIP-712 domain) are :mod:`node.protocol.crypto`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NewType

from node.protocol.crypto import (
    Address,
    PrivateKeyLike,
    address_of,
    domain_separator,
    keccak256,
    parse_signature,
    recover_digest,
    sign_digest,
    to_checksum_address,
)
from node.protocol.event_hash import hash_from_digest, primary_object_id, record_digest, unix_seconds

ATTESTATION_TYPE = "Attestation(bytes32 eventHash,bytes32 subject,uint64 eventTime)"
ATTESTATION_TYPEHASH = keccak256(ATTESTATION_TYPE.encode("ascii"))
DOMAIN_NAME = "Waymark"
DOMAIN_VERSION = "1"

EventDigest = NewType("EventDigest", bytes)
Subject = NewType("Subject", bytes)


@dataclass(frozen=True)
class AttestationDomain:
    """The EIP-712 domain of attestations: one chain, one ProvenanceRegistry."""

    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "verifying_contract", to_checksum_address(self.verifying_contract))
        object.__setattr__(
            self,
            "_separator",
            domain_separator(DOMAIN_NAME, DOMAIN_VERSION, self.chain_id, self.verifying_contract),
        )

    @property
    def separator(self) -> bytes:
        """The precomputed EIP-712 domain separator."""
        return self._separator  # type: ignore[attr-defined, no-any-return]

    def as_eip712(self) -> dict[str, Any]:
        """The domain as an EIP-712 JSON object (for wallets, eth_account, the browser)."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


def _check_fields(event_digest: bytes, subject: bytes, event_time: int) -> None:
    if len(event_digest) != 32:
        raise ValueError(f"eventHash has 32 bytes, got {len(event_digest)}")
    if len(subject) != 32:
        raise ValueError(f"subject has 32 bytes, got {len(subject)}")
    if not 0 <= event_time < 2**64:
        raise ValueError(f"eventTime does not fit uint64: {event_time}")


def attestation_digest(
    domain: AttestationDomain, event_digest: bytes, subject: bytes, event_time: int
) -> bytes:
    """Return the 32-byte EIP-712 digest that an attester signs."""
    _check_fields(event_digest, subject, event_time)
    struct_hash = keccak256(
        ATTESTATION_TYPEHASH + event_digest + subject + event_time.to_bytes(32, "big")
    )
    return keccak256(b"\x19\x01" + domain.separator + struct_hash)


def attestation_typed_data(
    domain: AttestationDomain, event_digest: bytes, subject: bytes, event_time: int
) -> dict[str, Any]:
    """The attestation as an EIP-712 JSON payload (``eth_signTypedData_v4`` shape)."""
    _check_fields(event_digest, subject, event_time)
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Attestation": [
                {"name": "eventHash", "type": "bytes32"},
                {"name": "subject", "type": "bytes32"},
                {"name": "eventTime", "type": "uint64"},
            ],
        },
        "primaryType": "Attestation",
        "domain": domain.as_eip712(),
        "message": {
            "eventHash": "0x" + event_digest.hex(),
            "subject": "0x" + subject.hex(),
            "eventTime": event_time,
        },
    }


@dataclass(frozen=True)
class SignedAttestation:
    """One attester's signature over one event."""

    event_digest: bytes
    subject: bytes
    event_time: int
    signature: bytes
    attester: Address

    @property
    def signature_hex(self) -> str:
        return "0x" + self.signature.hex()

    @property
    def event_hash(self) -> str:
        """The event id, ``ni:///sha-256;<hex>?ver=CBV2.0``."""
        return hash_from_digest(self.event_digest)


def subject_hash(canonical_id: str) -> bytes:
    """``keccak256(utf8(canonical id))`` - the attestation subject of an object id."""
    return keccak256(canonical_id.encode("utf-8"))


def event_subject(event: Mapping[str, Any], context: Any = None) -> bytes:
    """The attestation subject of an event: the hash of its primary object's canonical id."""
    return subject_hash(primary_object_id(event, context))


def event_unix_time(event: Mapping[str, Any]) -> int:
    """The event's ``eventTime`` as unix seconds (fractions dropped)."""
    return unix_seconds(event["eventTime"])


def sign_attestation_fields(
    private_key: PrivateKeyLike,
    domain: AttestationDomain,
    event_digest: bytes,
    subject: bytes,
    event_time: int,
) -> SignedAttestation:
    """Sign precomputed attestation fields."""
    address = address_of(private_key)
    digest = attestation_digest(domain, event_digest, subject, event_time)
    signature = sign_digest(private_key, digest)
    return SignedAttestation(bytes(event_digest), bytes(subject), event_time, signature, address)


def sign_attestation(
    private_key: PrivateKeyLike,
    domain: AttestationDomain,
    event: Mapping[str, Any],
    context: Any = None,
) -> SignedAttestation:
    """Hash an EPCIS event (CBV 2.0), derive its subject and time, and sign the attestation.

    ``context`` is the enclosing document's ``@context`` when the event carries none itself.
    An error declaration is signed under its record id (``event_hash.record_digest``), not
    under the hash it shares with the event it corrects.
    """
    return sign_attestation_fields(
        private_key,
        domain,
        record_digest(event, context),
        event_subject(event, context),
        event_unix_time(event),
    )


def recover_attester(
    domain: AttestationDomain,
    event_digest: bytes,
    subject: bytes,
    event_time: int,
    signature: bytes | str,
) -> Address:
    """Return the account whose signature this is, or raise SignatureError."""
    return recover_digest(
        attestation_digest(domain, event_digest, subject, event_time), parse_signature(signature)
    )
