"""What the subcommands share: options, connecting, signers, output, error exits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console

from node.chain.client import ChainClient
from node.chain.deploy import Deployment, load_deployment
from node.chain.keystore import load_keystore, refuse_devnet_key, write_keystore
from node.devnet.anvil import DEVNET_CHAIN_ID
from node.devnet.consortium import DEMO_MEMBERS, DEPLOYER_INDEX, devnet_account
from node.paths import DEVNET_DIR
from node.settings import ChainSettings, DatabaseSettings, SignerSettings

console = Console()
err_console = Console(stderr=True)

DEVNET_KEYSTORES = DEVNET_DIR / "anvil" / "keystores"
DEVNET_KEYSTORE_PASSWORD = "waymark-devnet"  # protects public devnet keys only

RpcUrl = Annotated[str | None, typer.Option("--rpc-url", help="Chain JSON-RPC URL (env WAYMARK_CHAIN_RPC_URL)")]
ChainId = Annotated[int | None, typer.Option("--chain-id", help="Expected chain id (env WAYMARK_CHAIN_CHAIN_ID)")]
KeystoreOpt = Annotated[Path | None, typer.Option("--keystore", help="Encrypted keystore of the signing account")]
PasswordFileOpt = Annotated[Path | None, typer.Option("--password-file", help="File holding the keystore password")]
AsMember = Annotated[
    str | None,
    typer.Option("--as", help="Devnet only: sign as a demo member (" + ", ".join(m.key for m in DEMO_MEMBERS) + ", deployer, buyer)"),
]


def chain_settings(rpc_url: str | None, chain_id: int | None) -> ChainSettings:
    overrides = {k: v for k, v in {"rpc_url": rpc_url, "chain_id": chain_id}.items() if v is not None}
    return ChainSettings(**overrides)  # type: ignore[arg-type]


def database_settings(url: str | None) -> DatabaseSettings:
    """The database settings from the environment, with the command line's URL over them when given."""
    return DatabaseSettings(url=url) if url else DatabaseSettings()


@dataclass
class Session:
    settings: ChainSettings
    client: ChainClient

    def deployment(self) -> Deployment:
        return load_deployment(self.settings.deployment_file)


def connect(rpc_url: str | None, chain_id: int | None) -> Session:
    settings = chain_settings(rpc_url, chain_id)
    return Session(settings, ChainClient(settings.rpc_url, expected_chain_id=settings.chain_id))


def devnet_keystore(name: str, index: int) -> Path:
    """The devnet keystore of a demo account, written on first use."""
    path = DEVNET_KEYSTORES / f"{name}.json"
    if not path.exists():
        write_keystore(devnet_account(index), DEVNET_KEYSTORE_PASSWORD, path, light=True)
    return path


def member_index(name: str) -> int:
    if name == "deployer":
        return DEPLOYER_INDEX
    if name == "buyer":
        return 10
    for member in DEMO_MEMBERS:
        if member.key == name:
            return member.account_index
    raise typer.BadParameter(f"unknown demo member {name!r}", param_hint="--as")


def signer_from_keystore(path: Path, chain_id: int, password: str = DEVNET_KEYSTORE_PASSWORD) -> LocalAccount:
    return refuse_devnet_key(load_keystore(path, password), chain_id)


def signer(session: Session, keystore: Path | None, password_file: Path | None, as_member: str | None) -> LocalAccount:
    """The signing account: a keystore (any chain) or a demo member's devnet key (devnet only)."""
    if as_member is not None:
        if session.client.chain_id != DEVNET_CHAIN_ID:
            raise typer.BadParameter("demo members exist only on the devnet; use --keystore", param_hint="--as")
        return signer_from_keystore(devnet_keystore(as_member, member_index(as_member)), session.client.chain_id)
    settings = SignerSettings(**({"keystore": keystore} if keystore else {}), **({"password_file": password_file} if password_file else {}))  # type: ignore[arg-type]
    if settings.keystore is None:
        raise typer.BadParameter("a signing account is needed: --keystore (or --as on the devnet)", param_hint="--keystore")
    return signer_from_keystore(settings.keystore, session.client.chain_id, settings.resolved_password())
