"""The relayer's values: a posted signature, the state of a milestone's submission, and what
became of a signature or a submission attempt."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from node.escrow.store import order_key
from node.escrow.terms import ZERO_ADDRESS


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
