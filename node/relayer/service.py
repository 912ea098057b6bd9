"""The escrow relayer: collects milestone signatures from oracles and submits each bundle once.

An oracle posts its EIP-712 MilestoneAttestation (or CustomsReturn) signature for an order's
milestone. The relayer checks it at once, so an oracle learns of a bad signature while it can
still do something about it:

* the order exists (its terms are found by id: node.escrow) and has that milestone;
* the milestone is not reached yet and the order can still reach it (not settled, not disputed);
* a duty appears only on a CustomsCleared milestone, and then with a payee that is an account of
  one of the order's customs authorities (never the escrow or a party), and within the order's
  duty cap (`maxDutyBps` of the deposit; a larger duty needs the buyer's own signature, which the
  relayer does not collect, so it is refused here);
* the deadline leaves at least `min_lifetime` seconds (chain time);
* the signature is the claimed signer's (ECDSA recovery, or ERC-1271 for a contract account);
* the signer's organisation is Active and holds the milestone's role now (registry), is one of
  the order's customs authorities for a customs clearance or return, and is not the organisation
  of a party that gains (the seller's; the buyer's too for a duty or a return), as fixed in the
  terms when the order was created;
* the signer has not already signed this milestone (dedupe by signer: the same signature sent
  again is answered as already recorded, a different one is refused).

Accepted signatures are stored (table `relay_signatures`) before the answer, so a restart
loses nothing. Once the signatures agreeing on the same duty come from `quorum` distinct
organisations, and the milestone is the order's next one, the relayer submits
`attestMilestone` (or `attestCustomsReturn`) with exactly `quorum` of them, sorted by
organisation as the contract wants.

Exactly once: each milestone has one row in `relay_submissions`; a submitter first moves it
from `collecting` to `submitting` with a conditional UPDATE, so of several threads or relayer
processes sharing the database only one sends. Before sending, the chain is asked whether the
milestone is already reached (then the row becomes `reached` without a transaction); a revert
`EscrowMilestoneAlreadyReached` says the same. A relayer that died mid-submission finds the row
`submitting` on restart: it waits until its own account has nothing in flight, then asks the
chain, and only then may submit again.

Tables: `relay_signatures`, `relay_submissions` (models in node.db.relayer), created
by migration node/db/migrations/versions/0004_relayer.py; the relayer runs `Database.migrate()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from node.chain.errors import ContractRevert
from node.db import Database
from node.db.relayer import RelaySignature, RelaySubmission
from node.errors import WaymarkError
from node.escrow.client import EscrowClient, TermsMismatch, UnknownOrder
from node.escrow.signing import (
    BadSignature,
    customs_return_digest,
    customs_return_document,
    milestone_digest,
    milestone_document,
    recover_signer,
)
from node.escrow.store import order_key
from node.escrow.terms import BPS, ZERO_ADDRESS, Attestation, Milestone, MilestoneKind, Order, OrderTerms, State

log = logging.getLogger("waymark.relayer")

ERC1271_MAGIC = bytes.fromhex("1626ba7e")
ERC1271_ABI = [{
    "type": "function", "name": "isValidSignature", "stateMutability": "view",
    "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
    "outputs": [{"name": "", "type": "bytes4"}],
}]


class RelayerSettings(BaseSettings):
    """The relayer service (prefix WAYMARK_RELAYER_); chain, database and signer come from
    WAYMARK_CHAIN_, WAYMARK_DB_ and WAYMARK_SIGNER_ (node/settings.py)."""

    model_config = SettingsConfigDict(env_prefix="WAYMARK_RELAYER_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    """Address the relayer's HTTP API listens on."""

    port: int = Field(default=8720, ge=1, le=65535)
    """Port of the relayer's HTTP API."""

    min_lifetime: int = Field(default=60, ge=0)
    """Seconds a signature must still be valid (chain time) to be accepted, and to be submitted."""

    sweep_interval: float = Field(default=5.0, gt=0)
    """Seconds between passes over milestones that wait (not next yet, order not funded, a failed send)."""

    in_flight_wait: float = Field(default=60.0, gt=0)
    """Seconds to wait on restart for this relayer's own transactions still in flight."""

    terms_store: Path | None = None
    """JSON file caching order terms by id (the chain's OrderCreated logs are the source);
    default `<chainId>.terms.json` next to the deployment record."""

    devnet_account: int | None = Field(default=None, ge=0)
    """Devnet only: index of the dev account (devnet mnemonic) that pays for submissions, instead of a keystore."""


