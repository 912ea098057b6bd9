"""A deployed TradeEscrow world for tests and the gas benchmark: a consortium with three
carrier, three customs and three oracle organisations, an arbitrator and an operator; two
devnet stablecoins; helpers that build order terms and sign the escrow's EIP-712 messages
the way an oracle or a buyer's wallet would (eth_account `encode_typed_data`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, cast

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from node.chain.client import ChainClient
from node.chain.consortium import DEFAULT_MAX_REPORTING_DELAY

ZERO = "0x" + "00" * 20
BPS = 10_000
DAY = 24 * 3600
DISPUTE_TIMEOUT = 14 * DAY
FX_QUORUM = 2
UNIT6 = 10**6
UNIT18 = 10**18


def role(name: str) -> bytes:
    return keccak(text=name)


CARRIER, CUSTOMS, ORACLE, ARBITRATOR, OPERATOR, MANUFACTURER = (
    role(n) for n in ("CARRIER", "CUSTOMS", "ORACLE", "ARBITRATOR", "OPERATOR", "MANUFACTURER")
)


class State(IntEnum):
    NONE = 0
    CREATED = 1
    FUNDED = 2
    DELIVERED = 3
    DISPUTED = 4
    RELEASED = 5
    REFUNDED = 6
    CANCELLED = 7
    RESOLVED = 8


class Kind(IntEnum):
    SHIPPED = 0
    CUSTOMS_CLEARED = 1
    DELIVERED = 2


class Reason(IntEnum):
    SHIP_BY_PASSED = 0
    DELIVER_BY_PASSED = 1
    CUSTOMS_RETURNED = 2


TERMS_ABI = (
    "(address,uint64,address,uint64,address,uint8,uint96,bytes3,address,uint16,address,uint16,bytes32,"
    "uint40,uint40,uint32,uint32,uint64,uint16,uint64[3],uint64[3],(uint8,uint16,uint8)[])"
)
FX_MAX_VALIDITY = 3600
MAX_DUTY_BPS = 1_000

TYPES: dict[str, list[dict[str, str]]] = {
    "MilestoneAttestation": [
        {"name": "orderId", "type": "uint256"},
        {"name": "milestone", "type": "uint8"},
        {"name": "duty", "type": "uint256"},
        {"name": "dutyPayee", "type": "address"},
        {"name": "deadline", "type": "uint256"},
    ],
    "CustomsReturn": [
        {"name": "orderId", "type": "uint256"},
        {"name": "milestone", "type": "uint8"},
        {"name": "deadline", "type": "uint256"},
    ],
    "DeliveryConfirmation": [
        {"name": "orderId", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "FxRate": [
        {"name": "orderId", "type": "uint256"},
        {"name": "base", "type": "bytes3"},
        {"name": "quote", "type": "bytes3"},
        {"name": "rate", "type": "uint256"},
        {"name": "issuedAt", "type": "uint64"},
        {"name": "expiresAt", "type": "uint64"},
        {"name": "deadline", "type": "uint256"},
    ],
}
DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@dataclass(frozen=True)
class Step:
    kind: Kind
    share_bps: int
    quorum: int

    def as_tuple(self) -> tuple[int, int, int]:
        return (int(self.kind), self.share_bps, self.quorum)


def schedule(*shares: int, quorum: int = 2) -> tuple[Step, ...]:
    """Shipped, customs..., Delivered with these shares (bps) and one quorum for all."""
    kinds = [Kind.SHIPPED] + [Kind.CUSTOMS_CLEARED] * (len(shares) - 2) + [Kind.DELIVERED]
    return tuple(Step(k, s, quorum) for k, s in zip(kinds, shares))


@dataclass(frozen=True)
class Terms:
    seller: str
    buyer: str
    token: str
    amount: int
    ship_by: int
    deliver_by: int
    milestones: tuple[Step, ...] = field(default_factory=lambda: schedule(0, 3000, 7000))
    price_currency: bytes = b"\x00\x00\x00"
    platform: str = ZERO
    platform_fee_bps: int = 0
    carrier: str = ZERO
    carrier_fee_bps: int = 0
    shipment_ref: bytes = b"\x00" * 32
    review_window: int = 3 * DAY
    dispute_window: int = 2 * DAY
    salt: int = 0
    seller_org: int = 0
    buyer_org: int = 0
    token_decimals: int = 6
    max_duty_bps: int = MAX_DUTY_BPS
    customs_authorities: tuple[int, int, int] = (0, 0, 0)
    arbitrators: tuple[int, int, int] = (0, 0, 0)

    def as_tuple(self) -> tuple[Any, ...]:
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
            [m.as_tuple() for m in self.milestones],
        )

    @property
    def order_id(self) -> int:
        return int.from_bytes(keccak(abi_encode([TERMS_ABI], [self.as_tuple()])), "big")

    def but(self, **changes: Any) -> "Terms":
        return replace(self, **changes)


def signer_key(label: str) -> LocalAccount:
    """A deterministic key for an account that only signs (never sends a transaction)."""
    # from_key is an eth_utils combomethod, whose descriptor erases the return type to Any.
    return cast(LocalAccount, Account.from_key(keccak(text=f"waymark-escrow-test:{label}")))


def empty_fx() -> tuple[Any, ...]:
    return (b"\x00\x00\x00", b"\x00\x00\x00", 0, 0, 0, [])


@dataclass
class EscrowWorld:
    chain: ChainClient
    registry: Contract
    escrow: Contract
    usd: Contract  # 6 decimals, "USD"
    eur: Contract  # 18 decimals, "EUR"
    deployer: LocalAccount
    seller: LocalAccount
    buyer: LocalAccount
    platform: LocalAccount
    carrier_payee: LocalAccount
    operator: LocalAccount
    arbitrator: LocalAccount
    outsider: LocalAccount
    carriers: list[LocalAccount]  # one per carrier organisation, in increasing org id
    customs: list[LocalAccount]
    oracles: list[LocalAccount]
    seller_org_signer: LocalAccount  # a second account of the seller's organisation (CARRIER role)
    org_of: dict[str, int]

    # ---- chain plumbing ---------------------------------------------------------------------

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def govern(self, kind: int, data: bytes, proposer: LocalAccount | None = None) -> TxReceipt:
        """Pass a registry proposal as the members would: `proposer` (the operator) proposes, and
        the carriers, customs, oracles and the arbitration house vote until it executes (more than
        half of the Active members). The receipt of the transaction that executed it."""
        executed = self.registry.events.ProposalExecuted()
        by = proposer or self.operator
        receipt = self.chain.transact(self.registry.functions.propose(kind, data), sender=by)
        (created,) = self.registry.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)
        voters = [a for a in (*self.carriers, *self.customs, *self.oracles, self.arbitrator) if a.address != by.address]
        for voter in voters:
            if executed.process_receipt(receipt, errors=DISCARD):
                break
            fund_for_gas(self.chain, voter, self.deployer)
            receipt = self.chain.transact(self.registry.functions.vote(created.args.proposalId), sender=voter)
        assert executed.process_receipt(receipt, errors=DISCARD), f"proposal {created.args.proposalId} did not pass"
        return receipt

    def send(self, fn: str, *args: Any, sender: LocalAccount) -> TxReceipt:
        return self.chain.transact(getattr(self.escrow.functions, fn)(*args), sender=sender)

    def view(self, fn: str, *args: Any) -> Any:
        return self.chain.call(getattr(self.escrow.functions, fn)(*args))

    def events(self, receipt: TxReceipt, name: str) -> list[Any]:
        return list(getattr(self.escrow.events, name)().process_receipt(receipt, errors=DISCARD))

    def order(self, terms: Terms) -> tuple[int, int, int, int, int]:
        """(state, milestonesReached, since, deposited, remaining)."""
        return tuple(self.view("getOrder", terms.order_id))

    def state(self, terms: Terms) -> State:
        return State(self.order(terms)[0])

    def credit(self, token: Contract, account: str) -> int:
        return int(self.view("creditOf", token.address, account))

    def balance(self, token: Contract, account: str) -> int:
        return int(self.chain.call(token.functions.balanceOf(account)))

    # ---- orders -----------------------------------------------------------------------------

    def terms(self, **overrides: Any) -> Terms:
        """Default terms; the parties' organisations and the token's decimals follow the seller,
        buyer and token chosen (as a client reads them from the chain) unless given."""
        now = self.now()
        base = Terms(
            seller=self.seller.address,
            buyer=self.buyer.address,
            token=self.usd.address,
            amount=1_000 * UNIT6,
            ship_by=now + 7 * DAY,
            deliver_by=now + 30 * DAY,
            platform=self.platform.address,
            platform_fee_bps=100,
            carrier=self.carrier_payee.address,
            carrier_fee_bps=200,
            shipment_ref=keccak(text="SSCC 00 0614141 123456789 0"),
            customs_authorities=self.customs_orgs(),
            arbitrators=(self.org_of[self.arbitrator.address], 0, 0),
        )
        chosen = base.but(**overrides)
        derived: dict[str, Any] = {}
        if "seller_org" not in overrides:
            derived["seller_org"] = self.organisation_of(chosen.seller)
        if "buyer_org" not in overrides:
            derived["buyer_org"] = self.organisation_of(chosen.buyer)
        if "token_decimals" not in overrides:
            derived["token_decimals"] = self.decimals_of(chosen.token)
        return chosen.but(**derived)

    def customs_orgs(self) -> tuple[int, int, int]:
        """The three customs organisations of the world, as customs authorities."""
        ids = sorted(self.org_of[a.address] for a in self.customs)
        return (ids[0], ids[1], ids[2])

    def organisation_of(self, account: str) -> int:
        return int(self.chain.call(self.registry.functions.organisationOf(account)))

    def decimals_of(self, token: str) -> int:
        return int(self.chain.call(self.chain.contract("DevStablecoin", token).functions.decimals()))

    def give_eth(self, to: str, amount: int = 10**18) -> None:
        """Gas money for a signer-only key that must send a transaction."""
        tx = {"from": self.deployer.address, "to": to, "value": amount, "gas": 21_000, "chainId": self.chain.chain_id}
        self.chain.send(tx, self.deployer)  # type: ignore[arg-type]

    def link(self, member: LocalAccount, account: LocalAccount) -> None:
        """`member` links `account` to its own organisation: its offer, then the account's acceptance."""
        link_account(self.chain, self.registry, account, by=member, funder=self.deployer)
        self.org_of[account.address] = self.org_of[member.address]

    def mint(self, token: Contract, to: str, amount: int) -> None:
        self.chain.transact(token.functions.mint(to, amount), sender=self.deployer)

    def approve(self, token: Contract, owner: LocalAccount, amount: int) -> None:
        self.chain.transact(token.functions.approve(self.escrow.address, amount), sender=owner)

    def create(self, terms: Terms, sender: LocalAccount | None = None) -> TxReceipt:
        return self.send("createOrder", terms.as_tuple(), sender=sender or self.seller)

    def fund(self, terms: Terms, fx: tuple[Any, ...] | None = None, *, mint: bool = True) -> TxReceipt:
        token = self.chain.contract("DevStablecoin", terms.token)
        due = terms.amount if fx is None else 10**30
        if mint:
            self.mint(token, self.buyer.address, terms.amount if fx is None else 10**26)
            self.approve(token, self.buyer, due)
        return self.send("fund", terms.as_tuple(), fx or empty_fx(), sender=self.buyer)

    def open(self, terms: Terms) -> Terms:
        """Created and funded."""
        self.create(terms)
        self.fund(terms)
        return terms

    def place(self, terms: Terms, fx: tuple[Any, ...] | None = None, *, mint: bool = True,
              sender: LocalAccount | None = None) -> TxReceipt:
        """The buyer places the order at these terms and funds it in one transaction."""
        token = self.chain.contract("DevStablecoin", terms.token)
        due = terms.amount if fx is None else 10**30
        if mint:
            self.mint(token, self.buyer.address, terms.amount if fx is None else 10**26)
            self.approve(token, self.buyer, due)
        return self.send("placeOrder", terms.as_tuple(), fx or empty_fx(), sender=sender or self.buyer)

    def placed(self, terms: Terms) -> Terms:
        """Placed (and funded) by the buyer."""
        self.place(terms)
        return terms

    # ---- signatures -------------------------------------------------------------------------

    def domain(self, **overrides: Any) -> dict[str, Any]:
        return {
            "name": "Waymark Escrow",
            "version": "1",
            "chainId": self.chain.chain_id,
            "verifyingContract": self.escrow.address,
            **overrides,
        }

    def sign(self, key: LocalAccount, primary: str, message: dict[str, Any], **domain: Any) -> bytes:
        typed = {
            "types": {"EIP712Domain": DOMAIN_TYPE, primary: TYPES[primary]},
            "primaryType": primary,
            "domain": self.domain(**domain),
            "message": message,
        }
        return bytes(key.sign_message(encode_typed_data(full_message=copy.deepcopy(typed))).signature)

    def deadline(self) -> int:
        return self.now() + DAY

    def bundle(
        self, signers: list[LocalAccount], primary: str, message: dict[str, Any], *, deadline: int | None = None,
        sort: bool = True, **domain: Any,
    ) -> list[tuple[str, int, bytes]]:
        """Attestations of `signers`, sorted by organisation id as the contract requires."""
        ordered = sorted(signers, key=lambda a: self.org_of.get(a.address, 0)) if sort else signers
        out: list[tuple[str, int, bytes]] = []
        for signer in ordered:
            when = self.deadline() if deadline is None else deadline
            signature = self.sign(signer, primary, {**message, "deadline": when}, **domain)
            out.append((signer.address, when, signature))
        return out

    def milestone_bundle(
        self, terms: Terms, milestone: int, signers: list[LocalAccount], duty: int = 0, payee: str = ZERO,
        **kwargs: Any,
    ) -> list[tuple[str, int, bytes]]:
        message = {"orderId": terms.order_id, "milestone": milestone, "duty": duty, "dutyPayee": payee}
        return self.bundle(signers, "MilestoneAttestation", message, **kwargs)

    def signers_for(self, terms: Terms, milestone: int) -> list[LocalAccount]:
        step = terms.milestones[milestone]
        pool = self.customs if step.kind == Kind.CUSTOMS_CLEARED else self.carriers
        return pool[: step.quorum]

    def attest(
        self, terms: Terms, milestone: int, signers: list[LocalAccount] | None = None, duty: int = 0,
        payee: str = ZERO, sender: LocalAccount | None = None, **kwargs: Any,
    ) -> TxReceipt:
        chosen = self.signers_for(terms, milestone) if signers is None else signers
        sigs = self.milestone_bundle(terms, milestone, chosen, duty, payee, **kwargs)
        return self.send(
            "attestMilestone", terms.as_tuple(), milestone, duty, payee, sigs, sender=sender or self.outsider
        )

    def customs_return(self, terms: Terms, milestone: int, signers: list[LocalAccount] | None = None) -> TxReceipt:
        chosen = self.customs[: terms.milestones[milestone].quorum] if signers is None else signers
        sigs = self.bundle(chosen, "CustomsReturn", {"orderId": terms.order_id, "milestone": milestone})
        return self.send("attestCustomsReturn", terms.as_tuple(), milestone, sigs, sender=self.outsider)

    def deliver(self, terms: Terms) -> None:
        """Reach every milestone with default signers (no duty)."""
        reached = self.order(terms)[1]
        for i in range(reached, len(terms.milestones)):
            self.attest(terms, i)

    def confirmation(self, terms: Terms, key: LocalAccount | None = None, deadline: int | None = None,
                     **domain: Any) -> tuple[int, bytes]:
        when = self.deadline() if deadline is None else deadline
        message = {"orderId": terms.order_id, "deadline": when}
        return when, self.sign(key or self.buyer, "DeliveryConfirmation", message, **domain)

    def fx_quote(
        self, terms: Terms, base: bytes, quote: bytes, rate: int, signers: list[LocalAccount] | None = None,
        issued_at: int | None = None, expires_at: int | None = None, order_id: int | None = None, **kwargs: Any,
    ) -> tuple[Any, ...]:
        """A quote for `terms`' order (or `order_id`), issued now and valid for ten minutes
        unless told otherwise."""
        issued = self.now() if issued_at is None else issued_at
        expires = issued + 600 if expires_at is None else expires_at
        message = {
            "orderId": terms.order_id if order_id is None else order_id, "base": base, "quote": quote,
            "rate": rate, "issuedAt": issued, "expiresAt": expires,
        }
        sigs = self.bundle(self.oracles[:FX_QUORUM] if signers is None else signers, "FxRate", message, **kwargs)
        return (base, quote, rate, issued, expires, sigs)


