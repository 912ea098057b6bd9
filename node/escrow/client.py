"""The escrow client: every TradeEscrow action and view, with order terms found by order id.

Transactions go through `ChainClient.transact`, so a rejected call raises the contract's custom
error as a named `ContractRevert` (`EscrowNotBuyer`, `EscrowInvalidState`, ...), decoded before
anything is sent. Terms: the contract keeps only a hash of them; `terms(order_id)` finds them in
the local `TermsStore` or else in the `OrderCreated` log of the order (which carries them in
full), checks that they hash to the id, and remembers them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.chain.logs import LogPager
from node.errors import WaymarkError
from node.escrow.signing import EscrowDomain, sign_confirmation, sign_permit
from node.escrow.store import TermsStore, order_key
from node.escrow.terms import (
    TERMS_ABI,
    ZERO_ADDRESS,
    Attestation,
    FxQuote,
    Order,
    OrderId,
    OrderTerms,
    BPS,
    PermitSignature,
    State,
    currency_text,
    due_amount,
)

ORDER_CREATED_TOPIC = keccak(text=f"OrderCreated(uint256,address,address,{TERMS_ABI})")


class EscrowError(WaymarkError):
    code = "escrow_error"


class UnknownOrder(EscrowError):
    code = "unknown_order"

    def __init__(self, order_id: int, where: str) -> None:
        self.order_id = order_id
        super().__init__(f"no order {order_key(order_id)} {where}")


class InvalidAmount(EscrowError):
    code = "invalid_amount"

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"amount {text!r} {problem}")


class TermsMismatch(EscrowError):
    code = "terms_mismatch"

    def __init__(self, order_id: int, found: int) -> None:
        super().__init__(f"terms found for order {order_key(order_id)} hash to {order_key(found)}")


@dataclass(frozen=True)
class TokenInfo:
    address: str
    allowed: bool
    currency: str | None
    decimals: int
    symbol: str

    def units(self, amount: str | int) -> int:
        """A decimal amount ("12.5") in token units; refuses more decimals than the token has."""
        text = str(amount).strip()
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise InvalidAmount(text, "is not a decimal number") from None
        if not value.is_finite() or value <= 0:
            raise InvalidAmount(text, "must be a positive number")
        scaled = value.scaleb(self.decimals)
        if scaled != scaled.to_integral_value():
            raise InvalidAmount(text, f"has more than the {self.decimals} decimals of {self.symbol}")
        return int(scaled)

    def show(self, units: int) -> str:
        whole, frac = divmod(units, 10**self.decimals)
        text = f"{whole}.{frac:0{self.decimals}d}".rstrip("0").rstrip(".") if self.decimals else str(whole)
        return f"{text} {self.symbol}"


@dataclass(frozen=True)
class OrderView:
    """An order as `waymark escrow show` prints it: terms, state, and what each party may withdraw."""

    order_id: OrderId
    terms: OrderTerms
    order: Order
    token: TokenInfo
    credits: dict[str, int]
    locked_rate: tuple[int, int] | None
    next_milestone: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "orderId": order_key(self.order_id),
            "terms": self.terms.to_json(),
            "order": self.order.to_json(),
            "token": {"address": self.token.address, "symbol": self.token.symbol, "decimals": self.token.decimals,
                      "currency": self.token.currency},
            "credits": {k: str(v) for k, v in self.credits.items()},
            "lockedRate": None if self.locked_rate is None else {"rate": str(self.locked_rate[0]),
                                                                 "timestamp": self.locked_rate[1]},
            "nextMilestone": self.next_milestone,
        }


class EscrowClient:
    def __init__(
        self,
        client: ChainClient,
        address: str,
        *,
        store: TermsStore | None = None,
        from_block: int = 0,
        log_chunk: int | None = None,
    ) -> None:
        self.client = client
        self.contract: Contract = client.contract("TradeEscrow", address)
        self.address = self.contract.address
        self.store = store
        self.from_block = from_block
        # Log reads go through the chain client's pager, or one of their own with `log_chunk` blocks a page.
        self.logs = client.logs if log_chunk is None else LogPager(client.w3, log_chunk)
        self.domain = EscrowDomain(client.chain_id, self.address)
        self._registry: Contract | None = None

    @classmethod
    def from_deployment(cls, client: ChainClient, deployment: Deployment, store: TermsStore | None = None) -> "EscrowClient":
        recorded = deployment.contracts.get("TradeEscrow")
        address = deployment.address("TradeEscrow")
        return cls(client, address, store=store, from_block=recorded.block if recorded else 0)

    # ---- plumbing -------------------------------------------------------------------------

    @property
    def fns(self) -> Any:
        return self.contract.functions

    @property
    def registry(self) -> Contract:
        if self._registry is None:
            self._registry = self.client.contract("ConsortiumRegistry", self.client.call(self.fns.registry()))
        return self._registry

    def _send(self, fn: Any, sender: LocalAccount) -> TxReceipt:
        return self.client.transact(fn, sender=sender)

    def events(self, receipt: TxReceipt, name: str) -> list[Any]:
        return list(getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD))

    def chain_time(self) -> int:
        return int(self.client.w3.eth.get_block("latest")["timestamp"])

    # ---- views ----------------------------------------------------------------------------

    def order(self, order_id: int) -> Order:
        return Order.from_abi(self.client.call(self.fns.getOrder(order_id)))

    def duty_paid(self, order_id: int) -> int:
        """The customs duty paid out of the order so far."""
        return int(self.client.call(self.fns.dutyPaid(order_id)))

    def duty_allowance(self, terms: OrderTerms, order: Order) -> int:
        """The most duty the order's next customs step may carry without the buyer's own signature,
        as the contract counts it: `maxDutyBps` of the deposit, less the duty its earlier customs
        steps paid (the cap is the whole order's)."""
        cap = order.deposited * terms.max_duty_bps // BPS
        return max(0, cap - self.duty_paid(terms.order_id))

    def credit(self, token: str, account: str) -> int:
        return int(self.client.call(self.fns.creditOf(to_checksum_address(token), to_checksum_address(account))))

    def token_info(self, token: str) -> TokenInfo:
        allowed, currency, decimals = self.client.call(self.fns.tokenInfo(to_checksum_address(token)))
        erc20 = self.client.contract("DevStablecoin", token)  # any ERC-20 ABI with symbol() will do
        try:
            symbol = str(self.client.call(erc20.functions.symbol()))
        except Exception:  # noqa: BLE001 - symbol() is optional in ERC-20
            symbol = "units"
        return TokenInfo(to_checksum_address(token), bool(allowed), currency_text(bytes(currency)), int(decimals), symbol)

    def locked_rate(self, order_id: int) -> tuple[int, int] | None:
        rate, timestamp = self.client.call(self.fns.lockedRate(order_id))
        return None if rate == 0 else (int(rate), int(timestamp))

    def dispute_timeout(self) -> int:
        return int(self.client.call(self.fns.disputeTimeout()))

    def fx_quorum(self) -> int:
        return int(self.client.call(self.fns.fxQuorum()))

    def organisation_of(self, account: str) -> int:
        return int(self.client.call(self.registry.functions.organisationOf(to_checksum_address(account))))

    def organisation_with_role(self, account: str, role: str) -> int:
        """The Active organisation of `account` if it holds `role` now, else 0 (as the escrow checks)."""
        fn = self.registry.functions.organisationWithRole(to_checksum_address(account), keccak(text=role))
        return int(self.client.call(fn))

    def organisation_holds(self, org_id: int, role: str) -> bool:
        """Whether organisation `org_id` holds `role` now."""
        return bool(self.client.call(self.registry.functions.orgHasRole(org_id, keccak(text=role))))

    def show(self, order_id: int) -> OrderView:
        terms = self.terms(order_id)
        order = self.order(order_id)
        token = self.token_info(terms.token)
        parties = {"seller": terms.seller, "buyer": terms.buyer}
        if terms.platform != ZERO_ADDRESS:
            parties["platform"] = terms.platform
        if terms.carrier != ZERO_ADDRESS:
            parties["carrier"] = terms.carrier
        credits = {name: self.credit(terms.token, account) for name, account in parties.items()}
        # Milestones go on during a dispute opened before delivery, with their payouts.
        attestable = order.state in (State.FUNDED, State.DISPUTED) and order.milestones_reached < len(terms.milestones)
        nxt = order.milestones_reached if attestable else None
        return OrderView(OrderId(order_id), terms, order, token, credits, self.locked_rate(order_id), nxt)

    # ---- terms ----------------------------------------------------------------------------

    def terms(self, order_id: int) -> OrderTerms:
        """The terms of order `order_id`: from the store, else from its `OrderCreated` log."""
        if self.store is not None:
            kept = self.store.get(self.address, order_id)
            if kept is not None:
                return kept
        for terms in self._created(order_id=order_id):
            if terms.order_id != order_id:
                raise TermsMismatch(order_id, terms.order_id)
            if self.store is not None:
                self.store.put(self.address, terms)
            return terms
        raise UnknownOrder(order_id, f"in the OrderCreated logs of the escrow at {self.address}")

    def find_orders(self, *, seller: str | None = None, buyer: str | None = None,
                    shipment_ref: bytes | None = None) -> list[OrderTerms]:
        """Orders created on chain, filtered by party (indexed in the log) and shipment reference."""
        found = self._created(seller=seller, buyer=buyer)
        return [t for t in found if shipment_ref is None or t.shipment_ref == shipment_ref]

    def _created(self, *, order_id: int | None = None, seller: str | None = None,
                 buyer: str | None = None) -> Iterable[OrderTerms]:
        def topic(value: int | str | None) -> str | None:
            if value is None:
                return None
            number = value if isinstance(value, int) else int(to_checksum_address(value), 16)
            return "0x" + number.to_bytes(32, "big").hex()

        topics = [("0x" + ORDER_CREATED_TOPIC.hex()), topic(order_id), topic(seller), topic(buyer)]
        while topics and topics[-1] is None:
            topics.pop()
        w3 = self.client.w3
        latest = int(w3.eth.block_number)
        event = self.contract.events.OrderCreated()
        for page in self.logs.pages({"address": self.address, "topics": topics}, self.from_block, latest):
            for log in page.logs:
                yield OrderTerms.from_abi(event.process_log(log)["args"]["terms"])

    def remember(self, terms: OrderTerms) -> None:
        if self.store is not None:
            self.store.put(self.address, terms)

    # ---- orders ---------------------------------------------------------------------------

    def complete(self, terms: OrderTerms) -> OrderTerms:
        """`terms` with the facts the contract checks at creation read from the chain: the
        seller's and the buyer's organisations now and the token's listed decimals. The id
        changes with them, so complete the terms before handing their id to anyone."""
        return terms.but(
            seller_org=self.organisation_of(terms.seller),
            buyer_org=self.organisation_of(terms.buyer),
            token_decimals=self.token_info(terms.token).decimals,
        )

    def create(self, terms: OrderTerms, seller: LocalAccount) -> OrderId:
        """The seller offers the order; its terms are remembered locally too."""
        self.remember(terms)
        self._send(self.fns.createOrder(terms.as_abi()), seller)
        return terms.order_id

    def cancel(self, terms: OrderTerms, seller: LocalAccount) -> TxReceipt:
        return self._send(self.fns.cancelOrder(terms.as_abi()), seller)

    def due(self, terms: OrderTerms, fx: FxQuote | None = None) -> int:
        """Token units the buyer pays for `terms` (converted at `fx` for orders priced in a currency)."""
        if terms.priced_in_token:
            return terms.amount
        return due_amount(terms, fx.rate if fx is not None else None, terms.token_decimals)

    def approve(self, terms: OrderTerms, buyer: LocalAccount, amount: int) -> TxReceipt | None:
        """Approve the escrow for `amount` unless the allowance already covers it."""
        token = self.client.contract("DevStablecoin", terms.token)
        allowance = int(self.client.call(token.functions.allowance(buyer.address, self.address)))
        if allowance >= amount:
            return None
        return self._send(token.functions.approve(self.address, amount), buyer)

    def permit(self, terms: OrderTerms, buyer: LocalAccount, value: int, deadline: int | None = None) -> PermitSignature:
        """An EIP-2612 permit of the buyer for the escrow, in the token's own EIP-712 domain."""
        token = self.client.contract("DevStablecoin", terms.token)
        _fields, name, version, chain_id, verifying, _salt, _ext = self.client.call(token.functions.eip712Domain())
        domain = {"name": name, "version": version, "chainId": int(chain_id), "verifyingContract": verifying}
        nonce = int(self.client.call(token.functions.nonces(buyer.address)))
        when = deadline if deadline is not None else self.chain_time() + 3600
        return sign_permit(buyer, domain, self.address, value, nonce, when)

    def fund(self, terms: OrderTerms, buyer: LocalAccount, *, fx: FxQuote | None = None,
             use_permit: bool = False) -> TxReceipt:
        """The buyer funds a created order: approve-then-fund, or one transaction with a permit."""
        quote = fx or FxQuote.empty()
        due = self.due(terms, fx)
        if use_permit:
            permit = self.permit(terms, buyer, due)
            return self._send(self.fns.fundWithPermit(terms.as_abi(), quote.as_abi(), permit.as_abi()), buyer)
        self.approve(terms, buyer, due)
        return self._send(self.fns.fund(terms.as_abi(), quote.as_abi()), buyer)

    def place(self, terms: OrderTerms, buyer: LocalAccount, *, fx: FxQuote | None = None,
              use_permit: bool = False) -> OrderId:
        """The buyer places and funds an order at the seller's listed terms in one transaction."""
        self.remember(terms)
        quote = fx or FxQuote.empty()
        due = self.due(terms, fx)
        if use_permit:
            permit = self.permit(terms, buyer, due)
            self._send(self.fns.placeOrderWithPermit(terms.as_abi(), quote.as_abi(), permit.as_abi()), buyer)
        else:
            self.approve(terms, buyer, due)
            self._send(self.fns.placeOrder(terms.as_abi(), quote.as_abi()), buyer)
        return terms.order_id

    # ---- milestones -----------------------------------------------------------------------

    def sorted_bundle(self, signatures: Sequence[Attestation]) -> list[Attestation]:
        """Signatures in strictly increasing organisation order, as the contract requires."""
        return sorted(signatures, key=lambda a: self.organisation_of(a.signer))

    def attest_milestone(self, terms: OrderTerms, milestone: int, signatures: Sequence[Attestation],
                         sender: LocalAccount, *, duty: int = 0, duty_payee: str = ZERO_ADDRESS) -> TxReceipt:
        bundle = [a.as_abi() for a in self.sorted_bundle(signatures)]
        fn = self.fns.attestMilestone(terms.as_abi(), milestone, duty, to_checksum_address(duty_payee), bundle)
        return self._send(fn, sender)

    def attest_customs_return(self, terms: OrderTerms, milestone: int, signatures: Sequence[Attestation],
                              sender: LocalAccount) -> TxReceipt:
        bundle = [a.as_abi() for a in self.sorted_bundle(signatures)]
        return self._send(self.fns.attestCustomsReturn(terms.as_abi(), milestone, bundle), sender)

    # ---- settlement -----------------------------------------------------------------------

    def confirm(self, terms: OrderTerms, buyer: LocalAccount) -> TxReceipt:
        return self._send(self.fns.confirmDelivery(terms.as_abi()), buyer)

    def sign_confirmation(self, buyer: LocalAccount, order_id: int, deadline: int) -> bytes:
        return sign_confirmation(buyer, self.domain, order_id, deadline)

    def confirm_by_signature(self, terms: OrderTerms, deadline: int, signature: bytes,
                             sender: LocalAccount) -> TxReceipt:
        """Relay the buyer's signed DeliveryConfirmation; `sender` pays the gas."""
        return self._send(self.fns.confirmDeliveryBySig(terms.as_abi(), deadline, signature), sender)

    def release(self, terms: OrderTerms, sender: LocalAccount) -> TxReceipt:
        return self._send(self.fns.release(terms.as_abi()), sender)

    def refund(self, terms: OrderTerms, sender: LocalAccount) -> TxReceipt:
        return self._send(self.fns.refund(terms.as_abi()), sender)

    def dispute(self, terms: OrderTerms, evidence_hash: bytes, sender: LocalAccount) -> TxReceipt:
        return self._send(self.fns.openDispute(terms.as_abi(), evidence_hash), sender)

    def rule(self, terms: OrderTerms, buyer_share_bps: int, ruling_hash: bytes, arbitrator: LocalAccount) -> TxReceipt:
        return self._send(self.fns.resolveDispute(terms.as_abi(), buyer_share_bps, ruling_hash), arbitrator)

    def resolve_expired(self, terms: OrderTerms, sender: LocalAccount) -> TxReceipt:
        return self._send(self.fns.resolveExpiredDispute(terms.as_abi()), sender)

    def withdraw(self, token: str, sender: LocalAccount, to: str | None = None, amount: int | None = None) -> int:
        """Withdraw the sender's whole credit in `token` (to itself unless `to`), or only `amount`
        of it (`withdrawAmount`: for a token that charges a fee on top, whose excess comes out of
        the rest of the credit); the amount sent."""
        recipient = to_checksum_address(to or sender.address)
        if amount is None:
            fn = self.fns.withdraw(to_checksum_address(token), recipient)
        else:
            fn = self.fns.withdrawAmount(to_checksum_address(token), recipient, amount)
        receipt = self._send(fn, sender)
        return sum(int(e["args"]["amount"]) for e in self.events(receipt, "Withdrawn"))
