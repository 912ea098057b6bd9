"""Which anchor counts for an event when several organisations anchored the same root: the
attester's organisation's, so a rival that anchors a root first takes nothing away."""

from __future__ import annotations

from eth_utils.crypto import keccak
from web3 import Web3

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.proofs import CONSORTIUM_ABI, PROVENANCE_ABI, counted_anchor
from tests.node.story import CARRIER, INSPECTOR, MANUFACTURER


def test_the_attester_organisations_anchor_counts_not_a_rivals_earlier_one(chain: ChainClient, deployment: Deployment) -> None:
    address = deployment.address("ProvenanceRegistry")
    writer = chain.contract("ProvenanceRegistry", address)
    provenance = chain.w3.eth.contract(address=Web3.to_checksum_address(address), abi=PROVENANCE_ABI)
    consortium = chain.w3.eth.contract(address=provenance.functions.registry().call(), abi=CONSORTIUM_ABI)
    root = keccak(text="the manufacturer's batch")
    # The rival (the carrier organisation, org 3) anchors the manufacturer's root first, claiming 999 events.
    chain.transact(writer.functions.anchorBatch(root, 999, "evil://"), sender=CARRIER)
    ours = chain.transact(writer.functions.anchorBatch(root, 5, "waymark://"), sender=MANUFACTURER)
    now = int(chain.w3.eth.get_block("latest")["timestamp"])

    org_id, block_number, _ts, count = counted_anchor(provenance, consortium, root, MANUFACTURER.address, now)
    assert (org_id, block_number, count) == (1, ours["blockNumber"], 5)
    # An attester whose organisation did not anchor the root (a batch a shared node anchored) gets the first anchor.
    assert counted_anchor(provenance, consortium, root, INSPECTOR.address, now)[0::3] == (3, 999)
    assert counted_anchor(provenance, consortium, keccak(text="never anchored"), MANUFACTURER.address, now)[0] == 0
