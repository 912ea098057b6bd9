#!/usr/bin/env python3
"""Gas of a whole TradeEscrow lifecycle on a real Anvil, by both ways an order comes to be.

Paths:
- "seller offer": the seller creates the order (createOrder), the buyer funds it (fund);
- "buyer order": the buyer places the order at the seller's terms and funds it in one
  transaction (placeOrder).
Then, for both: three milestones (Shipped 0%, CustomsCleared 30%, Delivered 70%) each reached
with 2-of-3 signatures from distinct organisations, the buyer confirms, the seller withdraws.
Fees: platform 1%, carrier 2%. Every figure is the transaction's gasUsed (21,000 base and
calldata included); the calldata column is what the input bytes alone cost (16 per non-zero
byte, 4 per zero byte).

Two cases per path, each measured from the same chain snapshot for both paths:
- "first order": a fresh deployment, so every balance and credit slot goes from zero to
  non-zero (the most expensive case);
- "busy marketplace": another order is in flight (the escrow already holds tokens), the
  platform and the carrier have fee credits they have not withdrawn yet, and the seller's
  wallet already holds some of the token.
Baseline measured in the same run: paying the seller directly with one ERC-20 transfer (to a
new holder, and to one who already holds the token).

Usage: .venv/bin/python scripts/bench/escrow_gas.py   (the last line printed is one JSON object)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402
from web3.types import TxReceipt  # noqa: E402

from node.chain.build import build  # noqa: E402
from node.chain.client import ChainClient  # noqa: E402
from waymark.devnet.anvil import DEVNET_MNEMONIC, AnvilControl, AnvilProcess  # noqa: E402
from waymark.ports import free_port  # noqa: E402
from tests.contracts.escrow_world import EscrowWorld, deploy_world, empty_fx  # noqa: E402

TARGET = 450_000
PATHS = ("seller offer", "buyer order")
CASES = ("first order", "busy marketplace")
MILESTONES = ("milestone 1: shipped", "milestone 2: customs cleared", "milestone 3: delivered")
Measured = dict[str, tuple[int, int]]  # step -> (gasUsed, calldata gas)


def calldata_gas(w: EscrowWorld, receipt: TxReceipt) -> int:
    data = bytes(w.chain.w3.eth.get_transaction(receipt["transactionHash"])["input"])
    return sum(16 if b else 4 for b in data)


def lifecycle(w: EscrowWorld, path: str, salt: int) -> Measured:
    """Run one order through its whole life by `path`; gas per step."""
    t = w.terms(salt=salt)
    w.mint(w.usd, w.buyer.address, t.amount)
    w.approve(w.usd, w.buyer, t.amount)
    gas: Measured = {}

    def step(name: str, receipt: TxReceipt) -> None:
        gas[name] = (int(receipt["gasUsed"]), calldata_gas(w, receipt))

    if path == "seller offer":
        step("create", w.create(t))
        step("fund", w.send("fund", t.as_tuple(), empty_fx(), sender=w.buyer))
    else:
        step("place (create + fund)", w.send("placeOrder", t.as_tuple(), empty_fx(), sender=w.buyer))
    for i, name in enumerate(MILESTONES):
        signers = (w.customs if i == 1 else w.carriers)[:2]
        step(name, w.attest(t, i, signers=signers))
    step("confirm", w.send("confirmDelivery", t.as_tuple(), sender=w.buyer))
    step("withdraw: seller", w.send("withdraw", w.usd.address, w.seller.address, sender=w.seller))
    return gas


def withdraw_fees(w: EscrowWorld) -> Measured:
    out: Measured = {}
    for name, account in (("withdraw: platform", w.platform), ("withdraw: carrier", w.carrier_payee)):
        receipt = w.send("withdraw", w.usd.address, account.address, sender=account)
        out[name] = (int(receipt["gasUsed"]), calldata_gas(w, receipt))
    return out


def make_busy(w: EscrowWorld) -> None:
    """An earlier order paid out and withdrawn by everyone (the seller holds the token), one in
    flight (the escrow holds the token), one released but not withdrawn (fee credits pending)."""
    done = w.open(w.terms(salt=101))
    w.deliver(done)
    w.send("confirmDelivery", done.as_tuple(), sender=w.buyer)
    for account in (w.seller, w.platform, w.carrier_payee):
        w.send("withdraw", w.usd.address, account.address, sender=account)
    w.open(w.terms(salt=102))
    earlier = w.open(w.terms(salt=103))
    w.deliver(earlier)
    w.send("confirmDelivery", earlier.as_tuple(), sender=w.buyer)


def direct_payments(w: EscrowWorld, buyer: LocalAccount, fresh: LocalAccount) -> dict[str, int]:
    """Baseline: the buyer pays with one ERC-20 transfer, to a new holder and to a holder."""
    w.mint(w.usd, buyer.address, 2 * 10**9)
    new = w.chain.transact(w.usd.functions.transfer(fresh.address, 10**9), sender=buyer)
    held = w.chain.transact(w.usd.functions.transfer(fresh.address, 10**9), sender=buyer)
    return {"to a new holder": int(new["gasUsed"]), "to an existing holder": int(held["gasUsed"])}


def show(title: str, gas: Measured) -> None:
    print(f"\n{title}")
    print(f"  {'step':32s} {'gasUsed':>9s} {'calldata':>9s}")
    for name, (used, data) in gas.items():
        print(f"  {name:32s} {used:>9,} {data:>9,}")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="escrow_gas.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    build()
    Account.enable_unaudited_hdwallet_features()
    accounts = [Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(12)]
    anvil = AnvilProcess(port=free_port()).start()
    control = AnvilControl(anvil.rpc_url)
    runs: dict[tuple[str, str], Measured] = {}
    fees: dict[str, Measured] = {}
    try:
        world = deploy_world(ChainClient(anvil.rpc_url), accounts)

        def fresh_client() -> EscrowWorld:
            # A new client after each revert: its nonce cache must not outlive the snapshot.
            return replace(world, chain=ChainClient(anvil.rpc_url))

        deployed = control.snapshot()
        for path in PATHS:
            w = fresh_client()
            runs[(path, "first order")] = lifecycle(w, path, salt=1)
            fees[path] = withdraw_fees(w)
            control.revert(deployed)
            deployed = control.snapshot()

        w = fresh_client()
        make_busy(w)
        busy = control.snapshot()
        for path in PATHS:
            w = fresh_client()
            runs[(path, "busy marketplace")] = lifecycle(w, path, salt=4)
            control.revert(busy)
            busy = control.snapshot()

        baseline = direct_payments(fresh_client(), accounts[10], accounts[11])
    finally:
        anvil.stop()

    totals = {key: sum(used for used, _ in gas.values()) for key, gas in runs.items()}
    for (path, case), gas in runs.items():
        extra = fees[path] if case == "first order" else {}
        show(f"{path}, {case} (the lifecycle; fee withdrawals listed apart)", gas | extra)
    print()
    for name, used in baseline.items():
        print(f"Baseline, one ERC-20 transfer {name}: {used:,}")
    print()
    for (path, case), total in totals.items():
        verdict = "meets" if total < TARGET else "MISSES"
        print(f"Lifecycle, {path:12s} {case:16s}: {total:>8,}  {verdict} the {TARGET:,} target "
              f"({total / baseline['to a new holder']:.1f}x a transfer to a new holder)")
    for path in PATHS:
        with_fees = totals[(path, "first order")] + sum(u for u, _ in fees[path].values())
        print(f"{path}, first order incl. platform and carrier withdrawals: {with_fees:,}")

    figures: dict[str, Any] = {
        "target": TARGET,
        "lifecycle": {
            path: {
                case: {name: used for name, (used, _) in runs[(path, case)].items()}
                | {"total": totals[(path, case)], "meets_target": totals[(path, case)] < TARGET}
                for case in CASES
            }
            for path in PATHS
        },
        "fee_withdrawals_first_order": {path: {n: u for n, (u, _) in fees[path].items()} for path in PATHS},
        "calldata_gas": {
            f"{path} / {case}": sum(data for _, data in runs[(path, case)].values()) for path, case in runs
        },
        "baseline_erc20_transfer": baseline,
    }
    print(json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
