"""The one implementation of "verified" (DESIGN.md section 4). Everything that says an event is
verified calls this module: capture, the replicator, passports, proof bundles, the auditor. The
browser's twin (scanner_web/src/verify.js) is held to it by shared vectors
(tests/protocol/data/verification_vectors.json, written from this module).

The functions are pure over explicit inputs, so the same rule runs over the chain itself (the
auditor, `waymark node verify`), over a node's mirrored tables (passports, capture) and over a
fetched batch bundle (the replicator). The inputs:

- the event as signed: its body, the id it claims (32-byte digest), its attester and signature;
- a `Registry`: the ConsortiumRegistry's history, asked "at time T" (hasRoleAt,
  organisationOfAt, hostOfAt, maxReportingDelayAt), read from the chain, from logs replayed
  locally, or from a table;
- where it is anchored: its Merkle `Inclusion` (root, proof) and an `AnchorOf` lookup giving the
  anchor of a root by one organisation (ProvenanceRegistry.anchorOfOrganisation);
- the chain `Head` (block number and time) and the confirmations required.

Checks, in order; the first that fails is named and stops the rest:

| check | fails when (failure code) |
|---|---|
| event_hash | the body does not hash (CBV 2.0 record digest) to the claimed id (hash_mismatch) |
| signature | the EIP-712 Attestation(eventHash, subject, eventTime), subject and time taken from the body, does not recover to the attester (bad_signature) |
| role | the attester held none of the roles the bizStep needs at the event time (signer_lacked_role) |
| merkle_proof | the proof does not lead from leaf(event id, attester) to the root; an empty proof is valid when the event is the batch's only leaf (leaf == root) (proof_invalid) |
| anchor | no anchor of the root by the attester's organisation at the event time, nor by the organisation hosting it (`hostOfAt(org, anchor time)`) (root_not_anchored) |
| confirmations | fewer blocks than required on top of the anchor: pending, not failed |

An event with no inclusion yet is `pending`; it is `overdue` (the audit's never_anchored) once
the chain's time is past its event time plus the maximum reporting delay.

Marks, on an event that passed every check (accepted, never plainly genuine):
- `late`: anchor time - event time > maxReportingDelayAt(anchor time);
- `signer_revoked`: at the anchor time the attester no longer held the role it signed with
  (revoked, account removed, or its organisation not active).

A batch (`verify_batch`): its ordered leaves must be as many as the anchored count and rebuild
the anchored root; every event must pass the checks above (the rebuilt root stands for the
Merkle proofs); the first event and check that fail are named.

One concern: the rule of "verified"; the checks, their order and their verdict types read together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from node.protocol.attestation import AttestationDomain, attestation_digest, event_subject, event_unix_time
from node.protocol.crypto import SignatureError, recover_digest, to_checksum_address
from node.protocol.event_hash import hash_from_digest, record_digest
from node.protocol.merkle import build_tree_from_hashes, leaf_hash, process_proof
from node.protocol.roles import roles_for_bizstep


class Check(StrEnum):
    EVENT_HASH = "event_hash"
    SIGNATURE = "signature"
    ROLE = "role"
    MERKLE_PROOF = "merkle_proof"
    ANCHOR = "anchor"
    CONFIRMATIONS = "confirmations"


CHECKS: tuple[Check, ...] = tuple(Check)
FAILURES: dict[str, str] = {
    Check.EVENT_HASH: "hash_mismatch",
    Check.SIGNATURE: "bad_signature",
    Check.ROLE: "signer_lacked_role",
    Check.MERKLE_PROOF: "proof_invalid",
    Check.ANCHOR: "root_not_anchored",
    Check.CONFIRMATIONS: "not_enough_confirmations",
}


class Mark(StrEnum):
    LATE = "late"
    SIGNER_REVOKED = "signer_revoked"


class Status(StrEnum):
    VERIFIED = "verified"
    PENDING = "pending"
    FAILED = "failed"


OutcomeStatus = Literal["passed", "failed", "pending"]


@dataclass(frozen=True)
class Outcome:
    """The outcome of one check."""

    check: Check
    status: OutcomeStatus
    detail: str
    found: str = ""
    """For a failed event_hash or signature check: what was found instead (the id the body hashes
    to, 0x-hex; the account the signature recovers to)."""

    def to_json(self) -> dict[str, str]:
        return {"name": self.check.value, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Anchor:
    """One organisation's anchor of a root (ProvenanceRegistry.anchorOfOrganisation)."""

    root: bytes
    org_id: int
    block_number: int
    timestamp: int
    """Unix seconds of the anchoring block."""
    event_count: int


