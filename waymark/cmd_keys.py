"""keys: create and list encrypted keystores (Web3 Secret Storage), and give a new account gas.

Every signing command takes a keystore and the file holding its password (`--keystore FILE
--password-file FILE`, or WAYMARK_SIGNER_KEYSTORE / WAYMARK_SIGNER_PASSWORD_FILE). On the devnet,
`--as MEMBER` signs with a demo member's keystore instead: those live in
hardhat-free-devnet/anvil/keystores/, their password is `waymark-devnet`, and they hold
publicly known keys that every other chain refuses.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account
from eth_utils.address import is_address, to_checksum_address

from node.chain.devnet_keys import DEVNET_CHAIN_ID, devnet_addresses
from node.chain.keystore import KeystoreError, KeystoreExists, keystore_address, read_password_file, write_keystore
from waymark.devnet.consortium import DEMO_MEMBERS
from waymark.common import (
    DEVNET_KEYSTORE_PASSWORD,
    DEVNET_KEYSTORES,
    AsMember,
    ChainId,
    KeystoreOpt,
    PasswordFileOpt,
    RpcUrl,
    connect,
    console,
    devnet_keystore,
    member_index,
    signer,
)

app = typer.Typer(help="Keystores: create one for a new account, list them, print an address, give an account gas.\n\n"
                       "Signing commands take --keystore FILE --password-file FILE (the password on the file's first line), "
                       "or on the devnet --as MEMBER: the demo members' keystores in hardhat-free-devnet/anvil/keystores/, "
                       f"password {DEVNET_KEYSTORE_PASSWORD}, refused on every other chain.",
                  no_args_is_help=True)


@app.command("create")
def create(
    path: Annotated[Path, typer.Argument(help="Keystore file to write (never overwritten)", show_default=False)],
    password_file: Annotated[Path, typer.Option("--password-file", help="File whose first line is the new keystore's password",
                                                show_default=False)],
) -> None:
    """Create a new account and write its key to PATH, encrypted with the password in --password-file.

    Prints the new address. The account holds no ether: on the devnet, `waymark keys fund ADDRESS`
    gives it gas; on a consortium chain its organisation must be admitted (or the account added)
    before it can act.
    """
    password = read_password_file(password_file)
    if path.exists():
        raise KeystoreExists(path)
    account = Account.create()
    write_keystore(account, password, path)
    console.print(f"created {path} for account {account.address}", highlight=False, soft_wrap=True)
    console.print(account.address, highlight=False)


@app.command("list")
def list_keystores(
    folders: Annotated[list[Path] | None, typer.Argument(help="Folders (or files) to look in; default: var/keystores",
                                                         show_default=False)] = None,
    devnet: Annotated[bool, typer.Option("--devnet", help="List the demo members' devnet keystores (what --as uses) instead")] = False,
) -> None:
    """List keystore files with the account each holds (read without the password): one line each,
    account, file, and a note."""
    rows: list[tuple[str, str, str]] = []
    if devnet:
        for name in [m.key for m in DEMO_MEMBERS] + ["deployer", "buyer"]:
            path = devnet_keystore(name, member_index(name))
            rows.append((to_checksum_address(keystore_address(path)), str(path), f"--as {name}"))
        _print_rows(rows)
        console.print(f"(devnet keystores; their password is {DEVNET_KEYSTORE_PASSWORD})", highlight=False)
        return
    paths: list[Path] = []
    for folder in folders or [Path("var/keystores")]:
        if folder.is_file():
            paths.append(folder)
        elif folder.is_dir():
            paths.extend(sorted(folder.glob("*.json")))
        else:
            raise KeystoreError(f"{folder} does not exist (give a folder of keystore files)")
    known = {a.lower() for a in devnet_addresses()}
    for path in paths:
        try:
            address = keystore_address(path)
        except KeystoreError:
            continue  # other JSON files in the folder
        rows.append((to_checksum_address(address), str(path), "public devnet key" if address.lower() in known else ""))
    if not rows:
        console.print(f"no keystores in {', '.join(str(f) for f in folders or [Path('var/keystores')])}"
                      f" (devnet members: waymark keys list --devnet; their keystores are in {DEVNET_KEYSTORES})")
        return
    _print_rows(rows)


def _print_rows(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(path) for _, path, _ in rows)
    for address, path, note in rows:
        console.print(f"{address}  {path:<{width}}  {note}".rstrip(), highlight=False, soft_wrap=True)


@app.command("address")
def address_command(
    keystore: KeystoreOpt = None,
    as_member: AsMember = None,
) -> None:
    """Print the account address of a keystore (no password needed) or of a demo member (--as)."""
    if (keystore is None) == (as_member is None):
        raise typer.BadParameter("give one of --keystore FILE or --as MEMBER", param_hint="--keystore / --as")
    if as_member is not None:
        typer.echo(to_checksum_address(keystore_address(devnet_keystore(as_member, member_index(as_member)))))
        return
    assert keystore is not None
    typer.echo(to_checksum_address(keystore_address(keystore)))


@app.command("fund")
def fund(
    address: Annotated[str, typer.Argument(help="Account to send ether to", show_default=False)],
    amount: Annotated[str, typer.Option(help="Ether to send (decimal)")] = "1",
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None,
) -> None:
    """Send ether for gas to an account, from the signer (on the devnet by default the deployer)."""
    if not is_address(address):
        raise typer.BadParameter(f"{address!r} is not an account address", param_hint="ADDRESS")
    try:
        wei = int(Decimal(amount) * 10**18)
    except InvalidOperation:
        raise typer.BadParameter(f"{amount!r} is not a number of ether", param_hint="--amount") from None
    if wei <= 0:
        raise typer.BadParameter("the amount must be positive", param_hint="--amount")
    session = connect(rpc_url, chain_id)
    if keystore is None and as_member is None and session.client.chain_id == DEVNET_CHAIN_ID:
        as_member = "deployer"
    sender = signer(session, keystore, password_file, as_member)
    target = to_checksum_address(address)
    receipt = session.client.send({"from": sender.address, "to": target, "value": wei, "gas": 21_000,  # type: ignore[typeddict-item]
                                   "chainId": session.client.chain_id}, sender)
    balance = session.client.w3.eth.get_balance(target)
    console.print(f"sent {amount} ether to {target} (tx 0x{bytes(receipt['transactionHash']).hex()}); "
                  f"balance {Decimal(balance) / 10**18:f} ether", highlight=False, soft_wrap=True)
