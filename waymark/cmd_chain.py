"""build, devnet up/down/status, deploy."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from node.chain.build import build
from node.chain.deploy import deploy, is_current, waymark_steps
from node.chain.errors import DeploymentMissing
from node.chain.devnet_keys import DEVNET_CHAIN_ID, DEVNET_PORT
from waymark.devnet.anvil import LOG_FILE, devnet_down, devnet_status, devnet_up
from node.chain.consortium import load_consortium
from waymark.devnet.consortium import demo_consortium
from waymark.devnet.escrow import devnet_token_steps, setup_devnet_escrow
from node.paths import ARTIFACTS_DIR, CONTRACTS_DIR
from waymark import cmd_besu
from waymark.common import (
    AsMember,
    ChainId,
    KeystoreOpt,
    PasswordFileOpt,
    RpcUrl,
    chain_settings,
    connect,
    console,
    read_json,
    signer,
)

devnet_app = typer.Typer(help="The embedded Anvil devnet (state kept in hardhat-free-devnet/anvil/state).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("build")(build_command)
    app.command("deploy")(deploy_command)
    app.command("status")(status_command)
    app.add_typer(devnet_app, name="devnet")
    cmd_besu.register(devnet_app)


def build_command(
    force: Annotated[bool, typer.Option("--force", help="Compile even if nothing changed")] = False,
    contracts: Annotated[Path, typer.Option(help="Folder of Solidity sources")] = CONTRACTS_DIR,
    out: Annotated[Path, typer.Option(help="Folder for the artifacts")] = ARTIFACTS_DIR,
) -> None:
    """Compile the contracts (solc 0.8.28, cancun, optimizer on) into build/contracts/."""
    compiled = build(contracts, out, force=force)
    console.print(("compiled" if compiled else "up to date") + f" -> {out}")


@devnet_app.command("up")
def devnet_up_command(
    port: Annotated[int, typer.Option(help="RPC port")] = DEVNET_PORT,
    block_time: Annotated[float | None, typer.Option(help="Mine a block every this many seconds, as a Besu/QBFT network does (default: each transaction at once)")] = None,
) -> None:
    """Start Anvil in the background (idempotent); its chain state persists across restarts."""
    status = devnet_up(port, block_time=block_time)
    console.print(f"devnet running: {status.rpc_url} chain {status.chain_id} block {status.block} (pid {status.pid})")
    console.print(f"state: {status.state_file}  log: {LOG_FILE}")


@devnet_app.command("down")
def devnet_down_command() -> None:
    """Stop the devnet; it saves its state first."""
    console.print("devnet stopped" if devnet_down() else "devnet was not running")


@devnet_app.command("status")
def devnet_status_command(
    port: Annotated[int | None, typer.Option(help="RPC port (default: the port of WAYMARK_CHAIN_RPC_URL, else 8545)")] = None,
) -> None:
    """Say whether the devnet runs (the one `devnet up` started, or another Anvil such as the demo's),
    and whether Waymark is deployed on it (the record in WAYMARK_CHAIN_DEPLOYMENTS_DIR)."""
    settings = chain_settings(None, None)
    if port is None:
        url = urlsplit(settings.rpc_url)
        port = url.port if url.hostname in ("127.0.0.1", "localhost") and url.port else DEVNET_PORT
    status = devnet_status(port)
    if status.running:
        console.print(f"devnet: running at {status.rpc_url}, chain {status.chain_id}, block {status.block}, pid {status.pid}")
    elif status.chain_id == DEVNET_CHAIN_ID:
        console.print(f"devnet: a devnet chain answers at {status.rpc_url}, block {status.block} (not started by "
                      "`waymark devnet up`: the demo's chain, or another Anvil)", highlight=False, soft_wrap=True)
    else:
        what = f"another chain answers there (chain id {status.chain_id})" if status.chain_id is not None else "nothing answers there"
        console.print(f"devnet: not running at {status.rpc_url}: {what} "
                      f"(state file {'present' if status.state_file.exists() else 'absent'}: {status.state_file})",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    _print_deployment(status.rpc_url, DEVNET_CHAIN_ID)


def status_command(rpc_url: RpcUrl = None, chain_id: ChainId = None) -> None:
    """Show the chain and the Waymark deployment on it."""
    session = connect(rpc_url, chain_id)
    console.print(f"chain {session.client.chain_id} at {session.settings.rpc_url}, block {session.client.w3.eth.block_number}")
    _print_deployment(session.settings.rpc_url, session.settings.chain_id)


def _print_deployment(rpc_url: str, chain_id: int) -> None:
    session = connect(rpc_url, chain_id)
    try:
        deployment = session.deployment()
    except DeploymentMissing as exc:
        console.print(f"deployment: none ({exc})")
        raise typer.Exit(1) from None
    current = is_current(session.client, deployment, list(deployment.contracts))
    console.print(f"deployment: {'deployed' if current else 'STALE (chain does not hold the recorded code)'} "
                  f"-> {session.settings.deployment_file}")
    table = Table("contract", "address", "block")
    for name, contract in deployment.contracts.items():
        table.add_row(name, contract.address, str(contract.block))
    console.print(table)
    if not current:
        raise typer.Exit(1)


def deploy_command(
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    as_member: AsMember = None,
    consortium: Annotated[
        Path | None,
        typer.Option(help="Founding members and threshold (JSON, see hardhat-free-devnet/besu/README.md); "
                     "default on the devnet: the demo consortium"),
    ] = None,
) -> None:
    """Deploy the contracts and register the consortium; contracts already deployed are kept.

    On the devnet with the demo consortium it also allowlists the test stablecoins and tops up the
    demo accounts' token balances, each time it runs."""
    build()
    session = connect(rpc_url, chain_id)
    on_devnet = session.client.chain_id == DEVNET_CHAIN_ID
    if on_devnet and keystore is None and as_member is None:
        as_member = "deployer"
    if consortium is not None:
        read_json(consortium, "a consortium file (JSON)")  # missing or not JSON: bad input (exit code 2)
        spec = load_consortium(consortium)
        if spec.chain_id is not None and spec.chain_id != session.client.chain_id:
            raise typer.BadParameter(
                f"{consortium} is for chain {spec.chain_id}, but the chain at {session.settings.rpc_url} is {session.client.chain_id}",
                param_hint="--consortium",
            )
    elif on_devnet:
        spec = demo_consortium()
    else:
        raise typer.BadParameter("a consortium chain needs --consortium FILE", param_hint="--consortium")
    deployer = signer(session, keystore, password_file, as_member)
    steps = waymark_steps(spec)
    demo = on_devnet and consortium is None
    if demo:  # test stablecoins exist on the devnet only, with the demo consortium's operator
        steps += devnet_token_steps(session.client.chain_id, deployer.address)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("deploying", total=len(steps))

        def advance(name: str) -> None:
            progress.update(task, advance=1, description=f"deploying {name}")

        deployment, deployed_now = deploy(session.client, deployer, steps, session.settings.deployment_file, advance)
        setup = setup_devnet_escrow(session.client, deployment, minter=deployer) if demo else []
    console.print(("deployed" if deployed_now else "already deployed, nothing to do") + f" -> {session.settings.deployment_file}")
    for name, contract in deployment.contracts.items():
        console.print(f"  {name:<20} {contract.address}")
    for line in setup:
        console.print(f"  {line}")