@dataclass(frozen=True)
class Head:
    """The chain head the verification is made against."""

    block_number: int
    timestamp: int


class Registry(Protocol):
    """The ConsortiumRegistry's history at a time T (the contract's views of the same names)."""

    def has_role_at(self, account: str, role: str, at: int) -> bool:
        """hasRoleAt: linked at T to an organisation Active at T that held the role at T."""
        ...

    def organisation_at(self, account: str, at: int) -> int:
        """organisationOfAt (0: none)."""
        ...

    def host_of_at(self, org_id: int, at: int) -> int:
        """hostOfAt: the organisation hosting `org_id` at T (0: none)."""
        ...

    def max_reporting_delay_at(self, at: int) -> int | None:
        """maxReportingDelayAt in seconds; None where the registry has no such parameter."""
        ...


AnchorOf = Callable[[bytes, int], "Anchor | None"]
"""(root, organisation) -> that organisation's anchor of the root, or None."""


@dataclass(frozen=True)
class Inclusion:
    """Where an event is said to be anchored: its batch root and Merkle proof (siblings leaf to root)."""

    root: bytes
    proof: tuple[bytes, ...] = ()

    @classmethod
    def from_concatenated(cls, root: bytes, proof: bytes) -> Inclusion:
        """From a proof stored as its 32-byte siblings concatenated (as the nodes store it)."""
        return cls(root, tuple(proof[i : i + 32] for i in range(0, len(proof), 32)))


@dataclass(frozen=True)
class Recorded:
    """A node's record that it checked signature and role itself when it accepted or imported the
    event (events.role, signer_org, verified_at_ms): those two checks are taken from it; the
    Merkle leaf still binds the recorded attester to the anchored root."""

    role: str
    org_id: int
    verified_at_ms: int


@dataclass(frozen=True)
class Verification:
    """What the checks found for one event."""

    event_id: bytes
    status: Status
    outcomes: tuple[Outcome, ...]
    marks: frozenset[Mark] = frozenset()
    signer: str | None = None
    """The attester the signature recovers to (checksummed), once the signature check passed."""
    signer_org: int = 0
    """The attester's organisation at the event time (0: unknown or none)."""
    role: str | None = None
    """The role it held at the event time, once the role check passed."""
    event_time: int | None = None
    anchor: Anchor | None = None
    """The anchor that counts, once found."""
    confirmations: int | None = None
    overdue: bool = False
    """Not anchored and past its reporting delay: never anchored."""

    @property
    def failed(self) -> Outcome | None:
        return next((o for o in self.outcomes if o.status == "failed"), None)

    @property
    def failed_check(self) -> Check | None:
        failed = self.failed
        return failed.check if failed is not None else None

    @property
    def failure(self) -> str | None:
        failed = self.failed
        return FAILURES[failed.check] if failed is not None else None

    @property
    def genuine(self) -> bool:
        """Verified with no mark: the only state shown as plainly genuine."""
        return self.status is Status.VERIFIED and not self.marks


# ---- the checks, one by one (callers with their own batching use these) ---------------------------


def check_event_hash(event: Mapping[str, Any], claimed: bytes) -> tuple[Outcome, bytes | None]:
    """1. The body hashes to the claimed id. Returns the outcome and the recomputed digest."""
    try:
        digest = record_digest(event)
    except Exception as exc:  # noqa: BLE001 - a tampered body may break the hashing itself
        return Outcome(Check.EVENT_HASH, "failed", f"the event cannot be hashed: {exc}"), None
    if digest != claimed:
        return Outcome(Check.EVENT_HASH, "failed", f"the event hashes to {hash_from_digest(digest)}, not to its id "
                                                   f"{_id(claimed)}", "0x" + digest.hex()), digest
    return Outcome(Check.EVENT_HASH, "passed", f"the event hashes to its id {hash_from_digest(digest)}"), digest


def check_signature(domain: AttestationDomain, digest: bytes, event: Mapping[str, Any], attester: str,
                    signature: bytes) -> tuple[Outcome, str | None, int | None]:
    """2. The EIP-712 attestation over (digest, the body's subject, the body's time) recovers to
    `attester`. Returns the outcome, the recovered account and the attested event time."""
    try:
        event_time = event_unix_time(event)
        message = attestation_digest(domain, digest, event_subject(event), event_time)
    except Exception as exc:  # noqa: BLE001 - the body hashed, but may still lack a subject or a valid time
        return Outcome(Check.SIGNATURE, "failed", f"the attested fields cannot be derived: {exc}"), None, None
    outcome, recovered = check_attestation_signature(message, attester, signature)
    return outcome, recovered, event_time


