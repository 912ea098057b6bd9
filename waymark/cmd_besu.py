"""devnet besu-config: the Hyperledger Besu QBFT configuration of a consortium."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from eth_utils.address import is_address
from rich.table import Table

from node.chain.registry import RegistryClient
from waymark.common import ChainId, RpcUrl, connect, console
from waymark.devnet.besu.ceremony import IDENTITY_FILE, identities_from, member_identity
from waymark.devnet.besu.configs import accounts_before_deployment, accounts_from_registry
from waymark.devnet.besu.generate import DEFAULT_NETWORK_DIR, generate
from waymark.devnet.besu.spec import load_besu_network


def register(devnet_app: typer.Typer) -> None:
    devnet_app.command("besu-config")(besu_config_command)
    devnet_app.command("besu-key")(besu_key_command)


def besu_key_command(
    consortium: Annotated[Path, typer.Option(help="The consortium file (the same one the coordinator uses)")],
    member: Annotated[str, typer.Option(help="Your organisation's name as the consortium file spells it")],
    out: Annotated[Path, typer.Option(help="Your node's folder: receives its secret key and its public identity.json")],
    browser_rpc: Annotated[
        bool, typer.Option("--browser-rpc", help="The key of the browsers' RPC node you run, not of your validator")
    ] = False,
) -> None:
    """On your own machine: make your Besu node's key (kept if it exists) and its public identity.

    Hand over only identity.json (public key, address, enode URL); the key never leaves this machine.
    """
    network = load_besu_network(consortium)
    identity = member_identity(network, member, out, browser_rpc=browser_rpc)
    console.print(f"{identity['role']} of {member}: address {identity['address']}")
    console.print(f"enode {identity['enode']}")
    console.print(f"[bold]hand over[/] {out / IDENTITY_FILE} (public); [bold]keep[/] {out / 'key'} (mode 0600, secret)")


def besu_config_command(
    consortium: Annotated[
        Path,
        typer.Option(help="Consortium file with chainId and validators (see hardhat-free-devnet/besu/README.md)"),
    ],
    out: Annotated[Path, typer.Option(help="Output folder; it receives the validators' secret node keys")] = DEFAULT_NETWORK_DIR,
    from_registry: Annotated[
        bool,
        typer.Option(
            "--from-registry",
            help="Allowlist the accounts of the ACTIVE organisations of the deployed ConsortiumRegistry "
            "(default: the file's member accounts and deployer, for a network not yet deployed to)",
        ),
    ] = False,
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
    deployer: Annotated[
        str | None, typer.Option(help="Account that will deploy Waymark (overrides the file's deployer)")
    ] = None,
    keep_genesis: Annotated[
        bool,
        typer.Option(
            "--keep-genesis",
            help="The network runs already: leave genesis.json alone, rewrite allowlists and node configs "
            "(after a membership change)",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a genesis.json that differs (a new network)")] = False,
    public_keys: Annotated[
        Path | None,
        typer.Option(help="Folder of the members' identity files (`waymark devnet besu-key`): build the network from "
                          "public material alone, creating and reading no key"),
    ] = None,
) -> None:
    """Generate the Besu QBFT network of a consortium: genesis, node keys and configs, allowlists."""
    if deployer is not None and not is_address(deployer):
        raise typer.BadParameter(f"{deployer!r} is not an account address", param_hint="--deployer")
    network = load_besu_network(consortium, deployer=deployer)
    if from_registry:
        expected = chain_id if chain_id is not None else network.chain_id
        if expected != network.chain_id:
            console.print(f"[yellow]note:[/] reading the registry of chain {expected}, "
                          f"but the consortium runs on chain {network.chain_id}")
        session = connect(rpc_url, expected)
        deployment = session.deployment()
        registry = RegistryClient(session.client, deployment)
        accounts = accounts_from_registry(registry, network.extra_accounts)
        source = (f"active organisations of ConsortiumRegistry {deployment.address('ConsortiumRegistry')} "
                  f"on chain {session.client.chain_id}")
    else:
        accounts = accounts_before_deployment(network)
        source = f"founding members and deployer in {consortium.name} (before deployment)"
    public = identities_from(sorted(public_keys.glob("*.json")), network) if public_keys is not None else None
    result = generate(network, out, accounts, source, keep_genesis=keep_genesis, force=force, public=public)

    table = Table("member", "validator address", "enode")
    for validator in result.validators:
        table.add_row(validator.member, validator.address, validator.enode)
    console.print(table)
    console.print(f"chain {network.chain_id}; {len(result.accounts)} accounts allowlisted: {source}")
    if result.genesis_kept:
        console.print("genesis.json kept as it is")
    for path in result.new_keys:
        console.print(f"[bold]new node key[/] {path} (mode 0600: a validator's secret, never commit or share it)")
    if public is not None:
        console.print("built from the members' public identities alone; each member puts its own key into its folder")
    if network.browser_rpc is not None:
        b = network.browser_rpc
        console.print(f"browsers' RPC node (ETH, NET, WEB3 only; CORS {', '.join(b.cors_origins)}): run by {b.member}, "
                      f"port {b.rpc_port}, folder {out / b.slug}")
    console.print(f"wrote {len(result.written)} files to {out}; how to run them: hardhat-free-devnet/besu/README.md")
