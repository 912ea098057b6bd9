"""registry: list organisations, roles of an account at a time, propose, vote, link accounts,
publish node records, host organisations without a node."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from eth_utils.address import is_address
from rich.table import Table

from node.chain.consortium import BPS, MIN_THRESHOLD_BPS, node_url_problem, reporting_delay_problem
from node.chain.registry import (
    InvalidCompanyPrefix,
    ProposalKind,
    RegistryClient,
    admit_data,
    company_prefix_data,
    contract_signer_data,
    org_data,
    reporting_delay_data,
    role_data,
    threshold_data,
    verifier_bundle_data,
)
from waymark.common import AsMember, ChainId, KeystoreOpt, PasswordFileOpt, RpcUrl, connect, console, signer

app = typer.Typer(help="The consortium registry: members, roles, governance by m-of-n votes.", no_args_is_help=True)


def _registry(rpc_url: str | None, chain_id: int | None) -> RegistryClient:
    session = connect(rpc_url, chain_id)
    return RegistryClient(session.client, session.deployment())


@app.command("orgs")
def orgs(rpc_url: RpcUrl = None, chain_id: ChainId = None) -> None:
    """List the member organisations with their status, roles and accounts."""
    registry = _registry(rpc_url, chain_id)
    table = Table("id", "name", "country", "status", "roles", "GS1 prefixes", "accounts")
    for org in registry.organisations():
        table.add_row(
            str(org.id), org.name, org.country, org.status.name.lower(), ", ".join(org.roles),
            ", ".join(org.company_prefixes), "\n".join(org.accounts),
        )
    console.print(table)
    bps = registry.threshold_bps()
    console.print(f"vote threshold: {registry.threshold()} votes ({bps / 100:g}% of the active members, rounded up)")
    console.print(f"maximum reporting delay: {_duration(registry.max_reporting_delay())}")
    bundle = registry.verifier_bundle_hash()
    console.print(f"approved verifier bundle: {'sha-256 ' + bundle.hex() if bundle else 'none yet'}")


def _duration(seconds: int) -> str:
    for unit, size in (("days", 86_400), ("hours", 3_600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit} ({seconds} s)"
    return f"{seconds} s"


def _parse_time(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither unix seconds nor an ISO 8601 time", param_hint="--at") from None


@app.command("roles")
def roles(
    account: Annotated[str, typer.Argument(help="Account address")],
    at: Annotated[str | None, typer.Option("--at", help="Unix seconds or ISO 8601 time; default now")] = None,
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
) -> None:
    """Show which roles an account holds now, or held at a past time."""
    if not is_address(account):
        raise typer.BadParameter(f"{account!r} is not an account address", param_hint="ACCOUNT")
    timestamp = _parse_time(at)
    held = _registry(rpc_url, chain_id).roles_at(account, timestamp)
    names = [name for name, yes in held.items() if yes]
    console.print(f"{account} {'at ' + at if at else 'now'}: {', '.join(names) if names else 'no roles'}")


propose_app = typer.Typer(help="Propose a change; your organisation votes for it at once.", no_args_is_help=True)
app.add_typer(propose_app, name="propose")


def _submit(kind: ProposalKind, data: bytes, rpc_url: str | None, chain_id: int | None, keystore, password_file, as_member) -> None:  # type: ignore[no-untyped-def]
    session = connect(rpc_url, chain_id)
    registry = RegistryClient(session.client, session.deployment())
    proposal_id = registry.propose(kind, data, signer(session, keystore, password_file, as_member))
    console.print(f"proposal {proposal_id} created ({kind.name.lower()})")


@propose_app.command("admit")
def propose_admit(
    name: str, country: str, account: str,
    role: Annotated[list[str], typer.Option("--role", help="Role to grant (repeatable)")] = [],  # noqa: B006
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Admit a new organisation with its first account."""
    _submit(ProposalKind.ADMIT, admit_data(name, country, b"\0" * 32, account, role), rpc_url, chain_id, keystore, password_file, as_member)


