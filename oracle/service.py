"""The oracle of one organisation: adapters' output -> signed, queued events and escrow facts.

`Oracle.accept(adapter, data)` validates a source record with its adapter, checks each
resulting EPCIS event (EPCIS 2.0 validity, a bizStep this organisation may attest), signs
it (EIP-712 attestation, `node.protocol.attestation`), and queues, in one transaction:
the documents to upload, the events to capture and the escrow facts the events establish.
Only then does it answer; the delivery worker (oracle.delivery) does the rest. FX rates are
signed at once (`fx_signer`, the escrow's FxRate) and kept, newest per pair, for
`GET /fx-rates/{base}/{quote}`, from which a buyer's wallet assembles a quote signed by
`fxQuorum()` oracles. A record sent twice yields the same event hashes, so nothing is queued twice.

Escrow facts come from the events themselves, whichever adapter made them:

| event | fact | attested as |
|---|---|---|
| bizStep shipping | shipped | MilestoneAttestation of the order's Shipped milestone (CARRIER) |
| bizStep receiving | delivered | MilestoneAttestation of the Delivered milestone (CARRIER) |
| bizStep wmc:cleared | customs_cleared (with the duty the adapter sealed in a document, `Output.escrow_duty`) | MilestoneAttestation of the next CustomsCleared milestone, duty included (CUSTOMS) |
| bizStep wmc:returned | customs_returned | CustomsReturn of the next CustomsCleared milestone (CUSTOMS) |

Each fact carries every id an escrow order may name as its `shipmentRef` (keccak256 of a
canonical id): the event's objects, and the containers, contents and lots of shipments
this oracle knows them to travel in.

Event bodies are public (every passport shows them, and their anchored hash covers every
field): an event with commercial or personal content (node.documents.confidential: values,
prices, duty, HS codes, invoice references, contact data), from any adapter including raw
EPCIS capture, is refused naming the field; such content belongs in a sealed document.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from node.documents.confidential import confidential_fields
from node.member.ingest.capture import MAX_FUTURE_SKEW, event_epcs, event_time_problem
from node.member.ingest.roles import roles_for_bizstep
from node.protocol import epcis
from node.protocol.attestation import AttestationDomain, event_unix_time, sign_attestation
from node.protocol.epcis import CUSTOMS_NS, EpcisValidationError, validate_event
from node.protocol.event_hash import EventHashError, primary_object_id
from oracle.adapters import all_adapters
from oracle.adapters.base import Adapter, Context, FxObservation, Output
from oracle.adapters.carrier import shipment_refs
from oracle.errors import InputRejected, OracleMisconfigured, UnknownAdapter
from oracle.queue import DurableQueue
from oracle.state import OracleState

# (account, roles accepted, unix time) -> whether the account held one of them then; None: cannot tell.
RoleAt = Callable[[str, Sequence[str], int], "bool | None"]

# Job kinds of the queue, in the order the delivery worker serves them.
DOCUMENT, EVENT, ESCROW = "document", "event", "escrow"

_CBV_STEP = f"{epcis.CBV_NS}BizStep-"
_FACTS = {"shipping": "shipped", "receiving": "delivered", f"{CUSTOMS_NS}cleared": "customs_cleared", f"{CUSTOMS_NS}returned": "customs_returned"}


@dataclass(frozen=True)
class Accepted:
    """What one accepted source record queued."""

    adapter: str
    event_ids: list[str]
    new_events: int
    documents: list[str]
    escrow_facts: list[str]
    fx: list[str]
    notes: dict[str, Any] = field(default_factory=dict)
    submission: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            **({"submission": self.submission, "statusUrl": f"/submissions/{self.submission}"} if self.submission else {}),
            "adapter": self.adapter,
            "eventIds": self.event_ids,
            "accepted": self.new_events,
            "duplicates": len(set(self.event_ids)) - self.new_events,
            "documents": self.documents,
            "escrowFacts": self.escrow_facts,
            "fxRates": self.fx,
            **({"notes": self.notes} if self.notes else {}),
        }


def load_products(path: Path | None) -> dict[str, dict[str, Any]]:
    """The product catalogue (oracle.adapters.iot): {gtin: {name, temperature: {min, max}, humidity: {min, max}}}."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OracleMisconfigured("products_file", f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise OracleMisconfigured("products_file", f"{path}: expected an object keyed by GTIN")
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def submission_id(adapter: str, keys: Sequence[str]) -> str:
    """The id of one accepted record's submission: the same record gives the same id."""
    return hashlib.sha256("\n".join([adapter, *keys]).encode()).hexdigest()[:32]


