"""Escrow transitions checked against their backing (rules: see node/audit/verify.py docstring).

Digests are the escrow client's own (node.escrow.signing: the EIP-712 types of ITradeEscrow,
domain "Waymark Escrow"), so what oracles sign and what the audit checks cannot drift apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from node.audit.chain import ESCROW, CallDecoder, ChainHistory, ChainLog, organisation_at, transaction
from node.audit.evidence import Evidence, StoredEscrowAttestation, evidence_orders
from node.audit.model import Discrepancy, DiscrepancyKind
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.escrow.signing import EscrowDomain, confirmation_digest, customs_return_digest, milestone_digest
from node.escrow.terms import BPS, MilestoneKind, OrderTerms, RefundReason
from node.protocol.crypto import SignatureError, recover_digest

K = DiscrepancyKind
ZERO = "0x" + "00" * 20

Signed = tuple[str, int, bytes]  # signer, deadline, signature


@dataclass
class _Order:
    terms: OrderTerms | None
    delivered_at: int | None = None
    disputed_at: int | None = None
    reached: int = 0


class _Checker:
    def __init__(self, client: ChainClient, escrow: str, history: ChainHistory,
                 stored: Mapping[tuple[str, int, int], list[StoredEscrowAttestation]]) -> None:
        self.client = client
        self.escrow = escrow
        self.history = history
        self.stored = stored
        self.orders_with_records = {key[1] for key in stored}
        self.domain = EscrowDomain(history.chain_id, escrow)
        self.calls = CallDecoder(ESCROW)
        self.found: list[Discrepancy] = []
        self._timeout: int | None = None

    # ---- helpers -------------------------------------------------------------------------

    def _recovers_to(self, digest: bytes, signer: str, signature: bytes) -> bool:
        try:
            return recover_digest(digest, signature).lower() == signer.lower()
        except (SignatureError, ValueError):
            return False

    def _unbacked(self, log: ChainLog, order_id: int, what: str, detail: str, **objects: str) -> None:
        subject = f"order 0x{order_id:064x} {what}"
        self.found.append(Discrepancy(K.ESCROW_TRANSITION_UNBACKED, subject, detail, {
            "order": f"0x{order_id:064x}", "transition": what, "tx": "0x" + log.tx_hash.hex(),
            "block": str(log.block), **objects}))

    def _call(self, log: ChainLog) -> tuple[str, str, dict[str, Any]] | None:
        """(sender, function, arguments) of the transaction behind `log`, if it called the escrow."""
        tx = transaction(self.client, log.tx_hash)
        if tx.to is None or tx.to.lower() != self.escrow.lower():
            return None
        decoded = self.calls.decode(tx.input)
        return None if decoded is None else (tx.sender, decoded[0], decoded[1])

    def _quorum_orgs(self, signed: Iterable[Signed], digest_of: Callable[[int], bytes], role: str, at: int, gainers: Iterable[str]
                     ) -> tuple[set[int], list[str]]:
        """Organisations with a valid, unexpired signature of a `role` holder at `at`; and the reasons others fail."""
        roles = self.history.roles
        barred = {organisation_at(roles, g, at) for g in gainers if g != ZERO} - {0}
        orgs: set[int] = set()
        problems: list[str] = []
        for signer, deadline, signature in signed:
            if at > deadline:
                problems.append(f"{signer}: expired at {deadline}")
            elif not self._recovers_to(digest_of(deadline), signer, signature):
                problems.append(f"{signer}: signature does not recover to the signer")
            elif not roles.has_role_at(to_checksum_address(signer), role, at):
                problems.append(f"{signer}: did not hold {role} at {at}")
            else:
                org = organisation_at(roles, signer, at)
                if org in barred:
                    problems.append(f"{signer}: organisation {org} gains from the attestation")
                else:
                    orgs.add(org)
        return orgs, problems

    def _bundle(self, log: ChainLog, order_id: int, kind: str, milestone: int, function: str,
                duty: int = 0, payee: str = ZERO) -> tuple[list[Signed] | None, str]:
        """The signatures backing a bundle, and where they come from: the stored attestations if the
        store has any record of the order, else the transaction's calldata (None if unreadable)."""
        if order_id in self.orders_with_records:
            return [(a.signer, a.deadline, a.signature) for a in self.stored.get((kind, order_id, milestone), [])
                    if a.duty == duty and a.duty_payee.lower() == payee.lower()], "stored attestations"
        call = self._call(log)
        if call is None or call[1] != function or int(call[2]["milestone"]) != milestone:
            return None, "transaction calldata"
        return [(str(s[0]), int(s[1]), bytes(s[2])) for s in call[2]["signatures"]], "transaction calldata"

    # ---- transitions ---------------------------------------------------------------------

    def milestone(self, log: ChainLog, order: _Order, order_id: int) -> None:
        args = log.args
        milestone, duty, payee = int(args["milestone"]), int(args["duty"]), to_checksum_address(args["dutyPayee"])
        what = f"milestone {milestone}"
        terms = order.terms
        if terms is None or milestone >= len(terms.milestones):
            self._unbacked(log, order_id, what, "the order's terms are not known from its OrderCreated log",
                           milestone=str(milestone))
            return
        step = terms.milestones[milestone]
        signed, source = self._bundle(log, order_id, "milestone", milestone, "attestMilestone", duty, payee)
        if signed is None:
            self._unbacked(log, order_id, what, "no stored attestations for the order, and the transaction is not an "
                           "attestMilestone call to the escrow", milestone=str(milestone))
            return

        def digest(deadline: int) -> bytes:
            return milestone_digest(self.domain, order_id, milestone, duty, payee, deadline)

        gainers = [terms.seller] + ([terms.buyer] if duty else [])
        orgs, problems = self._quorum_orgs(signed, digest, step.role, log.block_time, gainers)
        if len(orgs) < step.quorum:
            self._unbacked(log, order_id, what,
                           f"{len(orgs)} valid {step.role} attestations from distinct organisations in the {source}, "
                           f"quorum {step.quorum}" + (f"; {'; '.join(problems)}" if problems else ""),
                           milestone=str(milestone), signers=",".join(s[0] for s in signed), source=source)
        order.reached = milestone + 1
        if step.kind is MilestoneKind.DELIVERED:
            order.delivered_at = log.block_time
            if order.disputed_at is not None:  # delivered during a dispute: its timeout starts again
                order.disputed_at = log.block_time

    def customs_return(self, log: ChainLog, order: _Order, order_id: int) -> None:
        terms = order.terms
        milestone = order.reached
        what = f"milestone {milestone}"
        if terms is None or milestone >= len(terms.milestones):
            self._unbacked(log, order_id, "refunded", "a customs return of an order whose terms are unknown")
            return
        signed, source = self._bundle(log, order_id, "customs_return", milestone, "attestCustomsReturn")
        if signed is None:
            self._unbacked(log, order_id, what, "no stored customs-return attestations for the order, and the "
                           "transaction is not an attestCustomsReturn call", milestone=str(milestone))
            return

        def digest(deadline: int) -> bytes:
            return customs_return_digest(self.domain, order_id, milestone, deadline)

        step = terms.milestones[milestone]
        orgs, problems = self._quorum_orgs(signed, digest, "CUSTOMS", log.block_time, [terms.buyer, terms.seller])
        if len(orgs) < step.quorum:
            self._unbacked(log, order_id, what, f"customs return backed by {len(orgs)} valid CUSTOMS attestations "
                           f"in the {source}, quorum {step.quorum}" + (f"; {'; '.join(problems)}" if problems else ""),
                           milestone=str(milestone))

    def released(self, log: ChainLog, order: _Order, order_id: int) -> None:
        terms = order.terms
        if terms is None:
            self._unbacked(log, order_id, "released", "release of an order whose terms are unknown")
            return
        if not log.args["confirmedByBuyer"]:
            if order.delivered_at is None:
                self._unbacked(log, order_id, "released", "released without the buyer, but never delivered")
            elif log.block_time <= order.delivered_at + max(terms.review_window, terms.dispute_window):
                self._unbacked(log, order_id, "released", "released without the buyer before the review and dispute "
                               "windows after delivery had passed", delivered_at=str(order.delivered_at))
            return
        call = self._call(log)
        if call is not None and call[1] == "confirmDelivery" and call[0].lower() == terms.buyer.lower():
            return
        if call is not None and call[1] == "confirmDeliveryBySig":
            deadline, signature = int(call[2]["deadline"]), bytes(call[2]["signature"])
            digest = confirmation_digest(self.domain, order_id, deadline)
            if log.block_time <= deadline and self._recovers_to(digest, terms.buyer, signature):
                return
        self._unbacked(log, order_id, "released", "confirmed neither by a buyer's transaction nor by a valid relayed "
                       "DeliveryConfirmation of the buyer", sender=call[0] if call else "")

    def refunded(self, log: ChainLog, order: _Order, order_id: int) -> None:
        terms = order.terms
        reason = RefundReason(int(log.args["reason"]))
        if terms is None:
            self._unbacked(log, order_id, "refunded", "refund of an order whose terms are unknown")
        elif reason is RefundReason.CUSTOMS_RETURNED:
            self.customs_return(log, order, order_id)
        elif reason is RefundReason.SHIP_BY_PASSED and (order.reached or log.block_time <= terms.ship_by):
            self._unbacked(log, order_id, "refunded", f"refunded as not shipped, at {log.block_time}, ship-by {terms.ship_by}, "
                           f"{order.reached} milestones reached")
        elif reason is RefundReason.DELIVER_BY_PASSED and (not order.reached or log.block_time <= terms.deliver_by):
            self._unbacked(log, order_id, "refunded", f"refunded as not delivered at {log.block_time}, deliver-by "
                           f"{terms.deliver_by}")

    def resolved(self, log: ChainLog, order: _Order, order_id: int) -> None:
        arbitrator = to_checksum_address(log.args["arbitrator"])
        if order.disputed_at is None:
            self._unbacked(log, order_id, "resolved", "a dispute was resolved that was never opened")
        elif arbitrator == to_checksum_address(ZERO):
            if log.block_time <= order.disputed_at + self.dispute_timeout():
                self._unbacked(log, order_id, "resolved", "decided by the timeout rule before the dispute timed out")
            elif order.terms is not None:
                self._timeout_rule(log, order, order_id, int(log.args["buyerShareBps"]))
        elif not self.history.roles.has_role_at(arbitrator, "ARBITRATOR", log.block_time):
            self._unbacked(log, order_id, "resolved", f"ruled by {arbitrator}, who did not hold ARBITRATOR at "
                           f"{log.block_time}", sender=arbitrator)
        elif order.terms is not None and organisation_at(self.history.roles, arbitrator, log.block_time) in (
                {organisation_at(self.history.roles, p, log.block_time) for p in (order.terms.buyer, order.terms.seller)}
                - {0}):
            self._unbacked(log, order_id, "resolved", f"ruled by {arbitrator}, of a party's organisation", sender=arbitrator)

    def lapsed(self, log: ChainLog, order: _Order, order_id: int) -> None:
        """A dispute that lapsed (Funded again): timed out, undelivered, within its deadlines."""
        if order.disputed_at is None:
            self._unbacked(log, order_id, "lapsed", "a dispute lapsed that was never opened")
        elif log.block_time <= order.disputed_at + self.dispute_timeout():
            self._unbacked(log, order_id, "lapsed", "lapsed before the dispute timed out")
        elif order.terms is not None:
            self._timeout_rule(log, order, order_id, None)
        order.disputed_at = None

    def _timeout_rule(self, log: ChainLog, order: _Order, order_id: int, buyer_share_bps: int | None) -> None:
        """What the timeout rule decides from the attested facts: delivered, all to the seller side
        (buyer share 0); overdue (not shipped by shipBy, not delivered by deliverBy), all back to the
        buyer (10,000); otherwise the dispute lapses (None)."""
        terms = order.terms
        assert terms is not None
        deadline = terms.ship_by if order.reached == 0 else terms.deliver_by
        due = 0 if order.reached == len(terms.milestones) else BPS if log.block_time > deadline else None
        if buyer_share_bps != due:
            decided = "a lapse" if buyer_share_bps is None else f"{buyer_share_bps} basis points to the buyer"
            rule = "a lapse" if due is None else f"{due} basis points to the buyer"
            self._unbacked(log, order_id, "lapsed" if buyer_share_bps is None else "resolved",
                           f"the timeout rule gave {decided}, where {order.reached} of {len(terms.milestones)} milestones "
                           f"reached at {log.block_time} (ship-by {terms.ship_by}, deliver-by {terms.deliver_by}) give {rule}")

    def party_action(self, log: ChainLog, order: _Order, order_id: int, what: str, account_key: str,
                     allowed: Iterable[str]) -> None:
        account = to_checksum_address(log.args[account_key])
        if account.lower() not in {a.lower() for a in allowed}:
            self._unbacked(log, order_id, what, f"{what} by {account}, who may not", sender=account)

    def dispute_timeout(self) -> int:
        if self._timeout is None:
            contract = self.client.contract(ESCROW, self.escrow)
            self._timeout = int(contract.functions.disputeTimeout().call(block_identifier=self.history.to_block))
        return self._timeout


