"""The Python side of TradeEscrow: typed order terms, EIP-712 signing, and the escrow client."""

from node.escrow.client import EscrowClient, EscrowError, InvalidAmount, OrderView, TermsMismatch, TokenInfo, UnknownOrder
from node.escrow.signing import EscrowDomain
from node.escrow.store import TermsStore, order_key
from node.escrow.terms import (
    Attestation,
    FxQuote,
    InvalidTerms,
    Milestone,
    MilestoneKind,
    Order,
    OrderId,
    OrderTerms,
    PermitSignature,
    RefundReason,
    State,
    schedule,
)

__all__ = [
    "Attestation", "EscrowClient", "EscrowDomain", "EscrowError", "FxQuote", "InvalidAmount", "InvalidTerms",
    "Milestone", "MilestoneKind", "Order", "OrderId", "OrderTerms", "OrderView", "PermitSignature", "RefundReason",
    "State", "TermsMismatch", "TermsStore", "TokenInfo", "UnknownOrder", "order_key", "schedule",
]
