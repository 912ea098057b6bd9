"""What the relayer refuses, each error saying what is wrong; node.relayer.app maps them to HTTP statuses."""

from __future__ import annotations

from node.errors import WaymarkError
from node.escrow.store import order_key
from node.escrow.terms import MilestoneKind, State


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

    def __init__(self, duty: int, allowed: int) -> None:
        super().__init__(f"a duty of {duty} exceeds the {allowed} the order's duty cap leaves (maxDutyBps of the deposit, "
                         "less the duty its earlier customs steps paid): it needs the buyer's own signature, "
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
