"""One timeline event of a passport: the stored attestation (read with the unit's history, in
the same statement: ATTESTATION_COLUMNS), its verification, and how it is shown.

Verification of one event is node.protocol.verification's (the one rule: event_hash, signature,
role, merkle_proof, anchor, confirmations, and the marks). Signature and role are taken from the
record the node wrote when it accepted or imported the event (events `role`, `signer_org`,
`verified_at_ms`), so a cold passport asks the chain nothing per event; the event hash is still
recomputed (a stored body edited afterwards fails), the Merkle leaf binds the recorded signer,
and rows without a record are verified in full. The registry's history comes from the
ChainView's mirror and anchors from its per-root cache (api.readmodel.chain_view). The browser
and the audit recover every signature themselves.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from api.readmodel.chain_view import ChainView
from node.protocol.timestamps import iso_ms
from node.db import Batch, Event
from node.member.epcis_rest.corrections import DECLARED_ERRONEOUS
from node.member.history import HistoryEntry
from node.member.network.holders import PEERS_HOLDING_BATCH
from node.protocol.event_hash import digest_from_hash
from node.protocol.merkle import leaf_hash
from node.protocol.verification import (
    Anchor, Attested, Head, Inclusion, Outcome, Recorded, Registry, check_confirmations, check_merkle_proof, confirmations_of,
    verify_anchoring, verify_attestation,
)

DocumentStatus = Callable[[str], Literal["available", "erased", "not_held"]]
# Outcomes of checks 1-3 remembered (about 1.3 KB each), apart those of check 4 with the proof in
# hex (about 1 KB), and verifications as shown (about 4 KB), MEMO_SIZE of each, so a scan API
# running for days holds the same amount. A single unit's events leave first, then the least
# recently used: with a million units the events of cases, pallets and containers, which every
# one of their units' builds needs, were pushed out by units built once (EventVerifier).
MEMO_SIZE = 4_096

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True)
class StoredAttestation:
    digest: bytes
    signer: str
    signature: bytes
    subject: bytes
    leaf_index: int | None
    proof: bytes | None
    root: bytes | None
    anchored: bool  # its batch is anchored or confirmed
    tx_hash: bytes | None
    role: str | None = None
    signer_org: int | None = None
    verified_at_ms: int | None = None  # when the node checked signature and role (accept or import)
    peers_holding: int = 0  # peers seen holding its batch (node.member.network.holders)
    declared_erroneous: bool = False  # an error declaration names it (node.member.epcis_rest.corrections)

    @property
    def recorded(self) -> Recorded | None:
        """The node's record of its own signature and role check, if it has one."""
        if self.verified_at_ms is None or self.signer_org is None or not self.role:
            return None
        return Recorded(self.role, self.signer_org, self.verified_at_ms)


# What a passport reads of each event beyond its history entry, in the history's own statement
# (node.member.history's `extra`): one read for the events, their attestations, holders and
# whether an error declaration names them.
ATTESTATION_COLUMNS = (
    Event.signature, Event.subject, Event.leaf_index, Event.proof, Batch.root, Batch.tx_hash,
    Event.signer_org, Event.verified_at_ms, PEERS_HOLDING_BATCH, DECLARED_ERRONEOUS,
)


def stored_attestation(entry: HistoryEntry) -> StoredAttestation:
    """The attestation of a history entry read with ATTESTATION_COLUMNS."""
    signature, subject, leaf_index, proof, root, tx_hash, signer_org, verified_at_ms, peers, declared = entry.extra
    return StoredAttestation(
        digest_from_hash(entry.event_id), entry.signer, bytes(signature), bytes(subject), leaf_index,
        bytes(proof) if proof is not None else None, bytes(root) if root is not None else None, entry.anchored,
        bytes(tx_hash) if tx_hash is not None else None, entry.role,
        int(signer_org) if signer_org is not None else None, int(verified_at_ms) if verified_at_ms is not None else None,
        int(peers or 0), bool(declared),
    )


