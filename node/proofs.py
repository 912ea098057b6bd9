"""Proof bundles: everything needed to check one event against the chain, and the checker.

A bundle (JSON) holds the event as accepted, its attestation (signer, signature), its Merkle
proof, the batch root, and where the root was anchored (chain, registry, transaction,
block). `verify_bundle(bundle, rpc_url)` trusts nothing in it: it recomputes the event
hash from the event, recovers the signer from the signature, asks the chain's
ConsortiumRegistry whether the signer held an attesting role for the event's bizStep at
the event time, checks the Merkle proof up to the root, and asks the ProvenanceRegistry
whether the root is anchored and under how many blocks. It uses only `eth_chainId`,
`eth_blockNumber` and `eth_call`, with the few functions it needs inlined below, so it runs
with nothing but an RPC URL (pin the registry address with `registry_address` to be sure
the bundle does not point to a look-alike contract).

Checks, in order; the first that fails is named in `failure`:

| check | failure |
|---|---|
| event_hash | hash_mismatch: the event does not hash to its id |
| signature | bad_signature: the signature does not recover to the signer for this event, subject and time |
| role | signer_lacked_role: the signer held none of the bizStep's roles at the event time |
| merkle_proof | proof_invalid: the proof does not lead from the (event hash, signer) leaf to the root |
| anchor | root_not_anchored: the ProvenanceRegistry has no anchor for the root |
| confirmations | not_enough_confirmations: fewer blocks on top of the anchor block than required |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from web3 import HTTPProvider, Web3

from node.db import Batch, Database, Event
from node.errors import WaymarkError
from node.ingest.roles import roles_for_bizstep
from node.provenance.attestation import (
    AttestationDomain,
    SignatureError,
    event_subject,
    event_unix_time,
    recover_attester,
)
from node.provenance.event_hash import hash_from_digest, record_digest
from node.provenance.merkle import leaf_hash, verify_proof

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
]

CHECKS = ("event_hash", "signature", "role", "merkle_proof", "anchor", "confirmations")
FAILURES = {
    "event_hash": "hash_mismatch",
    "signature": "bad_signature",
    "role": "signer_lacked_role",
    "merkle_proof": "proof_invalid",
    "anchor": "root_not_anchored",
    "confirmations": "not_enough_confirmations",
}


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


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return len(self.checks) == len(CHECKS) and all(c.ok for c in self.checks)

    @property
    def failure(self) -> str | None:
        """The failure code of the first failed check (see the module docstring), or None."""
        for check in self.checks:
            if not check.ok:
                return FAILURES[check.name]
        return None

    @property
    def failed_check(self) -> Check | None:
        return next((c for c in self.checks if not c.ok), None)

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


def counted_anchor(provenance: Any, consortium: Any, root: bytes, attester: str, event_time: int) -> tuple[int, int, int, int]:
    """The anchor that counts for an event: (orgId, blockNumber, timestamp, eventCount), orgId 0 if none.

    Anchors are kept per (root, anchoring organisation), so an organisation that anchors someone
    else's root first gets an anchor of its own and takes nothing away: the anchor by the
    attester's organisation (at the event time) counts. Where that organisation has not anchored
    the root (a batch anchored by a node shared by several organisations), the root's first
    anchor does."""
    org = int(consortium.functions.organisationOfAt(attester, event_time).call())
    return anchor_counted_for(
        org,
        lambda o: provenance.functions.anchorOfOrganisation(root, o).call(),
        lambda: provenance.functions.anchorOf(root).call(),
    )


def anchor_counted_for(
    org: int, of_organisation: Callable[[int], Sequence[Any]], first: Callable[[], Sequence[Any]]
) -> tuple[int, int, int, int]:
    """The rule of `counted_anchor`, given the attester's organisation at the event time and how
    to read a root's anchors (`anchorOfOrganisation(root, org)`, `anchorOf(root)`): that
    organisation's anchor, else the root's first. Shared by the passport (node.passport.ChainView)
    so the buyer is shown the anchor the audit counts; scanner_web/src/verify.js mirrors it."""
    anchor = of_organisation(org) if org else (0, 0, 0, 0)
    if int(anchor[0]) == 0:
        anchor = first()
    return int(anchor[0]), int(anchor[1]), int(anchor[2]), int(anchor[3])


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
    failed check (read `.ok` / `.failure`, or call `.raise_for_failure()`); raises
    MalformedBundle if the bundle lacks a part."""
    try:
        event = bundle["event"]
        attestation = bundle["attestation"]
        merkle = bundle["merkle"]
        anchor = bundle["anchor"]
        claimed = parse_event_id(str(bundle["eventId"]))
        signer = str(attestation["signer"])
        signature = str(attestation["signature"])
        root = _bytes32(merkle["root"], "merkle.root")
        proof = [_bytes32(p, "merkle.proof[]") for p in merkle["proof"]]
        registry = Web3.to_checksum_address(registry_address or anchor["registry"])
    except (KeyError, TypeError, ValueError, EventNotFound) as exc:
        raise MalformedBundle(f"{type(exc).__name__}: {exc}") from None
    w3 = rpc_url if isinstance(rpc_url, Web3) else Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    result = Verification()

    def record(name: str, ok: bool, detail: str) -> bool:
        result.checks.append(Check(name, ok, detail))
        return ok

    # 1. the event hashes to its id
    try:
        digest = record_digest(event)
    except Exception as exc:  # noqa: BLE001 - a tampered event may break the hashing itself
        record("event_hash", False, f"the event cannot be hashed: {exc}")
        return result
    if not record(
        "event_hash", digest == claimed,
        f"the event hashes to {hash_from_digest(digest)}" + ("" if digest == claimed else f", not {hash_from_digest(claimed)}"),
    ):
        return result

    # 2. the signature recovers to the signer, for this event's hash, subject and time
    chain_id = int(w3.eth.chain_id)
    domain = AttestationDomain(chain_id, registry)
    try:
        event_time = event_unix_time(event)
        recovered = recover_attester(domain, digest, event_subject(event), event_time, signature)
    except (SignatureError, KeyError, ValueError, TypeError) as exc:
        record("signature", False, f"the signature does not verify: {exc}")
        return result
    if not record(
        "signature", recovered.lower() == signer.lower(),
        f"signed by {recovered}" + ("" if recovered.lower() == signer.lower() else f", not by {signer}"),
    ):
        return result

    # 3. the signer held a role for this bizStep at the event time (the chain's registry says)
    provenance = w3.eth.contract(address=registry, abi=PROVENANCE_ABI)
    consortium = w3.eth.contract(address=provenance.functions.registry().call(), abi=CONSORTIUM_ABI)
    roles = roles_for_bizstep(event.get("bizStep"), event.get("@context"))
    held = [r for r in roles or () if consortium.functions.hasRoleAt(recovered, Web3.keccak(text=r), event_time).call()]
    if not record(
        "role", bool(held),
        f"{recovered} held {held[0]} at {event_time}" if held
        else f"{recovered} held none of {', '.join(roles or ('(no role for this bizStep)',))} at {event_time}",
    ):
        return result

    # 4. the Merkle proof leads from the leaf to the root
    leaf = leaf_hash(digest, recovered)
    proof_ok = verify_proof(root, leaf, proof)
    if not record("merkle_proof", proof_ok, f"leaf {_hex(leaf)} {'is' if proof_ok else 'is not'} under root {_hex(root)}"):
        return result

    # 5. the root is anchored, and 6. deep enough
    org_id, block_number, _ts, count = counted_anchor(provenance, consortium, root, recovered, event_time)
    if not record(
        "anchor", org_id != 0,
        f"anchored by organisation {org_id} in block {block_number} ({count} events)" if org_id else f"root {_hex(root)} is not anchored",
    ):
        return result
    depth = int(w3.eth.block_number) - int(block_number)
    record(
        "confirmations", depth >= min_confirmations,
        f"{depth} blocks on top of block {block_number}; {min_confirmations} required",
    )
    return result
