"""The Solidity enums of the Waymark contracts, mirrored as IntEnums (an enum travels in the ABI
as its uint8 value). They live here, below everything that speaks of them, so that the revert
decoder (node.chain.errors) names their members without importing the domain modules that use
them (node.chain.registry, node.escrow.terms re-export them under their usual names).
Each class must list the members of its Solidity enum in the same order."""

from __future__ import annotations

from enum import IntEnum


class ProposalKind(IntEnum):
    """IConsortiumRegistry.ProposalKind."""

    ADMIT = 0
    SUSPEND = 1
    REINSTATE = 2
    GRANT_ROLE = 3
    REVOKE_ROLE = 4
    CHANGE_THRESHOLD = 5
    ASSIGN_COMPANY_PREFIX = 6
    APPROVE_CONTRACT_SIGNER = 7
    SET_MAX_REPORTING_DELAY = 8
    SET_VERIFIER_BUNDLE = 9


class OrgStatus(IntEnum):
    """IConsortiumRegistry.OrganisationStatus."""

    NONE = 0
    ACTIVE = 1
    SUSPENDED = 2


class State(IntEnum):
    """ITradeEscrow.State: an order's place in its life cycle."""

    NONE = 0
    CREATED = 1
    FUNDED = 2
    DELIVERED = 3
    DISPUTED = 4
    RELEASED = 5
    REFUNDED = 6
    CANCELLED = 7
    RESOLVED = 8

    @property
    def terminal(self) -> bool:
        return self in (State.RELEASED, State.REFUNDED, State.CANCELLED, State.RESOLVED)


class MilestoneKind(IntEnum):
    """ITradeEscrow.MilestoneKind."""

    SHIPPED = 0
    CUSTOMS_CLEARED = 1
    DELIVERED = 2

    @property
    def role(self) -> str:
        """The consortium role whose organisations attest this kind of milestone."""
        return "CUSTOMS" if self is MilestoneKind.CUSTOMS_CLEARED else "CARRIER"


class RefundReason(IntEnum):
    """ITradeEscrow.RefundReason."""

    SHIP_BY_PASSED = 0
    DELIVER_BY_PASSED = 1
    CUSTOMS_RETURNED = 2


BY_SOLIDITY_NAME: dict[str, type[IntEnum]] = {
    "ProposalKind": ProposalKind, "OrganisationStatus": OrgStatus,
    "State": State, "MilestoneKind": MilestoneKind, "RefundReason": RefundReason,
}
"""The enums by their Solidity name (the last part of an ABI `internalType` such as
`enum ITradeEscrow.State`)."""