class EventVerifier:
    """node.protocol.verification's checks of stored events, as the passport shows them.

    Checks 1-3 (hash, signature, role at the event time) depend only on the stored data and the
    registry's past, so their outcome is remembered under a key covering all of it (a changed row
    gets a new key: an edited body is re-hashed and fails); check 4 likewise, with the root and
    the proof. The whole verification as shown is remembered too, once checks 1-5 passed with the
    anchor of the event's own organisation or of the one hosting it at the event time (`_Shown`):
    at a later build it is taken again while it still holds (`_Shown.holds`), and only the
    confirmations are counted again at the head.

    What is remembered is bounded (MEMO_SIZE of each kind), and an event other passports share
    (`shared_by_others`: a case's, pallet's or container's, or one naming several units) stays
    before one of a single unit: a unit's passport is cached whole once built, while the shared
    events are in the next build of every unit they concern.
    """

    def __init__(self, chain: ChainView, confirmations: int) -> None:
        self.chain = chain
        self.confirmations = confirmations
        self._memo: OrderedDict[bytes, tuple[tuple[Outcome, ...], Attested | None]] = OrderedDict()
        self._proofs: OrderedDict[tuple[bytes, bytes, bytes], _Proved] = OrderedDict()
        self._shown: OrderedDict[tuple[Any, ...], _Shown] = OrderedDict()
        self._memo_lock = threading.Lock()  # builds run on several threads

    def verify(self, entry: HistoryEntry, stored: StoredAttestation, head: Head, registry: Registry) -> dict[str, Any]:
        """The event's verification as the passport shows it, against the chain at `head` and the
        registry as of it (`ChainView.registry`, read once per passport)."""
        chain = self.chain
        key = _memo_key(entry, stored)
        shown_key = (key, stored.root, stored.proof, stored.leaf_index, stored.tx_hash, stored.anchored)
        kept = self._recall(self._shown, shown_key)
        if kept is not None and kept.holds(chain, registry):
            return kept.at(head, self.confirmations, self._signer_org(kept.attester_org))
        shared = shared_by_others(entry)  # how long what is checked below is kept
        memo = self._recall(self._memo, key)
        if memo is None:
            memo = verify_attestation(chain.domain, entry.event, stored.digest, stored.signer, stored.signature, registry,
                                      recorded=stored.recorded)
            if memo[1] is not None:
                self._keep(self._memo, key, memo, shared)
        attested = memo[1]
        # Without checks 1-3 passed, verify_anchoring stops before the proof: none is needed.
        proved = None
        if stored.root is not None and stored.proof is not None and stored.anchored and attested is not None:
            proved = self._proved(key, attested, stored.root, stored.proof, shared)
        result = verify_anchoring(stored.digest, *memo, registry, proved.inclusion if proved is not None else None, chain.anchor_of,
                                  head, confirmations=self.confirmations, proved=proved.outcome if proved is not None else None)
        shown = {
            "status": result.status.value,
            "failedCheck": result.failed_check.value if result.failed_check else None,
            "failure": result.failure,
            "checks": [o.to_json() for o in result.outcomes],
            "marks": sorted(m.value for m in result.marks),
            "signer": stored.signer,
            "signature": hex_of(stored.signature),
            "subject": hex_of(stored.subject),
            "signerOrg": self._signer_org(result.signer_org),
            "signerRole": result.role,
            "merkle": {
                "root": proved.root, "leaf": proved.leaf, "leafIndex": stored.leaf_index, "proof": list(proved.proof),
            } if proved is not None else None,
            "anchor": {
                "txHash": hex_of(stored.tx_hash) if stored.tx_hash else None,
                "blockNumber": result.anchor.block_number,
                "blockTime": result.anchor.timestamp,
                "orgId": result.anchor.org_id,
                "confirmations": result.confirmations,
            } if result.anchor is not None else None,
        }
        anchor, org = result.anchor, result.signer_org
        # Kept where the anchor that counts does not depend on the head's time: the attester's own
        # organisation's, or that of its host at the event time (counted_anchor's first choices).
        if anchor is not None and (anchor.org_id == org or (result.event_time is not None and anchor.org_id == registry.host_of_at(org, result.event_time))):
            self._keep(self._shown, shown_key, _Shown(registry, anchor, org, shown), shared)
        return shown

    def _signer_org(self, org_id: int) -> dict[str, Any] | None:
        org = self.chain.organisation(org_id) if org_id else None
        return org.ref() if org else None

    def _proved(self, key: bytes, attested: Attested, root: bytes, proof: bytes, shared: bool) -> _Proved:
        """Check 4 and the proof as the passport shows it: a function of the attestation (`key`),
        the root and the proof alone, so kept like checks 1-3. An event of a case, pallet or
        container is in the passport of every unit it held: its proof is hashed once, not once
        per unit."""
        proof_key = (key, root, proof)
        proved = self._recall(self._proofs, proof_key)
        if proved is None:
            inclusion = Inclusion.from_concatenated(root, proof)
            proved = _Proved(
                inclusion, check_merkle_proof(attested.digest, attested.signer, inclusion), hex_of(root),
                hex_of(leaf_hash(attested.digest, attested.signer)), tuple(hex_of(p) for p in inclusion.proof),
            )
            self._keep(self._proofs, proof_key, proved, shared)
        return proved

    def _recall(self, memo: OrderedDict[_K, _V], key: _K) -> _V | None:
        with self._memo_lock:
            value = memo.get(key)
            if value is not None:
                memo.move_to_end(key)  # now the most recently used
        return value

    def _keep(self, memo: OrderedDict[_K, _V], key: _K, value: _V, shared: bool) -> None:
        """Remember `value`: a shared event's as the most recently used; a single unit's only
        while there is room, as the next to leave (until it is recalled)."""
        with self._memo_lock:
            if not shared and len(memo) >= MEMO_SIZE:
                return
            while len(memo) >= MEMO_SIZE:
                memo.popitem(last=False)  # a single unit's, else the least recently used
            memo[key] = value
            if not shared:
                memo.move_to_end(key, last=False)


