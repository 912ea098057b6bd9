"""secp256k1 and Keccak primitives: keccak256, EIP-55 addresses, private keys, 65-byte
signatures (sign, recover, parse) and the EIP-712 domain separator and digest.

These are what every signed thing in Waymark is built from (attestations, code issuance,
request and document signatures); they know nothing of events or identifiers. Signing and
recovery call libsecp256k1 through ``coincurve`` directly, because ingest recovers thousands
of signatures per second. Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28} and
a low ``s`` (EIP-2), the form OpenZeppelin's ``ECDSA.recover`` accepts; anything else is
rejected rather than normalised, so that one message has exactly one valid signature per key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NewType, Protocol, Union

import coincurve
from Crypto.Hash import keccak

from node.errors import WaymarkError

Address = NewType("Address", str)
"""An EIP-55 checksummed account address, ``0x`` + 40 hex digits."""

# secp256k1 group order; s above half of it is the malleable twin of a valid signature.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2


class SignatureError(WaymarkError):
    """A signature is malformed or does not recover to an account."""

    code = "bad_signature"

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"invalid signature: {problem}")


class InvalidKey(WaymarkError):
    """A private key is not a valid secp256k1 scalar."""

    code = "invalid_key"

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid private key: {problem}")


# --- keccak256 ----------------------------------------------------------------------------
# Hot in Merkle building (3 hashes per leaf) and in recovery. safe-pysha3 (a pinned
# dependency) costs ~0.7 us per hash; pycryptodome's public keccak object (~8 us) is the
# fallback where safe-pysha3 cannot be installed.

try:  # pragma: no branch
    from sha3 import keccak_256 as _pysha3_keccak  # safe-pysha3
except ImportError:  # pragma: no cover - depends on the environment
    _pysha3_keccak = None


def _keccak256_pycryptodome(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def _keccak256_pysha3(data: bytes) -> bytes:
    return _pysha3_keccak(data).digest()  # type: ignore[no-any-return]


keccak256 = _keccak256_pysha3 if _pysha3_keccak is not None else _keccak256_pycryptodome
"""Return the 32-byte Keccak-256 hash (Ethereum's ``keccak256``) of ``data``."""


# --- addresses and keys -------------------------------------------------------------------


def to_checksum_address(address: str | bytes) -> Address:
    """Return the EIP-55 checksummed form of a 20-byte address (bytes or hex)."""
    if isinstance(address, (bytes, bytearray)):
        if len(address) != 20:
            raise ValueError(f"an address has 20 bytes, got {len(address)}")
        hex_lower = bytes(address).hex()
    else:
        text = address[2:] if address[:2] in ("0x", "0X") else address
        if len(text) != 40:
            raise ValueError(f"an address has 40 hex digits, got {address!r}")
        hex_lower = text.lower()
        bytes.fromhex(hex_lower)  # raises ValueError on non-hex
    return _checksummed(hex_lower)


@lru_cache(maxsize=4096)
def _checksummed(hex_lower: str) -> Address:
    # Remembered: a network has few accounts and every verified event names one (tens of us each).
    nibbles = keccak256(hex_lower.encode("ascii")).hex()
    return Address(
        "0x"
        + "".join(
            char.upper() if char.isalpha() and int(nibbles[i], 16) >= 8 else char
            for i, char in enumerate(hex_lower)
        )
    )


def address_bytes(address: str) -> bytes:
    """Return the 20 raw bytes of a hex address (checksum not enforced)."""
    text = address[2:] if address[:2] in ("0x", "0X") else address
    if len(text) != 40:
        raise ValueError(f"an address has 40 hex digits, got {address!r}")
    return bytes.fromhex(text)


class _HasKey(Protocol):
    @property
    def key(self) -> bytes: ...


PrivateKeyLike = Union[bytes, str, _HasKey]
"""32 raw bytes, a hex string (with or without 0x), or an eth_account ``LocalAccount``."""


def _private_key_bytes(private_key: PrivateKeyLike) -> bytes:
    raw: Any = private_key
    if not isinstance(raw, (bytes, bytearray, str)) and hasattr(raw, "key"):
        raw = raw.key
    if isinstance(raw, str):
        text = raw[2:] if raw[:2] in ("0x", "0X") else raw
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise InvalidKey("not hex") from None
    key = bytes(raw)
    if len(key) != 32:
        raise InvalidKey(f"expected 32 bytes, got {len(key)}")
    scalar = int.from_bytes(key, "big")
    if not 0 < scalar < SECP256K1_N:
        raise InvalidKey("out of range for secp256k1")
    return key


_key_cache: dict[bytes, tuple[coincurve.PrivateKey, Address]] = {}


def _signer(private_key: PrivateKeyLike) -> tuple[coincurve.PrivateKey, Address]:
    raw = _private_key_bytes(private_key)
    cached = _key_cache.get(raw)
    if cached is None:
        key = coincurve.PrivateKey(raw)
        public = key.public_key.format(compressed=False)[1:]
        cached = (key, to_checksum_address(keccak256(public)[12:]))
        if len(_key_cache) < 1024:  # a node holds few keys; bound it anyway
            _key_cache[raw] = cached
    return cached


def address_of(private_key: PrivateKeyLike) -> Address:
    """Return the checksummed account address of a private key."""
    return _signer(private_key)[1]


# --- signing and recovery -----------------------------------------------------------------


def sign_digest(private_key: PrivateKeyLike, digest: bytes) -> bytes:
    """Sign a 32-byte digest; return 65 bytes ``r || s || v`` (v = 27/28, low s)."""
    if len(digest) != 32:
        raise ValueError(f"a digest has 32 bytes, got {len(digest)}")
    key, _ = _signer(private_key)
    compact = key.sign_recoverable(digest, hasher=None)  # libsecp256k1 always emits low s
    return compact[:64] + bytes((compact[64] + 27,))


def recoverable_form(signature: bytes) -> bytes:
    """`r || s || recid` of a 65-byte `r || s || v` signature, or SignatureError (length, v 27/28,
    r in range, low s as EIP-2 wants): the acceptance rules of every recovery here."""
    if len(signature) != 65:
        raise SignatureError(f"expected 65 bytes, got {len(signature)}")
    v = signature[64]
    if v not in (27, 28):
        raise SignatureError(f"v must be 27 or 28, got {v}")
    s = int.from_bytes(signature[32:64], "big")
    if s == 0 or s > _HALF_N:
        raise SignatureError("s is zero or not in the lower half of the curve order (EIP-2)")
    r = int.from_bytes(signature[:32], "big")
    if r == 0 or r >= SECP256K1_N:
        raise SignatureError("r is out of range")
    return signature[:64] + bytes((v - 27,))


def recover_account(digest: bytes, signature: bytes) -> bytes:
    """Return the 20 raw bytes of the account that signed ``digest``, or raise SignatureError.

    Ingest and verification recover thousands of signatures from few attesters, so each public
    key's address (a keccak) is computed once.
    """
    if len(digest) != 32:
        raise ValueError(f"a digest has 32 bytes, got {len(digest)}")
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            recoverable_form(signature), digest, hasher=None
        ).format(compressed=False)
    except SignatureError:
        raise
    except Exception as error:  # coincurve raises plain Exception/ValueError
        raise SignatureError(f"does not recover to a public key ({error})") from None
    raw = _address_cache.get(public)
    if raw is None:
        raw = keccak256(public[1:])[12:]
        if len(_address_cache) >= 65536:
            _address_cache.clear()
        _address_cache[public] = raw
    return raw


