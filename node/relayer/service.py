"""The escrow relayer: collects milestone signatures from oracles and submits each bundle once.

An oracle posts its EIP-712 MilestoneAttestation (or CustomsReturn) signature for an order's
milestone. The relayer checks it at once, so an oracle learns of a bad signature while it can
still do something about it:

* the order exists (its terms are found by id: node.escrow) and has that milestone;
* the milestone is not reached yet and the order can still reach it (not settled; a dispute does
  not stop milestones or customs returns);
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

Here: the order of it all. The checks are in node.relayer.checks, the storage and the quorum
rule in node.relayer.store, the values in node.relayer.model, the errors in node.relayer.errors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from node.chain.errors import ContractRevert
from node.db import Database
from node.errors import WaymarkError
from node.escrow.client import EscrowClient, TermsMismatch, UnknownOrder
from node.escrow.store import order_key
from node.escrow.terms import Attestation, Order, OrderTerms, State
from node.relayer.checks import check_duty, check_signature, check_signer_organisation, milestone_of
from node.relayer.errors import (
    MilestoneAlreadyReached,
    OrderClosed,
    RelayError,
    RelayUnknownOrder,
    SignatureTooShortLived,
    SignerLacksRole,
    UnusableOrder,
)
from node.relayer.model import Kind, Outcome, SignatureIn, Status
from node.relayer.store import RelayStore

log = logging.getLogger("waymark.relayer")

# Reverts that blame one signer: that signature is dropped and the rest keep waiting.
_SIGNER_ERRORS = {
    "EscrowSignatureExpired": "signer",
    "EscrowInvalidSignature": "signer",
    "EscrowMissingRole": "account",
    "EscrowConflictOfInterest": "account",
}


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
        self.store = RelayStore(db, self.chain_id, self.address)
        # In-process: one submitter at a time (the database claim guards across processes).
        self._submit_lock = threading.Lock()
        #: Called with each Outcome that sent a transaction (tests and metrics count them).
        self.on_submitted: Callable[[Outcome], None] = lambda _o: None

    # ---- receiving ---------------------------------------------------------------------------

    def receive(self, sig: SignatureIn) -> Outcome:
        """Check a posted signature, store it, and submit if it completes a quorum."""
        terms, order = self._order(sig.order_id)
        step = milestone_of(terms, sig)
        self._check_open(sig, order)
        now = self.escrow.chain_time()
        if sig.deadline < now + self.min_lifetime:
            raise SignatureTooShortLived(sig.deadline, now, self.min_lifetime)
        signer = to_checksum_address(sig.signer)
        check_signature(self.escrow, sig, signer)
        org = self.escrow.organisation_with_role(signer, step.role)
        if org == 0:
            raise SignerLacksRole(signer, step.role)
        check_signer_organisation(terms, step, sig, signer, org)
        if sig.duty != 0:
            check_duty(self.escrow, terms, order, sig)
        recorded = self.store.store(sig, signer, org)
        outcome = self.try_submit(sig.kind, sig.order_id, sig.milestone)
        collected = self.store.collected(sig.kind, sig.order_id, sig.milestone, sig.duty, sig.duty_payee)
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

    def _check_open(self, sig: SignatureIn, order: Order) -> None:
        settled = self._settled_on_chain(sig.kind, sig.milestone, order)
        if settled is None:
            return
        self.store.settle(sig.kind, sig.order_id, sig.milestone, *settled)
        if order.milestones_reached > sig.milestone:
            raise MilestoneAlreadyReached(sig.order_id, sig.milestone)
        raise OrderClosed(sig.order_id, order.state)

    # ---- submitting ----------------------------------------------------------------------------

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
        row = self.store.submission(kind, order_id, milestone)
        if row is None:
            return self._outcome(kind, order_id, milestone, quorum, Status.COLLECTING)
        status = Status(row.status)
        if status is not Status.COLLECTING:
            return self._outcome(kind, order_id, milestone, quorum, status, row.tx_hash, row.detail)
        # The chain first: is it already reached, or can it no longer be?
        settled = self._settled_on_chain(kind, milestone, order)
        if settled is not None:
            status, detail = settled
            self.store.settle(kind, order_id, milestone, status, detail)
            return self._outcome(kind, order_id, milestone, quorum, status, detail=detail)
        now = self.escrow.chain_time()
        bundle = self.store.bundle(kind, order_id, milestone, quorum, now + self.min_lifetime)
        if bundle is None:
            return self._outcome(kind, order_id, milestone, quorum, Status.COLLECTING)
        # Funded or Disputed: a dispute does not stop the goods' milestones or a customs return.
        if order.state not in (State.FUNDED, State.DISPUTED) or order.milestones_reached != milestone:
            # Quorum stored, but the order is not there yet (not funded, or an earlier milestone
            # pending): the sweep tries again later.
            detail = f"waiting: order {order.state.name.lower()}, next milestone {order.milestones_reached}"
            return self._outcome(kind, order_id, milestone, quorum, Status.COLLECTING, detail=detail, collected=quorum)
        duty, payee, chosen = bundle
        if not self.store.claim(kind, order_id, milestone):
            row = self.store.submission(kind, order_id, milestone)
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
        self.store.settle(kind, order_id, milestone, Status.REACHED, None, tx_hash)
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
        if order.state.terminal:
            return Status.ABANDONED, f"the order is {order.state.name.lower()}"
        return None

    def _after_revert(self, kind: Kind, order_id: int, milestone: int, quorum: int,
                      revert: ContractRevert) -> Outcome:
        name, detail = revert.error_name, str(revert)
        if name == "EscrowMilestoneAlreadyReached":
            self.store.settle(kind, order_id, milestone, Status.REACHED, "reached on chain by another submitter")
            return self._outcome(kind, order_id, milestone, quorum, Status.REACHED, detail=detail)
        if name == "EscrowDeadlinePassed":
            self.store.settle(kind, order_id, milestone, Status.ABANDONED, detail)
            return self._outcome(kind, order_id, milestone, quorum, Status.ABANDONED, detail=detail)
        if name in _SIGNER_ERRORS:
            culprit = str(revert.error_args.get(_SIGNER_ERRORS[name], ""))
            log.warning("dropping the signature of %s for %s/%d: %s", culprit, order_key(order_id), milestone, detail)
            if culprit:
                self.store.drop(kind, order_id, milestone, culprit)
        else:
            log.warning("submitting %s/%d reverted: %s", order_key(order_id), milestone, detail)
        self.store.settle(kind, order_id, milestone, Status.COLLECTING, detail)
        return self._outcome(kind, order_id, milestone, quorum, Status.COLLECTING, detail=detail)

    # ---- background ------------------------------------------------------------------------------

    def recover(self) -> int:
        """On start: settle milestones a previous run left `submitting`. Returns how many."""
        stuck = self.store.submissions(Status.SUBMITTING)
        if not stuck:
            return 0
        self._await_own_transactions()
        for row in stuck:
            order_id, kind = int(row.order_id, 16), Kind(row.kind)
            settled = self._settled_on_chain(kind, row.milestone, self.escrow.order(order_id))
            status, detail = settled if settled is not None else (Status.COLLECTING, "not on chain after a restart")
            self.store.settle(kind, order_id, row.milestone, status, detail, only_from=Status.SUBMITTING)
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
        outcomes = []
        for row in self.store.submissions(Status.COLLECTING):
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
                row = self.store.submission(kind, order_id, index)
                if row is None:
                    continue
                entry[kind.value] = {
                    "status": row.status,
                    "txHash": None if row.tx_hash is None else "0x" + row.tx_hash.hex(),
                    "detail": row.detail,
                    "signatures": [
                        {"signer": s.signer, "orgId": s.org_id, "deadline": s.deadline, "duty": s.duty,
                         "dutyPayee": s.duty_payee}
                        for s in self.store.signatures(kind, order_id, index)
                    ],
                }
            milestones.append(entry)
        return {"orderId": order_key(order_id), "state": order.state.name, "milestonesReached": order.milestones_reached,
                "milestones": milestones}