# ---- errors: each says what is wrong; relayer_app maps them to HTTP statuses ----------------


class RelayError(WaymarkError):
    code = "relay_error"
    field: str | None = None


class RelayUnknownOrder(RelayError):
    code = "unknown_order"
    field = "orderId"

    def __init__(self, order_id: int) -> None:
        super().__init__(f"no escrow order {order_key(order_id)} was created on this chain")


class UnusableOrder(RelayError):
    code = "non_canonical_order"
    field = "orderId"

    def __init__(self, order_id: int) -> None:
        super().__init__(f"order {order_key(order_id)} was created from non-canonical calldata: the terms it published "
                         "do not hash to its id, so the relayer will not attest it")


class NoSuchMilestone(RelayError):
    code = "no_such_milestone"
    field = "milestone"

    def __init__(self, order_id: int, milestone: int, count: int) -> None:
        super().__init__(f"order {order_key(order_id)} has milestones 0 to {count - 1}, not {milestone}")


class WrongMilestoneKind(RelayError):
    code = "wrong_milestone_kind"
    field = "milestone"

    def __init__(self, milestone: int, kind: MilestoneKind, what: str) -> None:
        super().__init__(f"milestone {milestone} is {kind.name}: {what} only on CUSTOMS_CLEARED milestones")


class DutyWithoutPayee(RelayError):
    code = "duty_without_payee"
    field = "dutyPayee"

    def __init__(self, duty: int) -> None:
        super().__init__(f"a duty of {duty} needs a payee account")


class InvalidDutyPayee(RelayError):
    code = "invalid_duty_payee"
    field = "dutyPayee"

    def __init__(self, payee: str) -> None:
        super().__init__(f"a duty must be paid to an account of one of the order's customs authorities, not {payee}")


class DutyAboveCap(RelayError):
    code = "duty_above_cap"
    field = "duty"

    def __init__(self, duty: int, cap: int) -> None:
        super().__init__(f"a duty of {duty} exceeds the order's cap of {cap}: it needs the buyer's own signature, "
                         "submitted with the bundle (attestMilestone), or a dispute")


class NotCustomsAuthority(RelayError):
    code = "not_customs_authority"
    field = "signer"

    def __init__(self, signer: str, org: int) -> None:
        super().__init__(f"{signer} (organisation {org}) is not one of the order's customs authorities")


class MilestoneAlreadyReached(RelayError):
    code = "milestone_already_reached"
    field = "milestone"

    def __init__(self, order_id: int, milestone: int) -> None:
        super().__init__(f"milestone {milestone} of order {order_key(order_id)} is already reached")


class OrderClosed(RelayError):
    code = "order_closed"

    def __init__(self, order_id: int, state: State) -> None:
        super().__init__(f"order {order_key(order_id)} is {state.name.lower()}: no milestone can be reached any more")


class SignatureTooShortLived(RelayError):
    code = "signature_expired"
    field = "deadline"

    def __init__(self, deadline: int, now: int, min_lifetime: int) -> None:
        problem = "has passed" if deadline < now else f"leaves less than {min_lifetime} s"
        super().__init__(f"deadline {deadline} {problem} (chain time {now})")


class SignatureMismatch(RelayError):
    code = "invalid_signature"
    field = "signature"

    def __init__(self, signer: str, detail: str) -> None:
        super().__init__(f"the signature is not {signer}'s over this order, milestone, duty and deadline: {detail}")


