#!/usr/bin/env python3
"""Gas of a whole TradeEscrow lifecycle on a real Anvil.

Lifecycle: the seller creates the order, the buyer funds it (transferFrom), three milestones
(Shipped 0%, CustomsCleared 30%, Delivered 70%) each reached with 2-of-3 signatures from
distinct organisations, the buyer confirms, the seller withdraws. Fees: platform 1%, carrier 2%.
Every figure is the transaction's gasUsed (21,000 base and calldata included).

Two runs of the same lifecycle, in the same chain:
- "first order": a fresh deployment, so every balance and credit slot goes from zero to
  non-zero (the most expensive case);
- "busy marketplace": another order is in flight (the escrow already holds tokens), the
  platform and the carrier have fee credits they have not withdrawn yet, and the seller's
  wallet already holds some of the token.
Baseline measured in the same run: paying the seller directly with one ERC-20 transfer.

Usage: .venv/bin/python scripts/bench/escrow_gas.py   (the last line printed is JSON)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402

from node.chain.build import build  # noqa: E402
from node.chain.client import ChainClient  # noqa: E402
from node.devnet.anvil import DEVNET_MNEMONIC, AnvilProcess, free_port  # noqa: E402
from tests.contracts.escrow_world import EscrowWorld, deploy_world, empty_fx  # noqa: E402

TARGET = 450_000
LIFECYCLE_STEPS = ("create", "fund", "milestone 1: shipped", "milestone 2: customs cleared",
                   "milestone 3: delivered", "confirm", "withdraw: seller")


def lifecycle(w: EscrowWorld, salt: int) -> dict[str, int]:
    """Run one order through its whole life; gasUsed per step (fee withdrawals reported apart)."""
    t = w.terms(salt=salt)
    gas: dict[str, int] = {}
    gas["create"] = w.create(t)["gasUsed"]
    w.mint(w.usd, w.buyer.address, t.amount)
    w.approve(w.usd, w.buyer, t.amount)
    gas["fund"] = w.send("fund", t.as_tuple(), empty_fx(), sender=w.buyer)["gasUsed"]
    names = ("shipped", "customs cleared", "delivered")
    for i, name in enumerate(names):
        signers = (w.customs if i == 1 else w.carriers)[:2]
        gas[f"milestone {i + 1}: {name}"] = w.attest(t, i, signers=signers)["gasUsed"]
    gas["confirm"] = w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)["gasUsed"]
    gas["withdraw: seller"] = w.send("withdraw", w.usd.address, w.seller.address, sender=w.seller)["gasUsed"]
    return gas


def withdraw_fees(w: EscrowWorld) -> dict[str, int]:
    return {
        "withdraw: platform": w.send("withdraw", w.usd.address, w.platform.address, sender=w.platform)["gasUsed"],
        "withdraw: carrier": w.send(
            "withdraw", w.usd.address, w.carrier_payee.address, sender=w.carrier_payee
        )["gasUsed"],
    }


def direct_payment(w: EscrowWorld, buyer: LocalAccount, seller: LocalAccount) -> int:
    """Baseline: the buyer pays a seller who holds none of the token, with one transfer."""
    w.mint(w.usd, buyer.address, 10**9)
    receipt = w.chain.transact(w.usd.functions.transfer(seller.address, 10**9), sender=buyer)
    return int(receipt["gasUsed"])


def show(title: str, gas: dict[str, int]) -> None:
    print(f"\n{title}")
    for step, used in gas.items():
        print(f"  {step:32s} {used:>9,}")


def main() -> int:
    build()
    Account.enable_unaudited_hdwallet_features()
    accounts = [Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(12)]
    anvil = AnvilProcess(port=free_port()).start()
    try:
        w = deploy_world(ChainClient(anvil.rpc_url), accounts)

        first = lifecycle(w, salt=1)
        first_fees = withdraw_fees(w)

        # Busy marketplace: one order in flight, unwithdrawn fee credits, a seller holding tokens.
        w.open(w.terms(salt=2))
        earlier = w.terms(salt=3)
        w.open(earlier)
        w.deliver(earlier)
        w.send("confirmDelivery", earlier.as_tuple(), sender=w.buyer)
        busy = lifecycle(w, salt=4)

        baseline = direct_payment(w, accounts[10], accounts[11])
    finally:
        anvil.stop()

    totals = {
        "first_order": sum(first[s] for s in LIFECYCLE_STEPS),
        "busy_marketplace": sum(busy[s] for s in LIFECYCLE_STEPS),
    }
    show("First order on a fresh deployment (gasUsed)", {**first, **first_fees})
    show("Busy marketplace (gasUsed)", busy)
    print(f"\nBaseline, direct ERC-20 payment to a new holder: {baseline:,}")
    for name, total in totals.items():
        verdict = "meets" if total < TARGET else "MISSES"
        print(f"Lifecycle total, {name.replace('_', ' ')}: {total:,} ({verdict} the {TARGET:,} target; "
              f"{total / baseline:.1f}x the direct payment)")
    print(f"First order incl. platform and carrier withdrawals: "
          f"{totals['first_order'] + sum(first_fees.values()):,}")
    figures: dict[str, Any] = {
        "target": TARGET,
        "first_order": first | first_fees | {"total": totals["first_order"]},
        "busy_marketplace": busy | {"total": totals["busy_marketplace"]},
        "baseline_direct_transfer": baseline,
    }
    print(json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