def check_escrow(client: ChainClient, deployment: Deployment, history: ChainHistory, evidence: Evidence
                 ) -> tuple[list[Discrepancy], dict[str, int]]:
    """Every escrow transition of the replayed history, checked; and counts of what was checked."""
    if ESCROW not in deployment.contracts:
        return [], {}
    escrow = to_checksum_address(deployment.address(ESCROW))
    stored: dict[tuple[str, int, int], list[StoredEscrowAttestation]] = defaultdict(list)
    signatures = 0
    for a in evidence.escrow_attestations():
        if a.chain_id == history.chain_id and a.escrow.lower() == escrow.lower():
            stored[(a.kind, a.order_id, a.milestone)].append(a)
            signatures += 1
    checker = _Checker(client, escrow, history, stored)
    covered = evidence_orders(evidence)
    orders: dict[int, _Order] = {}
    transitions = 0
    for log in history.escrow_logs:
        if "orderId" not in log.args:
            continue
        order_id = int(log.args["orderId"])
        if covered is not None and order_id not in covered:
            continue
        order = orders.get(order_id)
        if order is None:
            order = orders[order_id] = _Order(history.orders.get(order_id))
        terms = order.terms
        event = log.event
        if event == "OrderCreated":
            continue
        transitions += 1
        if event == "MilestoneReached":
            checker.milestone(log, order, order_id)
        elif event == "OrderReleased":
            checker.released(log, order, order_id)
        elif event == "OrderRefunded":
            checker.refunded(log, order, order_id)
        elif event == "DisputeOpened":
            order.disputed_at = log.block_time
            if terms is not None:
                checker.party_action(log, order, order_id, "disputed", "openedBy", (terms.buyer, terms.seller))
        elif event == "DisputeResolved":
            checker.resolved(log, order, order_id)
        elif event == "DisputeLapsed":
            checker.lapsed(log, order, order_id)
        elif event == "OrderCancelled" and terms is not None:
            checker.party_action(log, order, order_id, "cancelled", "seller", (terms.seller,))
            if order.reached:
                checker._unbacked(log, order_id, "cancelled", "cancelled after the goods had shipped")
        elif event == "OrderFunded" and terms is not None:
            checker.party_action(log, order, order_id, "funded", "buyer", (terms.buyer,))
        else:
            transitions -= 1  # RateLocked and other records: not transitions
    return checker.found, {"orders": len(orders), "transitions": transitions, "signatures": signatures}