class SignerLacksRole(RelayError):
    code = "signer_lacks_role"
    field = "signer"

    def __init__(self, signer: str, role: str) -> None:
        super().__init__(f"{signer} does not hold {role} in an active organisation now")


class SignerConflict(RelayError):
    code = "conflict_of_interest"
    field = "signer"

    def __init__(self, signer: str, party: str) -> None:
        super().__init__(f"{signer} belongs to the organisation of the order's {party}, who gains from this attestation")


class DuplicateSigner(RelayError):
    code = "duplicate_signer"
    field = "signer"

    def __init__(self, signer: str, milestone: int) -> None:
        super().__init__(f"{signer} already signed milestone {milestone} of this order with another signature")


# ---- values --------------------------------------------------------------------------------


class Kind(str, Enum):
    MILESTONE = "milestone"
    CUSTOMS_RETURN = "customs_return"


class Status(str, Enum):
    COLLECTING = "collecting"
    SUBMITTING = "submitting"
    REACHED = "reached"  # the chain has it (customs return: the order was refunded)
    ABANDONED = "abandoned"  # the order can no longer reach it


@dataclass(frozen=True)
class SignatureIn:
    """One signature as an oracle posts it."""

    order_id: int
    milestone: int
    signer: str
    signature: bytes
    deadline: int
    duty: int = 0
    duty_payee: str = ZERO_ADDRESS
    kind: Kind = Kind.MILESTONE


@dataclass(frozen=True)
class Outcome:
    """What became of a posted signature, or of a submission attempt."""

    order_id: int
    milestone: int
    kind: Kind
    status: Status
    recorded: bool  # False when the same signature was already stored
    collected: int  # distinct organisations agreeing with this signature's duty and payee
    quorum: int
    tx_hash: str | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "orderId": order_key(self.order_id),
            "milestone": self.milestone,
            "kind": self.kind.value,
            "status": self.status.value,
            "recorded": self.recorded,
            "collected": self.collected,
            "quorum": self.quorum,
            "txHash": self.tx_hash,
            "detail": self.detail,
        }


