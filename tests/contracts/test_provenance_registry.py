"""ProvenanceRegistry against a real Anvil: product classes inside the GS1 Company Prefixes
governance assigned, batch anchors that only the batch's own organisation can make, proofs laid
out by the reference @openzeppelin/merkle-tree, and the EIP-712 attestation digest."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from node.chain.client import ChainClient
from node.chain.consortium import DEFAULT_MAX_REPORTING_DELAY
from node.paths import PROJECT_ROOT
from tests.helpers import reverts

MANUFACTURER, CARRIER, ORACLE, AUDITOR, INSPECTOR, ANCHORER = (
    keccak(text=r) for r in ("MANUFACTURER", "CARRIER", "ORACLE", "AUDITOR", "INSPECTOR", "ANCHORER")
)
SUSPEND = 1  # IConsortiumRegistry.ProposalKind.SuspendOrganisation
GRANT_ROLE = 3
REVOKE_ROLE = 4
ASSIGN_COMPANY_PREFIX = 6


def gtin_with_check_digit(body: int) -> int:
    """Append the GS1 mod-10 check digit to the 13 leading digits of a GTIN-14."""
    digits = [int(d) for d in f"{body:013d}"]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return body * 10 + (10 - total % 10) % 10


GTIN = 4006381333931  # EAN-13 4006381333931, i.e. GTIN-14 04006381333931
assert gtin_with_check_digit(GTIN // 10) == GTIN
PREFIX = "4006381"  # the manufacturer's GS1 Company Prefix, covering GTIN


@dataclass
class Setup:
    chain: ChainClient
    registry: Contract
    provenance: Contract
    manufacturer: LocalAccount  # org 1: MANUFACTURER, ANCHORER
    carrier: LocalAccount  # org 2: CARRIER, ANCHORER
    auditor: LocalAccount  # org 3: AUDITOR (not an attesting role)
    oracle: LocalAccount  # org 4: ORACLE, ANCHORER
    outsider: LocalAccount
    inspector: LocalAccount  # org 5: INSPECTOR, an attesting role, without ANCHORER (it runs no node)

    def send(self, fn: str, *args: Any, sender: LocalAccount) -> TxReceipt:
        return self.chain.transact(getattr(self.provenance.functions, fn)(*args), sender=sender)

    def view(self, fn: str, *args: Any) -> Any:
        return self.chain.call(getattr(self.provenance.functions, fn)(*args))

    def suspend(self, org_id: int) -> None:
        """Suspend an organisation by the votes of orgs 1, 2 and 3."""
        self.govern(SUSPEND, abi_encode(["uint64"], [org_id]))

    def govern(self, kind: int, data: bytes) -> None:
        """Pass a proposal by the votes of orgs 1, 2 and 3 (a majority: 3 of 5, and 3 of 4 after a suspension)."""
        receipt = self.chain.transact(self.registry.functions.propose(kind, data), sender=self.manufacturer)
        (created,) = self.registry.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)
        for voter in (self.carrier, self.auditor):
            self.chain.transact(self.registry.functions.vote(created.args.proposalId), sender=voter)

    def assign_prefix(self, org_id: int, prefix: str) -> None:
        self.govern(ASSIGN_COMPANY_PREFIX, abi_encode(["uint64", "uint64", "uint8"], [org_id, int(prefix), len(prefix)]))

    def anchor(self, label: str, count: int, uri: str = "", *, sender: LocalAccount) -> tuple[bytes, TxReceipt]:
        root = keccak(text=label)
        return root, self.send("anchorBatch", root, count, uri, sender=sender)


@pytest.fixture
def s(chain: ChainClient, accounts: list[LocalAccount]) -> Setup:
    manufacturer, carrier, auditor, oracle, outsider, inspector = accounts[1:7]
    founders: list[tuple[Any, ...]] = [
        (name, country, keccak(text=name), account.address, roles, prefixes, [], "", b"\0" * 32, 0)
        for name, country, account, roles, prefixes in [
            ("Lumen Ceramics Co.", b"VN", manufacturer, [MANUFACTURER, ANCHORER], [(int(PREFIX), len(PREFIX))]),
            ("Bluewater Ocean Freight", b"SG", carrier, [CARRIER, ANCHORER], []),
            ("Fjord Assurance AS", b"NO", auditor, [AUDITOR], []),
            ("Tidewater Sensors", b"NL", oracle, [ORACLE, ANCHORER], []),
            ("Meridian Inspection Services", b"SG", inspector, [INSPECTOR], []),
        ]
    ]
    registry = chain.deploy("ConsortiumRegistry", founders, 5_001, DEFAULT_MAX_REPORTING_DELAY, b"\0" * 32, sender=accounts[0])
    provenance = chain.deploy("ProvenanceRegistry", registry.address, sender=accounts[0])
    return Setup(chain, registry, provenance, manufacturer, carrier, auditor, oracle, outsider, inspector)


def oz_tree(values: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Root, proofs and leaf hashes from the reference implementation, @openzeppelin/merkle-tree."""
    script = """
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const values = JSON.parse(require("fs").readFileSync(0, "utf8"));
const tree = StandardMerkleTree.of(values, ["bytes32", "address"]);
process.stdout.write(JSON.stringify({
  root: tree.root,
  proofs: values.map((_, i) => tree.getProof(i)),
  leaves: values.map((v) => tree.leafHash(v)),
}));
"""
    result = subprocess.run(
        ["node", "-e", script], input=json.dumps(values), capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60, check=True
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def b32(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str.removeprefix("0x"))


# ---- construction -------------------------------------------------------------------------------


def test_constructor_reverts_when_registry_is_not_a_contract(chain: ChainClient, accounts: list[LocalAccount]) -> None:
    with reverts("ProvenanceInvalidRegistry", registry=accounts[9].address):
        chain.deploy("ProvenanceRegistry", accounts[9].address, sender=accounts[0])


def test_registry_is_recorded(s: Setup) -> None:
    assert s.view("registry") == s.registry.address


# ---- products -----------------------------------------------------------------------------------


def test_register_product_by_manufacturer(s: Setup) -> None:
    meta = keccak(text="product sheet")
    receipt = s.send("registerProduct", GTIN, meta, sender=s.manufacturer)
    block = s.chain.w3.eth.get_block(receipt["blockNumber"])
    assert s.view("productOf", GTIN) == (1, block["timestamp"], meta)
    (event,) = s.provenance.events.ProductRegistered().process_receipt(receipt, errors=DISCARD)
    assert (event.args.gtin, event.args.orgId, event.args.registrant, event.args.metadataHash) == (
        GTIN,
        1,
        s.manufacturer.address,
        meta,
    )


def test_product_of_unregistered_gtin_is_empty(s: Setup) -> None:
    assert s.view("productOf", GTIN) == (0, 0, b"\0" * 32)


def test_register_product_reverts_when_caller_lacks_manufacturer_role(s: Setup) -> None:
    for account in (s.carrier, s.auditor, s.outsider):
        with reverts("ProvenanceMissingRole", account=account.address, role=MANUFACTURER):
            s.send("registerProduct", GTIN, b"\0" * 32, sender=account)


def test_register_product_reverts_when_manufacturer_is_suspended(s: Setup) -> None:
    s.suspend(1)
    with reverts("ProvenanceMissingRole", account=s.manufacturer.address, role=MANUFACTURER):
        s.send("registerProduct", GTIN, b"\0" * 32, sender=s.manufacturer)


def test_register_product_reverts_when_gtin_exists(s: Setup) -> None:
    s.send("registerProduct", GTIN, b"\0" * 32, sender=s.manufacturer)
    with reverts("ProvenanceProductExists", gtin=GTIN, orgId=1):
        s.send("registerProduct", GTIN, b"\x01" * 32, sender=s.manufacturer)


@pytest.mark.parametrize("gtin", [0, GTIN + 1, 10**14, gtin_with_check_digit(10**13)])
def test_register_product_reverts_when_gtin_is_invalid(s: Setup, gtin: int) -> None:
    with reverts("ProvenanceInvalidGtin", gtin=gtin):
        s.send("registerProduct", gtin, b"\0" * 32, sender=s.manufacturer)


@pytest.mark.parametrize("body", [1, 9_614_141_00001, 1_234_567_890_123, 10**13 - 1])
def test_register_product_accepts_gtins_with_a_valid_check_digit(s: Setup, body: int) -> None:
    gtin = gtin_with_check_digit(body)
    s.assign_prefix(1, f"{body:013d}"[1:])  # the 12 digits after the indicator digit
    s.send("registerProduct", gtin, b"\0" * 32, sender=s.manufacturer)
    assert s.view("productOf", gtin)[0] == 1


def test_register_product_reverts_outside_the_organisations_company_prefixes(s: Setup) -> None:
    elsewhere = gtin_with_check_digit(952_123_454_321)  # 09521234543213: prefix 9521234, assigned to nobody
    with reverts("ProvenanceOutsideCompanyPrefix", gtin=elsewhere, orgId=1):
        s.send("registerProduct", elsewhere, b"\0" * 32, sender=s.manufacturer)
    s.assign_prefix(1, "9521234")
    s.send("registerProduct", elsewhere, b"\0" * 32, sender=s.manufacturer)
    assert s.view("productOf", elsewhere)[0] == 1


def test_register_product_accepts_a_case_gtin14_inside_its_items_prefix(s: Setup) -> None:
    case = gtin_with_check_digit(1_400_638_133_393)  # indicator 1 + the item's 12 digits
    s.send("registerProduct", case, b"\0" * 32, sender=s.manufacturer)
    assert s.view("productOf", case)[0] == 1


def test_rival_manufacturer_cannot_register_or_claim_anothers_gtins(s: Setup) -> None:
    # The adversary: the oracle organisation, granted MANUFACTURER and a prefix of its own.
    adversary = s.oracle
    s.govern(GRANT_ROLE, abi_encode(["uint64", "bytes32"], [4, MANUFACTURER]))
    s.assign_prefix(4, "4006382")
    with reverts("ProvenanceOutsideCompanyPrefix", gtin=GTIN, orgId=4):
        s.send("registerProduct", GTIN, keccak(text="counterfeit sheet"), sender=adversary)
    # Nor can it be assigned the victim's prefix, or one around or inside it.
    for value, digits in [(4006381, 7), (400638, 6), (40063813, 8)]:
        with reverts("RegistryCompanyPrefixTaken", value=value, digits=digits):
            s.chain.transact(
                s.registry.functions.propose(ASSIGN_COMPANY_PREFIX, abi_encode(["uint64", "uint64", "uint8"], [4, value, digits])),
                sender=adversary,
            )
    assert s.view("productOf", GTIN) == (0, 0, b"\0" * 32)
    s.send("registerProduct", GTIN, b"\0" * 32, sender=s.manufacturer)
    assert s.view("productOf", GTIN)[0] == 1


# ---- anchors ------------------------------------------------------------------------------------


def test_anchor_batch_by_anchorer(s: Setup) -> None:
    uri = "waymark://batches/1"
    root, receipt = s.anchor("batch 1", 1200, uri, sender=s.carrier)
    block = s.chain.w3.eth.get_block(receipt["blockNumber"])
    assert s.view("anchorOf", root) == (2, receipt["blockNumber"], block["timestamp"], 1200)
    assert s.view("isAnchored", root)
    (event,) = s.provenance.events.BatchAnchored().process_receipt(receipt, errors=DISCARD)
    assert dict(event.args) == {
        "root": root,
        "orgId": 2,
        "submitter": s.carrier.address,
        "eventCount": 1200,
        "uri": uri,
    }


def test_every_anchorer_organisation_may_anchor_for_itself(s: Setup) -> None:
    for n, (account, org_id) in enumerate(((s.manufacturer, 1), (s.carrier, 2), (s.oracle, 4))):
        root, _ = s.anchor(f"root {n}", 1, sender=account)
        assert s.view("anchorOf", root)[0] == org_id


def test_anchor_of_unknown_root_is_empty(s: Setup) -> None:
    assert s.view("anchorOf", keccak(text="nothing")) == (0, 0, 0, 0)
    assert not s.view("isAnchored", keccak(text="nothing"))


def test_anchor_batch_reverts_when_caller_is_not_anchorer(s: Setup) -> None:
    # An attesting role is not enough: only ANCHORER accounts anchor.
    for account in (s.inspector, s.auditor, s.outsider):
        with reverts("ProvenanceNotAnchorer", account=account.address):
            s.anchor("batch", 10, sender=account)


def test_anchor_batch_reverts_when_anchorer_is_suspended(s: Setup) -> None:
    s.suspend(4)
    with reverts("ProvenanceNotAnchorer", account=s.oracle.address):
        s.anchor("batch", 10, sender=s.oracle)


def test_anchor_batch_reverts_once_anchorer_role_is_revoked_and_works_once_granted(s: Setup) -> None:
    s.govern(REVOKE_ROLE, abi_encode(["uint64", "bytes32"], [4, ANCHORER]))
    with reverts("ProvenanceNotAnchorer", account=s.oracle.address):
        s.anchor("batch", 10, sender=s.oracle)
    s.govern(GRANT_ROLE, abi_encode(["uint64", "bytes32"], [5, ANCHORER]))
    root, _ = s.anchor("batch", 10, sender=s.inspector)
    assert s.view("anchorOf", root)[0] == 5


def test_anchor_batch_reverts_when_its_organisation_already_anchored_the_root(s: Setup) -> None:
    root, _ = s.anchor("batch", 10, sender=s.carrier)
    with reverts("ProvenanceRootExists", root=root, orgId=2):
        s.anchor("batch", 10, sender=s.carrier)


def test_anchor_batch_reverts_when_root_is_zero(s: Setup) -> None:
    with reverts("ProvenanceZeroRoot"):
        s.send("anchorBatch", b"\0" * 32, 10, "", sender=s.carrier)


def test_anchor_batch_reverts_when_batch_is_empty(s: Setup) -> None:
    with reverts("ProvenanceEmptyBatch", root=keccak(text="batch")):
        s.anchor("batch", 0, sender=s.carrier)


def test_another_attester_anchoring_a_root_first_takes_nothing_away(s: Setup) -> None:
    # The adversary (the oracle organisation) sees the carrier's root in the mempool and anchors
    # it first, with a count and a uri of its own.
    root = b32(oz_tree([("0x" + keccak(text=f"carrier event {i}").hex(), s.carrier.address) for i in range(5)])["root"])
    s.send("anchorBatch", root, 999, "evil://withheld", sender=s.oracle)
    # The carrier's own anchor still goes through, and is the carrier's.
    receipt = s.send("anchorBatch", root, 5, "waymark://carrier", sender=s.carrier)
    block = s.chain.w3.eth.get_block(receipt["blockNumber"])
    assert s.view("anchorOfOrganisation", root, 2) == (2, receipt["blockNumber"], block["timestamp"], 5)
    (event,) = s.provenance.events.BatchAnchored().process_receipt(receipt, errors=DISCARD)
    assert (event.args.orgId, event.args.eventCount, event.args.uri) == (2, 5, "waymark://carrier")
    # The adversary's anchor is its own, and it cannot anchor again to overwrite anything.
    assert s.view("anchorOfOrganisation", root, 4)[0::3] == (4, 999)
    with reverts("ProvenanceRootExists", root=root, orgId=4):
        s.send("anchorBatch", root, 5, "evil://again", sender=s.oracle)
    assert s.view("anchorOfOrganisation", root, 1) == (0, 0, 0, 0)
    assert s.view("anchorOfOrganisation", root, 0) == (0, 0, 0, 0)


def test_anchor_of_organisation_answers_for_the_first_anchor_too(s: Setup) -> None:
    root, receipt = s.anchor("batch", 7, sender=s.manufacturer)
    assert s.view("anchorOf", root)[0] == 1
    assert s.view("anchorOfOrganisation", root, 1) == s.view("anchorOf", root)
    assert s.view("anchorOfOrganisation", root, 2) == (0, 0, 0, 0)


def test_anchor_batch_gas_per_event(s: Setup) -> None:
    """Not a benchmark: prints the cost and guards the single-slot design against regressions."""
    events = 2000
    uri = "waymark://batches/0x" + "ab" * 32
    _, receipt = s.anchor("big batch", events, uri, sender=s.carrier)
    gas = int(receipt["gasUsed"])
    print(f"\nanchorBatch: {gas} gas for {events} events = {gas / events:.1f} gas/event")
    assert gas <= 100 * events


# ---- proofs -------------------------------------------------------------------------------------


def test_verify_leaf_accepts_proofs_built_by_openzeppelin_merkle_tree(s: Setup) -> None:
    attesters = [s.manufacturer.address, s.carrier.address, s.oracle.address, s.carrier.address]
    values = [("0x" + keccak(text=f"event {i}").hex(), attesters[i]) for i in range(4)]
    tree = oz_tree(values)
    root = b32(tree["root"])
    s.send("anchorBatch", root, len(values), "", sender=s.carrier)

    for (event_hash, attester), proof, leaf in zip(values, tree["proofs"], tree["leaves"]):
        assert s.view("leafHash", b32(event_hash), attester) == b32(leaf)
        assert s.view("verifyLeaf", root, [b32(p) for p in proof], b32(event_hash), attester)

    event_hash, attester = values[0]
    proof = [b32(p) for p in tree["proofs"][0]]
    assert not s.view("verifyLeaf", root, proof, keccak(text="forged event"), attester)
    assert not s.view("verifyLeaf", root, proof, b32(event_hash), s.outsider.address)
    assert not s.view("verifyLeaf", root, [b32(p) for p in tree["proofs"][1]], b32(event_hash), attester)


def test_verify_leaf_is_false_for_a_root_that_is_not_anchored(s: Setup) -> None:
    values = [("0x" + keccak(text=f"event {i}").hex(), s.carrier.address) for i in range(2)]
    tree = oz_tree(values)
    proof = [b32(p) for p in tree["proofs"][0]]
    assert not s.view("verifyLeaf", b32(tree["root"]), proof, b32(values[0][0]), s.carrier.address)


def test_single_leaf_tree_verifies_with_an_empty_proof(s: Setup) -> None:
    values = [("0x" + keccak(text="only event").hex(), s.oracle.address)]
    tree = oz_tree(values)
    s.send("anchorBatch", b32(tree["root"]), 1, "", sender=s.oracle)
    assert tree["proofs"][0] == []
    assert s.view("verifyLeaf", b32(tree["root"]), [], b32(values[0][0]), s.oracle.address)


# ---- EIP-712 ------------------------------------------------------------------------------------


def test_eip712_domain_is_waymark_version_1_on_this_contract(s: Setup) -> None:
    fields, name, version, chain_id, verifying_contract, salt, extensions = s.view("eip712Domain")
    assert (fields, name, version, chain_id, verifying_contract) == (
        b"\x0f",
        "Waymark",
        "1",
        s.chain.chain_id,
        s.provenance.address,
    )
    assert salt == b"\0" * 32 and extensions == []


def test_hash_attestation_matches_eip712_typed_data_hashing(s: Setup) -> None:
    assert s.view("ATTESTATION_TYPEHASH") == keccak(text="Attestation(bytes32 eventHash,bytes32 subject,uint64 eventTime)")
    event_hash, subject, event_time = keccak(text="event"), keccak(text="subject"), 1_750_000_000
    message = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Attestation": [
                    {"name": "eventHash", "type": "bytes32"},
                    {"name": "subject", "type": "bytes32"},
                    {"name": "eventTime", "type": "uint64"},
                ],
            },
            "primaryType": "Attestation",
            "domain": {
                "name": "Waymark",
                "version": "1",
                "chainId": s.chain.chain_id,
                "verifyingContract": s.provenance.address,
            },
            "message": {"eventHash": event_hash, "subject": subject, "eventTime": event_time},
        }
    )
    expected = keccak(b"\x19" + message.version + message.header + message.body)
    assert s.view("hashAttestation", event_hash, subject, event_time) == expected