@dataclass(frozen=True)
class _Shown:
    """An event's verification as shown, once checks 1-5 passed with the anchor of its attester's
    organisation (`attester_org`) or of the one hosting it at the event time. All of it depends on
    the stored attestation (the key it is kept under), the registry's state and that anchor, but
    the confirmations, which depend on the head. (A host found only at the head's time is not
    kept: which one that is changes with the head.)"""

    registry: Registry
    anchor: Anchor
    attester_org: int
    shown: dict[str, Any]

    def holds(self, chain: ChainView, registry: Registry) -> bool:
        """Whether counted_anchor would find the same anchor now: the registry's state is the same
        object (the mirror swaps it whole when the registry changes), the chain still reports that
        anchor, and for a hosted event its own organisation has not anchored the root since (its
        own anchor would count first)."""
        anchor = self.anchor
        if self.registry is not registry or chain.anchor_of(anchor.root, anchor.org_id) != anchor:
            return False
        return anchor.org_id == self.attester_org or chain.anchor_of(anchor.root, self.attester_org) is None

    def at(self, head: Head, required: int, signer_org: dict[str, Any] | None) -> dict[str, Any]:
        """The verification shown at `head` (a new dict; the kept one is not changed)."""
        depth = confirmations_of(self.anchor, head)
        status, confirmed = check_confirmations(depth, required)
        shown = self.shown
        return {
            **shown, "status": status.value, "checks": [*shown["checks"][:-1], confirmed.to_json()],
            "signerOrg": signer_org, "anchor": {**shown["anchor"], "confirmations": depth},
        }


@dataclass(frozen=True)
class _Proved:
    """Check 4's outcome for one event's proof, and the proof in hex as the passport shows it."""

    inclusion: Inclusion
    outcome: Outcome
    root: str
    leaf: str
    proof: tuple[str, ...]


