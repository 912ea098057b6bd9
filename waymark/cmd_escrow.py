"""escrow: orders paid into TradeEscrow, for sellers, buyers, oracles and arbitrators; the relayer.

An order is named by its id (0x + 64 hex digits, as `create` prints it, or decimal). Its terms
are found by id: in the local terms file (next to the deployment record, `<chainId>.terms.json`)
or else in the chain's OrderCreated log. Actions sign with --keystore/--password-file, or on the
devnet with --as <demo member | buyer>.

    seller:      create, cancel, withdraw
    buyer:       fund (approve or --permit), confirm (or --sign-only, for someone else to relay), dispute, withdraw
    anyone:      show, release (after the review window), refund (after a missed deadline), resolve (a timed-out dispute),
                 confirm --signature (relay a buyer's signed confirmation)
    oracles:     attest (sign a milestone and post it to the relayer)
    arbitrator:  rule
    operator:    relayer run (collects oracle signatures, submits each milestone once)
"""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import unquote
from datetime import datetime
from pathlib import Path
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from rich.table import Table

from node.chain.errors import DeploymentMissing
from node.escrow import (
    EscrowClient,
    EscrowError,
    FxQuote,
    InvalidTerms,
    OrderTerms,
    State,
    TermsStore,
    order_key,
    schedule,
)
from node.escrow.signing import sign_customs_return, sign_milestone
from node.escrow.terms import ZERO_ADDRESS, Attestation, MilestoneKind, currency_bytes, customs_authorities
from node.errors import WaymarkError
from node.protocol.digital_link import canonical_id
from node.protocol.gs1 import (
    CANONICAL_RESOLVER,
    ContainerId,
    InvalidIdentifier,
    encode_component,
    normalize_gtin,
    validate_sscc,
)
from waymark.common import (
    AsMember,
    ChainId,
    KeystoreOpt,
    PasswordFileOpt,
    RpcUrl,
    Session,
    connect,
    console,
    database_settings,
    err_console,
    signer,
)

app = typer.Typer(help="Escrow orders: create, fund, milestones, confirm, disputes, payouts; the relayer.",
                  no_args_is_help=True)
relayer_app = typer.Typer(help="The relayer: collects oracles' milestone signatures and submits each quorum once.",
                          no_args_is_help=True)
app.add_typer(relayer_app, name="relayer")

