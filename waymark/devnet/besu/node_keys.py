"""Besu node keys (secp256k1, in Besu's key file format) and enode URLs."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from coincurve import PrivateKey, PublicKey
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from waymark.devnet.besu.errors import BesuConfigError, NodeKeyError

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True)
class NodeKey:
    """A node's public identity. The private key stays in its key file and is never held here."""

    public_key: bytes  # 64 bytes: the uncompressed secp256k1 point without its 0x04 prefix

    @property
    def address(self) -> str:
        return to_checksum_address(keccak(self.public_key)[-20:])

    def enode(self, host: str, port: int) -> str:
        return enode_url(self.public_key, host, port)


def _public_of(secret: bytes) -> NodeKey:
    return NodeKey(PrivateKey(secret).public_key.format(compressed=False)[1:])


def load_or_create_node_key(path: Path) -> tuple[NodeKey, bool]:
    """The node key in `path` (Besu's format: 0x and 64 hex digits), created with mode 0600 if absent.
    Returns (key, created). Existing keys are never replaced: the validator's identity is in the genesis."""
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise NodeKeyError(path, "other users can read it; run `chmod 600` on it (it is the validator's secret)")
        text = path.read_text().strip()
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", text):
            raise NodeKeyError(path, "is not 64 hex digits")
        secret = bytes.fromhex(text.removeprefix("0x"))
        if not 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
            raise NodeKeyError(path, "is not a valid secp256k1 private key")
        return _public_of(secret), False
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        secret = secrets.token_bytes(32)
        if 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
            break
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("0x" + secret.hex())
    return _public_of(secret), True


def enode_url(public_key: bytes, host: str, port: int) -> str:
    return f"enode://{public_key.hex()}@{host}:{port}"


def parse_enode(url: str) -> tuple[bytes, str, int]:
    """(public key, host, port) of an enode URL; the public key is checked to be on the curve."""
    match = re.fullmatch(r"enode://([0-9a-f]{128})@([^:@]+|\[[0-9a-fA-F:]+\]):(\d+)", url)
    if not match:
        raise BesuConfigError(f"not an enode URL: {url!r}")
    public_key = bytes.fromhex(match.group(1))
    PublicKey(b"\x04" + public_key)  # raises if the point is not on secp256k1
    return public_key, match.group(2), int(match.group(3))
