"""Code issuance signatures: a manufacturer signs the codes it prints.

A manufacturer may sign the code it issues (EIP-712, domain "Waymark code issuance" bound to
the chain id) and append the signature as ``?s=<hex>``; a scanner then recognises offline a
code that was never issued. The signature covers the full id on id.gs1.org *including the
lot*, so that a genuine serial cannot be re-printed under another lot.
"""

from __future__ import annotations

from node.protocol.crypto import (
    Address,
    PrivateKeyLike,
    SignatureError,
    domain_separator,
    keccak256,
    recover_digest,
    sign_digest,
    typed_data_digest,
)
from node.protocol.digital_link import SIGNATURE_PARAM, ParsedLink, parse_digital_link
from node.protocol.gs1 import CANONICAL_RESOLVER, Identifier, UnitId, new_serial

ISSUANCE_DOMAIN_NAME = "Waymark code issuance"
ISSUANCE_DOMAIN_VERSION = "1"
ISSUANCE_TYPE = "CodeIssuance(string unit)"
_ISSUANCE_TYPEHASH = keccak256(ISSUANCE_TYPE.encode("ascii"))


def issuance_digest(identifier: Identifier, chain_id: int) -> bytes:
    """EIP-712 digest of ``CodeIssuance(string unit)`` for this id on this chain.

    The domain has name "Waymark code issuance", version "1" and the chain id, and no
    verifying contract: a code is checked offline against the manufacturer's account.
    """
    separator = domain_separator(ISSUANCE_DOMAIN_NAME, ISSUANCE_DOMAIN_VERSION, chain_id)
    struct_hash = keccak256(_ISSUANCE_TYPEHASH + keccak256(identifier.issuance_uri.encode("utf-8")))
    return typed_data_digest(separator, struct_hash)


def sign_issuance(private_key: PrivateKeyLike, identifier: Identifier, chain_id: int) -> bytes:
    """The manufacturer's 65-byte issuance signature over a code."""
    return sign_digest(private_key, issuance_digest(identifier, chain_id))


def signed_link(identifier: Identifier, signature: bytes, resolver: str = CANONICAL_RESOLVER) -> str:
    """The printable link: the full Digital Link URI with ``?s=<hex signature>``."""
    if len(signature) != 65:
        raise ValueError(f"an issuance signature has 65 bytes, got {len(signature)}")
    return f"{identifier.uri(resolver)}?{SIGNATURE_PARAM}={signature.hex()}"


def issue_unit(
    gtin: str,
    lot: str | None,
    *,
    private_key: PrivateKeyLike | None = None,
    chain_id: int | None = None,
    resolver: str = CANONICAL_RESOLVER,
    serial_bits: int = 72,
) -> tuple[UnitId, str]:
    """Create a unit with a fresh random serial; return it and its printable link.

    With ``private_key`` and ``chain_id`` the link carries the issuance signature.
    """
    unit = UnitId(gtin=gtin, serial=new_serial(serial_bits), lot=lot)
    if private_key is None:
        return unit, unit.uri(resolver)
    if chain_id is None:
        raise ValueError("signing a code needs the chain id")
    return unit, signed_link(unit, sign_issuance(private_key, unit, chain_id), resolver)


def recover_issuer(link: str | ParsedLink, chain_id: int) -> Address | None:
    """The account that signed this link's code, or None if the link carries no signature.

    Raises :class:`InvalidIdentifier` for a malformed link and
    :class:`~node.protocol.crypto.SignatureError` for a signature that recovers nothing.
    """
    parsed = parse_digital_link(link) if isinstance(link, str) else link
    if parsed.signature is None:
        return None
    return recover_digest(issuance_digest(parsed.identifier, chain_id), parsed.signature)


def verify_issuance(link: str | ParsedLink, chain_id: int, issuer: str) -> bool:
    """True if the link carries a valid issuance signature by ``issuer`` for this chain."""
    try:
        recovered = recover_issuer(link, chain_id)
    except SignatureError:
        return False
    return recovered is not None and recovered.lower() == issuer.lower()