def shared_by_others(entry: HistoryEntry) -> bool:
    """Whether the event is in other units' passports too: it reached the unit through a
    container (`via`), or it names more than one identifier (a packing, a batch observation, a
    transformation)."""
    if entry.via:
        return True
    event = entry.event
    named = 0
    for field in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        epcs = event.get(field)
        named += len(epcs) if isinstance(epcs, list) else 0
    return named > 1 or "parentID" in event


def _memo_key(entry: HistoryEntry, stored: StoredAttestation) -> bytes:
    """Everything checks 1-3 read: the event as stored (its text: any edit is a new key), its
    attestation and the node's record of its checks."""
    return hashlib.sha256(
        entry.body.encode() + stored.digest + stored.signature + stored.subject
        + stored.signer.encode() + f"|{stored.role}|{stored.signer_org}|{stored.verified_at_ms}".encode()
    ).digest()


def timeline_event(entry: HistoryEntry, attestation: StoredAttestation, verification: dict[str, Any]) -> dict[str, Any]:
    """One event as the passport's timeline shows it (TimelineEvent in api.readmodel.schema)."""
    event = entry.event
    return {
        "id": entry.event_id,
        "digest": hex_of(attestation.digest),
        "type": entry.event_type,
        "action": event.get("action") if isinstance(event.get("action"), str) else None,
        "bizStep": short_step(event.get("bizStep")),
        "disposition": _short_disposition(event.get("disposition")),
        "eventTime": iso_ms(entry.event_time_ms),
        "eventTimeUnix": entry.event_time_ms // 1000,
        "readPoint": _location_id(event.get("readPoint")),
        "bizLocation": _location_id(event.get("bizLocation")),
        "via": list(entry.via),
        "event": event,
        "verification": verification,
    }


def documents_of(entry: HistoryEntry, status: DocumentStatus) -> list[dict[str, Any]]:
    """The documents an event names (`wm:documents`), with whether this node holds them."""
    found = []
    event: Mapping[str, Any] = entry.event
    for ref in event.get("wm:documents") or ():
        if not isinstance(ref, Mapping):
            continue
        digest = ref.get("wm:digest")
        if not isinstance(digest, str):
            continue
        found.append({"type": str(ref.get("wm:documentType", "document")), "digest": digest, "status": status(digest), "eventId": entry.event_id})
    return found


def excursions_of(entry: HistoryEntry) -> list[dict[str, Any]]:
    """The sensor reports of an event that carry an exception (an excursion)."""
    found = []
    event: Mapping[str, Any] = entry.event
    for element in event.get("sensorElementList") or ():
        if not isinstance(element, Mapping):
            continue
        raw_metadata = element.get("sensorMetadata")
        metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
        for report in element.get("sensorReport") or ():
            if not isinstance(report, Mapping) or not report.get("exception"):
                continue
            value = report.get("value")
            found.append({
                "eventId": entry.event_id,
                "time": str(report.get("time") or metadata.get("time") or event.get("eventTime") or ""),
                "type": str(report.get("type", "")).rsplit("/", 1)[-1],
                "value": float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
                "uom": report.get("uom") if isinstance(report.get("uom"), str) else None,
                "exception": str(report.get("exception")).rsplit("/", 1)[-1],
            })
    return found


def hex_of(data: bytes) -> str:
    return "0x" + data.hex()


def short_step(step: Any) -> str | None:
    if not isinstance(step, str):
        return None
    for prefix in ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:", "cbv:BizStep-"):
        if step.startswith(prefix):
            return step[len(prefix):]
    if step.startswith("https://ns.waymark.example/customs/"):
        return "wmc:" + step.rsplit("/", 1)[1]
    return step


def _short_disposition(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    for prefix in ("https://ref.gs1.org/cbv/Disp-", "urn:epcglobal:cbv:disp:", "cbv:Disp-"):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def _location_id(value: Any) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None
