"""Lean ECDSA public-key recovery for the audit's hot loop (libsecp256k1 through coincurve's cffi).

The acceptance rules are node.provenance.attestation's (recoverable_form); this only skips
building a PublicKey object per signature, and computes the address of each public key once
per process (attesters are few).
"""

from __future__ import annotations

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from node.provenance.attestation import SignatureError, keccak256, recoverable_form

_CTX = GLOBAL_CONTEXT.ctx
_UNCOMPRESSED = lib.SECP256K1_EC_UNCOMPRESSED
_addresses: dict[bytes, bytes] = {}


def recover_address(digest: bytes, signature: bytes) -> bytes | str:
    """The 20-byte address that signed `digest`, or a string saying why there is none."""
    try:
        compact = recoverable_form(signature)
    except SignatureError as error:
        return error.problem
    parsed = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not lib.secp256k1_ecdsa_recoverable_signature_parse_compact(_CTX, parsed, compact[:64], compact[64]):
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
