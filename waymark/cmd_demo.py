"""demo: the whole network on this machine, in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from node.chain.client import ChainClient
from node.chain.deploy import deploy, waymark_steps
from node.devnet.anvil import DEVNET_CHAIN_ID, DEVNET_PORT, devnet_down, devnet_status, devnet_up
from node.devnet.consortium import demo_consortium
from node.devnet.escrow import devnet_token_steps, setup_devnet_escrow
from node.registry import RegistryClient
from node.settings import ChainSettings
from waymark.common import console, devnet_keystore, member_index, signer_from_keystore


def demo(
    port: Annotated[int, typer.Option(help="Devnet RPC port")] = DEVNET_PORT,
    wait: Annotated[bool, typer.Option(help="Keep running until Ctrl-C (--no-wait: set up and exit, leaving the devnet up)")] = True,
) -> None:
    """Start the devnet, deploy Waymark with the demo consortium, and keep it running until Ctrl-C."""
    was_running = devnet_status(port).running
    status = devnet_up(port)
    stop = threading.Event()
    try:
        settings = ChainSettings(rpc_url=status.rpc_url, chain_id=DEVNET_CHAIN_ID)
        client = ChainClient(settings.rpc_url, expected_chain_id=settings.chain_id)
        deployer = signer_from_keystore(devnet_keystore("deployer", member_index("deployer")), client.chain_id)
        steps = waymark_steps(demo_consortium()) + devnet_token_steps(client.chain_id, deployer.address)
        deployment, fresh = deploy(client, deployer, steps, settings.deployment_file)
        setup_devnet_escrow(client, deployment, minter=deployer)
        console.print(f"chain      {status.rpc_url} (chain id {client.chain_id}, {'resumed from' if was_running or not fresh else 'state in'} {status.state_file})")
        console.print(f"deployment {settings.deployment_file} ({'deployed now' if fresh else 'resumed'})")
        for name, contract in deployment.contracts.items():
            console.print(f"  {name:<20} {contract.address}")
        members = RegistryClient(client, deployment).organisations()
        console.print(f"consortium {len(members)} members: " + ", ".join(f"{m.name} ({m.country})" for m in members))
        console.print("ready", style="bold green")
        if wait:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            console.print("press Ctrl-C to stop")
            stop.wait()
    finally:
        if wait:
            devnet_down()
            console.print("stopped; chain state saved for the next run")