@propose_app.command("suspend")
def propose_suspend(org_id: int, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None) -> None:
    """Suspend an organisation (its accounts lose their roles from then on)."""
    _submit(ProposalKind.SUSPEND, org_data(org_id), rpc_url, chain_id, keystore, password_file, as_member)


@propose_app.command("reinstate")
def propose_reinstate(org_id: int, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None) -> None:
    """Reinstate a suspended organisation."""
    _submit(ProposalKind.REINSTATE, org_data(org_id), rpc_url, chain_id, keystore, password_file, as_member)


@propose_app.command("grant")
def propose_grant(org_id: int, role: str, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None) -> None:
    """Grant a role to an organisation."""
    _submit(ProposalKind.GRANT_ROLE, role_data(org_id, role), rpc_url, chain_id, keystore, password_file, as_member)


@propose_app.command("revoke")
def propose_revoke(org_id: int, role: str, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None) -> None:
    """Revoke a role from an organisation (signatures made before stay valid)."""
    _submit(ProposalKind.REVOKE_ROLE, role_data(org_id, role), rpc_url, chain_id, keystore, password_file, as_member)


@propose_app.command("threshold")
def propose_threshold(
    threshold_bps: Annotated[int, typer.Argument(help="Share of the active members, in basis points: more than half (5001 = a majority) up to all (10000)",
                                     min=MIN_THRESHOLD_BPS, max=BPS)],
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Change the share of active members whose votes pass a proposal (rounded up to whole votes)."""
    _submit(ProposalKind.CHANGE_THRESHOLD, threshold_data(threshold_bps), rpc_url, chain_id, keystore, password_file, as_member)


@propose_app.command("prefix")
def propose_prefix(
    org_id: int,
    prefix: Annotated[str, typer.Argument(help="GS1 Company Prefix, 4 to 12 digits; leading zeros count (U.P.C. 614141 is 0614141)")],
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Assign a GS1 Company Prefix to an organisation: it may then register GTINs inside it."""
    try:
        data = company_prefix_data(org_id, prefix)
    except InvalidCompanyPrefix as exc:
        raise typer.BadParameter(str(exc), param_hint="PREFIX") from None
    _submit(ProposalKind.ASSIGN_COMPANY_PREFIX, data, rpc_url, chain_id, keystore, password_file, as_member)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


def _parse_duration(text: str) -> int:
    match = re.fullmatch(r"([0-9]+)([smhd]?)", text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration: seconds, or a number with s, m, h or d (like 7d)", param_hint="DELAY")
    return int(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


@propose_app.command("reporting-delay")
def propose_reporting_delay(
    delay: Annotated[str, typer.Argument(help="The new maximum reporting delay: seconds, or with a unit (36h, 7d); 1 s to 366 days")],
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Change the maximum reporting delay: events anchored later than this after their event time are marked late."""
    seconds = _parse_duration(delay)
    problem = reporting_delay_problem(seconds)
    if problem:
        raise typer.BadParameter(f"the delay {problem}", param_hint="DELAY")
    _submit(ProposalKind.SET_MAX_REPORTING_DELAY, reporting_delay_data(seconds), rpc_url, chain_id, keystore, password_file, as_member)


def _bundle_hash(value: str | None, file: Path | None) -> bytes:
    if (value is None) == (file is None):
        raise typer.BadParameter("give the bundle's sha-256 or --file (the bundle itself), not both or neither", param_hint="HASH")
    if file is not None:
        try:
            return hashlib.sha256(file.read_bytes()).digest()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {file}: {exc.strerror or exc}", param_hint="--file") from None
    text = (value or "").removeprefix("0x")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text) or int(text, 16) == 0:
        raise typer.BadParameter(f"{value!r} is not a sha-256 (64 hex digits, not all zero)", param_hint="HASH")
    return bytes.fromhex(text)


@propose_app.command("verifier-bundle")
def propose_verifier_bundle(
    bundle_hash: Annotated[str | None, typer.Argument(metavar="HASH", help="sha-256 of the scanner page's verifier bundle, in hex")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="The bundle itself (scanner_web/dist/app.js): its sha-256 is proposed")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Approve the scanner page's verifier bundle by its sha-256: any member may then serve the same page."""
    data = verifier_bundle_data(_bundle_hash(bundle_hash, file))
    _submit(ProposalKind.SET_VERIFIER_BUNDLE, data, rpc_url, chain_id, keystore, password_file, as_member)


@propose_app.command("contract-signer")
def propose_contract_signer(
    org_id: int,
    wallet: Annotated[str, typer.Argument(help="The contract account (ERC-1271 wallet), already an account of the organisation")],
    key: Annotated[str, typer.Argument(help="The key whose signatures the wallet must carry, an account of the same organisation")],
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Approve a contract account as a signer of its organisation (ERC-1271 counts nowhere else)."""
    for value, hint in ((wallet, "WALLET"), (key, "KEY")):
        if not is_address(value):
            raise typer.BadParameter(f"{value!r} is not an account address", param_hint=hint)
    _submit(ProposalKind.APPROVE_CONTRACT_SIGNER, contract_signer_data(org_id, wallet, key), rpc_url, chain_id, keystore, password_file, as_member)


account_app = typer.Typer(help="Link accounts to organisations: a member offers, the account accepts.", no_args_is_help=True)
app.add_typer(account_app, name="account")


@account_app.command("offer")
def account_offer(
    account: Annotated[str, typer.Argument(help="The account to link to your organisation")],
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Offer to link an account to your organisation; it is linked once that account accepts."""
    if not is_address(account):
        raise typer.BadParameter(f"{account!r} is not an account address", param_hint="ACCOUNT")
    session = connect(rpc_url, chain_id)
    RegistryClient(session.client, session.deployment()).offer_account(account, signer(session, keystore, password_file, as_member))
    console.print(f"offered {account} a link to your organisation; it must now run `waymark registry account accept`")


@account_app.command("accept")
def account_accept(
    org_id: Annotated[int, typer.Argument(help="The organisation whose offer you accept")],
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Accept an organisation's offer with the offered account's own key: it is linked now."""
    session = connect(rpc_url, chain_id)
    RegistryClient(session.client, session.deployment()).accept_account(org_id, signer(session, keystore, password_file, as_member))
    console.print(f"linked to organisation {org_id}")


@app.command("vote")
def vote(proposal_id: int, rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None) -> None:
    """Vote for a proposal on behalf of your organisation."""
    session = connect(rpc_url, chain_id)
    registry = RegistryClient(session.client, session.deployment())
    executed = registry.vote(proposal_id, signer(session, keystore, password_file, as_member))
    console.print(f"voted for proposal {proposal_id}" + (": threshold reached, executed" if executed else ""))


node_app = typer.Typer(help="The node directory: each organisation's node URL and document-encryption key.", no_args_is_help=True)
app.add_typer(node_app, name="node-record")


def _encryption_key(value: str | None) -> bytes | None:
    if value is None:
        return None
    text = value.removeprefix("0x")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise typer.BadParameter(f"{value!r} is not 32 bytes in hex (an X25519 public key: 64 hex digits)", param_hint="--encryption-key")
    return bytes.fromhex(text)


@node_app.command("set")
def node_record_set(
    url: Annotated[str, typer.Option("--url", help="Your node's public base URL (http:// or https://, no trailing slash); '' if you run no node")],
    encryption_key: Annotated[str | None, typer.Option("--encryption-key", help="Your organisation's X25519 public key, 64 hex digits")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Publish your organisation's node record (it replaces the previous one; a key not given is cleared)."""
    problem = node_url_problem(url)
    if problem:
        raise typer.BadParameter(f"{url!r} {problem}", param_hint="--url")
    key = _encryption_key(encryption_key)
    session = connect(rpc_url, chain_id)
    registry = RegistryClient(session.client, session.deployment())
    account = signer(session, keystore, password_file, as_member)
    registry.set_node_record(url, key, account)
    org_id = int(session.client.call(registry.contract.functions.organisationOf(account.address)))
    console.print(f"node record of organisation {org_id} set: {url or 'no node'}" + (f", encryption key {key.hex()}" if key else ""))


@node_app.command("show")
def node_record_show(
    org_id: Annotated[int | None, typer.Argument(help="One organisation; default all")] = None,
    rpc_url: RpcUrl = None, chain_id: ChainId = None,
) -> None:
    """Show the node directory: each organisation's node URL, host, encryption key and last change."""
    registry = _registry(rpc_url, chain_id)
    orgs = [o for o in registry.organisations() if org_id is None or o.id == org_id]
    if not orgs:
        raise typer.BadParameter(f"no organisation has id {org_id}", param_hint="ORG_ID")
    names = {o.id: o.name for o in registry.organisations()}
    table = Table("id", "name", "status", "node URL", "hosted by", "encryption key", "updated")
    for org in orgs:
        record = registry.node_record(org.id)
        host = registry.host_of(org.id)
        request = registry.host_request_of(org.id)
        hosted = f"{host} ({names.get(host, '?')})" if host else ""
        if request:
            hosted += f"{'; ' if hosted else ''}asked {request} ({names.get(request, '?')})"
        table.add_row(
            str(org.id), org.name, org.status.name.lower(), record.url or "-", hosted or "-",
            record.encryption_key.hex() if record.encryption_key else "-",
            datetime.fromtimestamp(record.updated_at).isoformat(timespec="seconds") if record.updated_at else "never",
        )
    console.print(table)


hosting_app = typer.Typer(help="Hosting: a member without a node of its own is hosted by another member's node.", no_args_is_help=True)
app.add_typer(hosting_app, name="hosting")


def _hosting(
    action: str, org_id: int, rpc_url: str | None, chain_id: int | None,
    keystore: Path | None, password_file: Path | None, as_member: str | None,
) -> None:
    session = connect(rpc_url, chain_id)
    registry = RegistryClient(session.client, session.deployment())
    account = signer(session, keystore, password_file, as_member)
    {"request": registry.request_host, "accept": registry.accept_hosting, "end": registry.end_hosting}[action](org_id, account)


@hosting_app.command("request")
def hosting_request(
    host_org_id: Annotated[int, typer.Argument(help="The organisation whose node should host yours; 0 withdraws your request", min=0)],
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Ask another member to host your organisation on its node; it takes effect when that member accepts."""
    _hosting("request", host_org_id, rpc_url, chain_id, keystore, password_file, as_member)
    console.print(f"asked organisation {host_org_id} to host yours; it must now run `waymark registry hosting accept`"
                  if host_org_id else "hosting request withdrawn")


@hosting_app.command("accept")
def hosting_accept(
    hosted_org_id: Annotated[int, typer.Argument(help="The organisation that asked your node to host it", min=1)],
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """Host an organisation that asked for it, from now on: your node anchors its events."""
    _hosting("accept", hosted_org_id, rpc_url, chain_id, keystore, password_file, as_member)
    console.print(f"your node hosts organisation {hosted_org_id} from now on")


@hosting_app.command("end")
def hosting_end(
    hosted_org_id: Annotated[int, typer.Argument(help="The hosted organisation (yours, or one your node hosts)", min=1)],
    rpc_url: RpcUrl = None, chain_id: ChainId = None, keystore: KeystoreOpt = None, password_file: PasswordFileOpt = None, as_member: AsMember = None,
) -> None:
    """End a hosting, now; either side may."""
    _hosting("end", hosted_org_id, rpc_url, chain_id, keystore, password_file, as_member)
    console.print(f"organisation {hosted_org_id} is hosted by no node from now on")
