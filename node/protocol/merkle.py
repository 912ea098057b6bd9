"""Merkle trees laid out exactly like OpenZeppelin's ``StandardMerkleTree`` (npm 1.0.8).

Leaves are ``(bytes32 eventDigest, address attester)``; a leaf hash is
``keccak256(keccak256(abi.encode(eventDigest, attester)))`` (double hashing keeps a leaf from
ever being read as an inner node). Inner nodes hash their two children in ascending byte
order (so proofs carry no left/right flags), leaves are sorted by their hash, and the tree is
the same flat array the npm library builds: ``2n - 1`` nodes, root at 0, children of ``i`` at
``2i + 1`` and ``2i + 2``, the k-th smallest leaf at ``2n - 2 - k``. Proofs therefore verify
with OpenZeppelin's ``MerkleProof.verify`` on chain and with ``StandardMerkleTree.verify`` in
JavaScript, and :meth:`MerkleTree.dump` loads with ``StandardMerkleTree.load``.

The abi encoding of ``(bytes32, address)`` is written by hand (32 bytes, then the address
left-padded to 32): at 100k leaves a generic encoder per leaf would cost seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from node.errors import WaymarkError
from node.protocol.crypto import address_bytes, keccak256

LEAF_ENCODING = ("bytes32", "address")
_PAD = b"\x00" * 12


class MerkleError(WaymarkError):
    """A tree cannot be built or a proof requested (no leaves, bad index, bad node)."""

    code = "merkle_error"

    def __init__(self, problem: str) -> None:
        super().__init__(f"merkle tree: {problem}")


def _address20(attester: str | bytes) -> bytes:
    if isinstance(attester, (bytes, bytearray)):
        if len(attester) != 20:
            raise MerkleError(f"an attester address has 20 bytes, got {len(attester)}")
        return bytes(attester)
    try:
        return address_bytes(attester)
    except ValueError as error:
        raise MerkleError(str(error)) from None


def leaf_hash(event_digest: bytes, attester: str | bytes) -> bytes:
    """``keccak256(keccak256(abi.encode(bytes32 eventDigest, address attester)))``."""
    if len(event_digest) != 32:
        raise MerkleError(f"an event digest has 32 bytes, got {len(event_digest)}")
    return keccak256(keccak256(bytes(event_digest) + _PAD + _address20(attester)))


def node_hash(a: bytes, b: bytes) -> bytes:
    """Hash of two sibling nodes, in ascending order (OpenZeppelin's commutative pair hash)."""
    return keccak256(a + b if a <= b else b + a)


def process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` (a leaf *hash*)."""
    node = leaf
    for sibling in proof:
        node = keccak256(node + sibling if node <= sibling else sibling + node)
    return node


def verify_proof(root: bytes, leaf: bytes, proof: Iterable[bytes]) -> bool:
    """True if ``proof`` leads from the leaf hash ``leaf`` to ``root``."""
    if len(root) != 32 or len(leaf) != 32:
        return False
    proof = list(proof)
    if any(len(node) != 32 for node in proof):
        return False
    return process_proof(leaf, proof) == root


@dataclass(frozen=True)
class MerkleTree:
    """A built tree. ``index`` arguments are positions in the input leaf list, as in OZ."""

    tree: tuple[bytes, ...]
    """All nodes, OZ layout (root at 0, sorted leaves at the end)."""
    leaf_hashes: tuple[bytes, ...]
    """Leaf hash of each input leaf, in input order."""
    tree_indices: tuple[int, ...]
    """Position in ``tree`` of each input leaf."""
    values: tuple[tuple[bytes, str], ...] | None = None
    """The input ``(eventDigest, attester)`` pairs, when built from them."""

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def __len__(self) -> int:
        return len(self.leaf_hashes)

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf of input ``index`` up to the root."""
        if not 0 <= index < len(self.tree_indices):
            raise MerkleError(f"leaf index {index} out of range (0..{len(self.tree_indices) - 1})")
        node = self.tree_indices[index]
        proof = []
        while node > 0:
            proof.append(self.tree[node + 1 if node % 2 else node - 1])
            node = (node - 1) // 2
        return proof

    def proofs(self) -> list[list[bytes]]:
        """Proofs of all leaves, in input order."""
        return [self.proof(i) for i in range(len(self.tree_indices))]

    def verify(self, index: int) -> bool:
        return verify_proof(self.root, self.leaf_hashes[index], self.proof(index))

    def dump(self) -> dict[str, Any]:
        """The ``standard-v1`` JSON that ``StandardMerkleTree.load`` accepts."""
        if self.values is None:
            raise MerkleError("only a tree built from (eventDigest, attester) values can be dumped")
        return {
            "format": "standard-v1",
            "leafEncoding": list(LEAF_ENCODING),
            "tree": ["0x" + node.hex() for node in self.tree],
            "values": [
                {"value": ["0x" + digest.hex(), attester], "treeIndex": tree_index}
                for (digest, attester), tree_index in zip(self.values, self.tree_indices)
            ],
        }


def build_tree_from_hashes(leaf_hashes: Sequence[bytes]) -> MerkleTree:
    """Build the OZ-layout tree over precomputed leaf hashes."""
    n = len(leaf_hashes)
    if n == 0:
        raise MerkleError("no leaves")
    hashes = [bytes(h) for h in leaf_hashes]
    if any(len(h) != 32 for h in hashes):
        raise MerkleError("leaf hashes have 32 bytes")
    order = sorted(range(n), key=hashes.__getitem__)  # stable, like Array.prototype.sort
    size = 2 * n - 1
    tree: list[bytes] = [b""] * size
    tree_indices = [0] * n
    last = size - 1
    for rank, value_index in enumerate(order):
        tree[last - rank] = hashes[value_index]
        tree_indices[value_index] = last - rank
    k = keccak256
    for i in range(n - 2, -1, -1):
        a, b = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = k(a + b if a <= b else b + a)
    return MerkleTree(tuple(tree), tuple(hashes), tuple(tree_indices))


def build_tree(leaves: Sequence[tuple[bytes, str | bytes]]) -> MerkleTree:
    """Build a tree over ``(eventDigest, attester)`` leaves (OZ ``["bytes32","address"]``)."""
    values: list[tuple[bytes, str]] = []
    hashes: list[bytes] = []
    k = keccak256
    fromhex = bytes.fromhex
    for digest, attester in leaves:
        if len(digest) != 32:
            raise MerkleError(f"an event digest has 32 bytes, got {len(digest)}")
        if isinstance(attester, str) and len(attester) == 42 and attester[:2] == "0x":
            try:
                raw = fromhex(attester[2:])
            except ValueError:
                raise MerkleError(f"not an address: {attester!r}") from None
            address = attester
        else:
            raw = _address20(attester)
            address = attester if isinstance(attester, str) else "0x" + raw.hex()
        digest = bytes(digest)
        hashes.append(k(k(digest + _PAD + raw)))
        values.append((digest, address))
    built = build_tree_from_hashes(hashes)
    return MerkleTree(built.tree, built.leaf_hashes, built.tree_indices, tuple(values))
