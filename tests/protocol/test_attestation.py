"""EIP-712 attestations: digest and signature equal eth_account's, strict recovery, speed."""

from __future__ import annotations

import os
import time

import pytest
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data

from node.protocol import epcis
from node.protocol.attestation import (
    ATTESTATION_TYPE,
    AttestationDomain,
    attestation_digest,
    attestation_typed_data,
    event_subject,
    recover_attester,
    sign_attestation,
    sign_attestation_fields,
    subject_hash,
)
from node.protocol.crypto import (
    SECP256K1_N,
    InvalidKey,
    SignatureError,
    address_of,
    keccak256,
    to_checksum_address,
)
from node.protocol.event_hash import event_digest, event_hash, primary_object_id
from node.protocol.gs1 import UnitId
from node.protocol.event_hash import unix_seconds
from node.protocol.timestamps import parse_timestamp

REGISTRY = "0x5fbdb2315678afecb367f032d93f642f64180aa3"


def eip191_digest(message: SignableMessage) -> bytes:
    """What eth_account signs: keccak256(0x19 || version || header || body)."""
    return keccak256(b"\x19" + message.version + message.header + message.body)
DOMAIN = AttestationDomain(31337, REGISTRY)


def test_domain_is_checksummed_and_exposes_the_eip712_json() -> None:
    assert DOMAIN.verifying_contract == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert DOMAIN.as_eip712() == {
        "name": "Waymark",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    }
    assert ATTESTATION_TYPE == "Attestation(bytes32 eventHash,bytes32 subject,uint64 eventTime)"


@pytest.mark.parametrize("trial", range(5))
def test_digest_and_signature_equal_eth_account(trial: int) -> None:
    account = Account.create()
    digest, subject = os.urandom(32), os.urandom(32)
    event_time = int.from_bytes(os.urandom(8), "big")  # any uint64
    domain = AttestationDomain(trial + 1, "0x" + os.urandom(20).hex())
    message = encode_typed_data(full_message=attestation_typed_data(domain, digest, subject, event_time))

    assert attestation_digest(domain, digest, subject, event_time) == eip191_digest(message)

    ours = sign_attestation_fields(account.key, domain, digest, subject, event_time)
    reference = Account.sign_message(message, account.key)
    assert ours.signature == bytes(reference.signature)  # RFC 6979: deterministic
    assert ours.attester == account.address
    assert Account.recover_message(message, signature=ours.signature) == account.address
    assert recover_attester(domain, digest, subject, event_time, ours.signature) == account.address
    assert recover_attester(domain, digest, subject, event_time, ours.signature_hex) == account.address


def test_signing_an_event_binds_its_hash_subject_and_time() -> None:
    account = Account.create()
    unit = UnitId("09506000134352", "SERIAL1234X", "LOT1")
    event = epcis.object_event(
        epcs=[unit], action="ADD", event_time="2024-05-01T10:00:00.999+02:00",
        biz_step="commissioning", disposition="active",
    )
    signed = sign_attestation(account.key, DOMAIN, event)
    assert signed.event_digest == event_digest(event)
    assert signed.event_hash == event_hash(event)
    assert primary_object_id(event) == unit.canonical_uri
    assert signed.subject == subject_hash(unit.canonical_uri) == keccak256(unit.canonical_uri.encode())
    assert signed.subject == event_subject(event)
    assert signed.event_time == 1714550400  # 2024-05-01T08:00:00Z, fraction dropped
    assert recover_attester(DOMAIN, signed.event_digest, signed.subject, signed.event_time,
                            signed.signature) == account.address


@pytest.mark.parametrize(
    "when",
    ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00.9996+02:00", "2024-05-01T09:59:59.999999-05:30",
     "2024-12-31T23:59:59.9999Z"],
)
def test_event_time_is_truncated_unix_seconds_like_parse_timestamp(when: str) -> None:
    assert unix_seconds(when) == int(parse_timestamp(when)[0].timestamp())


def test_another_domain_event_subject_or_time_recovers_someone_else() -> None:
    account = Account.create()
    digest, subject, event_time = os.urandom(32), os.urandom(32), 1_700_000_000
    signature = sign_attestation_fields(account.key, DOMAIN, digest, subject, event_time).signature
    others = [
        (AttestationDomain(1, REGISTRY), digest, subject, event_time),
        (AttestationDomain(31337, "0x" + "22" * 20), digest, subject, event_time),
        (DOMAIN, os.urandom(32), subject, event_time),
        (DOMAIN, digest, os.urandom(32), event_time),
        (DOMAIN, digest, subject, event_time + 1),
    ]
    for domain, d, s, t in others:
        assert recover_attester(domain, d, s, t, signature) != account.address


def test_malleable_or_malformed_signatures_are_rejected() -> None:
    account = Account.create()
    digest, subject, event_time = os.urandom(32), os.urandom(32), 1
    signature = sign_attestation_fields(account.key, DOMAIN, digest, subject, event_time).signature
    assert int.from_bytes(signature[32:64], "big") <= SECP256K1_N // 2  # low s

    high_s = SECP256K1_N - int.from_bytes(signature[32:64], "big")
    flipped_v = 55 - signature[64]  # 27 <-> 28
    malleable = signature[:32] + high_s.to_bytes(32, "big") + bytes([flipped_v])
    with pytest.raises(SignatureError, match="EIP-2"):
        recover_attester(DOMAIN, digest, subject, event_time, malleable)
    with pytest.raises(SignatureError, match="v must be 27 or 28"):
        recover_attester(DOMAIN, digest, subject, event_time, signature[:64] + b"\x01")
    with pytest.raises(SignatureError, match="65 bytes"):
        recover_attester(DOMAIN, digest, subject, event_time, signature[:64])
    with pytest.raises(SignatureError, match="r is out of range"):
        recover_attester(DOMAIN, digest, subject, event_time, bytes(32) + signature[32:])
    with pytest.raises(SignatureError, match="not hex"):
        recover_attester(DOMAIN, digest, subject, event_time, "0xzz")


def test_field_ranges_and_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="uint64"):
        attestation_digest(DOMAIN, bytes(32), bytes(32), 2**64)
    with pytest.raises(ValueError, match="32 bytes"):
        attestation_digest(DOMAIN, bytes(31), bytes(32), 0)
    with pytest.raises(InvalidKey):
        address_of(bytes(32))
    with pytest.raises(InvalidKey):
        address_of(SECP256K1_N.to_bytes(32, "big"))
    key = Account.create()
    assert address_of(key) == address_of(key.key.hex()) == key.address


def test_checksum_addresses_follow_eip55() -> None:
    # test vectors from EIP-55
    for address in ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
                    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"):
        assert to_checksum_address(address.lower()) == address


def test_recovery_speed_is_reported() -> None:
    """Not a timed assertion: prints recoveries per second for the report and the benchmark."""
    account = Account.create()
    fields = [(os.urandom(32), os.urandom(32), 1_700_000_000 + i) for i in range(300)]
    signed = [sign_attestation_fields(account.key, DOMAIN, d, s, t) for d, s, t in fields]
    start = time.perf_counter()
    for item in signed:
        recover_attester(DOMAIN, item.event_digest, item.subject, item.event_time, item.signature)
    elapsed = time.perf_counter() - start
    print(f"\nrecover_attester: {elapsed / len(signed) * 1e6:.1f} us per signature, "
          f"{len(signed) / elapsed:,.0f} per second on one core")
