"""Errors of the scan log, one-time claim codes and the salted device hash.

A claim code is printed inside a unit's packaging; only a hash of it over the unit's canonical
id is stored (registered by the manufacturer). A device is kept only as a salted 16-byte hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from node.protocol.timestamps import iso_ms
from node.errors import WaymarkError


class ScanError(WaymarkError):
    code = "scan_error"


class ClaimRejected(ScanError):
    """An ownership claim that cannot be accepted; `reason` is a stable code."""

    code = "claim_rejected"

    def __init__(self, unit_key: str, reason: str, detail: str) -> None:
        self.unit_key, self.reason = unit_key, reason
        super().__init__(f"cannot claim {unit_key}: {detail}")


class AlreadyClaimed(ClaimRejected):
    code = "already_claimed"

    def __init__(self, unit_key: str, claimed_at_ms: int) -> None:
        self.claimed_at_ms = claimed_at_ms
        super().__init__(unit_key, "already_claimed", f"it was already claimed at {iso_ms(claimed_at_ms)}")


class AlreadyDecommissioned(ScanError):
    code = "already_decommissioned"

    def __init__(self, unit_key: str, at_ms: int) -> None:
        self.unit_key, self.at_ms = unit_key, at_ms
        super().__init__(f"{unit_key} was already decommissioned at {iso_ms(at_ms)}")


class InvalidClaimCode(ScanError):
    code = "invalid_claim_code"

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid claim code: {problem}")


_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_CODE_ALIASES = str.maketrans({"I": "1", "L": "1", "O": "0"})
CLAIM_CODE_CHARS = 16  # 80 bits


def new_claim_code() -> str:
    """A fresh one-time code to print inside a unit's packaging (80 random bits, XXXX-XXXX-XXXX-XXXX)."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(CLAIM_CODE_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, CLAIM_CODE_CHARS, 4))


def normalize_claim_code(code: str) -> str:
    """Upper-case, without separators, with look-alike letters read as digits."""
    text = "".join(ch for ch in code.upper() if ch not in " -_").translate(_CODE_ALIASES)
    if len(text) != CLAIM_CODE_CHARS or any(ch not in _CODE_ALPHABET for ch in text):
        raise InvalidClaimCode(f"expected {CLAIM_CODE_CHARS} characters of 0-9 and A-Z (no U)")
    return text


def claim_code_hash(unit_key: str, code: str) -> bytes:
    """What is stored of a claim code: SHA-256 over a label, the unit's canonical id and the code."""
    return hashlib.sha256(b"waymark-claim-code-v1\x00" + unit_key.encode() + b"\x00" + normalize_claim_code(code).encode()).digest()


def device_hash(salt: bytes, device_id: str) -> bytes:
    """The salted 16-byte hash under which a device's scans are kept."""
    return hmac.new(salt, b"device\x00" + device_id.encode("utf-8", "replace"), hashlib.sha256).digest()[:16]


