"""Our Merkle trees equal @openzeppelin/merkle-tree's StandardMerkleTree, checked by running node."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from node.protocol.merkle import (
    MerkleError,
    build_tree,
    build_tree_from_hashes,
    leaf_hash,
    node_hash,
    process_proof,
    verify_proof,
)
from node.protocol.crypto import keccak256

REPO = Path(__file__).resolve().parents[2]

# Builds the reference tree from [digest, address] pairs and loads our dump back.
NODE_SCRIPT = r"""
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
let input = '';
process.stdin.on('data', chunk => { input += chunk; });
process.stdin.on('end', () => {
  const { values, ours } = JSON.parse(input);
  const tree = StandardMerkleTree.of(values, ['bytes32', 'address']);
  const loaded = StandardMerkleTree.load(ours);  // validates every node and leaf
  const proofs = values.map((_, i) => tree.getProof(i));
  const verified = values.map((v, i) =>
    StandardMerkleTree.verify(loaded.root, ['bytes32', 'address'], v, ours.proofs[i]));
  process.stdout.write(JSON.stringify({
    root: tree.root, proofs, tree: tree.dump().tree, loadedRoot: loaded.root, verified,
  }));
});
"""


def run_reference(values: list[list[str]], ours: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is required: the Merkle layout is checked against the npm library"
    result = subprocess.run(
        [node, "-e", NODE_SCRIPT],
        input=json.dumps({"values": values, "ours": ours}),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def random_leaves(r: random.Random, n: int) -> list[tuple[bytes, str]]:
    return [(r.randbytes(32), "0x" + r.randbytes(20).hex()) for _ in range(n)]


def hexes(nodes: list[bytes]) -> list[str]:
    return ["0x" + node.hex() for node in nodes]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
def test_root_proofs_and_layout_equal_openzeppelin_standard_merkle_tree(size: int) -> None:
    leaves = random_leaves(random.Random(size), size)
    tree = build_tree(leaves)
    ours = tree.dump()
    ours["proofs"] = [hexes(tree.proof(i)) for i in range(size)]
    values = [["0x" + digest.hex(), attester] for digest, attester in leaves]

    reference = run_reference(values, ours)

    assert reference["root"] == "0x" + tree.root.hex()
    assert reference["tree"] == ours["tree"]
    assert reference["proofs"] == ours["proofs"]
    assert reference["loadedRoot"] == reference["root"]
    assert all(reference["verified"])


def test_every_proof_verifies_and_a_wrong_leaf_or_proof_does_not() -> None:
    leaves = random_leaves(random.Random(5), 37)
    tree = build_tree(leaves)
    for i, (digest, attester) in enumerate(leaves):
        leaf = leaf_hash(digest, attester)
        assert leaf == tree.leaf_hashes[i]
        assert verify_proof(tree.root, leaf, tree.proof(i))
    other = leaf_hash(bytes(32), "0x" + "11" * 20)
    assert not verify_proof(tree.root, other, tree.proof(0))
    broken = tree.proof(3)
    broken[0] = bytes(32)
    assert not verify_proof(tree.root, tree.leaf_hashes[3], broken)
    assert not verify_proof(tree.root, tree.leaf_hashes[3], tree.proof(4))


def test_single_leaf_tree_has_the_leaf_as_root_and_an_empty_proof() -> None:
    tree = build_tree([(bytes(range(32)), "0x" + "ab" * 20)])
    assert tree.root == tree.leaf_hashes[0]
    assert tree.proof(0) == []


def test_leaf_is_double_hashed_abi_encoding_and_pairs_are_sorted() -> None:
    digest, attester = bytes(range(32)), "0x" + "cd" * 20
    encoded = digest + bytes(12) + bytes.fromhex("cd" * 20)
    assert leaf_hash(digest, attester) == keccak256(keccak256(encoded))
    a, b = bytes([1]) * 32, bytes([2]) * 32
    assert node_hash(a, b) == node_hash(b, a) == keccak256(a + b)
    assert process_proof(a, [b]) == node_hash(a, b)


def test_tree_from_hashes_matches_tree_from_values() -> None:
    leaves = random_leaves(random.Random(9), 10)
    by_value = build_tree(leaves)
    by_hash = build_tree_from_hashes([leaf_hash(d, a) for d, a in leaves])
    assert by_hash.root == by_value.root
    assert by_hash.proof(4) == by_value.proof(4)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(MerkleError):
        build_tree([])
    with pytest.raises(MerkleError):
        build_tree([(bytes(31), "0x" + "00" * 20)])
    with pytest.raises(MerkleError):
        build_tree([(bytes(32), "0x1234")])
    with pytest.raises(MerkleError):
        build_tree(random_leaves(random.Random(1), 3)).proof(3)
