"""The relayer's storage: accepted signatures (`relay_signatures`) and one submission row per
milestone (`relay_submissions`), both keyed by chain, escrow, kind, order and milestone; and
the quorum rule that picks a bundle from the stored signatures.

Tables: models in node.db.relayer, created by migration
node/db/migrations/versions/0004_relayer.py; the relayer runs `Database.migrate()`.
"""

from __future__ import annotations

import time
from typing import Any

from eth_utils.address import to_checksum_address
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from node.db import Database
from node.db.relayer import RelaySignature, RelaySubmission
from node.escrow.store import order_key
from node.relayer.errors import DuplicateSigner
from node.relayer.model import Kind, SignatureIn, Status


def _now_ms() -> int:
    return int(time.time() * 1000)


class RelayStore:
    """The signatures and submissions of one escrow contract on one chain."""

    def __init__(self, db: Database, chain_id: int, escrow: str) -> None:
        self.db = db
        self.chain_id = chain_id
        self.escrow = escrow

    def _key(self, model: Any, kind: Kind, order_id: int, milestone: int) -> list[Any]:
        return [
            model.chain_id == self.chain_id, model.escrow == self.escrow, model.kind == kind.value,
            model.order_id == order_key(order_id), model.milestone == milestone,
        ]

    # ---- signatures ------------------------------------------------------------------------------

    def store(self, sig: SignatureIn, signer: str, org: int) -> bool:
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
                chain_id=self.chain_id, escrow=self.escrow, kind=sig.kind.value, order_id=order_key(sig.order_id),
                milestone=sig.milestone, duty=str(sig.duty), duty_payee=to_checksum_address(sig.duty_payee),
                signer=signer, org_id=org, deadline=sig.deadline, signature=sig.signature, received_at_ms=_now_ms(),
            ))
            if session.scalars(select(RelaySubmission).where(
                    *self._key(RelaySubmission, sig.kind, sig.order_id, sig.milestone))).first() is None:
                session.add(RelaySubmission(
                    chain_id=self.chain_id, escrow=self.escrow, kind=sig.kind.value, order_id=order_key(sig.order_id),
                    milestone=sig.milestone, status=Status.COLLECTING.value, sends=0, updated_at_ms=_now_ms(),
                ))
        return True

    def signatures(self, kind: Kind, order_id: int, milestone: int) -> list[RelaySignature]:
        """The milestone's signatures by organisation, each organisation's latest-lasting first."""
        with self.db.session() as session:
            return list(session.scalars(
                select(RelaySignature).where(*self._key(RelaySignature, kind, order_id, milestone))
                .order_by(RelaySignature.org_id, RelaySignature.deadline.desc())
            ))

    def drop(self, kind: Kind, order_id: int, milestone: int, signer: str) -> None:
        with self.db.write() as session:
            session.execute(delete(RelaySignature).where(*self._key(RelaySignature, kind, order_id, milestone),
                                                         RelaySignature.signer == to_checksum_address(signer)))

    # ---- quorum ----------------------------------------------------------------------------------

    def collected(self, kind: Kind, order_id: int, milestone: int, duty: int, payee: str) -> int:
        """Distinct organisations whose stored signatures agree on this duty and payee."""
        payee = to_checksum_address(payee)
        return len({s.org_id for s in self.signatures(kind, order_id, milestone)
                    if s.duty == str(duty) and s.duty_payee == payee})

    def bundle(self, kind: Kind, order_id: int, milestone: int, quorum: int,
               usable_from: int) -> tuple[int, str, list[RelaySignature]] | None:
        """(duty, payee, quorum signatures of distinct organisations, sorted by organisation) if
        some duty has a quorum of signatures whose deadline is at least `usable_from`."""
        groups: dict[tuple[str, str], dict[int, RelaySignature]] = {}
        for s in self.signatures(kind, order_id, milestone):
            if s.deadline < usable_from:
                continue  # would expire before or soon after mining
            # One signature per organisation (the latest-lasting: rows come sorted that way).
            groups.setdefault((s.duty, s.duty_payee), {}).setdefault(s.org_id, s)
        for (duty, payee), by_org in groups.items():
            if len(by_org) >= quorum:
                chosen = [by_org[o] for o in sorted(by_org)][:quorum]
                return int(duty), payee, chosen
        return None

    # ---- submissions -----------------------------------------------------------------------------

    def submission(self, kind: Kind, order_id: int, milestone: int) -> RelaySubmission | None:
        with self.db.session() as session:
            return session.scalars(select(RelaySubmission).where(*self._key(RelaySubmission, kind, order_id, milestone))).first()

    def submissions(self, status: Status) -> list[RelaySubmission]:
        """Every submission of this escrow in `status`."""
        with self.db.session() as session:
            return list(session.scalars(select(RelaySubmission).where(
                RelaySubmission.chain_id == self.chain_id, RelaySubmission.escrow == self.escrow,
                RelaySubmission.status == status.value)))

    def settle(self, kind: Kind, order_id: int, milestone: int, status: Status, detail: str | None,
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

    def claim(self, kind: Kind, order_id: int, milestone: int) -> bool:
        """collecting -> submitting, for one submitter only."""
        with self.db.write() as session:
            result = session.execute(
                update(RelaySubmission)
                .where(*self._key(RelaySubmission, kind, order_id, milestone),
                       RelaySubmission.status == Status.COLLECTING.value)
                .values(status=Status.SUBMITTING.value, updated_at_ms=_now_ms(), sends=RelaySubmission.sends + 1)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]
