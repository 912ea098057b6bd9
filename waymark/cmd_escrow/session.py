"""How the escrow commands reach an order: the options they share, the escrow client of the
deployment, a token by name, an order's terms by id, and the one-line reports they print."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from node.chain.errors import DeploymentMissing
from node.escrow import EscrowClient, OrderTerms, TermsStore, order_key
from waymark.cmd_escrow.inputs import parse_order_id
from waymark.common import Session, connect, console, signer

OrderIdArg = Annotated[str, typer.Argument(help="Order id (0x + 64 hex digits, as `create` prints it, or decimal)",
                                           show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
TermsStoreOpt = Annotated[Path | None, typer.Option("--terms-store", help="Terms file (default: <deployments dir>/<chainId>.terms.json)")]


def escrow_client(session: Session, terms_store: Path | None) -> EscrowClient:
    deployment = session.deployment()
    if "TradeEscrow" not in deployment.contracts:
        raise DeploymentMissing(f"{session.settings.deployment_file} has no TradeEscrow")
    path = terms_store or session.settings.deployments_dir / f"{session.client.chain_id}.terms.json"
    return EscrowClient.from_deployment(session.client, deployment, TermsStore(path))


def open_escrow(rpc_url: str | None, chain_id: int | None, terms_store: Path | None) -> tuple[Session, EscrowClient]:
    session = connect(rpc_url, chain_id)
    return session, escrow_client(session, terms_store)


def resolve_token(session: Session, escrow: EscrowClient, text: str) -> str:
    """A token by address, by deployment entry ("DevStablecoin:wUSD") or by its symbol (wUSD)."""
    if is_address(text):
        return to_checksum_address(text)
    contracts = session.deployment().contracts
    for name, contract in contracts.items():
        if name == text or name.split(":", 1)[-1].lower() == text.lower():
            return contract.address
    raise typer.BadParameter(f"{text!r} is neither an address nor a token of this deployment "
                             f"({', '.join(n.split(':', 1)[1] for n in contracts if ':' in n) or 'none'})", param_hint="--token")


def order_terms(escrow: EscrowClient, order_id: str) -> OrderTerms:
    return escrow.terms(parse_order_id(order_id))


def say(message: str) -> None:
    console.print(message, soft_wrap=True, highlight=False)


def print_done(message: str, receipt: Any | None = None) -> None:
    suffix = f" (tx 0x{bytes(receipt['transactionHash']).hex()}, gas {receipt['gasUsed']})" if receipt is not None else ""
    say(message + suffix)


def order_transaction(
    order_id: str, done: str, send: Callable[[EscrowClient, OrderTerms, LocalAccount], Any],
    rpc_url: str | None, chain_id: int | None, keystore: Path | None, password_file: Path | None,
    as_member: str | None, terms_store: Path | None,
) -> None:
    """One transaction on one order by the signer the options name; prints `order <id> <done>`."""
    session, escrow = open_escrow(rpc_url, chain_id, terms_store)
    terms = order_terms(escrow, order_id)
    print_done(f"order {order_key(terms.order_id)} {done}", send(escrow, terms, signer(session, keystore, password_file, as_member)))