def submission_report(queue: DurableQueue, submission: str) -> dict[str, Any] | None:
    """What became of a submission: `pending` while anything is undelivered, `refused` if a
    receiver refused any part of it (with its message), else `accepted` (the node stored every
    event). None for an unknown id."""
    jobs = queue.submission(submission)
    if jobs is None:
        return None
    statuses = {j.status for j in jobs}
    overall = "refused" if "rejected" in statuses else "pending" if "pending" in statuses else "accepted"
    return {
        "submission": submission,
        "status": overall,
        "jobs": [
            {"kind": j.kind, "key": j.key, "status": "refused" if j.status == "rejected" else j.status, "attempts": j.attempts,
             **({"error": j.last_error} if j.status == "rejected" else {})}
            for j in jobs
        ],
    }


def document_secret(account: LocalAccount) -> bytes:
    """The key of the salts of the documents the adapters write (oracle.adapters.base.Context):
    derived from the organisation's signing key, so it needs no storage of its own."""
    return hashlib.sha256(b"Waymark oracle document salt v1" + bytes(account.key)).digest()


def biz_step_term(event: Mapping[str, Any]) -> str | None:
    """The bizStep as a CBV term (``shipping``) or, for Waymark customs steps, as its IRI."""
    step = event.get("bizStep")
    if not isinstance(step, str):
        return None
    if step.startswith(_CBV_STEP):
        return step[len(_CBV_STEP):]
    if step.startswith("cbv:BizStep-"):
        return step[len("cbv:BizStep-"):]
    if step.startswith("wmc:"):
        return CUSTOMS_NS + step[4:]
    return step


def escrow_fact(event: Mapping[str, Any]) -> str | None:
    step = biz_step_term(event)
    return _FACTS.get(step) if step else None


def event_objects(event: Mapping[str, Any]) -> list[str]:
    """The ids an event names (parent, lists), canonical where they are GS1 keys."""
    return [epc for epc, _relation in event_epcs(event)]


