"""Proof bundles: everything needed to check one event against the chain, and the checker.

A bundle (JSON) holds the event as accepted, its attestation (signer, signature), its Merkle
proof, the batch root, and where the root was anchored (chain, registry, transaction,
block). `verify_bundle(bundle, rpc_url)` trusts nothing in it: it runs node.protocol.verification (the
one rule of "verified") with the chain as its registry and anchor lookups: the event hash from
the event, the signer from the signature, the ConsortiumRegistry's hasRoleAt /
organisationOfAt / hostOfAt / maxReportingDelayAt, the ProvenanceRegistry's
anchorOfOrganisation, and the head. It uses only `eth_chainId`, `eth_blockNumber`,
`eth_getBlockByNumber` and `eth_call`, with the few functions it needs inlined below, so it runs
with nothing but an RPC URL (pin the registry address with `registry_address` to be sure the
bundle does not point to a look-alike contract).

Checks, in order; the first that fails is named in `failure`:

| check | failure |
|---|---|
| event_hash | hash_mismatch: the event does not hash to its id |
| signature | bad_signature: the signature does not recover to the signer for this event, subject and time |
| role | signer_lacked_role: the signer held none of the bizStep's roles at the event time |
| merkle_proof | proof_invalid: the proof does not lead from the (event hash, signer) leaf to the root (an empty proof: the leaf is the root) |
| anchor | root_not_anchored: no anchor of the root by the signer's organisation at the event time, nor by its host |
| confirmations | not_enough_confirmations: fewer blocks on top of the anchor block than required |

A verified event may carry marks (`late`, `signer_revoked`): verified, never plainly genuine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from web3 import HTTPProvider, Web3

from node.db import Batch, Database, Event
from node.errors import WaymarkError
from node.protocol.attestation import AttestationDomain
from node.protocol.crypto import keccak256
from node.protocol.event_hash import hash_from_digest
from node.protocol.verification import FAILURES, Anchor, Head, Inclusion, Mark, Status, verify_event
from node.protocol.verification import Verification as Result

BUNDLE_VERSION = 1

_ANCHOR_TUPLE = [
    {"name": "orgId", "type": "uint64"},
    {"name": "blockNumber", "type": "uint64"},
    {"name": "timestamp", "type": "uint48"},
    {"name": "eventCount", "type": "uint32"},
]
PROVENANCE_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "anchorOf", "stateMutability": "view",
     "inputs": [{"name": "root", "type": "bytes32"}],
     "outputs": [{"name": "", "type": "tuple", "components": _ANCHOR_TUPLE}]},
    {"type": "function", "name": "anchorOfOrganisation", "stateMutability": "view",
     "inputs": [{"name": "root", "type": "bytes32"}, {"name": "orgId", "type": "uint64"}],
     "outputs": [{"name": "", "type": "tuple", "components": _ANCHOR_TUPLE}]},
    {"type": "function", "name": "registry", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "address"}]},
]
CONSORTIUM_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "hasRoleAt", "stateMutability": "view",
     "inputs": [{"name": "account", "type": "address"}, {"name": "role", "type": "bytes32"},
                {"name": "timestamp", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "organisationOfAt", "stateMutability": "view",
     "inputs": [{"name": "account", "type": "address"}, {"name": "timestamp", "type": "uint256"}],
     "outputs": [{"name": "", "type": "uint64"}]},
    {"type": "function", "name": "hostOfAt", "stateMutability": "view",
     "inputs": [{"name": "orgId", "type": "uint64"}, {"name": "timestamp", "type": "uint256"}],
     "outputs": [{"name": "", "type": "uint64"}]},
    {"type": "function", "name": "maxReportingDelayAt", "stateMutability": "view",
     "inputs": [{"name": "timestamp", "type": "uint256"}], "outputs": [{"name": "", "type": "uint64"}]},
]

class ProofError(WaymarkError):
    code = "proof_error"


class EventNotFound(ProofError):
    code = "event_not_found"

    def __init__(self, event_id: str) -> None:
        super().__init__(f"no event {event_id} in this node")


class EventNotAnchored(ProofError):
    code = "event_pending"

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id} is accepted but not anchored yet; ask again shortly")


class MalformedBundle(ProofError):
    code = "malformed_bundle"

    def __init__(self, problem: str) -> None:
        super().__init__(f"not a proof bundle: {problem}")


class VerificationFailed(ProofError):
    code = "verification_failed"

    def __init__(self, failure: str, detail: str) -> None:
        self.failure, self.detail = failure, detail
        super().__init__(f"{failure}: {detail}")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verification:
    """A proof bundle's verification: node.protocol.verification's result, as `waymark node verify` reads it
    (a check still pending, such as confirmations, is not passed)."""

    result: Result

    @property
    def checks(self) -> list[Check]:
        return [Check(o.check.value, o.status == "passed", o.detail) for o in self.result.outcomes]

    @property
    def ok(self) -> bool:
        return self.result.status is Status.VERIFIED

    @property
    def marks(self) -> frozenset[Mark]:
        return self.result.marks

    @property
    def failed_check(self) -> Check | None:
        return next((c for c in self.checks if not c.ok), None)

    @property
    def failure(self) -> str | None:
        """The failure code of the first check not passed (see the module docstring), or None."""
        failed = self.failed_check
        return FAILURES[failed.name] if failed is not None else None

    def raise_for_failure(self) -> None:
        failed = self.failed_check
        if failed is not None:
            raise VerificationFailed(FAILURES[failed.name], failed.detail)


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


_DIGEST_IN_ID = re.compile(r"^(?:ni:///sha-256;)?(?:0x)?([0-9a-fA-F]{64})(?:\?ver=CBV2\.0)?$")


def parse_event_id(text: str) -> bytes:
    """The 32-byte digest of an event id: `ni:///sha-256;<hex>?ver=CBV2.0` (the `?ver=...`
    may be missing, cut off by a URL), or the bare or 0x-prefixed 64 hex digits."""
    match = _DIGEST_IN_ID.match(text.strip())
    if match is None:
        raise EventNotFound(text)
    return bytes.fromhex(match.group(1))


def build_bundle(db: Database, event_id: str, *, chain_id: int, registry_address: str) -> dict[str, Any]:
    """The proof bundle of a stored, anchored event."""
    digest = parse_event_id(event_id)
    with db.session() as s:
        row = s.execute(
            select(Event, Batch).outerjoin(Batch, Batch.id == Event.batch_id).where(Event.digest == digest)
        ).first()
    if row is None:
        raise EventNotFound(event_id)
    event, batch = row
    return proof_bundle(event, batch, chain_id=chain_id, registry_address=registry_address)


def proof_bundle(event: Event, batch: Batch | None, *, chain_id: int, registry_address: str) -> dict[str, Any]:
    """The proof bundle of a stored event row and its batch (the audit's evidence bundles hold one per event)."""
    digest = bytes(event.digest)
    if batch is None or batch.status not in ("anchored", "confirmed") or event.proof is None:
        raise EventNotAnchored(hash_from_digest(digest))
    proof = bytes(event.proof)
    return {
        "version": BUNDLE_VERSION,
        "eventId": hash_from_digest(digest),
        "event": orjson.loads(event.body),
        "attestation": {
            "signer": event.signer,
            "signature": _hex(bytes(event.signature)),
            "subject": _hex(bytes(event.subject)),
            "eventTime": event.event_time,
            "role": event.role,
        },
        "merkle": {
            "root": _hex(bytes(batch.root)),
            "leafIndex": event.leaf_index,
            "proof": [_hex(proof[i : i + 32]) for i in range(0, len(proof), 32)],
            "batchSize": batch.event_count,
        },
        "anchor": {
            "chainId": chain_id,
            "registry": Web3.to_checksum_address(registry_address),
            "txHash": _hex(bytes(batch.tx_hash or b"")),
            "blockNumber": batch.block_number,
            "blockHash": _hex(bytes(batch.block_hash or b"")),
        },
    }


class ChainRegistry:
    """node.protocol.verification's Registry and AnchorOf answered by the chain itself (eth_call, latest)."""

    def __init__(self, w3: Web3, provenance_address: str) -> None:
        self.provenance = w3.eth.contract(address=Web3.to_checksum_address(provenance_address), abi=PROVENANCE_ABI)
        self.consortium = w3.eth.contract(address=self.provenance.functions.registry().call(), abi=CONSORTIUM_ABI)

    def has_role_at(self, account: str, role: str, at: int) -> bool:
        return bool(self.consortium.functions.hasRoleAt(Web3.to_checksum_address(account), keccak256(role.encode()), at).call())

    def organisation_at(self, account: str, at: int) -> int:
        return int(self.consortium.functions.organisationOfAt(Web3.to_checksum_address(account), at).call())

    def host_of_at(self, org_id: int, at: int) -> int:
        return int(self.consortium.functions.hostOfAt(org_id, at).call())

    def max_reporting_delay_at(self, at: int) -> int | None:
        return int(self.consortium.functions.maxReportingDelayAt(at).call())

    def anchor_of(self, root: bytes, org_id: int) -> Anchor | None:
        org, block_number, timestamp, count = self.provenance.functions.anchorOfOrganisation(root, org_id).call()
        return Anchor(root, int(org), int(block_number), int(timestamp), int(count)) if int(org) else None


def _signature(text: Any) -> bytes:
    """The signature's bytes; what is not hex is handed on as empty, for the signature check to refuse."""
    try:
        return bytes.fromhex(str(text).removeprefix("0x"))
    except ValueError:
        return b""


def _bytes32(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise MalformedBundle(f"{what} must be 0x followed by 64 hex digits")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise MalformedBundle(f"{what} is not hex") from None


def verify_bundle(
    bundle: dict[str, Any],
    rpc_url: str | Web3,
    *,
    min_confirmations: int = 0,
    registry_address: str | None = None,
) -> Verification:
    """Check a bundle against the chain alone (see the module docstring). Never raises for a
    failed check (read `.ok` / `.failure` / `.marks`, or call `.raise_for_failure()`); raises
    MalformedBundle if the bundle lacks a part."""
    try:
        event = bundle["event"]
        attestation = bundle["attestation"]
        merkle = bundle["merkle"]
        anchor = bundle["anchor"]
        claimed = parse_event_id(str(bundle["eventId"]))
        signer = str(attestation["signer"])
        signature = _signature(attestation["signature"])
        root = _bytes32(merkle["root"], "merkle.root")
        proof = [_bytes32(p, "merkle.proof[]") for p in merkle["proof"]]
        registry = Web3.to_checksum_address(registry_address or anchor["registry"])
    except (KeyError, TypeError, ValueError, EventNotFound) as exc:
        raise MalformedBundle(f"{type(exc).__name__}: {exc}") from None
    w3 = rpc_url if isinstance(rpc_url, Web3) else Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    chain = ChainRegistry(w3, registry)
    latest = w3.eth.get_block("latest")
    return Verification(verify_event(
        AttestationDomain(int(w3.eth.chain_id), registry), event, claimed, signer, signature, chain,
        Inclusion(root, tuple(proof)), chain.anchor_of, Head(int(latest["number"]), int(latest["timestamp"])),
        confirmations=min_confirmations,
    ))
