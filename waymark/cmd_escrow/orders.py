"""The escrow commands on an order's life: the seller's (create, cancel), the buyer's (fund,
confirm, dispute), the arbitrator's (rule), anyone's (resolve, release, refund, show) and
everyone's withdrawal of credits."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from node.escrow import EscrowClient, InvalidTerms, OrderTerms, State, order_key
from node.escrow.terms import ZERO_ADDRESS, MilestoneKind, currency_bytes, named_organisations
from waymark.cmd_escrow.inputs import (
    CliInputError,
    decimal_units,
    evidence_hash,
    load_quote,
    parse_address,
    parse_hex,
    parse_order_id,
    parse_schedule,
    parse_shipment,
    parse_span,
    parse_time,
)
from waymark.cmd_escrow.session import (
    JsonOpt,
    OrderIdArg,
    TermsStoreOpt,
    open_escrow,
    order_terms,
    order_transaction,
    print_done,
    resolve_token,
    say,
)
from waymark.common import AsMember, ChainId, KeystoreOpt, PasswordFileOpt, RpcUrl, console, err_console, signer


# ---- seller ------------------------------------------------------------------------------------


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
    arbitrator: Annotated[list[str] | None, typer.Option(
        "--arbitrator",
        help="An arbitration organisation buyer and seller agree may rule on the order's disputes: its id, or an "
             "account of it (repeat for up to 3; none: a dispute is decided at its timeout by the attested facts)")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """The seller offers an order to a buyer (the signer is the seller). Prints the order id.

    The seller's and buyer's organisations and the token's decimals are read from the chain and
    fixed in the terms."""
    session, escrow = open_escrow(rpc_url, chain_id, terms_store)
    seller = signer(session, keystore, password_file, as_member)
    token_address = resolve_token(session, escrow, token)
    info = escrow.token_info(token_address)
    if not info.allowed:
        raise CliInputError("--token", f"{info.symbol} ({token_address}) is not allowed by the escrow")
    currency = currency_bytes(price_currency.upper()) if price_currency else None
    if currency is None:
        units = info.units(amount)
    else:
        units = decimal_units(amount, 18, "--amount")
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
        max_duty_bps=max_duty_bps,
        customs_authorities=_organisations(escrow, customs_authority or [], "--customs-authority", "CUSTOMS"),
        arbitrators=_organisations(escrow, arbitrator or [], "--arbitrator", "ARBITRATOR"),
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


def _organisations(escrow: EscrowClient, given: list[str], option: str, role: str) -> tuple[int, int, int]:
    """Organisation ids for a list of the terms, given as ids or as an account of the organisation;
    each must hold `role` (the contract checks it only when one of its accounts acts, too late to
    change the terms)."""
    orgs = []
    for text in given:
        if text.isdigit():
            org = int(text)
        else:
            org = escrow.organisation_of(parse_address(text, option))
            if org == 0:
                raise CliInputError(option, f"{text} is an account of no organisation")
        if not escrow.organisation_holds(org, role):
            raise CliInputError(option, f"organisation {org} ({text}) does not hold the {role} role")
        orgs.append(org)
    try:
        return named_organisations(orgs, option.removeprefix("--"))
    except InvalidTerms as exc:
        raise CliInputError(option, str(exc)) from None



def cancel(order_id: OrderIdArg, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None,
           password_file: PasswordFileOpt = None, as_member: AsMember = None, terms_store: TermsStoreOpt = None) -> None:
    """The seller withdraws the order before shipping; a deposit is credited back to the buyer."""
    order_transaction(order_id, "cancelled", EscrowClient.cancel, rpc_url, chain_id, keystore, password_file, as_member, terms_store)


# ---- buyer -------------------------------------------------------------------------------------


def fund(
    order_id: OrderIdArg,
    permit: Annotated[bool, typer.Option("--permit", help="Sign an EIP-2612 permit instead of a separate approve transaction")] = False,
    fx_quote: Annotated[Path | None, typer.Option("--fx-quote", help="FX quote JSON for orders priced in another currency")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """The buyer pays the order into escrow (approve + fund, or one transaction with --permit)."""
    session, escrow = open_escrow(rpc_url, chain_id, terms_store)
    terms = order_terms(escrow, order_id)
    buyer = signer(session, keystore, password_file, as_member)
    quote = load_quote(fx_quote) if fx_quote is not None else None
    if not terms.priced_in_token and quote is None:
        raise CliInputError("--fx-quote", f"order {order_key(terms.order_id)} is priced in {terms.currency}: an FX quote is needed")
    receipt = escrow.fund(terms, buyer, fx=quote, use_permit=permit)
    (event,) = escrow.events(receipt, "OrderFunded")
    info = escrow.token_info(terms.token)
    print_done(f"order {order_key(terms.order_id)} funded: {info.show(int(event['args']['deposited']))} deposited", receipt)


def confirm(
    order_id: OrderIdArg,
    sign_only: Annotated[bool, typer.Option("--sign-only", help="Only sign the confirmation (buyer) and print it for someone else to relay")] = False,
    signature: Annotated[str | None, typer.Option(help="Relay this buyer's signature (0x hex) instead of confirming as the buyer")] = None,
    deadline: Annotated[str | None, typer.Option(help="Deadline of the signed confirmation (with --sign-only: default 1d; with --signature: required)")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """The buyer accepts the delivered goods: everything remaining goes to the seller side."""
    session, escrow = open_escrow(rpc_url, chain_id, terms_store)
    terms = order_terms(escrow, order_id)
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
        raw = parse_hex(signature, "--signature")
        print_done(f"order {order_key(terms.order_id)} released on the buyer's signed confirmation",
              escrow.confirm_by_signature(terms, int(deadline), raw, account))
        return
    print_done(f"order {order_key(terms.order_id)} confirmed and released", escrow.confirm(terms, account))


def dispute(
    order_id: OrderIdArg,
    evidence: Annotated[Path | None, typer.Option(help="Evidence file (its SHA-256 is recorded on chain)")] = None,
    evidence_hash_text: Annotated[str | None, typer.Option("--evidence-hash", help="Evidence hash (0x + 64 hex) or a reference that is hashed")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None,
    as_member: AsMember = None, terms_store: TermsStoreOpt = None,
) -> None:
    """The buyer or the seller holds what remains of the order (not its milestones) until an arbitrator rules or the dispute times out."""
    digest = evidence_hash(evidence, evidence_hash_text, "--evidence")
    session, escrow = open_escrow(rpc_url, chain_id, terms_store)
    terms = order_terms(escrow, order_id)
    print_done(f"dispute opened on order {order_key(terms.order_id)} (evidence 0x{digest.hex()})",
          escrow.dispute(terms, digest, signer(session, keystore, password_file, as_member)))


# ---- arbitrator and anyone ---------------------------------------------------------------------------


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
    session, escrow = open_escrow(rpc_url, chain_id, terms_store)
    terms = order_terms(escrow, order_id)
    receipt = escrow.rule(terms, buyer_share_bps, digest, signer(session, keystore, password_file, as_member))
    (event,) = escrow.events(receipt, "DisputeResolved")
    info = escrow.token_info(terms.token)
    print_done(f"dispute on order {order_key(terms.order_id)} decided: {info.show(int(event['args']['toBuyer']))} to the buyer, "
          f"{info.show(int(event['args']['toSeller']))} to the seller", receipt)


def resolve(order_id: OrderIdArg, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None,
            password_file: PasswordFileOpt = None, as_member: AsMember = None, terms_store: TermsStoreOpt = None) -> None:
    """Anyone decides a dispute nobody ruled on in time, by the timeout rule: delivered, the seller side
    is paid; overdue (not shipped by ship-by, not delivered by deliver-by), the buyer is refunded;
    otherwise the dispute lapses and the order goes on."""
    session, escrow = open_escrow(rpc_url, chain_id, terms_store)
    terms = order_terms(escrow, order_id)
    receipt = escrow.resolve_expired(terms, signer(session, keystore, password_file, as_member))
    done = ("dispute lapsed: nobody ruled in time and the order is within its deadlines, so it is funded again and goes on"
            if escrow.events(receipt, "DisputeLapsed") else "resolved by the dispute timeout rule")
    print_done(f"order {order_key(terms.order_id)} {done}", receipt)


def release(order_id: OrderIdArg, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None,
            password_file: PasswordFileOpt = None, as_member: AsMember = None, terms_store: TermsStoreOpt = None) -> None:
    """Anyone releases a delivered order once its review and dispute windows have passed."""
    order_transaction(order_id, "released", EscrowClient.release, rpc_url, chain_id, keystore, password_file, as_member, terms_store)


def refund(order_id: OrderIdArg, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None,
           password_file: PasswordFileOpt = None, as_member: AsMember = None, terms_store: TermsStoreOpt = None) -> None:
    """Anyone refunds what remains of an order that missed its ship-by or deliver-by deadline."""
    order_transaction(order_id, "refunded to the buyer", EscrowClient.refund, rpc_url, chain_id, keystore, password_file, as_member, terms_store)


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
    session, escrow = open_escrow(rpc_url, chain_id, terms_store)
    address = resolve_token(session, escrow, token)
    account = signer(session, keystore, password_file, as_member)
    target = parse_address(to, "--to") if to else account.address
    units = None if amount is None else decimal_units(amount, escrow.token_info(address).decimals, "--amount")
    amount_sent = escrow.withdraw(address, account, target, units)
    say(f"withdrew {escrow.token_info(address).show(amount_sent)} to {target}")


# ---- show ------------------------------------------------------------------------------------------


def show(order_id: OrderIdArg, as_json: JsonOpt = False, rpc_url: RpcUrl = None, chain_id: ChainId = None,
         terms_store: TermsStoreOpt = None) -> None:
    """An order's terms, state, milestones and what each party may withdraw."""
    _session, escrow = open_escrow(rpc_url, chain_id, terms_store)
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