class Oracle:
    """One organisation's oracle: its key, its queue, its remembered state, its adapters."""

    def __init__(
        self,
        account: LocalAccount,
        domain: AttestationDomain,
        queue: DurableQueue,
        state: OracleState,
        *,
        products: Mapping[str, Mapping[str, Any]] | None = None,
        adapters: Sequence[str] | None = None,
        roles: frozenset[str] | Callable[[], frozenset[str] | None] | None = None,
        document_readers: Sequence[int] = (),
        fx_signer: Callable[[FxObservation], dict[str, Any]] | None = None,
        role_at: RoleAt | None = None,
        max_future_skew: int = MAX_FUTURE_SKEW,
        node_future_skew: Callable[[], int | None] | None = None,
    ) -> None:
        self.account = account
        # The registry's history (hasRoleAt, as the node checks it), when the chain can tell:
        # an event whose time is before the organisation held the role is refused, not queued.
        self.role_at = role_at
        self.max_future_skew = max_future_skew
        # The node's own figure when it can tell (GET /health), else `max_future_skew`.
        self.node_future_skew = node_future_skew
        self.domain = domain
        self.queue = queue
        self.state = state
        self.context = Context(state, products or {}, document_secret(account))
        known = all_adapters()
        wanted = list(adapters) if adapters is not None else list(known)
        unknown = [a for a in wanted if a not in known]
        if unknown:
            raise UnknownAdapter(unknown[0], list(known))
        self.adapters: dict[str, Adapter] = {name: known[name] for name in wanted}
        # Roles of the organisation, when known (a set, or a function reading them afresh):
        # events it may not attest are refused at once rather than queued for a node that
        # would refuse them.
        self._roles = roles
        self.document_readers = list(document_readers)
        self.fx_signer = fx_signer
        # One record at a time: adapters read state that earlier records wrote.
        self._lock = threading.Lock()

    @property
    def roles(self) -> frozenset[str] | None:
        return self._roles() if callable(self._roles) else self._roles

    @property
    def address(self) -> str:
        return str(self.account.address)

    def adapter(self, name: str) -> Adapter:
        found = self.adapters.get(name)
        if found is None:
            raise UnknownAdapter(name, list(self.adapters))
        return found

    def accept(self, adapter_name: str, data: Any) -> Accepted:
        """Validate, build, sign and queue one source record. InputRejected names what is wrong."""
        adapter = self.adapter(adapter_name)
        with self._lock:
            output = adapter.handle(data, self.context)
            return self._queue(adapter.name, output)

    def accept_output(self, adapter_name: str, output: Output) -> Accepted:
        """Queue what an adapter built (the CSV folder builds several records' output first)."""
        with self._lock:
            return self._queue(adapter_name, output)

    def check_event(self, adapter: str, index: int, event: Mapping[str, Any]) -> None:
        where = f"events[{index}]"
        try:
            validate_event(event, path=where)
            primary_object_id(event)
        except EpcisValidationError as exc:
            raise InputRejected(adapter, exc.field, exc.problem) from None
        except EventHashError as exc:
            raise InputRejected(adapter, where, str(exc)) from None
        leaks = confidential_fields(event)
        if leaks:
            path, what = leaks[0]
            raise InputRejected(
                adapter, f"{where}.{path}",
                f"{what} never goes into an event (every passport shows event bodies): put it in a sealed document named in wm:documents",
            )
        roles = roles_for_bizstep(event.get("bizStep"), event.get("@context"))
        if roles is None:
            raise InputRejected(adapter, f"{where}.bizStep", f"no attesting role is defined for bizStep {event.get('bizStep')!r}")
        held = self.roles
        if held is not None and not set(roles) & held:
            raise InputRejected(
                adapter, f"{where}.bizStep",
                f"a {event.get('bizStep')} event is attested by {' or '.join(roles)}; this oracle's organisation holds "
                f"{', '.join(sorted(held)) or 'no role'}",
            )
        # What the node checks next: the time (bounds, future skew) and the role at that time.
        skew = self.node_future_skew() if self.node_future_skew is not None else None
        problem = event_time_problem(event.get("eventTime"), time.time(), self.max_future_skew if skew is None else skew)
        if problem is not None:
            raise InputRejected(adapter, f"{where}.eventTime", problem)
        if self.role_at is not None:
            at = event_unix_time(event)
            if self.role_at(self.address, roles, at) is False:
                raise InputRejected(
                    adapter, f"{where}.eventTime",
                    f"this oracle's account {self.address} did not hold {' or '.join(roles)} at {event.get('eventTime')} "
                    f"(unix {at}): before its organisation was admitted or granted the role, or after it lost it",
                )

    def _queue(self, adapter: str, output: Output) -> Accepted:
        events = [e if "@context" in e else {"@context": epcis.WAYMARK_CONTEXT, **e} for e in output.events]
        for i, event in enumerate(events):
            self.check_event(adapter, i, event)
        # Remember first (idempotent upserts): the escrow facts below look up the shipments this
        # very record may have told us about (e.g. the pallet a delivery names).
        for remember in output.remember:
            remember(self.state)
        jobs: list[tuple[str, str, dict[str, Any]]] = []
        documents = []
        for document in output.documents:
            digest = "sha256:" + document.sha256_hex
            documents.append(digest)
            jobs.append((DOCUMENT, f"document:{digest}", {
                "content": base64.b64encode(document.content).decode(),
                "documentType": document.document_type,
                "mediaType": document.media_type,
                "readers": sorted({*self.document_readers, *document.readers}),
            }))
        event_ids: list[str] = []
        facts: list[str] = []
        event_jobs = 0
        for index, event in enumerate(events):
            signed = sign_attestation(self.account.key, self.domain, event)
            event_id = signed.event_hash
            event_ids.append(event_id)
            jobs.append((EVENT, event_id, {"event": event, "signer": self.address, "signature": signed.signature_hex}))
            event_jobs += 1
            fact = escrow_fact(event)
            if fact is not None:
                objects = event_objects(event)
                duty = output.escrow_duty.get(index)
                key = f"escrow:{fact}:{event_id}"
                facts.append(key)
                jobs.append((ESCROW, key, {
                    "fact": fact,
                    "eventId": event_id,
                    "eventTime": signed.event_time,
                    "refs": shipment_refs(self.state, objects),
                    "duty": dict(duty) if duty else None,
                }))
        fx_keys = []
        signed_rates = []
        for rate in output.fx:
            fx_keys.append(f"{rate.base}/{rate.quote}@{rate.observed_at}")
            if self.fx_signer is not None:
                signed_rates.append((rate, self.fx_signer(rate)))
        submission = submission_id(adapter, [key for _kind, key, _payload in jobs] + fx_keys)
        fresh = self.queue.put_many(jobs, submission=submission)
        for rate, body in signed_rates:
            self.state.save_signed_rate(rate.base, rate.quote, rate.observed_at, body)
        new_events = sum(1 for (kind, _k, _p), new in zip(jobs, fresh) if kind == EVENT and new)
        return Accepted(adapter, event_ids, new_events, documents, facts, fx_keys, dict(output.notes), submission)
