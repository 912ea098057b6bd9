"""The escrow commands of the attestation side: an oracle signs a milestone (`attest`), and the
operator's relayer collects those signatures and submits each quorum once (`relayer run`)."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import httpx
import typer
from eth_account.signers.local import LocalAccount

from node.chain.devnet_keys import DEVNET_CHAIN_ID, devnet_account
from node.errors import WaymarkError
from node.escrow import order_key
from node.escrow.signing import sign_customs_return, sign_milestone
from node.escrow.terms import ZERO_ADDRESS
from node.relayer.settings import RelayerSettings
from waymark.cmd_escrow.inputs import parse_address, parse_span
from waymark.cmd_escrow.session import OrderIdArg, TermsStoreOpt, open_escrow, order_terms, say
from waymark.common import AsMember, ChainId, KeystoreOpt, PasswordFileOpt, RpcUrl, connect, database_settings, signer


def attest(
    order_id: OrderIdArg,
    milestone: Annotated[int, typer.Argument(help="Milestone index (0 = Shipped)")],
    relayer: Annotated[str | None, typer.Option(help="Relayer URL to post the signature to (default: print it)")] = None,
    duty: Annotated[str, typer.Option(help="Customs duty in token units (decimal), CustomsCleared only")] = "0",
    duty_payee: Annotated[str | None, typer.Option(help="Account the duty is paid to")] = None,
    customs_return: Annotated[bool, typer.Option("--customs-return", help="Attest that customs returned the goods (refund) instead")] = False,
    valid_for: Annotated[str, typer.Option(help="How long the signature may be used")] = "1d",
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """Sign a milestone of an order as an oracle of the milestone's role, and post it to the relayer."""
    session, escrow = open_escrow(rpc_url, chain_id, terms_store)
    terms = order_terms(escrow, order_id)
    if not 0 <= milestone < len(terms.milestones):
        raise typer.BadParameter(f"order has milestones 0 to {len(terms.milestones) - 1}", param_hint="MILESTONE")
    account = signer(session, keystore, password_file, as_member)
    deadline = escrow.chain_time() + parse_span(valid_for, "--valid-for")
    duty_units = 0 if duty == "0" else escrow.token_info(terms.token).units(duty)
    payee = parse_address(duty_payee, "--duty-payee") if duty_payee else ZERO_ADDRESS
    body: dict[str, Any]
    if customs_return:
        sig = sign_customs_return(account, escrow.domain, terms.order_id, milestone, deadline)
        path, body = f"/customs-returns/{order_key(terms.order_id)}/{milestone}", {}
    else:
        sig = sign_milestone(account, escrow.domain, terms.order_id, milestone, deadline, duty_units, payee)
        path, body = f"/milestones/{order_key(terms.order_id)}/{milestone}", {"duty": str(duty_units), "dutyPayee": payee}
    body.update({"signer": sig.signer, "signature": "0x" + sig.signature.hex(), "deadline": sig.deadline})
    if relayer is None:
        typer.echo(json.dumps({"path": path, **body}, indent=2))
        return
    try:
        answer = httpx.post(relayer.rstrip("/") + path, json=body, timeout=60)
    except httpx.HTTPError as exc:
        raise RelayerUnreachable(relayer, type(exc).__name__) from None
    data = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code >= 300:
        raise RelayerRefused(answer.status_code, str(data.get("message") or answer.text[:200]))
    state = data.get("status")
    if state == "reached":
        say(f"milestone {milestone} reached" + (f" (tx {data['txHash']})" if data.get("txHash") else ""))
    else:
        say(f"signature recorded: {data.get('collected')} of {data.get('quorum')} organisations")


class RelayerUnreachable(WaymarkError):
    code = "relayer_unreachable"

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"cannot reach the relayer at {url}: {detail}")


class RelayerRefused(WaymarkError):
    code = "relayer_refused"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the relayer refused the signature (HTTP {status}): {message}")


# ---- relayer ---------------------------------------------------------------------------------------


def relayer_run(
    host: Annotated[str | None, typer.Option(help="Listen address [env WAYMARK_RELAYER_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [env WAYMARK_RELAYER_PORT]")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database URL [env WAYMARK_DB_URL]")] = None,
    sweep_interval: Annotated[float | None, typer.Option(help="Seconds between passes over waiting milestones")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """Serve POST /milestones/{orderId}/{milestone} (and /customs-returns/...) for oracles, and submit
    each milestone once its quorum of signatures is in. The signer pays for the submissions."""
    import uvicorn  # the server's stack, loaded by the command that runs it (waymark.cli)

    from node.relayer.app import create_relayer_app, load_relayer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides = {k: v for k, v in {"host": host, "port": port, "sweep_interval": sweep_interval,
                                   "terms_store": terms_store}.items() if v is not None}
    settings = RelayerSettings(**overrides)  # type: ignore[arg-type]
    session = connect(rpc_url, chain_id)
    account: LocalAccount
    if keystore is None and as_member is None and settings.devnet_account is not None and session.client.chain_id == DEVNET_CHAIN_ID:
        account = devnet_account(settings.devnet_account)
    else:
        account = signer(session, keystore, password_file, as_member)
    relayer = load_relayer(settings, session.settings, database_settings(db), account,
                           client=session.client)
    say(f"relayer listening on http://{settings.host}:{settings.port} (chain {relayer.chain_id}, "
                  f"escrow {relayer.address}, submitting as {account.address})")
    uvicorn.run(create_relayer_app(relayer, sweep_interval=settings.sweep_interval), host=settings.host,
                port=settings.port, log_level="warning")
