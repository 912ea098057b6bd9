"""Property: whatever the sequence of actions on a set of orders (offered by the seller and
funded, or placed by the buyer in one transaction; more orders placed along the way;
milestones with or without duty, customs returns, confirmations, releases, refunds, cancellations, disputes, rulings,
timeouts, withdrawals, time passing), money is conserved and nobody is paid twice:

- per order, what the events say was paid out (duty, seller, fees, buyer) plus what the order
  still holds equals what was deposited, and an order in a terminal state holds nothing;
- the escrow's token balance equals what orders hold plus what accounts may still withdraw;
- what each account withdrew never exceeds what was credited to it, and credits equal
  credited minus withdrawn;
- each milestone is reached once, and each order settles at most once;
- nobody is credited more than the terms give: a duty only to an account of the order's customs
  authorities and within its cap, the fees within their basis points of what went to the seller
  side, nothing ever to the adversaries below;
- at the end every order can still be brought to an end and every credit withdrawn.

Adversaries act in the middle: the seller's organisation unlinks the seller and a colleague
attests the shipment itself; a customs organisation the orders do not name clears them with a
duty to itself; a fee-on-top token starts charging the escrow (orders are paid in it, in a
fee-on-transfer token or in a plain one); a buyer funds an FX order with a stale quote or with the
quote of another order. Their attempts must be refused and gain them nothing.

Runs against the real Anvil; each example starts from the same snapshot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from node.chain.client import ChainClient
from node.chain.errors import ContractRevert
from waymark.devnet.anvil import AnvilControl, AnvilProcess
from tests.contracts.escrow_world import (
    BPS,
    DAY,
    EscrowWorld,
    State,
    Step,
    Kind,
    Terms,
    deploy_world,
    empty_fx,
)

TERMINAL = {State.RELEASED, State.REFUNDED, State.CANCELLED, State.RESOLVED}
ACTIONS = (
    "attest", "attest", "customs_return", "confirm", "release", "refund", "cancel",
    "dispute", "resolve", "resolve_expired", "wait", "wait", "withdraw", "withdraw_part", "place",
    "unlink_seller", "rogue_customs", "fee_on_top", "stale_fx", "replayed_fx",
)
# Attempts by adversaries that must never go through.
MUST_FAIL = {"rogue_customs", "stale_fx", "replayed_fx"}
FX_RATE = 1_085_000_000_000_000_000
TOKENS = ("usd", "fee_on_transfer", "fee_on_top")
MAX_ORDERS = 4
WAITS = (3600, 3 * DAY, 8 * DAY, 15 * DAY, 31 * DAY)


@st.composite
def order_specs(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(2, 4))
    cuts = sorted(draw(st.lists(st.integers(0, 10_000), min_size=count - 1, max_size=count - 1)))
    shares = [b - a for a, b in zip([0] + cuts, cuts + [10_000])]
    return {
        "amount": draw(st.integers(1, 10**12)),
        "platform_bps": draw(st.integers(0, 1_500)),
        "carrier_bps": draw(st.integers(0, 1_500)),
        "shares": shares,
        "token": draw(st.sampled_from(TOKENS)),
        "fx": draw(st.booleans()),  # priced in EUR, paid in USD at an attested rate (plain token only)
        "placed": draw(st.booleans()),  # by the buyer in one transaction, else offered then funded
    }


action_lists = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.integers(0, MAX_ORDERS - 1), st.integers(0, 10_000)),
    min_size=1,
    max_size=16,
)


@dataclass
class Ledger:
    """What the events said, kept off chain to compare with the contract."""

    deposited: dict[int, int] = field(default_factory=dict)
    paid_out: Counter[int] = field(default_factory=Counter)
    credited: Counter[tuple[str, str]] = field(default_factory=Counter)  # (token, account)
    withdrawn: Counter[tuple[str, str]] = field(default_factory=Counter)
    milestones: Counter[tuple[int, int]] = field(default_factory=Counter)
    settlements: Counter[int] = field(default_factory=Counter)


@dataclass
class Scenario:
    w: EscrowWorld
    fot: Contract
    fotop: Contract
    duty_payee: LocalAccount
    orders: list[Terms] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    quotes: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # order id -> the FX quote it was funded with
    duty_paid: Counter[int] = field(default_factory=Counter)
    fees: Counter[tuple[int, str]] = field(default_factory=Counter)  # (order, "seller side"/"platform"/"carrier")

    @property
    def rogue(self) -> LocalAccount:
        """A customs organisation no order names."""
        return self.w.customs[2]

    @property
    def insider(self) -> LocalAccount:
        """A second account of the seller's organisation (CARRIER role)."""
        return self.w.seller_org_signer

    def token(self, address: str) -> Contract:
        return self.w.chain.contract("DevStablecoin", address)

    def record(self, receipt: Any, t: Terms) -> None:
        w, led = self.w, self.ledger
        oid = t.order_id
        for e in w.events(receipt, "OrderFunded"):
            led.deposited[oid] = e.args.deposited
        for e in w.events(receipt, "MilestoneReached"):
            led.milestones[(oid, e.args.milestone)] += 1
            led.credited[(t.token, e.args.dutyPayee)] += e.args.duty
            self.duty_paid[oid] += e.args.duty
            if e.args.duty:
                assert w.organisation_of(e.args.dutyPayee) in t.customs_authorities, "duty only to an authority"
            self._seller_side(t, e.args)
            led.paid_out[oid] += e.args.duty
        for e in w.events(receipt, "OrderReleased"):
            led.settlements[oid] += 1
            self._seller_side(t, e.args)
        for name in ("OrderRefunded", "OrderCancelled"):
            for e in w.events(receipt, name):
                led.settlements[oid] += 1
                amount = e.args.amount if name == "OrderRefunded" else e.args.refunded
                led.credited[(t.token, t.buyer)] += amount
                led.paid_out[oid] += amount
        for e in w.events(receipt, "DisputeResolved"):
            led.settlements[oid] += 1
            led.credited[(t.token, t.buyer)] += e.args.toBuyer
            led.paid_out[oid] += e.args.toBuyer
            self._seller_side(t, e.args)

    def _seller_side(self, t: Terms, args: Any) -> None:
        led = self.ledger
        side = args.toSeller + args.platformFee + args.carrierFee
        self.fees[(t.order_id, "seller side")] += side
        self.fees[(t.order_id, "platform")] += args.platformFee
        self.fees[(t.order_id, "carrier")] += args.carrierFee
        led.credited[(t.token, t.seller)] += args.toSeller
        led.credited[(t.token, t.platform)] += args.platformFee
        led.credited[(t.token, t.carrier)] += args.carrierFee
        led.paid_out[t.order_id] += args.toSeller + args.platformFee + args.carrierFee


