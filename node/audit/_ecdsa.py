"""Lean ECDSA public-key recovery for the audit's hot loop (libsecp256k1 through coincurve's cffi).

The same acceptance rules as node.provenance.attestation.recover_digest (65 bytes, v 27/28,
r in range, low s as EIP-2 wants), without building a PublicKey object per signature; the
address of each public key is computed once per process (attesters are few).
"""

from __future__ import annotations

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from node.provenance.attestation import SECP256K1_N, keccak256

_HALF_N = SECP256K1_N // 2
_CTX = GLOBAL_CONTEXT.ctx
_UNCOMPRESSED = lib.SECP256K1_EC_UNCOMPRESSED
_addresses: dict[bytes, bytes] = {}


def recover_address(digest: bytes, signature: bytes) -> bytes | str:
    """The 20-byte address that signed `digest`, or a string saying why there is none."""
    if len(signature) != 65:
        return f"has {len(signature)} bytes, not 65"
    v = signature[64]
    if v not in (27, 28):
        return f"has v = {v}, not 27 or 28"
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if r == 0 or r >= SECP256K1_N or s == 0 or s > _HALF_N:
        return "has r or s out of range (EIP-2 wants a low s)"
    parsed = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not lib.secp256k1_ecdsa_recoverable_signature_parse_compact(_CTX, parsed, signature[:64], v - 27):
        return "cannot be parsed"
    public = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ecdsa_recover(_CTX, public, parsed, digest):
        return "does not recover to a public key"
    out = ffi.new("unsigned char [65]")
    size = ffi.new("size_t *", 65)
    lib.secp256k1_ec_pubkey_serialize(_CTX, out, size, public, _UNCOMPRESSED)
    key = bytes(ffi.buffer(out, 65))
    address = _addresses.get(key)
    if address is None:
        if len(_addresses) >= 65536:
            _addresses.clear()
        address = _addresses[key] = keccak256(key[1:])[12:]
    return address
