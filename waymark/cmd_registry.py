"""registry: list organisations, roles of an account at a time, propose, vote, link accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from eth_utils.address import is_address
from rich.table import Table

from node.registry import (
    ProposalKind,
    RegistryClient,
    InvalidCompanyPrefix,
    admit_data,
    company_prefix_data,
    contract_signer_data,
    org_data,
    role_data,
    threshold_data,
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
    threshold_bps: Annotated[int, typer.Argument(help="Share of the active members, in basis points (5001 = a majority)", min=1, max=10_000)],
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