def order_terms(s: Scenario, spec: dict[str, Any]) -> Terms:
    w = s.w
    kinds = [Kind.SHIPPED] + [Kind.CUSTOMS_CLEARED] * (len(spec["shares"]) - 2) + [Kind.DELIVERED]
    fx = spec["fx"] and spec["token"] == "usd"
    token = {"usd": w.usd, "fee_on_transfer": s.fot, "fee_on_top": s.fotop}[spec["token"]]
    authorities = (w.org_of[w.customs[0].address], w.org_of[w.customs[1].address], 0)
    return w.terms(
        token=token.address,
        amount=spec["amount"] * 10**12 if fx else spec["amount"],  # EUR with 18 decimals
        price_currency=b"EUR" if fx else b"\0\0\0",
        platform_fee_bps=spec["platform_bps"],
        carrier_fee_bps=spec["carrier_bps"],
        milestones=tuple(Step(k, sh, 1) for k, sh in zip(kinds, spec["shares"])),
        customs_authorities=authorities,
        salt=1_000 + len(s.orders) + 10 * spec.get("attempt", 0),
    )


def pay_in(s: Scenario, t: Terms) -> int:
    """Mint and approve what the buyer pays for `t` (its amount, or converted at FX_RATE)."""
    w = s.w
    due = t.amount if t.price_currency == b"\0\0\0" else -(-t.amount * FX_RATE // 10**30)
    token = s.token(t.token)
    w.chain.transact(token.functions.mint(w.buyer.address, 2 * due), sender=w.deployer)
    w.chain.transact(token.functions.approve(w.escrow.address, due), sender=w.buyer)
    return due


def add_order(s: Scenario, spec: dict[str, Any], placed: bool) -> None:
    w = s.w
    t = order_terms(s, spec)
    pay_in(s, t)
    fx = w.fx_quote(t, b"EUR", b"USD", FX_RATE) if t.price_currency == b"EUR" else empty_fx()
    if placed:
        receipt = w.send("placeOrder", t.as_tuple(), fx, sender=w.buyer)
    else:
        w.create(t)
        receipt = w.send("fund", t.as_tuple(), fx, sender=w.buyer)
    s.orders.append(t)
    if t.price_currency == b"EUR":
        s.quotes[t.order_id] = fx
    s.record(receipt, t)


def spec_like(s: Scenario, t: Terms) -> dict[str, Any]:
    names: dict[str, str] = {s.w.usd.address: "usd", s.fot.address: "fee_on_transfer", s.fotop.address: "fee_on_top"}
    token = names[t.token]
    fx = t.price_currency == b"EUR"
    return {"amount": t.amount // 10**12 if fx else t.amount, "platform_bps": t.platform_fee_bps,
            "carrier_bps": t.carrier_fee_bps, "shares": [m.share_bps for m in t.milestones], "token": token, "fx": fx}


def setup_orders(s: Scenario, specs: list[dict[str, Any]]) -> None:
    for spec in specs:
        add_order(s, spec, spec["placed"])


def act(s: Scenario, devnet: AnvilControl, action: str, which: int, param: int) -> None:
    w, t = s.w, s.orders[which % len(s.orders)]
    args = t.as_tuple()
    if action == "place":
        # The buyer places another order mid-sequence, shaped like order `which` (time may have
        # moved: its ship-by is counted from now).
        if len(s.orders) < MAX_ORDERS:
            add_order(s, spec_like(s, t), placed=True)
        return
    if action in ("stale_fx", "replayed_fx"):
        # A new FX order funded with a quote that expired, or with the quote of another order.
        spec = {**spec_like(s, t), "token": "usd", "fx": True, "attempt": 1 + param % 7}
        fresh = order_terms(s, spec)
        pay_in(s, fresh)
        if action == "stale_fx":
            now = w.now()
            quote = w.fx_quote(fresh, b"EUR", b"USD", FX_RATE, issued_at=now - 1_000, expires_at=now - 1 - param % 500)
        else:
            if not s.quotes:
                raise Skipped()
            quote = list(s.quotes.values())[param % len(s.quotes)]
        w.send("placeOrder", fresh.as_tuple(), quote, sender=w.buyer)
        return
    if action == "unlink_seller":
        # The seller's organisation unlinks the seller, then a colleague attests a shipment.
        if w.organisation_of(w.seller.address) != 0:
            w.chain.transact(w.registry.functions.removeAccount(w.seller.address), sender=s.insider)
        reached = w.order(t)[1]
        if reached < len(t.milestones) and t.milestones[reached].kind != Kind.CUSTOMS_CLEARED:
            try:
                s.record(w.attest(t, reached, signers=[s.insider]), t)
            except ContractRevert as exc:
                event(f"insider attestation refused: {exc.error_name}")
            else:
                raise AssertionError("a colleague of the unlinked seller attested its own order")
        return
    if action == "rogue_customs":
        reached = w.order(t)[1]
        if reached >= len(t.milestones) or t.milestones[reached].kind != Kind.CUSTOMS_CLEARED:
            raise Skipped()
        duty = w.order(t)[4]  # everything that remains
        if param % 2:
            s.record(w.attest(t, reached, signers=[s.rogue], duty=duty, payee=s.rogue.address), t)
        else:
            s.record(w.customs_return(t, reached, signers=[s.rogue]), t)
        return
    if action == "fee_on_top":
        w.chain.transact(s.fotop.functions.setFeeBps(1 + param % 300), sender=w.deployer)
        return
    reached = w.order(t)[1]
    if action == "attest":
        # Reach up to three milestones in a row, so that sequences often get to delivery.
        for _ in range(1 + param % 3):
            reached = w.order(t)[1]
            if reached >= len(t.milestones):
                return
            kind = t.milestones[reached].kind
            deposited = w.order(t)[3]
            # Up to 20% of the deposit: above the 10% cap about half the time (then refused).
            duty = (param * deposited) // 50_000 if kind == Kind.CUSTOMS_CLEARED and param % 2 else 0
            signers = w.signers_for(t, reached)
            s.record(w.attest(t, reached, signers=signers, duty=duty, payee=s.duty_payee.address), t)
        return
    elif action == "customs_return":
        receipt = w.customs_return(t, reached) if reached < len(t.milestones) else None
    elif action == "confirm":
        receipt = w.send("confirmDelivery", args, sender=w.buyer)
    elif action == "release":
        receipt = w.send("release", args, sender=w.outsider)
    elif action == "refund":
        receipt = w.send("refund", args, sender=w.outsider)
    elif action == "cancel":
        receipt = w.send("cancelOrder", args, sender=w.seller)
    elif action == "dispute":
        receipt = w.send("openDispute", args, b"\x01" * 32, sender=w.buyer if param % 2 else w.seller)
    elif action == "resolve":
        receipt = w.send("resolveDispute", args, param, b"\x02" * 32, sender=w.arbitrator)
    elif action == "resolve_expired":
        receipt = w.send("resolveExpiredDispute", args, sender=w.outsider)
    elif action == "wait":
        devnet.increase_time(WAITS[param % len(WAITS)])
        return
    elif action == "withdraw_part":
        account = [w.seller, w.buyer, w.platform, w.carrier_payee, s.duty_payee][param % 5]
        credit = w.credit(s.token(t.token), account.address)
        withdraw(s, t.token, account, max(1, credit * (1 + param % 97) // 100))
        return
    else:  # withdraw
        account = [w.seller, w.buyer, w.platform, w.carrier_payee, s.duty_payee][param % 5]
        withdraw(s, t.token, account, None)
        return
    if receipt is not None:
        s.record(receipt, t)


class Skipped(Exception):
    """The action does not apply to this order now."""


def withdraw(s: Scenario, token: str, account: LocalAccount, amount: int | None) -> None:
    """Withdraw (all, or `amount`) and book what the credit lost: the amount sent, or what the
    escrow says it debited for a token that charged it a fee on top."""
    w = s.w
    if amount is None:
        receipt = w.send("withdraw", token, account.address, sender=account)
    else:
        receipt = w.send("withdrawAmount", token, account.address, amount, sender=account)
    refused = w.events(receipt, "TokenRefused")
    debited = refused[0].args.debited if refused else sum(e.args.amount for e in w.events(receipt, "Withdrawn"))
    s.ledger.withdrawn[(token, account.address)] += debited


def settle_everything(s: Scenario, devnet: AnvilControl) -> None:
    """Bring every order to an end the way anyone could: cancel what is only offered, refund
    what is overdue, release what was delivered, decide expired disputes (60 days on, every order
    is past its deadlines, so none lapses)."""
    w = s.w
    devnet.increase_time(60 * DAY)
    for t in s.orders:
        state = w.state(t)
        action = {State.CREATED: ("cancelOrder", w.seller), State.FUNDED: ("refund", w.outsider),
                  State.DELIVERED: ("release", w.outsider), State.DISPUTED: ("resolveExpiredDispute", w.outsider)}
        if state in action:
            name, sender = action[state]
            s.record(w.send(name, t.as_tuple(), sender=sender), t)
        assert w.state(t) in TERMINAL, f"order {t.order_id} could not be ended from {state.name}"


def withdraw_everything(s: Scenario) -> None:
    """Every credit, in full: a fee-on-top token's in parts the credit covers with the fee."""
    w = s.w
    for token in {t.token for t in s.orders}:
        contract = s.token(token)
        fee = int(w.chain.call(s.fotop.functions.feeBps())) if token == s.fotop.address else 0
        for account in (w.seller, w.buyer, w.platform, w.carrier_payee, s.duty_payee):
            for _ in range(5):
                credit = w.credit(contract, account.address)
                if credit == 0:
                    break
                if fee == 0:
                    withdraw(s, token, account, None)
                    continue
                part = credit * BPS // (BPS + fee)
                withdraw(s, token, account, part if part and part + part * fee // BPS <= credit else credit)
            assert w.credit(contract, account.address) == 0, "every credit can be withdrawn"


def check(s: Scenario) -> None:
    w, led = s.w, s.ledger
    held: Counter[str] = Counter()
    for t in s.orders:
        state, reached, _, deposited, remaining = w.order(t)
        assert deposited == led.deposited[t.order_id]
        oid = t.order_id
        assert s.duty_paid[oid] <= deposited * t.max_duty_bps // BPS, "no duty above the cap without the buyer"
        side = s.fees[(oid, "seller side")]
        assert s.fees[(oid, "platform")] <= side * t.platform_fee_bps // BPS, "platform fee within its bps"
        assert s.fees[(oid, "carrier")] <= side * t.carrier_fee_bps // BPS, "carrier fee within its bps"
        assert led.paid_out[t.order_id] + remaining == deposited, "order conserves its deposit"
        if State(state) in TERMINAL:
            assert remaining == 0
        assert led.settlements[t.order_id] <= 1, "settled once"
        held[t.token] += remaining
    assert all(n == 1 for n in led.milestones.values()), "each milestone reached once"
    owed: Counter[str] = Counter()
    for (token, account), amount in led.credited.items():
        contract = w.chain.contract("DevStablecoin", token)
        credit = w.credit(contract, account)
        assert led.withdrawn[(token, account)] <= amount, "nobody withdraws more than credited"
        assert credit == amount - led.withdrawn[(token, account)], "credit = credited - withdrawn"
        owed[token] += credit
    for adversary in (s.rogue, s.insider):
        assert all(led.credited[(t.token, adversary.address)] == 0 for t in s.orders), "adversaries gain nothing"
    for token in {t.token for t in s.orders}:
        contract = w.chain.contract("DevStablecoin", token)
        assert w.balance(contract, w.escrow.address) == held[token] + owed[token], "escrow holds exactly its debts"


@pytest.fixture
def base(chain: ChainClient, accounts: list[LocalAccount]) -> tuple[EscrowWorld, Contract, Contract, LocalAccount]:
    w = deploy_world(chain, accounts)
    fot = w.chain.deploy("MockFeeOnTransferToken", 50, sender=w.deployer)
    fotop = w.chain.deploy("MockFeeOnTopToken", 0, sender=w.deployer)  # charges once "fee_on_top" acts
    for token in (fot, fotop):
        w.chain.transact(w.escrow.functions.allowToken(token.address, b"USD"), sender=w.operator)
    for key in (w.customs[0], w.seller_org_signer):  # the duty payee withdraws; the insider unlinks
        w.give_eth(key.address)
    return w, fot, fotop, w.customs[0]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(order_specs(), min_size=2, max_size=2), actions=action_lists)
def test_money_is_conserved_and_nobody_is_paid_twice(
    base: tuple[EscrowWorld, Contract, Contract, LocalAccount],
    anvil: AnvilProcess,
    devnet: AnvilControl,
    specs: list[dict[str, Any]],
    actions: list[tuple[str, int, int]],
) -> None:
    world, fot, fotop, duty_payee = base
    snapshot = devnet.snapshot()
    # A fresh client per example: its nonce cache must not outlive the snapshot.
    chain = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
    s = Scenario(w=_rebind(world, chain), fot=fot, fotop=fotop, duty_payee=duty_payee)
    try:
        setup_orders(s, specs)
        for action, which, param in actions:
            try:
                act(s, devnet, action, which, param)
                event(f"{action} went through")
                assert action not in MUST_FAIL, f"the adversary's {action} went through"
            except Skipped:
                event(f"{action} not applicable")
            except ContractRevert as exc:
                event(f"{action} refused: {exc.error_name}")
                # Refusals are fine; arithmetic panics or undecoded reverts are bugs.
                assert exc.error_name.startswith("Escrow") or exc.error_name in {"EnforcedPause"}, str(exc)
            check(s)
        settle_everything(s, devnet)
        check(s)
        withdraw_everything(s)
        check(s)
        for token in {t.token for t in s.orders}:
            contract = s.w.chain.contract("DevStablecoin", token)
            held = sum(s.w.order(t)[4] for t in s.orders if t.token == token)
            assert s.w.balance(contract, s.w.escrow.address) == held, "after all withdrawals only held funds remain"
    finally:
        devnet.revert(snapshot)


def _rebind(world: EscrowWorld, chain: ChainClient) -> EscrowWorld:
    return replace(world, chain=chain)

