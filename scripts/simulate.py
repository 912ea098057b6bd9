#!/usr/bin/env python3
"""Play a realistic shipment through the oracles of the demo consortium, for the demo.

    .venv/bin/python scripts/simulate.py [--node-url URL] [--relayer-url URL] [--units 48] [--day-seconds 1]

The journey (a lot of vases made in Vietnam, inspected, packed, shipped to Rotterdam with a
data logger, cleared by customs with duty, delivered in Utrecht), the oracles and the orders
live in waymark/demo/simulation.py, shared with `waymark demo` (which plays the whole story on
a network of its own); this is their command line. The simulator runs each demo member's
oracle in this process (each on its own HTTP port, its data under `--data-dir`), signing as
the member's devnet account; the node (and the relayer) must be running: `waymark devnet
start`, `waymark deploy`, `waymark node run` (and the relayer).

Time: simulated day d happens at `start + d * day_seconds` (wall clock); the simulator waits
for each moment unless `--no-wait` (then `--start` should lie far enough in the past). With
the default one second per day the whole journey plays in under a minute.

With `--order` (needs a TradeEscrow with an allowlisted DevStablecoin in the deployment, and
a relayer) the seller first creates an escrow order for the container and the buyer funds it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from waymark.demo.simulation import (  # noqa: E402  (re-exported: tests load this file as a module)
    DUTY_RATE,
    GTIN,
    PRODUCT,
    Shipment,
    Step,
    build_plan,
    place_order,
    send,
    start_oracles,
    stop_oracles,
    wait_drained,
)

__all__ = ["DUTY_RATE", "GTIN", "PRODUCT", "Decimal", "Shipment", "Step", "build_plan", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node-url", default="http://127.0.0.1:8600", help="the node (default %(default)s)")
    parser.add_argument("--relayer-url", default=None, help="the escrow relayer, for milestone attestations")
    parser.add_argument("--rpc-url", default=None, help="chain JSON-RPC (default WAYMARK_CHAIN_RPC_URL or the devnet)")
    parser.add_argument("--chain-id", type=int, default=None)
    parser.add_argument("--deployment", type=Path, default=None, help="deployment record (default hardhat-free-devnet/deployments/<chainId>.json)")
    parser.add_argument("--data-dir", type=Path, default=None, help="the oracles' data (default var/simulation/<time>)")
    parser.add_argument("--units", type=int, default=48, help="vases in the lot (default %(default)s)")
    parser.add_argument("--day-seconds", type=float, default=1.0, help="wall-clock seconds per simulated day (default %(default)s)")
    parser.add_argument("--start", type=float, default=None, help="unix time of day 0 (default: now)")
    parser.add_argument("--no-wait", action="store_true", help="send every record at once (times still follow the plan)")
    parser.add_argument("--seed", type=int, default=None, help="repeatable identifiers and readings")
    parser.add_argument("--order", action="store_true", help="create and fund an escrow order for the container first")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for delivery at the end")
    args = parser.parse_args(argv)

    from node.chain.client import ChainClient
    from node.chain.deploy import load_deployment
    from node.paths import PROJECT_ROOT
    from node.settings import ChainSettings

    chain = ChainSettings(**{k: v for k, v in {"rpc_url": args.rpc_url, "chain_id": args.chain_id}.items() if v is not None})
    client = ChainClient(chain.rpc_url, expected_chain_id=chain.chain_id)
    deployment = load_deployment(args.deployment or chain.deployment_file)
    chain_now = int(client.w3.eth.get_block("latest")["timestamp"])
    start = args.start if args.start is not None else max(time.time(), chain_now) + 1
    args.data_dir = args.data_dir or PROJECT_ROOT / "var" / "simulation" / time.strftime("%Y%m%d-%H%M%S")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    products_file = args.data_dir / "products.json"
    products_file.write_text(json.dumps({GTIN: PRODUCT}, indent=2))

    rng = random.Random(args.seed) if args.seed is not None else random.SystemRandom()
    shipment = Shipment(start, args.day_seconds, rng, args.units)
    plan = build_plan(shipment)
    members = sorted({m for step in plan for m in step.members})
    print(f"lot {shipment.lot}: {args.units} units, container {shipment.container}, shipment {shipment.shipment_id}")
    oracles = start_oracles(members, node_urls=dict.fromkeys(members, args.node_url), relayer_url=args.relayer_url, data_dir=args.data_dir,
                            deployment=deployment, client=client, products_file=products_file)
    print("oracles: " + ", ".join(f"{m} {o.url}" for m, o in oracles.items()))
    order_id = None
    if args.order:
        terms = place_order(shipment, deployment, client)
        order_id = int(terms.order_id)
        print(f"escrow order {order_id:#x}: {terms.amount} units of {terms.token} funded by {terms.buyer} (shipmentRef = the container)")
    try:
        for step in plan:
            due = start + step.day * args.day_seconds
            if not args.no_wait and due > time.time():
                time.sleep(due - time.time())
            outcomes = [f"{m}: {send(step, oracles[m])}" for m in step.members]
            print(f"day {step.day:5.1f}  {step.label:<55} {'; '.join(outcomes)}", flush=True)
        drained = wait_drained(oracles, args.timeout)
        print("all events delivered to the node" if drained else f"some events still queued after {args.timeout:.0f}s (they will be delivered when the node answers)")
        for member, oracle in oracles.items():
            print(f"  {member:<13} {json.dumps(oracle.runtime.queue.counts())}")
        if order_id is not None:
            from node.escrow.client import EscrowClient

            escrow = EscrowClient.from_deployment(client, deployment)
            deadline = time.monotonic() + args.timeout
            while escrow.order(order_id).state.name == "FUNDED" and time.monotonic() < deadline:
                time.sleep(0.5)
            order = escrow.order(order_id)
            print(f"escrow order {order_id:#x}: {order.state.name}, {order.milestones_reached} milestone(s) reached")
        print(f"a unit to scan: {shipment.unit_links()[0]}")
        return 0 if drained else 1
    finally:
        stop_oracles(oracles)


if __name__ == "__main__":
    sys.exit(main())