def check_attestation_signature(message: bytes, attester: str, signature: bytes) -> tuple[Outcome, str | None]:
    """Check 2 once the attestation digest `message` is built (capture has derived its fields
    already): the signature recovers to `attester`. Returns the outcome and the recovered account."""
    try:
        recovered = recover_digest(message, bytes(signature))
    except SignatureError as error:
        return Outcome(Check.SIGNATURE, "failed", f"the signature does not verify: {error.problem}"), None
    if recovered.lower() != attester.lower():
        return Outcome(Check.SIGNATURE, "failed", f"the signature recovers to {recovered}, not to the attester {attester}",
                       recovered), recovered
    return Outcome(Check.SIGNATURE, "passed", f"EIP-712 signature by {recovered}"), recovered


def required_roles(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The roles that may attest this event (node.protocol.roles' table for its bizStep)."""
    step = event.get("bizStep")
    return roles_for_bizstep(step if isinstance(step, str) else None, event.get("@context"))


def held_role(registry: Registry, account: str, roles: Iterable[str], at: int) -> str | None:
    """The first of `roles` that `account` held at `at`, or None."""
    return next((role for role in roles if registry.has_role_at(account, role, at)), None)


def check_role(registry: Registry, account: str, event: Mapping[str, Any], event_time: int) -> tuple[Outcome, str | None]:
    """3. `account` held one of the bizStep's roles at the event time. Returns the outcome and the role."""
    roles = required_roles(event)
    role = held_role(registry, account, roles, event_time)
    if role is not None:
        return Outcome(Check.ROLE, "passed", f"{account} held {role} at {event_time} (the event time)"), role
    return Outcome(Check.ROLE, "failed", f"{account} held none of {', '.join(roles)} at {event_time} (the event time)"), None


def proof_root(digest: bytes, attester: str, proof: Iterable[bytes]) -> bytes:
    """The root a proof leads to from leaf(digest, attester); with an empty proof, the leaf itself."""
    return process_proof(leaf_hash(digest, attester), proof)


def check_merkle_proof(digest: bytes, attester: str, inclusion: Inclusion) -> Outcome:
    """4. The proof leads from leaf(digest, attester) to the root (an empty proof: leaf == root)."""
    if len(inclusion.root) != 32 or any(len(p) != 32 for p in inclusion.proof):
        return Outcome(Check.MERKLE_PROOF, "failed", "the root and every proof node must have 32 bytes")
    reached = proof_root(digest, attester, inclusion.proof)
    if reached != inclusion.root:
        return Outcome(Check.MERKLE_PROOF, "failed",
                       f"the proof leads from leaf 0x{leaf_hash(digest, attester).hex()} to 0x{reached.hex()}, "
                       f"not to root 0x{inclusion.root.hex()}")
    return Outcome(Check.MERKLE_PROOF, "passed",
                   f"the leaf is under root 0x{inclusion.root.hex()}" + ("" if inclusion.proof else " (its only leaf)"))


def counted_anchor(registry: Registry, anchor_of: AnchorOf, root: bytes, org_id: int, event_time: int,
                   now: int) -> Anchor | None:
    """The anchor that counts for an event of organisation `org_id` (its attester's at the event
    time): that organisation's anchor of the root, else the anchor of the organisation hosting it
    at the anchor's time (candidates: its hosts at the event time and at `now`). An anchor by any
    other organisation counts for nothing."""
    if org_id == 0:
        return None
    own = anchor_of(root, org_id)
    if own is not None:
        return own
    for host in dict.fromkeys((registry.host_of_at(org_id, event_time), registry.host_of_at(org_id, now))):
        if host == 0:
            continue
        hosted = anchor_of(root, host)
        if hosted is not None and registry.host_of_at(org_id, hosted.timestamp) == host:
            return hosted
    return None


def marks_of(registry: Registry, account: str, role: str, event_time: int, anchor: Anchor) -> frozenset[Mark]:
    """The marks of an event that passed its checks (see the module docstring)."""
    marks: set[Mark] = set()
    delay = registry.max_reporting_delay_at(anchor.timestamp)
    if delay is not None and anchor.timestamp - event_time > delay:
        marks.add(Mark.LATE)
    if not registry.has_role_at(account, role, anchor.timestamp):
        marks.add(Mark.SIGNER_REVOKED)
    return frozenset(marks)


def is_overdue(registry: Registry, event_time: int, now: int) -> bool:
    """Whether an event not anchored by chain time `now` is past its reporting delay (never
    anchored, as opposed to pending)."""
    delay = registry.max_reporting_delay_at(now)
    return delay is not None and now - event_time > delay


# ---- one event ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attested:
    """An event that passed checks 1-3 (hash, signature, role at the event time)."""

    digest: bytes
    signer: str
    role: str
    org_id: int
    """The attester's organisation at the event time."""
    event_time: int


def verify_attestation(
    domain: AttestationDomain,
    event: Mapping[str, Any],
    event_id: bytes,
    attester: str,
    signature: bytes,
    registry: Registry,
    *,
    recorded: Recorded | None = None,
) -> tuple[tuple[Outcome, ...], Attested | None]:
    """Checks 1-3; the outcomes so far, and the attested facts if all three passed. With a
    `recorded` check (whose role is one the bizStep accepts), signature and role are taken from it."""
    hashed, digest = check_event_hash(event, event_id)
    if hashed.status != "passed" or digest is None:
        return (hashed,), None
    if recorded is not None and recorded.role in required_roles(event):
        try:
            event_time = event_unix_time(event)
        except Exception as exc:  # noqa: BLE001 - as in check_signature
            return (hashed, Outcome(Check.SIGNATURE, "failed", f"the attested fields cannot be derived: {exc}")), None
        signer = to_checksum_address(attester)
        return (
            hashed,
            Outcome(Check.SIGNATURE, "passed", f"EIP-712 signature by {signer} (checked when this node accepted it, "
                                               f"at unix ms {recorded.verified_at_ms})"),
            Outcome(Check.ROLE, "passed", f"{signer} held {recorded.role} at {event_time} (the event time)"),
        ), Attested(digest, signer, recorded.role, recorded.org_id, event_time)
    signed, recovered, attested_time = check_signature(domain, digest, event, attester, signature)
    if signed.status != "passed" or recovered is None or attested_time is None:
        return (hashed, signed), None
    held, role = check_role(registry, recovered, event, attested_time)
    if role is None:
        return (hashed, signed, held), None
    return (hashed, signed, held), Attested(digest, recovered, role, registry.organisation_at(recovered, attested_time),
                                            attested_time)


def verify_event(
    domain: AttestationDomain,
    event: Mapping[str, Any],
    event_id: bytes,
    attester: str,
    signature: bytes,
    registry: Registry,
    inclusion: Inclusion | None,
    anchor_of: AnchorOf,
    head: Head,
    *,
    confirmations: int = 0,
    recorded: Recorded | None = None,
) -> Verification:
    """Every check of one event, in order, and its marks (see the module docstring)."""
    done, attested = verify_attestation(domain, event, event_id, attester, signature, registry, recorded=recorded)
    return verify_anchoring(event_id, done, attested, registry, inclusion, anchor_of, head, confirmations=confirmations)


def verify_anchoring(
    event_id: bytes,
    attestation: tuple[Outcome, ...],
    attested: Attested | None,
    registry: Registry,
    inclusion: Inclusion | None,
    anchor_of: AnchorOf,
    head: Head,
    *,
    confirmations: int = 0,
    proved: Outcome | None = None,
) -> Verification:
    """Checks 4-6 and the marks, after `verify_attestation` (whose result a caller may keep: it
    depends on the event alone, and the registry's past). `proved`: check 4's outcome for this
    attestation and `inclusion`, where the caller kept it (`check_merkle_proof` depends on them
    alone); otherwise it is checked here."""
    outcomes = list(attestation)
    if attested is None:
        return Verification(event_id, Status.FAILED, tuple(outcomes))
    known: dict[str, Any] = {"signer": attested.signer, "signer_org": attested.org_id, "role": attested.role,
                             "event_time": attested.event_time}

    if inclusion is None:
        overdue = is_overdue(registry, attested.event_time, head.timestamp)
        detail = "not anchored yet" + (", and past the maximum reporting delay" if overdue else "")
        outcomes.extend(Outcome(c, "pending", detail) for c in (Check.MERKLE_PROOF, Check.ANCHOR, Check.CONFIRMATIONS))
        return Verification(event_id, Status.PENDING, tuple(outcomes), overdue=overdue, **known)
    if proved is None:
        proved = check_merkle_proof(attested.digest, attested.signer, inclusion)
    outcomes.append(proved)
    if proved.status != "passed":
        return Verification(event_id, Status.FAILED, tuple(outcomes), **known)

    anchor = counted_anchor(registry, anchor_of, inclusion.root, attested.org_id, attested.event_time, head.timestamp)
    if anchor is None:
        outcomes.append(Outcome(Check.ANCHOR, "failed", _not_anchored(inclusion.root, attested.org_id)))
        return Verification(event_id, Status.FAILED, tuple(outcomes), **known)
    outcomes.append(Outcome(Check.ANCHOR, "passed", f"anchored by organisation {anchor.org_id} in block "
                                                    f"{anchor.block_number} at {anchor.timestamp}"))
    depth = confirmations_of(anchor, head)
    known.update(anchor=anchor, confirmations=depth,
                 marks=marks_of(registry, attested.signer, attested.role, attested.event_time, anchor))
    status, confirmed = check_confirmations(depth, confirmations)
    outcomes.append(confirmed)
    return Verification(event_id, status, tuple(outcomes), **known)


def confirmations_of(anchor: Anchor, head: Head) -> int:
    """Blocks on top of the anchor's at `head`."""
    return max(0, head.block_number - anchor.block_number)


def check_confirmations(depth: int, required: int) -> tuple[Status, Outcome]:
    """6. At least `required` blocks on top of the anchor's: the event's status once checks 1-5 passed."""
    if depth < required:
        return Status.PENDING, Outcome(Check.CONFIRMATIONS, "pending", f"{depth} of {required} confirmations")
    return Status.VERIFIED, Outcome(Check.CONFIRMATIONS, "passed", f"{depth} blocks on top; {required} required")


def _not_anchored(root: bytes, org_id: int) -> str:
    return (f"root 0x{root.hex()} is not anchored by organisation {org_id} (the attester's at the event time) "
            "nor by an organisation hosting it")


# ---- one batch ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One event of a batch, in leaf order."""

    event: Mapping[str, Any]
    event_id: bytes
    attester: str
    signature: bytes


BatchCheck = Literal["event_count", "root", "event_hash", "signature", "role", "anchor"]


@dataclass(frozen=True)
class BatchVerification:
    """What `verify_batch` found. `failed_check` names the first failure; `failed_event` the event
    it concerns (None for a failure of the batch as a whole: its count, its root)."""

    root: bytes
    ok: bool
    attested: tuple[Attested, ...] = ()
    """The events that passed, in leaf order."""
    failed_check: BatchCheck | None = None
    failed_event: bytes | None = None
    detail: str = ""
    marks: Mapping[bytes, frozenset[Mark]] = field(default_factory=dict)
    """Event id -> marks, for the marked events only."""


def verify_batch(domain: AttestationDomain, leaves: Sequence[Leaf], anchor: Anchor, registry: Registry, *,
                 now: int) -> BatchVerification:
    """A whole anchored batch (a fetched bundle): the ordered leaves are exactly the anchored count;
    every event passes checks 1-3 and its organisation at the event time (or the one hosting it at
    the anchor time) is the anchoring organisation; and the leaves rebuild the anchored root (which
    stands for every event's Merkle proof). Stops at the first failure, naming the event and check.
    `now`: the chain's time (for the host lookup, as in `counted_anchor`)."""
    root = anchor.root
    if len(leaves) != anchor.event_count:
        return BatchVerification(root, False, failed_check="event_count",
                                 detail=f"{len(leaves)} leaves; the anchor says {anchor.event_count}")
    passed: list[Attested] = []
    marked: dict[bytes, frozenset[Mark]] = {}

    def by_anchorer(r: bytes, org: int) -> Anchor | None:
        return anchor if org == anchor.org_id and r == root else None

    for leaf in leaves:
        outcomes, attested = verify_attestation(domain, leaf.event, leaf.event_id, leaf.attester, leaf.signature, registry)
        if attested is None:
            failed = outcomes[-1]
            return BatchVerification(root, False, tuple(passed), failed.check.value, leaf.event_id,  # type: ignore[arg-type]
                                     f"{_id(leaf.event_id)}: {failed.detail}")
        if counted_anchor(registry, by_anchorer, root, attested.org_id, attested.event_time, now) is None:
            return BatchVerification(root, False, tuple(passed), "anchor", leaf.event_id,
                                     f"{_id(leaf.event_id)}: anchored by organisation {anchor.org_id}, neither the "
                                     f"attester's organisation ({attested.org_id}) nor the one hosting it")
        marks = marks_of(registry, attested.signer, attested.role, attested.event_time, anchor)
        if marks:
            marked[leaf.event_id] = marks
        passed.append(attested)
    rebuilt = build_tree_from_hashes([leaf_hash(a.digest, a.signer) for a in passed]).root if passed else b""
    if rebuilt != root:
        return BatchVerification(root, False, tuple(passed), "root",
                                 detail=f"the {len(passed)} leaves rebuild 0x{rebuilt.hex()}, not the anchored root 0x{root.hex()}")
    return BatchVerification(root, True, tuple(passed), marks=marked)


def _id(digest: bytes) -> str:
    return hash_from_digest(digest) if len(digest) == 32 else "0x" + digest.hex()
