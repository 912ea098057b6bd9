"""Typed mirrors of TradeEscrow's ABI structs (contracts/interfaces/ITradeEscrow.sol); its enums
are mirrored in node.chain.contract_enums and re-exported here.

An order is named by its terms: `OrderTerms.order_id` is `keccak256(abi.encode(terms))`, as the
contract computes it, and every call about an order passes the terms in full. The terms are
published in `OrderCreated`; `OrderTerms.from_abi` reads them back from the decoded event, and
`to_json` / `from_json` keep them in a file (node/escrow/store.py) without losing a bit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NewType

from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from node.chain.contract_enums import MilestoneKind as MilestoneKind  # the contract's enums, under their usual names here
from node.chain.contract_enums import RefundReason as RefundReason
from node.chain.contract_enums import State as State
from node.errors import WaymarkError

OrderId = NewType("OrderId", int)

BPS = 10_000
ZERO_ADDRESS = "0x" + "00" * 20
NO_CURRENCY = b"\x00\x00\x00"
MIN_MILESTONES, MAX_MILESTONES = 2, 5

# abi.encode(OrderTerms) as eth_abi spells the struct (field order of ITradeEscrow.OrderTerms).
MILESTONE_ABI = "(uint8,uint16,uint8)"
TERMS_ABI = (
    "(address,uint64,address,uint64,address,uint8,uint96,bytes3,address,uint16,address,uint16,bytes32,"
    f"uint40,uint40,uint32,uint32,uint64,uint16,uint64[3],uint64[3],{MILESTONE_ABI}[])"
)
MAX_NAMED_ORGANISATIONS = 3  # customs authorities, and arbitrators, of one order
FX_MAX_VALIDITY = 3600
"""The longest an FX quote may be valid (expiresAt - issuedAt), as the contract checks."""


class InvalidTerms(WaymarkError):
    """Order terms that cannot be encoded (the contract's own checks come later, on chain)."""

    code = "invalid_terms"

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        super().__init__(f"order terms: {field_name}: {problem}")


def _uint(name: str, value: int, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise InvalidTerms(name, f"must be an integer from 0 to 2^{bits}-1, got {value!r}")
    return value


def _address(name: str, value: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidTerms(name, f"must be an account address, got {value!r}")
    return to_checksum_address(value)


def currency_bytes(code: str | bytes | None) -> bytes:
    """An ISO 4217 code as the contract's bytes3 ("" or None: priced in the token)."""
    if code is None or code == "" or code == NO_CURRENCY:
        return NO_CURRENCY
    if isinstance(code, bytes):
        if len(code) != 3:
            raise InvalidTerms("priceCurrency", f"bytes3 expected, got {len(code)} bytes")
        return code
    if code.startswith("0x"):
        raw = bytes.fromhex(code[2:])
        if len(raw) != 3:
            raise InvalidTerms("priceCurrency", f"bytes3 expected, got {code!r}")
        return raw
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise InvalidTerms("priceCurrency", f"must be an ISO 4217 code like 'EUR', got {code!r}")
    return code.encode()


def currency_text(raw: bytes) -> str | None:
    """bytes3 back to its code: None for none, the letters for ISO codes, 0x-hex for anything else."""
    if raw == NO_CURRENCY:
        return None
    if re.fullmatch(rb"[A-Z]{3}", raw):
        return raw.decode()
    return "0x" + raw.hex()


@dataclass(frozen=True)
class Milestone:
    """ITradeEscrow.Milestone: one step of the schedule."""

    kind: MilestoneKind
    share_bps: int
    quorum: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", MilestoneKind(self.kind))
        _uint("milestones.shareBps", self.share_bps, 16)
        _uint("milestones.quorum", self.quorum, 8)

    @property
    def role(self) -> str:
        return self.kind.role

    def as_abi(self) -> tuple[int, int, int]:
        return (int(self.kind), self.share_bps, self.quorum)

    @classmethod
    def from_abi(cls, value: Sequence[Any] | Mapping[str, Any]) -> "Milestone":
        if isinstance(value, Mapping):
            return cls(MilestoneKind(value["kind"]), int(value["shareBps"]), int(value["quorum"]))
        kind, share, quorum = value
        return cls(MilestoneKind(kind), int(share), int(quorum))


def schedule(*shares_bps: int, quorum: int = 2, customs_quorum: int | None = None) -> tuple[Milestone, ...]:
    """Shipped, then one CustomsCleared per middle share, then Delivered, with these shares."""
    if len(shares_bps) < MIN_MILESTONES:
        raise InvalidTerms("milestones", f"a schedule has {MIN_MILESTONES} to {MAX_MILESTONES} steps")
    last = len(shares_bps) - 1
    steps = []
    for i, share in enumerate(shares_bps):
        kind = MilestoneKind.SHIPPED if i == 0 else MilestoneKind.DELIVERED if i == last else MilestoneKind.CUSTOMS_CLEARED
        k = customs_quorum if kind is MilestoneKind.CUSTOMS_CLEARED and customs_quorum is not None else quorum
        steps.append(Milestone(kind, share, k))
    return tuple(steps)


def named_organisations(orgs: Sequence[int], field: str = "customsAuthorities") -> tuple[int, int, int]:
    """Up to three organisation ids as a list of the terms names them (`customsAuthorities`,
    `arbitrators`): sorted, unique, padded with zeros."""
    unique = sorted({int(o) for o in orgs if int(o) != 0})
    if len(unique) > MAX_NAMED_ORGANISATIONS:
        raise InvalidTerms(field, f"at most {MAX_NAMED_ORGANISATIONS} organisations, got {len(unique)}")
    padded = unique + [0] * (MAX_NAMED_ORGANISATIONS - len(unique))
    return (padded[0], padded[1], padded[2])


def customs_authorities(orgs: Sequence[int]) -> tuple[int, int, int]:
    """The terms' `customsAuthorities` (`named_organisations`)."""
    return named_organisations(orgs, "customsAuthorities")


def arbitrators(orgs: Sequence[int]) -> tuple[int, int, int]:
    """The terms' `arbitrators` (`named_organisations`)."""
    return named_organisations(orgs, "arbitrators")


@dataclass(frozen=True)
class OrderTerms:
    """ITradeEscrow.OrderTerms: everything agreed for one trade, hashed into the order id.

    Addresses are kept checksummed; `price_currency` is the raw bytes3 (zero: priced in the
    token) and `shipment_ref` the raw bytes32, so that terms read from a log re-encode to the
    same id. `seller_org`, `buyer_org` and `token_decimals` must be what the chain says when the
    order is created (`EscrowClient.complete` reads them); `customs_authorities` (the customs
    organisations that may clear the order and take its duty), `max_duty_bps` (the most duty,
    in basis points of the deposit, paid without the buyer's signature) and `arbitrators` (the
    arbitration houses that may rule on its disputes; none: a dispute is decided at its timeout by
    the attested facts) are agreed by the parties.
    """

    seller: str
    buyer: str
    token: str
    amount: int
    ship_by: int
    deliver_by: int
    milestones: tuple[Milestone, ...] = field(default_factory=lambda: schedule(0, 3000, 7000))
    price_currency: bytes = NO_CURRENCY
    platform: str = ZERO_ADDRESS
    platform_fee_bps: int = 0
    carrier: str = ZERO_ADDRESS
    carrier_fee_bps: int = 0
    shipment_ref: bytes = b"\x00" * 32
    review_window: int = 3 * 24 * 3600
    dispute_window: int = 2 * 24 * 3600
    salt: int = 0
    seller_org: int = 0
    buyer_org: int = 0
    token_decimals: int = 0
    max_duty_bps: int = 0
    customs_authorities: tuple[int, int, int] = (0, 0, 0)
    arbitrators: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        for name in ("seller", "buyer", "token", "platform", "carrier"):
            object.__setattr__(self, name, _address(name, getattr(self, name)))
        _uint("amount", self.amount, 96)
        _uint("platformFeeBps", self.platform_fee_bps, 16)
        _uint("carrierFeeBps", self.carrier_fee_bps, 16)
        _uint("shipBy", self.ship_by, 40)
        _uint("deliverBy", self.deliver_by, 40)
        _uint("reviewWindow", self.review_window, 32)
        _uint("disputeWindow", self.dispute_window, 32)
        _uint("salt", self.salt, 64)
        _uint("sellerOrg", self.seller_org, 64)
        _uint("buyerOrg", self.buyer_org, 64)
        _uint("tokenDecimals", self.token_decimals, 8)
        _uint("maxDutyBps", self.max_duty_bps, 16)
        object.__setattr__(self, "customs_authorities", named_exactly(self.customs_authorities, "customsAuthorities"))
        object.__setattr__(self, "arbitrators", named_exactly(self.arbitrators, "arbitrators"))
        object.__setattr__(self, "price_currency", currency_bytes(self.price_currency))
        if not isinstance(self.shipment_ref, bytes) or len(self.shipment_ref) != 32:
            raise InvalidTerms("shipmentRef", "must be 32 bytes")
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if not all(isinstance(m, Milestone) for m in self.milestones):
            raise InvalidTerms("milestones", "must be Milestone values")

    # ---- identity -------------------------------------------------------------------------

    def as_abi(self) -> tuple[Any, ...]:
        """The struct as web3 / eth_abi take it (a tuple in field order)."""
        return (
            self.seller,
            self.seller_org,
            self.buyer,
            self.buyer_org,
            self.token,
            self.token_decimals,
            self.amount,
            self.price_currency,
            self.platform,
            self.platform_fee_bps,
            self.carrier,
            self.carrier_fee_bps,
            self.shipment_ref,
            self.ship_by,
            self.deliver_by,
            self.review_window,
            self.dispute_window,
            self.salt,
            self.max_duty_bps,
            list(self.customs_authorities),
            list(self.arbitrators),
            [m.as_abi() for m in self.milestones],
        )

    @property
    def order_id(self) -> OrderId:
        """uint256(keccak256(abi.encode(terms))), as the contract's `orderIdOf`."""
        return OrderId(int.from_bytes(keccak(abi_encode([TERMS_ABI], [self.as_abi()])), "big"))

    @property
    def priced_in_token(self) -> bool:
        return self.price_currency == NO_CURRENCY

    @property
    def currency(self) -> str | None:
        return currency_text(self.price_currency)

    def but(self, **changes: Any) -> "OrderTerms":
        return replace(self, **changes)

    def deadline_of(self, milestone: int) -> int:
        """The time by which milestone `milestone` must be attested."""
        return self.ship_by if self.milestones[milestone].kind is MilestoneKind.SHIPPED else self.deliver_by

    # ---- conversions ----------------------------------------------------------------------

    @classmethod
    def from_abi(cls, value: Sequence[Any] | Mapping[str, Any]) -> "OrderTerms":
        """From a decoded struct: a tuple in field order, or a mapping by field name."""
        if isinstance(value, Mapping):
            names = ("seller", "sellerOrg", "buyer", "buyerOrg", "token", "tokenDecimals", "amount", "priceCurrency",
                     "platform", "platformFeeBps", "carrier", "carrierFeeBps", "shipmentRef", "shipBy", "deliverBy",
                     "reviewWindow", "disputeWindow", "salt", "maxDutyBps", "customsAuthorities", "arbitrators", "milestones")
            value = [value[n] for n in names]
        (seller, seller_org, buyer, buyer_org, token, decimals, amount, currency, platform, platform_fee, carrier,
         carrier_fee, ref, ship_by, deliver_by, review, dispute, salt, max_duty, authorities, judges, milestones) = value
        return cls(
            seller=seller, seller_org=int(seller_org), buyer=buyer, buyer_org=int(buyer_org), token=token,
            token_decimals=int(decimals), max_duty_bps=int(max_duty),
            customs_authorities=named_exactly([int(o) for o in authorities], "customsAuthorities"),
            arbitrators=named_exactly([int(o) for o in judges], "arbitrators"),
            amount=int(amount), price_currency=bytes(currency),
            platform=platform, platform_fee_bps=int(platform_fee), carrier=carrier, carrier_fee_bps=int(carrier_fee),
            shipment_ref=bytes(ref), ship_by=int(ship_by), deliver_by=int(deliver_by), review_window=int(review),
            dispute_window=int(dispute), salt=int(salt), milestones=tuple(Milestone.from_abi(m) for m in milestones),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-safe: amounts as decimal strings (uint96 does not fit a JS number)."""
        return {
            "seller": self.seller,
            "sellerOrg": str(self.seller_org),
            "buyer": self.buyer,
            "buyerOrg": str(self.buyer_org),
            "token": self.token,
            "tokenDecimals": self.token_decimals,
            "maxDutyBps": self.max_duty_bps,
            "customsAuthorities": [str(o) for o in self.customs_authorities],
            "arbitrators": [str(o) for o in self.arbitrators],
            "amount": str(self.amount),
            "priceCurrency": self.currency,
            "platform": self.platform,
            "platformFeeBps": self.platform_fee_bps,
            "carrier": self.carrier,
            "carrierFeeBps": self.carrier_fee_bps,
            "shipmentRef": "0x" + self.shipment_ref.hex(),
            "shipBy": self.ship_by,
            "deliverBy": self.deliver_by,
            "reviewWindow": self.review_window,
            "disputeWindow": self.dispute_window,
            "salt": str(self.salt),
            "milestones": [
                {"kind": m.kind.name, "shareBps": m.share_bps, "quorum": m.quorum} for m in self.milestones
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "OrderTerms":
        try:
            ref = str(data["shipmentRef"])
            milestones = tuple(
                Milestone(
                    MilestoneKind[m["kind"]] if isinstance(m["kind"], str) else MilestoneKind(m["kind"]),
                    int(m["shareBps"]),
                    int(m["quorum"]),
                )
                for m in data["milestones"]
            )
            return cls(
                seller=data["seller"],
                seller_org=int(data.get("sellerOrg", 0)),
                buyer=data["buyer"],
                buyer_org=int(data.get("buyerOrg", 0)),
                token=data["token"],
                token_decimals=int(data.get("tokenDecimals", 0)),
                max_duty_bps=int(data.get("maxDutyBps", 0)),
                customs_authorities=named_exactly([int(o) for o in data.get("customsAuthorities", (0, 0, 0))], "customsAuthorities"),
                arbitrators=named_exactly([int(o) for o in data.get("arbitrators", (0, 0, 0))], "arbitrators"),
                amount=int(data["amount"]),
                price_currency=currency_bytes(data.get("priceCurrency")),
                platform=data.get("platform", ZERO_ADDRESS),
                platform_fee_bps=int(data.get("platformFeeBps", 0)),
                carrier=data.get("carrier", ZERO_ADDRESS),
                carrier_fee_bps=int(data.get("carrierFeeBps", 0)),
                shipment_ref=bytes.fromhex(ref.removeprefix("0x")),
                ship_by=int(data["shipBy"]),
                deliver_by=int(data["deliverBy"]),
                review_window=int(data.get("reviewWindow", 3 * 24 * 3600)),
                dispute_window=int(data.get("disputeWindow", 2 * 24 * 3600)),
                salt=int(data.get("salt", 0)),
                milestones=milestones,
            )
        except KeyError as exc:
            raise InvalidTerms(str(exc.args[0]), "missing") from None
        except (ValueError, TypeError) as exc:
            raise InvalidTerms("(terms)", str(exc)) from None


@dataclass(frozen=True)
class Order:
    """ITradeEscrow.Order: the mutable part of an order (one storage slot)."""

    state: State
    milestones_reached: int
    since: int
    deposited: int
    remaining: int

    @classmethod
    def from_abi(cls, value: Sequence[Any] | Mapping[str, Any]) -> "Order":
        if isinstance(value, Mapping):
            value = [value[n] for n in ("state", "milestonesReached", "since", "deposited", "remaining")]
        state, reached, since, deposited, remaining = value
        return cls(State(state), int(reached), int(since), int(deposited), int(remaining))

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.name,
            "milestonesReached": self.milestones_reached,
            "since": self.since,
            "deposited": str(self.deposited),
            "remaining": str(self.remaining),
        }


@dataclass(frozen=True)
class Attestation:
    """ITradeEscrow.Attestation: one signature of a k-of-n bundle."""

    signer: str
    deadline: int
    signature: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "signer", _address("signer", self.signer))

    def as_abi(self) -> tuple[str, int, bytes]:
        return (self.signer, self.deadline, self.signature)


@dataclass(frozen=True)
class FxQuote:
    """ITradeEscrow.FxQuote: `rate` units of `quote` per unit of `base`, 18 decimals, for one
    order (the oracles sign its id), valid from `issued_at` to `expires_at` (at most
    FX_MAX_VALIDITY seconds)."""

    base: bytes
    quote: bytes
    rate: int
    issued_at: int
    expires_at: int
    signatures: tuple[Attestation, ...] = ()

    def as_abi(self) -> tuple[Any, ...]:
        return (self.base, self.quote, self.rate, self.issued_at, self.expires_at, [a.as_abi() for a in self.signatures])

    @classmethod
    def empty(cls) -> "FxQuote":
        """What `fund` takes for an order priced in its token (the quote is ignored)."""
        return cls(NO_CURRENCY, NO_CURRENCY, 0, 0, 0, ())


@dataclass(frozen=True)
class PermitSignature:
    """ITradeEscrow.PermitSignature: an EIP-2612 permit from the buyer to the escrow."""

    value: int
    deadline: int
    v: int
    r: bytes
    s: bytes

    def as_abi(self) -> tuple[int, int, int, bytes, bytes]:
        return (self.value, self.deadline, self.v, self.r, self.s)


def named_exactly(orgs: Sequence[Any], field: str) -> tuple[int, int, int]:
    """Three organisation ids (uint64 integers) exactly as given, in a list of the terms (`field`):
    terms read back must re-encode to the same id."""
    values = list(orgs)
    if len(values) != MAX_NAMED_ORGANISATIONS:
        raise InvalidTerms(field, f"{MAX_NAMED_ORGANISATIONS} organisation ids (0 for none) expected")
    for org in values:
        _uint(field, org, 64)
    return (values[0], values[1], values[2])


def due_amount(terms: OrderTerms, rate: int | None, decimals: int) -> int:
    """Token units the buyer pays: the amount for token-priced orders, else converted at `rate`
    (18 decimals) and rounded up at `decimals` (the terms' own), exactly as the contract's `_lockRate`."""
    if terms.priced_in_token:
        return terms.amount
    if rate is None:
        raise InvalidTerms("priceCurrency", f"the order is priced in {terms.currency}: an FX rate is needed")
    scale = 10 ** (36 - decimals)
    return int(-(-terms.amount * rate // scale))