# Reverts that blame one signer: that signature is dropped and the rest keep waiting.
_SIGNER_ERRORS = {
    "EscrowSignatureExpired": "signer",
    "EscrowInvalidSignature": "signer",
    "EscrowMissingRole": "account",
    "EscrowConflictOfInterest": "account",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


class Relayer:
    def __init__(
        self,
        db: Database,
        escrow: EscrowClient,
        account: LocalAccount,
        *,
        min_lifetime: int = 60,
        in_flight_wait: float = 60.0,
    ) -> None:
        self.db = db
        self.escrow = escrow
        self.account = account
        self.min_lifetime = min_lifetime
        self.in_flight_wait = in_flight_wait
        self.chain_id = escrow.client.chain_id
        self.address = escrow.address
        # In-process: one submitter at a time (the database claim guards across processes).
        self._submit_lock = threading.Lock()
        #: Called with each Outcome that sent a transaction (tests and metrics count them).
        self.on_submitted: Callable[[Outcome], None] = lambda _o: None

    # ---- receiving ---------------------------------------------------------------------------

    def receive(self, sig: SignatureIn) -> Outcome:
        """Check a posted signature, store it, and submit if it completes a quorum."""
        terms, order = self._order(sig.order_id)
        step = self._step(terms, sig)
        self._check_open(sig, order)
        now = self.escrow.chain_time()
        if sig.deadline < now + self.min_lifetime:
            raise SignatureTooShortLived(sig.deadline, now, self.min_lifetime)
        signer = to_checksum_address(sig.signer)
        self._check_signature(sig, signer)
        org = self.escrow.organisation_with_role(signer, step.role)
        if org == 0:
            raise SignerLacksRole(signer, step.role)
        self._check_conflicts(terms, sig, signer, org)
        if step.kind is MilestoneKind.CUSTOMS_CLEARED and org not in terms.customs_authorities:
            raise NotCustomsAuthority(signer, org)
        if sig.duty != 0:
            self._check_duty(terms, order, sig)
        recorded = self._store(sig, signer, org)
        outcome = self.try_submit(sig.kind, sig.order_id, sig.milestone)
        collected = self._collected(sig.kind, sig.order_id, sig.milestone, sig.duty, sig.duty_payee)
        return Outcome(sig.order_id, sig.milestone, sig.kind, outcome.status, recorded,
                       collected if outcome.status is Status.COLLECTING else outcome.collected, step.quorum,
                       outcome.tx_hash, outcome.detail)

    def _order(self, order_id: int) -> tuple[OrderTerms, Order]:
        try:
            terms = self.escrow.terms(order_id)
        except UnknownOrder:
            raise RelayUnknownOrder(order_id) from None
        except TermsMismatch:
            raise UnusableOrder(order_id) from None
        return terms, self.escrow.order(order_id)

    @staticmethod
    def _step(terms: OrderTerms, sig: SignatureIn) -> Milestone:
        count = len(terms.milestones)
        if not 0 <= sig.milestone < count:
            raise NoSuchMilestone(terms.order_id, sig.milestone, count)
        step = terms.milestones[sig.milestone]
        if sig.kind is Kind.CUSTOMS_RETURN and step.kind is not MilestoneKind.CUSTOMS_CLEARED:
            raise WrongMilestoneKind(sig.milestone, step.kind, "customs returns")
        if sig.duty != 0:
            if step.kind is not MilestoneKind.CUSTOMS_CLEARED:
                raise WrongMilestoneKind(sig.milestone, step.kind, "a duty")
            if int(sig.duty_payee, 16) == 0:
                raise DutyWithoutPayee(sig.duty)
        return step

    def _check_open(self, sig: SignatureIn, order: Order) -> None:
        settled = self._settled_on_chain(sig.kind, sig.milestone, order)
        if settled is None:
            return
        self._settle(sig.kind, sig.order_id, sig.milestone, *settled)
        if order.milestones_reached > sig.milestone:
            raise MilestoneAlreadyReached(sig.order_id, sig.milestone)
        raise OrderClosed(sig.order_id, order.state)

    def _check_signature(self, sig: SignatureIn, signer: str) -> None:
        domain = self.escrow.domain
        if sig.kind is Kind.MILESTONE:
            document = milestone_document(domain, sig.order_id, sig.milestone, sig.duty, sig.duty_payee, sig.deadline)
        else:
            document = customs_return_document(domain, sig.order_id, sig.milestone, sig.deadline)
        try:
            recovered: str | None = recover_signer(document, sig.signature)
        except BadSignature:
            recovered = None
        if recovered == signer:
            return
        w3 = self.escrow.client.w3
        if w3.eth.get_code(signer):  # type: ignore[arg-type]
            # As the contract: a member's contract account counts only where governance approved
            # it, and only with its approved key's own signature (so one key never counts twice).
            if self.escrow.organisation_of(signer) != 0:
                key = self.escrow.client.call(self.escrow.registry.functions.contractSignerKey(signer))
                if int(str(key), 16) == 0 or recovered is None or recovered.lower() != str(key).lower():
                    raise SignatureMismatch(signer, "it is not signed by the key governance approved for this contract account")
            if sig.kind is Kind.MILESTONE:
                digest = milestone_digest(domain, sig.order_id, sig.milestone, sig.duty, sig.duty_payee, sig.deadline)
            else:
                digest = customs_return_digest(domain, sig.order_id, sig.milestone, sig.deadline)
            wallet = w3.eth.contract(address=signer, abi=ERC1271_ABI)  # type: ignore[call-overload]
            try:
                if bytes(wallet.functions.isValidSignature(digest, sig.signature).call()) == ERC1271_MAGIC:
                    return
            except Exception:  # noqa: BLE001 - any failure of the wallet's check means "not valid"
                pass
            raise SignatureMismatch(signer, "the signer contract does not accept it (ERC-1271)")
        detail = "it cannot be recovered" if recovered is None else f"it recovers to {recovered}"
        raise SignatureMismatch(signer, detail)

    def _check_conflicts(self, terms: OrderTerms, sig: SignatureIn, signer: str, org: int) -> None:
        # As the contract: the seller gains from every milestone; the buyer from a duty's payee
        # choice and from a customs return. Their organisations are those fixed in the terms.
        parties = [("seller", terms.seller_org)]
        if sig.duty != 0 or sig.kind is Kind.CUSTOMS_RETURN:
            parties.append(("buyer", terms.buyer_org))
        for name, party_org in parties:
            if party_org == org:
                raise SignerConflict(signer, name)

    def _check_duty(self, terms: OrderTerms, order: Order, sig: SignatureIn) -> None:
        """As the contract: the payee is an account of a customs authority of the order, and the
        duty is within the cap (a larger one needs the buyer, not the relayer)."""
        payee = to_checksum_address(sig.duty_payee)
        if payee in (self.escrow.address, terms.buyer, terms.seller) or \
                self.escrow.organisation_of(payee) not in [a for a in terms.customs_authorities if a]:
            raise InvalidDutyPayee(payee)
        cap = order.deposited * terms.max_duty_bps // BPS
        if sig.duty > cap:
            raise DutyAboveCap(sig.duty, cap)

    def _key(self, model: Any, kind: Kind, order_id: int, milestone: int) -> list[Any]:
        return [
            model.chain_id == self.chain_id, model.escrow == self.address, model.kind == kind.value,
            model.order_id == order_key(order_id), model.milestone == milestone,
        ]

    def _store(self, sig: SignatureIn, signer: str, org: int) -> bool:
        """Persist the signature; False if this very signature was already stored."""
        # A concurrent request may insert the same keys between our read and our write (possible
        # on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises): the unique keys refuse the second
        # insert, and reading again gives the right answer.
        for attempt in range(3):
            try:
                return self._store_once(sig, signer, org)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _store_once(self, sig: SignatureIn, signer: str, org: int) -> bool:
        with self.db.write() as session:
            existing = session.scalars(
                select(RelaySignature).where(*self._key(RelaySignature, sig.kind, sig.order_id, sig.milestone),
                                             RelaySignature.signer == signer)
            ).first()
            if existing is not None:
                same = (existing.signature == sig.signature and existing.deadline == sig.deadline
                        and existing.duty == str(sig.duty) and existing.duty_payee == to_checksum_address(sig.duty_payee))
                if not same:
                    raise DuplicateSigner(signer, sig.milestone)
                return False
            session.add(RelaySignature(
                chain_id=self.chain_id, escrow=self.address, kind=sig.kind.value, order_id=order_key(sig.order_id),
                milestone=sig.milestone, duty=str(sig.duty), duty_payee=to_checksum_address(sig.duty_payee),
                signer=signer, org_id=org, deadline=sig.deadline, signature=sig.signature, received_at_ms=_now_ms(),
            ))
            if session.scalars(select(RelaySubmission).where(
                    *self._key(RelaySubmission, sig.kind, sig.order_id, sig.milestone))).first() is None:
                session.add(RelaySubmission(
                    chain_id=self.chain_id, escrow=self.address, kind=sig.kind.value, order_id=order_key(sig.order_id),
                    milestone=sig.milestone, status=Status.COLLECTING.value, sends=0, updated_at_ms=_now_ms(),
                ))
        return True

    # ---- bundles -------------------------------------------------------------------------------

    def _signatures(self, kind: Kind, order_id: int, milestone: int) -> list[RelaySignature]:
        with self.db.session() as session:
            return list(session.scalars(
                select(RelaySignature).where(*self._key(RelaySignature, kind, order_id, milestone))
                .order_by(RelaySignature.org_id, RelaySignature.deadline.desc())
            ))

    def _collected(self, kind: Kind, order_id: int, milestone: int, duty: int, payee: str) -> int:
        payee = to_checksum_address(payee)
        return len({s.org_id for s in self._signatures(kind, order_id, milestone)
                    if s.duty == str(duty) and s.duty_payee == payee})

    def _bundle(self, kind: Kind, order_id: int, milestone: int, quorum: int,
                now: int) -> tuple[int, str, list[RelaySignature]] | None:
        """(duty, payee, quorum signatures of distinct organisations) if some duty has a quorum."""
        groups: dict[tuple[str, str], dict[int, RelaySignature]] = {}
        for s in self._signatures(kind, order_id, milestone):
            if s.deadline < now + self.min_lifetime:
                continue  # would expire before or soon after mining
            # One signature per organisation (the latest-lasting: rows come sorted that way).
            groups.setdefault((s.duty, s.duty_payee), {}).setdefault(s.org_id, s)
        for (duty, payee), by_org in groups.items():
            if len(by_org) >= quorum:
                chosen = [by_org[o] for o in sorted(by_org)][:quorum]
                return int(duty), payee, chosen
        return None

    # ---- submitting ----------------------------------------------------------------------------

    def _submission(self, kind: Kind, order_id: int, milestone: int) -> RelaySubmission | None:
        with self.db.session() as session:
            return session.scalars(select(RelaySubmission).where(*self._key(RelaySubmission, kind, order_id, milestone))).first()

    def _settle(self, kind: Kind, order_id: int, milestone: int, status: Status, detail: str | None,
                tx_hash: bytes | None = None, *, only_from: Status | None = None) -> bool:
        with self.db.write() as session:
            values: dict[str, Any] = {"status": status.value, "detail": detail, "updated_at_ms": _now_ms()}
            if tx_hash is not None:
                values["tx_hash"] = tx_hash
            conditions = self._key(RelaySubmission, kind, order_id, milestone)
            if only_from is not None:
                conditions.append(RelaySubmission.status == only_from.value)
            result = session.execute(update(RelaySubmission).where(*conditions).values(**values))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _claim(self, kind: Kind, order_id: int, milestone: int) -> bool:
        """collecting -> submitting, for one submitter only."""
        with self.db.write() as session:
            result = session.execute(
                update(RelaySubmission)
                .where(*self._key(RelaySubmission, kind, order_id, milestone),
                       RelaySubmission.status == Status.COLLECTING.value)
                .values(status=Status.SUBMITTING.value, updated_at_ms=_now_ms(), sends=RelaySubmission.sends + 1)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _drop(self, kind: Kind, order_id: int, milestone: int, signer: str) -> None:
        with self.db.write() as session:
            session.execute(delete(RelaySignature).where(*self._key(RelaySignature, kind, order_id, milestone),
                                                         RelaySignature.signer == to_checksum_address(signer)))

    def _outcome(self, kind: Kind, order_id: int, milestone: int, quorum: int, status: Status,
                 tx_hash: bytes | None = None, detail: str | None = None, collected: int = 0) -> Outcome:
        return Outcome(order_id, milestone, kind, status, True, collected, quorum,
                       None if tx_hash is None else "0x" + tx_hash.hex(), detail)

    def try_submit(self, kind: Kind, order_id: int, milestone: int) -> Outcome:
        """Submit the milestone if a quorum is stored and the order is ready for it; at most once."""
        with self._submit_lock:
            return self._try_submit(kind, order_id, milestone)

    def _try_submit(self, kind: Kind, order_id: int, milestone: int) -> Outcome:
        terms, order = self._order(order_id)
        quorum = terms.milestones[milestone].quorum
        row = self._submission(kind, order_id, milestone)
        if row is None:
            return self._outcome(kind, order_id, milestone, quorum, Status.COLLECTING)
        status = Status(row.status)
        if status is not Status.COLLECTING:
            return self._outcome(kind, order_id, milestone, quorum, status, row.tx_hash, row.detail)
        # The chain first: is it already reached, or can it no longer be?
        settled = self._settled_on_chain(kind, milestone, order)
        if settled is not None:
            status, detail = settled
            self._settle(kind, order_id, milestone, status, detail)
            return self._outcome(kind, order_id, milestone, quorum, status, detail=detail)
        now = self.escrow.chain_time()
        bundle = self._bundle(kind, order_id, milestone, quorum, now)
        if bundle is None:
            return self._outcome(kind, order_id, milestone, quorum, Status.COLLECTING)
        if order.state is not State.FUNDED or order.milestones_reached != milestone:
            # Quorum stored, but the order is not there yet (not funded, or an earlier milestone
            # pending): the sweep tries again later.
            detail = f"waiting: order {order.state.name.lower()}, next milestone {order.milestones_reached}"
            return self._outcome(kind, order_id, milestone, quorum, Status.COLLECTING, detail=detail, collected=quorum)
        duty, payee, chosen = bundle
        if not self._claim(kind, order_id, milestone):
            row = self._submission(kind, order_id, milestone)
            assert row is not None
            return self._outcome(kind, order_id, milestone, quorum, Status(row.status), row.tx_hash, row.detail)
        signatures = [Attestation(s.signer, s.deadline, s.signature) for s in chosen]
        try:
            if kind is Kind.MILESTONE:
                receipt = self.escrow.attest_milestone(terms, milestone, signatures, self.account, duty=duty,
                                                       duty_payee=payee)
            else:
                receipt = self.escrow.attest_customs_return(terms, milestone, signatures, self.account)
        except ContractRevert as revert:
            return self._after_revert(kind, order_id, milestone, quorum, revert)
        except Exception as exc:
            # Unknown whether it was sent: leave it `submitting`; recover() settles it against the chain.
            log.warning("submitting %s %s/%d: %s", kind.value, order_key(order_id), milestone, exc)
            return self._outcome(kind, order_id, milestone, quorum, Status.SUBMITTING, detail=str(exc))
        tx_hash = bytes(receipt["transactionHash"])
        self._settle(kind, order_id, milestone, Status.REACHED, None, tx_hash)
        outcome = self._outcome(kind, order_id, milestone, quorum, Status.REACHED, tx_hash, collected=quorum)
        log.info("submitted %s %s/%d in %s", kind.value, order_key(order_id), milestone, outcome.tx_hash)
        self.on_submitted(outcome)
        return outcome

    @staticmethod
    def _settled_on_chain(kind: Kind, milestone: int, order: Order) -> tuple[Status, str] | None:
        """What the chain already decided about this submission, if anything."""
        if kind is Kind.CUSTOMS_RETURN:
            if order.state is State.REFUNDED and order.milestones_reached == milestone:
                return Status.REACHED, "the order was refunded"
            if order.milestones_reached > milestone:
                return Status.ABANDONED, "the milestone was cleared instead"
        elif order.milestones_reached > milestone:
            return Status.REACHED, "reached on chain"
        if order.state.terminal or order.state is State.DISPUTED:
            # A dispute ends only in Resolved: no milestone is reached after one opens.
            return Status.ABANDONED, f"the order is {order.state.name.lower()}"
        return None

    def _after_revert(self, kind: Kind, order_id: int, milestone: int, quorum: int,
                      revert: ContractRevert) -> Outcome:
        name, detail = revert.error_name, str(revert)
        if name == "EscrowMilestoneAlreadyReached":
            self._settle(kind, order_id, milestone, Status.REACHED, "reached on chain by another submitter")
            return self._outcome(kind, order_id, milestone, quorum, Status.REACHED, detail=detail)
        if name == "EscrowDeadlinePassed":
            self._settle(kind, order_id, milestone, Status.ABANDONED, detail)
            return self._outcome(kind, order_id, milestone, quorum, Status.ABANDONED, detail=detail)
        if name in _SIGNER_ERRORS:
            culprit = str(revert.error_args.get(_SIGNER_ERRORS[name], ""))
            log.warning("dropping the signature of %s for %s/%d: %s", culprit, order_key(order_id), milestone, detail)
            if culprit:
                self._drop(kind, order_id, milestone, culprit)
        else:
            log.warning("submitting %s/%d reverted: %s", order_key(order_id), milestone, detail)
        self._settle(kind, order_id, milestone, Status.COLLECTING, detail)
        return self._outcome(kind, order_id, milestone, quorum, Status.COLLECTING, detail=detail)

    # ---- background ------------------------------------------------------------------------------

    def recover(self) -> int:
        """On start: settle milestones a previous run left `submitting`. Returns how many."""
        with self.db.session() as session:
            stuck = list(session.scalars(select(RelaySubmission).where(
                RelaySubmission.chain_id == self.chain_id, RelaySubmission.escrow == self.address,
                RelaySubmission.status == Status.SUBMITTING.value)))
        if not stuck:
            return 0
        self._await_own_transactions()
        for row in stuck:
            order_id, kind = int(row.order_id, 16), Kind(row.kind)
            settled = self._settled_on_chain(kind, row.milestone, self.escrow.order(order_id))
            status, detail = settled if settled is not None else (Status.COLLECTING, "not on chain after a restart")
            self._settle(kind, order_id, row.milestone, status, detail, only_from=Status.SUBMITTING)
        return len(stuck)

    def _await_own_transactions(self) -> None:
        """Wait (bounded) until nothing this relayer sent is still pending."""
        eth = self.escrow.client.w3.eth
        deadline = time.monotonic() + self.in_flight_wait
        while eth.get_transaction_count(self.account.address, "pending") > eth.get_transaction_count(
                self.account.address, "latest"):
            if time.monotonic() > deadline:
                raise RelayError(f"transactions of {self.account.address} still pending after {self.in_flight_wait} s")
            time.sleep(0.5)

    def sweep(self) -> list[Outcome]:
        """Try every milestone still collecting (quorum may be complete, the order may be ready now)."""
        with self.db.session() as session:
            rows = list(session.scalars(select(RelaySubmission).where(
                RelaySubmission.chain_id == self.chain_id, RelaySubmission.escrow == self.address,
                RelaySubmission.status == Status.COLLECTING.value)))
        outcomes = []
        for row in rows:
            try:
                outcomes.append(self.try_submit(Kind(row.kind), int(row.order_id, 16), row.milestone))
            except WaymarkError as exc:
                log.warning("sweep %s/%d: %s", row.order_id, row.milestone, exc)
        return outcomes

    def run(self, stop: threading.Event, interval: float) -> None:
        """Recover, then sweep every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            try:
                self.recover()
                break
            except Exception:  # noqa: BLE001 - the chain may be down at start: keep trying
                log.exception("relayer recovery failed; retrying")
                stop.wait(interval)
        while not stop.wait(interval):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the loop must outlive a bad pass
                log.exception("relayer sweep failed")

    # ---- status ----------------------------------------------------------------------------------

    def status(self, order_id: int) -> dict[str, Any]:
        """What the relayer holds for an order, milestone by milestone, next to the chain's view."""
        terms, order = self._order(order_id)
        milestones = []
        for index, step in enumerate(terms.milestones):
            entry: dict[str, Any] = {
                "milestone": index, "kind": step.kind.name, "role": step.role, "quorum": step.quorum,
                "reached": order.milestones_reached > index,
            }
            for kind in Kind:
                row = self._submission(kind, order_id, index)
                if row is None:
                    continue
                entry[kind.value] = {
                    "status": row.status,
                    "txHash": None if row.tx_hash is None else "0x" + row.tx_hash.hex(),
                    "detail": row.detail,
                    "signatures": [
                        {"signer": s.signer, "orgId": s.org_id, "deadline": s.deadline, "duty": s.duty,
                         "dutyPayee": s.duty_payee}
                        for s in self._signatures(kind, order_id, index)
                    ],
                }
            milestones.append(entry)
        return {"orderId": order_key(order_id), "state": order.state.name, "milestonesReached": order.milestones_reached,
                "milestones": milestones}
