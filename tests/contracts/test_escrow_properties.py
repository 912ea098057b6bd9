"""Property: whatever the sequence of actions on a set of orders (offered by the seller and
funded, or placed by the buyer in one transaction; more orders placed along the way;
milestones with or without duty, customs returns, confirmations, releases, refunds, cancellations, disputes, rulings,
timeouts, withdrawals, time passing), money is conserved and nobody is paid twice:

- per order, what the events say was paid out (duty, seller, fees, buyer) plus what the order
  still holds equals what was deposited, and an order in a terminal state holds nothing;
- the escrow's token balance equals what orders hold plus what accounts may still withdraw;
- what each account withdrew never exceeds what was credited to it, and credits equal
  credited minus withdrawn;
- each milestone is reached once, and each order settles at most once.

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
from node.devnet.anvil import AnvilControl, AnvilProcess
from tests.contracts.escrow_world import (
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
    "dispute", "resolve", "resolve_expired", "wait", "wait", "withdraw", "place",
)
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
        "fee_on_transfer": draw(st.booleans()),
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
    duty_payee: LocalAccount
    orders: list[Terms] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)

    def record(self, receipt: Any, t: Terms) -> None:
        w, led = self.w, self.ledger
        oid = t.order_id
        for e in w.events(receipt, "OrderFunded"):
            led.deposited[oid] = e.args.deposited
        for e in w.events(receipt, "MilestoneReached"):
            led.milestones[(oid, e.args.milestone)] += 1
            led.credited[(t.token, e.args.dutyPayee)] += e.args.duty
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
        led.credited[(t.token, t.seller)] += args.toSeller
        led.credited[(t.token, t.platform)] += args.platformFee
        led.credited[(t.token, t.carrier)] += args.carrierFee
        led.paid_out[t.order_id] += args.toSeller + args.platformFee + args.carrierFee


def add_order(s: Scenario, spec: dict[str, Any], placed: bool) -> None:
    w = s.w
    kinds = [Kind.SHIPPED] + [Kind.CUSTOMS_CLEARED] * (len(spec["shares"]) - 2) + [Kind.DELIVERED]
    token = s.fot if spec["fee_on_transfer"] else w.usd
    t = w.terms(
        token=token.address,
        amount=spec["amount"],
        platform_fee_bps=spec["platform_bps"],
        carrier_fee_bps=spec["carrier_bps"],
        milestones=tuple(Step(k, sh, 1) for k, sh in zip(kinds, spec["shares"])),
        salt=len(s.orders),
    )
    w.chain.transact(token.functions.mint(w.buyer.address, t.amount), sender=w.deployer)
    w.chain.transact(token.functions.approve(w.escrow.address, t.amount), sender=w.buyer)
    if placed:
        receipt = w.send("placeOrder", t.as_tuple(), empty_fx(), sender=w.buyer)
    else:
        w.create(t)
        receipt = w.send("fund", t.as_tuple(), empty_fx(), sender=w.buyer)
    s.orders.append(t)
    s.record(receipt, t)


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
            base = {"amount": t.amount, "platform_bps": t.platform_fee_bps, "carrier_bps": t.carrier_fee_bps,
                    "shares": [m.share_bps for m in t.milestones], "fee_on_transfer": t.token == s.fot.address}
            add_order(s, base, placed=True)
        return
    reached = w.order(t)[1]
    if action == "attest":
        # Reach up to three milestones in a row, so that sequences often get to delivery.
        for _ in range(1 + param % 3):
            reached = w.order(t)[1]
            if reached >= len(t.milestones):
                return
            kind = t.milestones[reached].kind
            duty = (param * t.amount) // 5_000 if kind == Kind.CUSTOMS_CLEARED and param % 2 else 0
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
    else:  # withdraw
        account = [w.seller, w.buyer, w.platform, w.carrier_payee, s.duty_payee][param % 5]
        receipt = w.send("withdraw", t.token, account.address, sender=account)
        for e in w.events(receipt, "Withdrawn"):
            s.ledger.withdrawn[(t.token, e.args.account)] += e.args.amount
        return
    if receipt is not None:
        s.record(receipt, t)


def withdraw_everything(s: Scenario) -> None:
    w = s.w
    for token in {t.token for t in s.orders}:
        contract = w.chain.contract("DevStablecoin", token)
        for account in (w.seller, w.buyer, w.platform, w.carrier_payee, s.duty_payee):
            if w.credit(contract, account.address):
                receipt = w.send("withdraw", token, account.address, sender=account)
                for e in w.events(receipt, "Withdrawn"):
                    s.ledger.withdrawn[(token, e.args.account)] += e.args.amount


def check(s: Scenario) -> None:
    w, led = s.w, s.ledger
    held: Counter[str] = Counter()
    for t in s.orders:
        state, reached, _, deposited, remaining = w.order(t)
        assert deposited == led.deposited[t.order_id]
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
    for token in {t.token for t in s.orders}:
        contract = w.chain.contract("DevStablecoin", token)
        assert w.balance(contract, w.escrow.address) == held[token] + owed[token], "escrow holds exactly its debts"


@pytest.fixture
def base(chain: ChainClient, accounts: list[LocalAccount]) -> tuple[EscrowWorld, Contract, LocalAccount]:
    w = deploy_world(chain, accounts)
    fot = w.chain.deploy("MockFeeOnTransferToken", 50, sender=w.deployer)
    w.chain.transact(w.escrow.functions.allowToken(fot.address, b"USD"), sender=w.operator)
    return w, fot, accounts[8]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(order_specs(), min_size=2, max_size=2), actions=action_lists)
def test_money_is_conserved_and_nobody_is_paid_twice(
    base: tuple[EscrowWorld, Contract, LocalAccount],
    anvil: AnvilProcess,
    devnet: AnvilControl,
    specs: list[dict[str, Any]],
    actions: list[tuple[str, int, int]],
) -> None:
    world, fot, duty_payee = base
    snapshot = devnet.snapshot()
    # A fresh client per example: its nonce cache must not outlive the snapshot.
    chain = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
    s = Scenario(w=_rebind(world, chain), fot=fot, duty_payee=duty_payee)
    try:
        setup_orders(s, specs)
        for action, which, param in actions:
            try:
                act(s, devnet, action, which, param)
                event(f"{action} went through")
            except ContractRevert as exc:
                event(f"{action} refused: {exc.error_name}")
                # Refusals are fine; arithmetic panics or undecoded reverts are bugs.
                assert exc.error_name.startswith("Escrow") or exc.error_name in {"EnforcedPause"}, str(exc)
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