def founder(name: str, country: bytes, account: str, roles: list[bytes]) -> tuple[Any, ...]:
    """A founding member with no further accounts, no node record and no host."""
    return (name, country, keccak(text=f"meta:{name}"), account, roles, [], [], "", b"\0" * 32, 0)


def fund_for_gas(chain: ChainClient, account: LocalAccount, funder: LocalAccount) -> None:
    """One ether from `funder` to an account that has none, so that it can send transactions."""
    if chain.w3.eth.get_balance(account.address) == 0:
        tx = {"from": funder.address, "to": account.address, "value": 10**18, "gas": 21_000, "chainId": chain.chain_id}
        chain.send(tx, funder)  # type: ignore[arg-type]


def link_account(chain: ChainClient, registry: Contract, account: LocalAccount, by: LocalAccount, funder: LocalAccount) -> None:
    """Links `account` to `by`'s organisation as the registry demands: an offer, then the account's own acceptance."""
    chain.transact(registry.functions.addAccount(account.address), sender=by)
    fund_for_gas(chain, account, funder)
    chain.transact(registry.functions.acceptAccount(chain.call(registry.functions.organisationOf(by.address))), sender=account)


def deploy_world(chain: ChainClient, accounts: list[LocalAccount]) -> EscrowWorld:
    """Consortium (a majority: 7 of its 12 founders), escrow, two stablecoins allowlisted as USD and EUR."""
    deployer, seller, buyer, platform, carrier_payee, operator, arbitrator, outsider = accounts[:8]
    carriers = [signer_key(f"carrier{i}") for i in range(3)]
    customs = [signer_key(f"customs{i}") for i in range(3)]
    oracles = [signer_key(f"oracle{i}") for i in range(3)]
    founders = [founder("Seller Manufacturing", b"VN", seller.address, [MANUFACTURER, CARRIER, ARBITRATOR])]
    founders += [founder(f"Carrier {i}", b"SG", a.address, [CARRIER]) for i, a in enumerate(carriers)]
    founders += [founder(f"Customs {i}", b"NL", a.address, [CUSTOMS]) for i, a in enumerate(customs)]
    founders += [founder(f"Oracle {i}", b"CH", a.address, [ORACLE]) for i, a in enumerate(oracles)]
    founders += [founder("Arbitration House", b"DE", arbitrator.address, [ARBITRATOR])]
    founders += [founder("Marketplace Operator", b"NL", operator.address, [OPERATOR])]
    registry = chain.deploy("ConsortiumRegistry", founders, 5_001, DEFAULT_MAX_REPORTING_DELAY, b"\0" * 32, sender=deployer)
    org_of = {f[3]: i + 1 for i, f in enumerate(founders)}
    seller_org_signer = signer_key("seller-org-carrier")
    link_account(chain, registry, seller_org_signer, seller, deployer)
    org_of[seller_org_signer.address] = org_of[seller.address]

    escrow = chain.deploy("TradeEscrow", registry.address, DISPUTE_TIMEOUT, FX_QUORUM, sender=deployer)
    usd = chain.deploy("DevStablecoin", "Waymark Dev USD", "wUSD", 6, deployer.address, sender=deployer)
    eur = chain.deploy("DevStablecoin", "Waymark Dev EUR", "wEUR", 18, deployer.address, sender=deployer)
    chain.transact(escrow.functions.allowToken(usd.address, b"USD"), sender=operator)
    chain.transact(escrow.functions.allowToken(eur.address, b"EUR"), sender=operator)
    return EscrowWorld(
        chain=chain, registry=registry, escrow=escrow, usd=usd, eur=eur, deployer=deployer, seller=seller,
        buyer=buyer, platform=platform, carrier_payee=carrier_payee, operator=operator, arbitrator=arbitrator,
        outsider=outsider, carriers=carriers, customs=customs, oracles=oracles,
        seller_org_signer=seller_org_signer, org_of=org_of,
    )