_address_cache: dict[bytes, bytes] = {}


def recover_digest(digest: bytes, signature: bytes) -> Address:
    """Return the checksummed address that signed ``digest``, or raise SignatureError."""
    raw = recover_account(digest, signature)
    address = _checksum_cache.get(raw)
    if address is None:
        # Attesters are few; EIP-55 costs a keccak and a string rebuild per call otherwise.
        address = to_checksum_address(raw)
        if len(_checksum_cache) >= 65536:
            _checksum_cache.clear()
        _checksum_cache[raw] = address
    return address


_checksum_cache: dict[bytes, Address] = {}


def parse_signature(value: str | bytes) -> bytes:
    """Accept a signature as bytes or hex (with or without 0x); check only its length."""
    if isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise SignatureError("not hex") from None
    else:
        raw = bytes(value)
    if len(raw) != 65:
        raise SignatureError(f"expected 65 bytes, got {len(raw)}")
    return raw


# --- EIP-712 ------------------------------------------------------------------------------

_DOMAIN_TYPE_FULL = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_DOMAIN_TYPE_NO_CONTRACT = b"EIP712Domain(string name,string version,uint256 chainId)"


def domain_separator(
    name: str, version: str, chain_id: int, verifying_contract: str | None = None
) -> bytes:
    """Return the EIP-712 domain separator (hashStruct of EIP712Domain)."""
    if chain_id < 0 or chain_id >= 2**256:
        raise ValueError(f"chain id out of range: {chain_id}")
    parts = [
        keccak256(_DOMAIN_TYPE_FULL if verifying_contract is not None else _DOMAIN_TYPE_NO_CONTRACT),
        keccak256(name.encode("utf-8")),
        keccak256(version.encode("utf-8")),
        chain_id.to_bytes(32, "big"),
    ]
    if verifying_contract is not None:
        parts.append(b"\x00" * 12 + address_bytes(verifying_contract))
    return keccak256(b"".join(parts))


def typed_data_digest(domain_separator_: bytes, struct_hash: bytes) -> bytes:
    """Return ``keccak256(0x1901 || domainSeparator || structHash)``."""
    return keccak256(b"\x19\x01" + domain_separator_ + struct_hash)