OrderIdArg = Annotated[str, typer.Argument(help="Order id (0x + 64 hex digits, as `create` prints it, or decimal)",
                                           show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
TermsStoreOpt = Annotated[Path | None, typer.Option("--terms-store", help="Terms file (default: <deployments dir>/<chainId>.terms.json)")]

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CliInputError(WaymarkError):
    code = "invalid_input"

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")


# ---- parsing ---------------------------------------------------------------------------------


def parse_order_id(text: str) -> int:
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an order id (0x + 64 hex digits, or decimal)", param_hint="ORDER_ID") from None
    if not 0 <= value < 2**256:
        raise typer.BadParameter(f"{text!r} does not fit in 256 bits", param_hint="ORDER_ID")
    return value


def parse_time(text: str, now: int, option: str) -> int:
    """Unix seconds, ISO 8601, or a span from now (chain time): 90s, 45m, 12h, 7d."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match:
        return now + int(match.group(1)) * UNITS[match.group(2)]
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a span (7d, 12h), unix seconds nor ISO 8601", param_hint=option) from None


def parse_span(text: str, option: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 3d, 12h, 3600)", param_hint=option)
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def parse_address(text: str, option: str) -> str:
    if not is_address(text):
        raise typer.BadParameter(f"{text!r} is not an account address", param_hint=option)
    return to_checksum_address(text)


def parse_bytes32(text: str, option: str) -> bytes:
    """0x + 64 hex digits as is; any other text is hashed (keccak256) into 32 bytes."""
    if re.fullmatch(r"0x[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text[2:])
    return keccak(text=text)


def parse_shipment(text: str) -> tuple[bytes, str | None]:
    """An order's shipmentRef and the canonical id it names: the key the events and the passport use
    (keccak256 of https://id.gs1.org/00/<SSCC>, /01/<GTIN>/21/<serial> or /01/<GTIN>/10/<lot>), from
    a bare SSCC, a Digital Link (any resolver) or an EPC URN. 0x + 64 hex is taken as the key itself;
    other text is hashed as a free reference (and names no events)."""
    text = text.strip()
    if re.fullmatch(r"0x[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text[2:]), None
    try:
        if text.isdigit():
            uri = ContainerId(validate_sscc(text)).canonical_uri
        elif text.startswith(("http://", "https://", "urn:epc:id:")):
            lot = re.fullmatch(r"https?://[^/?#]+(?:/[^?#]*)?/01/(\d{8,14})/10/([^/?#]+)/?", text)
            if lot is not None:  # a lot's class id (the Digital Link helpers parse unit and container ids)
                uri = f"https://{CANONICAL_RESOLVER}/01/{normalize_gtin(lot.group(1))}/10/{encode_component(unquote(lot.group(2)))}"
            else:
                uri = canonical_id(text)
        else:
            return keccak(text=text), None
    except InvalidIdentifier as exc:
        raise CliInputError("--shipment", str(exc)) from None
    return keccak(text=uri), uri


def evidence_hash(file: Path | None, text: str | None, option: str) -> bytes:
    if file is not None:
        if not file.is_file():
            raise typer.BadParameter(f"{file} is not a readable file", param_hint=option)
        return hashlib.sha256(file.read_bytes()).digest()
    if text is not None:
        return parse_bytes32(text, option)
    raise typer.BadParameter("give a file (its SHA-256 is recorded) or a hash", param_hint=option)


def parse_schedule(text: str, quorum: int, customs_quorum: int | None) -> tuple[Any, ...]:
    try:
        shares = [int(part) for part in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a list of basis points like 0,3000,7000", param_hint="--schedule") from None
    if not 2 <= len(shares) <= 5:
        raise typer.BadParameter("a schedule has 2 to 5 steps: Shipped, up to 3 customs clearances, Delivered", param_hint="--schedule")
    if sum(shares) != 10_000:
        raise typer.BadParameter(f"shares must sum to 10000 basis points, not {sum(shares)}", param_hint="--schedule")
    return schedule(*shares, quorum=quorum, customs_quorum=customs_quorum)


# ---- connecting --------------------------------------------------------------------------------


def _escrow(session: Session, terms_store: Path | None) -> EscrowClient:
    deployment = session.deployment()
    if "TradeEscrow" not in deployment.contracts:
        raise DeploymentMissing(f"{session.settings.deployment_file} has no TradeEscrow")
    path = terms_store or session.settings.deployments_dir / f"{session.client.chain_id}.terms.json"
    return EscrowClient.from_deployment(session.client, deployment, TermsStore(path))


def _open(rpc_url: str | None, chain_id: int | None, terms_store: Path | None) -> tuple[Session, EscrowClient]:
    session = connect(rpc_url, chain_id)
    return session, _escrow(session, terms_store)


def _token(session: Session, escrow: EscrowClient, text: str) -> str:
    """A token by address, by deployment entry ("DevStablecoin:wUSD") or by its symbol (wUSD)."""
    if is_address(text):
        return to_checksum_address(text)
    contracts = session.deployment().contracts
    for name, contract in contracts.items():
        if name == text or name.split(":", 1)[-1].lower() == text.lower():
            return contract.address
    raise typer.BadParameter(f"{text!r} is neither an address nor a token of this deployment "
                             f"({', '.join(n.split(':', 1)[1] for n in contracts if ':' in n) or 'none'})", param_hint="--token")


def _terms(escrow: EscrowClient, order_id: str) -> OrderTerms:
    return escrow.terms(parse_order_id(order_id))


def say(message: str) -> None:
    console.print(message, soft_wrap=True, highlight=False)


def _done(message: str, receipt: Any | None = None) -> None:
    suffix = f" (tx 0x{bytes(receipt['transactionHash']).hex()}, gas {receipt['gasUsed']})" if receipt is not None else ""
    say(message + suffix)


def _order_transaction(
    order_id: str, done: str, send: Callable[[EscrowClient, OrderTerms, LocalAccount], Any],
    rpc_url: str | None, chain_id: int | None, keystore: Path | None, password_file: Path | None,
    as_member: str | None, terms_store: Path | None,
) -> None:
    """One transaction on one order by the signer the options name; prints `order <id> <done>`."""
    session, escrow = _open(rpc_url, chain_id, terms_store)
    terms = _terms(escrow, order_id)
    _done(f"order {order_key(terms.order_id)} {done}", send(escrow, terms, signer(session, keystore, password_file, as_member)))


# ---- seller ------------------------------------------------------------------------------------


@app.command("create")
def create(
    buyer: Annotated[str, typer.Option(help="The buyer's account")],
    token: Annotated[str, typer.Option(help="Allowlisted token: address or devnet symbol (wUSD, wEUR)")],
    amount: Annotated[str, typer.Option(help="Price in token units (decimal, e.g. 1250.50), or in --price-currency")],
    ship_by: Annotated[str, typer.Option(help="Deadline for Shipped (and for funding): 7d, ISO 8601 or unix seconds")] = "7d",
    deliver_by: Annotated[str, typer.Option(help="Deadline for the remaining milestones")] = "30d",
    schedule_bps: Annotated[str, typer.Option("--schedule", help="Milestone shares in basis points: Shipped, customs..., Delivered")] = "0,3000,7000",
    quorum: Annotated[int, typer.Option(help="Organisations that must attest each milestone")] = 2,
    customs_quorum: Annotated[int | None, typer.Option(help="Quorum of the customs milestones (default: --quorum)")] = None,
    price_currency: Annotated[str | None, typer.Option(help="ISO 4217 currency of the price (paid at an attested FX rate)")] = None,
    platform: Annotated[str | None, typer.Option(help="Account receiving the platform fee")] = None,
    platform_fee_bps: Annotated[int, typer.Option(help="Platform fee in basis points of every seller-side release")] = 0,
    carrier: Annotated[str | None, typer.Option(help="Account receiving the carrier fee")] = None,
    carrier_fee_bps: Annotated[int, typer.Option(help="Carrier fee in basis points")] = 0,
    shipment: Annotated[str | None, typer.Option(help="What the order covers: an SSCC (bare or as a Digital Link), a unit's or a lot's Digital Link, or an EPC URN; linked by the same key the events use (0x + 64 hex: the key itself)")] = None,
    review_window: Annotated[str, typer.Option(help="After delivery, time before anyone may release without the buyer")] = "3d",
    dispute_window: Annotated[str, typer.Option(help="After delivery, time during which a dispute may be opened")] = "2d",
    salt: Annotated[int, typer.Option(help="Distinguishes otherwise identical orders")] = 0,
    customs_authority: Annotated[list[str] | None, typer.Option(
        "--customs-authority",
        help="A customs organisation that may clear the order and receive its duty: its id, or an account "
             "of it (repeat for up to 3; needed when the schedule has customs milestones)")] = None,
    max_duty_bps: Annotated[int, typer.Option(
        help="Most customs duty paid without the buyer's signature, in basis points of the deposit")] = 0,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """The seller offers an order to a buyer (the signer is the seller). Prints the order id.

    The seller's and buyer's organisations and the token's decimals are read from the chain and
    fixed in the terms."""
    session, escrow = _open(rpc_url, chain_id, terms_store)
    seller = signer(session, keystore, password_file, as_member)
    token_address = _token(session, escrow, token)
    info = escrow.token_info(token_address)
    if not info.allowed:
        raise CliInputError("--token", f"{info.symbol} ({token_address}) is not allowed by the escrow")
    currency = currency_bytes(price_currency.upper()) if price_currency else None
    if currency is None:
        units = info.units(amount)
    else:
        units = _decimal_units(amount, 18, "--amount")
    shipment_ref, shipment_uri = parse_shipment(shipment) if shipment else (b"\x00" * 32, None)
    now = escrow.chain_time()
    terms = OrderTerms(
        seller=seller.address, buyer=parse_address(buyer, "--buyer"), token=token_address, amount=units,
        ship_by=parse_time(ship_by, now, "--ship-by"), deliver_by=parse_time(deliver_by, now, "--deliver-by"),
        milestones=parse_schedule(schedule_bps, quorum, customs_quorum),
        price_currency=currency or b"\x00\x00\x00",
        platform=parse_address(platform, "--platform") if platform else ZERO_ADDRESS, platform_fee_bps=platform_fee_bps,
        carrier=parse_address(carrier, "--carrier") if carrier else ZERO_ADDRESS, carrier_fee_bps=carrier_fee_bps,
        shipment_ref=shipment_ref,
        review_window=parse_span(review_window, "--review-window"),
        dispute_window=parse_span(dispute_window, "--dispute-window"), salt=salt,
        max_duty_bps=max_duty_bps, customs_authorities=_authorities(escrow, customs_authority or []),
    )
    _check_customs_quorum(terms)
    terms = escrow.complete(terms)
    order_id = escrow.create(terms, seller)
    price = info.show(units) if price_currency is None else f"{amount} {price_currency.upper()}"
    say(f"order {order_key(order_id)} created: {price} from {terms.buyer} to {terms.seller}")
    if shipment_uri is not None:
        say(f"shipment {shipment_uri} (shipmentRef 0x{shipment_ref.hex()})")
    elif shipment and not shipment.startswith("0x"):
        err_console.print(f"note: --shipment {shipment!r} is not a GS1 identifier (SSCC, Digital Link, EPC URN): it was "
                          "hashed as a free reference and links the order to no events", highlight=False, soft_wrap=True)
    say(order_key(order_id))


def _check_customs_quorum(terms: OrderTerms) -> None:
    """Refuse, before any transaction, a customs milestone that the named authorities cannot reach."""
    named = sum(1 for org in terms.customs_authorities if org)
    for i, milestone in enumerate(terms.milestones):
        if milestone.kind is MilestoneKind.CUSTOMS_CLEARED and milestone.quorum > named:
            raise CliInputError(
                "--customs-authority",
                f"milestone {i} (customs clearance) needs {milestone.quorum} customs organisation(s) but the order names "
                f"{named}: name them with --customs-authority (or set --customs-quorum, or use a schedule without "
                "customs clearance such as --schedule 0,10000)",
            )


def _authorities(escrow: EscrowClient, given: list[str]) -> tuple[int, int, int]:
    """Organisation ids, given as ids or as an account of the organisation."""
    orgs = []
    for text in given:
        if text.isdigit():
            orgs.append(int(text))
            continue
        org = escrow.organisation_of(parse_address(text, "--customs-authority"))
        if org == 0:
            raise CliInputError("--customs-authority", f"{text} is an account of no organisation")
        orgs.append(org)
    try:
        return customs_authorities(orgs)
    except InvalidTerms as exc:
        raise CliInputError("--customs-authority", str(exc)) from None


def _decimal_units(text: str, decimals: int, option: str) -> int:
    from node.escrow.client import TokenInfo

    try:
        return TokenInfo(ZERO_ADDRESS, True, None, decimals, "units").units(text)
    except EscrowError as exc:
        raise CliInputError(option, str(exc)) from None


@app.command("cancel")
def cancel(order_id: OrderIdArg, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None,
           password_file: PasswordFileOpt = None, as_member: AsMember = None, terms_store: TermsStoreOpt = None) -> None:
    """The seller withdraws the order before shipping; a deposit is credited back to the buyer."""
    _order_transaction(order_id, "cancelled", EscrowClient.cancel, rpc_url, chain_id, keystore, password_file, as_member, terms_store)


# ---- buyer -------------------------------------------------------------------------------------


@app.command("fund")
def fund(
    order_id: OrderIdArg,
    permit: Annotated[bool, typer.Option("--permit", help="Sign an EIP-2612 permit instead of a separate approve transaction")] = False,
    fx_quote: Annotated[Path | None, typer.Option("--fx-quote", help="FX quote JSON for orders priced in another currency")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """The buyer pays the order into escrow (approve + fund, or one transaction with --permit)."""
    session, escrow = _open(rpc_url, chain_id, terms_store)
    terms = _terms(escrow, order_id)
    buyer = signer(session, keystore, password_file, as_member)
    quote = _load_quote(fx_quote) if fx_quote is not None else None
    if not terms.priced_in_token and quote is None:
        raise CliInputError("--fx-quote", f"order {order_key(terms.order_id)} is priced in {terms.currency}: an FX quote is needed")
    receipt = escrow.fund(terms, buyer, fx=quote, use_permit=permit)
    (event,) = escrow.events(receipt, "OrderFunded")
    info = escrow.token_info(terms.token)
    _done(f"order {order_key(terms.order_id)} funded: {info.show(int(event['args']['deposited']))} deposited", receipt)


def _load_quote(path: Path) -> FxQuote:
    try:
        data = json.loads(path.read_text())
        return FxQuote(
            base=currency_bytes(data["base"]), quote=currency_bytes(data["quote"]), rate=int(data["rate"]),
            issued_at=int(data["issuedAt"]), expires_at=int(data["expiresAt"]),
            signatures=tuple(Attestation(s["signer"], int(s["deadline"]), bytes.fromhex(s["signature"].removeprefix("0x")))
                             for s in data["signatures"]),
        )
    except OSError as exc:
        raise CliInputError("--fx-quote", f"{path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, InvalidTerms) as exc:
        raise CliInputError("--fx-quote", f"{path} is not an FX quote ({exc})") from None


@app.command("confirm")
def confirm(
    order_id: OrderIdArg,
    sign_only: Annotated[bool, typer.Option("--sign-only", help="Only sign the confirmation (buyer) and print it for someone else to relay")] = False,
    signature: Annotated[str | None, typer.Option(help="Relay this buyer's signature (0x hex) instead of confirming as the buyer")] = None,
    deadline: Annotated[str | None, typer.Option(help="Deadline of the signed confirmation (with --sign-only: default 1d; with --signature: required)")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """The buyer accepts the delivered goods: everything remaining goes to the seller side."""
    session, escrow = _open(rpc_url, chain_id, terms_store)
    terms = _terms(escrow, order_id)
    account = signer(session, keystore, password_file, as_member)
    if sign_only and signature:
        raise typer.BadParameter("--sign-only and --signature exclude each other", param_hint="--sign-only")
    if sign_only:
        when = parse_time(deadline or "1d", escrow.chain_time(), "--deadline")
        signed = escrow.sign_confirmation(account, terms.order_id, when)
        typer.echo(json.dumps({"orderId": order_key(terms.order_id), "buyer": account.address,
                               "deadline": when, "signature": "0x" + signed.hex()}, indent=2))
        return
    if signature is not None:
        if deadline is None or not deadline.isdigit():
            raise typer.BadParameter("the signed deadline (unix seconds) is needed with --signature", param_hint="--deadline")
        raw = _hex(signature, "--signature")
        _done(f"order {order_key(terms.order_id)} released on the buyer's signed confirmation",
              escrow.confirm_by_signature(terms, int(deadline), raw, account))
        return
    _done(f"order {order_key(terms.order_id)} confirmed and released", escrow.confirm(terms, account))


def _hex(text: str, option: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not hex", param_hint=option) from None


@app.command("dispute")
def dispute(
    order_id: OrderIdArg,
    evidence: Annotated[Path | None, typer.Option(help="Evidence file (its SHA-256 is recorded on chain)")] = None,
    evidence_hash_text: Annotated[str | None, typer.Option("--evidence-hash", help="Evidence hash (0x + 64 hex) or a reference that is hashed")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """The buyer or the seller freezes the order until an arbitrator rules (or the dispute times out)."""
    digest = evidence_hash(evidence, evidence_hash_text, "--evidence")
    session, escrow = _open(rpc_url, chain_id, terms_store)
    terms = _terms(escrow, order_id)
    _done(f"dispute opened on order {order_key(terms.order_id)} (evidence 0x{digest.hex()})",
          escrow.dispute(terms, digest, signer(session, keystore, password_file, as_member)))


# ---- arbitrator and anyone ---------------------------------------------------------------------------


@app.command("rule")
def rule(
    order_id: OrderIdArg,
    buyer_share_bps: Annotated[int, typer.Option(help="Share of what remains refunded to the buyer, 0..10000 basis points")],
    ruling: Annotated[Path | None, typer.Option(help="The written ruling (its SHA-256 is recorded)")] = None,
    ruling_hash: Annotated[str | None, typer.Option(help="Ruling hash (0x + 64 hex) or a reference that is hashed")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """An arbitrator decides a dispute: a split in basis points between buyer and seller side."""
    if not 0 <= buyer_share_bps <= 10_000:
        raise typer.BadParameter(f"{buyer_share_bps} is not between 0 and 10000", param_hint="--buyer-share-bps")
    digest = evidence_hash(ruling, ruling_hash, "--ruling")
    session, escrow = _open(rpc_url, chain_id, terms_store)
    terms = _terms(escrow, order_id)
    receipt = escrow.rule(terms, buyer_share_bps, digest, signer(session, keystore, password_file, as_member))
    (event,) = escrow.events(receipt, "DisputeResolved")
    info = escrow.token_info(terms.token)
    _done(f"dispute on order {order_key(terms.order_id)} decided: {info.show(int(event['args']['toBuyer']))} to the buyer, "
          f"{info.show(int(event['args']['toSeller']))} to the seller", receipt)


@app.command("resolve")
def resolve(order_id: OrderIdArg, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None,
            password_file: PasswordFileOpt = None, as_member: AsMember = None, terms_store: TermsStoreOpt = None) -> None:
    """Anyone decides a dispute nobody ruled on in time, by the timeout rule (delivered: seller; else buyer)."""
    _order_transaction(order_id, "resolved by the dispute timeout rule", EscrowClient.resolve_expired,
                       rpc_url, chain_id, keystore, password_file, as_member, terms_store)


@app.command("release")
def release(order_id: OrderIdArg, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None,
            password_file: PasswordFileOpt = None, as_member: AsMember = None, terms_store: TermsStoreOpt = None) -> None:
    """Anyone releases a delivered order once its review and dispute windows have passed."""
    _order_transaction(order_id, "released", EscrowClient.release, rpc_url, chain_id, keystore, password_file, as_member, terms_store)


@app.command("refund")
def refund(order_id: OrderIdArg, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None,
           password_file: PasswordFileOpt = None, as_member: AsMember = None, terms_store: TermsStoreOpt = None) -> None:
    """Anyone refunds what remains of an order that missed its ship-by or deliver-by deadline."""
    _order_transaction(order_id, "refunded to the buyer", EscrowClient.refund, rpc_url, chain_id, keystore, password_file, as_member, terms_store)


@app.command("withdraw")
def withdraw(
    token: Annotated[str, typer.Option(help="Token: address or devnet symbol (wUSD, wEUR)")],
    to: Annotated[str | None, typer.Option(help="Send to this account (default: the signer)")] = None,
    amount: Annotated[str | None, typer.Option(
        help="Withdraw only this much (decimal token units), e.g. from a token that charges the sender a fee "
             "on top: the fee comes out of the rest of the credit")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """Withdraw the signer's whole credit in a token (payouts, refunds, fees, duty), or --amount of it."""
    session, escrow = _open(rpc_url, chain_id, terms_store)
    address = _token(session, escrow, token)
    account = signer(session, keystore, password_file, as_member)
    target = parse_address(to, "--to") if to else account.address
    units = None if amount is None else _decimal_units(amount, escrow.token_info(address).decimals, "--amount")
    amount_sent = escrow.withdraw(address, account, target, units)
    say(f"withdrew {escrow.token_info(address).show(amount_sent)} to {target}")


# ---- oracles ----------------------------------------------------------------------------------------


@app.command("attest")
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
    session, escrow = _open(rpc_url, chain_id, terms_store)
    terms = _terms(escrow, order_id)
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


# ---- show ------------------------------------------------------------------------------------------


@app.command("show")
def show(order_id: OrderIdArg, as_json: JsonOpt = False, rpc_url: RpcUrl = None, chain_id: ChainId = None,
         terms_store: TermsStoreOpt = None) -> None:
    """An order's terms, state, milestones and what each party may withdraw."""
    _session, escrow = _open(rpc_url, chain_id, terms_store)
    view = escrow.show(parse_order_id(order_id))
    if as_json:
        typer.echo(json.dumps(view.to_json(), indent=2))
        return
    t, o, token = view.terms, view.order, view.token
    say(f"order {order_key(view.order_id)}: [bold]{o.state.name.lower()}[/]")
    table = Table(show_header=False, box=None)
    price = token.show(t.amount) if t.priced_in_token else f"{t.amount / 10**18:g} {t.currency}"
    rows = [
        ("seller", t.seller), ("buyer", t.buyer), ("price", price),
        ("deposited", token.show(o.deposited)), ("held", token.show(o.remaining)),
        ("ship by", _when(t.ship_by)), ("deliver by", _when(t.deliver_by)),
        ("fees", f"platform {t.platform_fee_bps} bps, carrier {t.carrier_fee_bps} bps"),
        ("shipment", "0x" + t.shipment_ref.hex()),
    ]
    if view.locked_rate is not None:
        rows.append(("FX rate", f"{view.locked_rate[0] / 10**18:g} {token.currency} per {t.currency} at {_when(view.locked_rate[1])}"))
    if o.state in (State.DELIVERED, State.DISPUTED, State.RESOLVED) or (o.state is State.RELEASED and o.since):
        rows.append(("since", _when(o.since)))
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    steps = Table("#", "milestone", "share", "quorum", "role", "status")
    for i, m in enumerate(t.milestones):
        status = "reached" if i < o.milestones_reached else ("next" if i == view.next_milestone else "")
        steps.add_row(str(i), m.kind.name.lower(), f"{m.share_bps / 100:g}%", str(m.quorum), m.role, status)
    console.print(steps)
    say("credits: " + ", ".join(f"{name} {token.show(amount)}" for name, amount in view.credits.items()))


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds") + f" ({ts})"


# ---- relayer ---------------------------------------------------------------------------------------


@relayer_app.command("run")
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
    import logging

    import uvicorn

    from waymark.devnet.anvil import DEVNET_CHAIN_ID
    from waymark.devnet.consortium import devnet_account
    from node.relayer.settings import RelayerSettings
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
