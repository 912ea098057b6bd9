"""What the subcommands share: options, connecting, signers, output, error exits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from node.chain.client import ChainClient
from node.chain.deploy import Deployment, load_deployment
from node.chain.devnet_keys import DEVNET_CHAIN_ID, devnet_account
from node.chain.keystore import PasswordMissing, load_keystore, read_keystore, read_password_file, refuse_devnet_key, write_keystore
from node.chain.registry import RegistryClient
from node.errors import WaymarkError
from node.paths import DEVNET_DIR
from node.settings import ChainSettings, DatabaseSettings, SignerSettings
from waymark.devnet.consortium import DEMO_BUYER_INDICES, DEMO_MEMBERS, DEPLOYER_INDEX

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


def database_settings(url: str | None, *, must_exist: bool = False) -> DatabaseSettings:
    """The database settings from the environment, with the command line's URL over them when given.

    `must_exist`: for commands that read what a node wrote (audit, API): a SQLite file that is not
    there is a mistyped path, refused before anything (a folder, an empty database) is created."""
    settings = DatabaseSettings(url=url) if url else DatabaseSettings()
    if must_exist:
        try:
            parsed = make_url(settings.url)
        except ArgumentError:
            raise DatabaseNotFound(settings.url, "is not a database URL (sqlite:///PATH or postgresql+psycopg://...)") from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            if not Path(parsed.database).is_file():
                raise DatabaseNotFound(settings.url, f"has no database file {parsed.database}")
    return settings


class DatabaseNotFound(WaymarkError):
    code = "database_not_found"

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"database {url} {problem} (set --db or WAYMARK_DB_URL to the node's database)")


class InputFileError(WaymarkError):
    """A file given on the command line is missing, unreadable or not what it should be (exit code 2)."""

    code = "invalid_input_file"

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}")


def read_input(path: Path, what: str) -> bytes:
    """The bytes of a file the user named, or one clear error saying why not."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, f"no such file (expected {what})") from None
    except IsADirectoryError:
        raise InputFileError(path, f"is a folder, not {what}") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from None


def read_json(path: Path, what: str) -> Any:
    """A JSON file the user named, parsed, or one clear error (missing, unreadable, not JSON)."""
    data = read_input(path, what)
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise InputFileError(path, f"is not text (expected {what})") from None
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); expected {what}") from None


@dataclass
class Session:
    settings: ChainSettings
    client: ChainClient

    def deployment(self) -> Deployment:
        return load_deployment(self.settings.deployment_file)


SESSIONS: list[Session] = []
"""Sessions opened by this command, so an error message can name accounts and organisations."""


def connect(rpc_url: str | None, chain_id: int | None) -> Session:
    settings = chain_settings(rpc_url, chain_id)
    session = Session(settings, ChainClient(settings.rpc_url, expected_chain_id=settings.chain_id))
    SESSIONS.append(session)
    return session


def organisation_namer() -> Any:
    """A namer for decoded contract errors: accounts and organisation ids by organisation name, read
    from the registry of the chain this command talked to (None if there is none to ask)."""
    if not SESSIONS:
        return None
    session = SESSIONS[-1]
    try:
        orgs = RegistryClient(session.client, session.deployment()).organisations()
    except Exception:  # naming is a courtesy; the error itself is what matters
        return None
    by_account = {a.lower(): o.name for o in orgs for a in o.accounts}
    by_id = {int(o.id): o.name for o in orgs}

    def name(kind: str, value: Any) -> str | None:
        if kind == "account":
            return by_account.get(str(value).lower(), "of no organisation")
        if kind == "org":
            return by_id.get(int(value))
        return None

    return name


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
        return DEMO_BUYER_INDICES[0]
    for member in DEMO_MEMBERS:
        if member.key == name:
            return member.account_index
    raise typer.BadParameter(f"unknown demo member {name!r}", param_hint="--as")


def signer_from_keystore(path: Path, chain_id: int, password: str = DEVNET_KEYSTORE_PASSWORD,
                         source: str = "the devnet password") -> LocalAccount:
    return refuse_devnet_key(load_keystore(path, password, source), chain_id)


def keystore_password(settings: SignerSettings) -> tuple[str, str]:
    """The keystore's password and where it came from; a missing or empty password file is its own error."""
    if settings.password is not None:
        return settings.password.get_secret_value(), "WAYMARK_SIGNER_PASSWORD"
    if settings.password_file is not None:
        return read_password_file(settings.password_file), f"the password in {settings.password_file}"
    assert settings.keystore is not None
    raise PasswordMissing(settings.keystore)


def signer(session: Session, keystore: Path | None, password_file: Path | None, as_member: str | None) -> LocalAccount:
    """The signing account: a keystore (any chain) or a demo member's devnet key (devnet only)."""
    if as_member is not None:
        if session.client.chain_id != DEVNET_CHAIN_ID:
            raise typer.BadParameter("demo members exist only on the devnet; use --keystore", param_hint="--as")
        return signer_from_keystore(devnet_keystore(as_member, member_index(as_member)), session.client.chain_id)
    settings = SignerSettings(**({"keystore": keystore} if keystore else {}), **({"password_file": password_file} if password_file else {}))  # type: ignore[arg-type]
    if settings.keystore is None:
        raise typer.BadParameter("a signing account is needed: --keystore (or --as on the devnet)", param_hint="--keystore")
    read_keystore(settings.keystore)  # a keystore problem is named before a password problem
    password, source = keystore_password(settings)
    return signer_from_keystore(settings.keystore, session.client.chain_id, password, source)
