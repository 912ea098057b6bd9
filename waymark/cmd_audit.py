"""audit: verify the whole history against the chain, and export evidence bundles.

    waymark audit verify                       the node's database (WAYMARK_DB_URL) against the chain
    waymark audit verify --bundle FILE.zip     a bundle, with nothing but an RPC endpoint
    waymark audit export --lot GTIN LOT        write a bundle (also --product, --order, --from/--to)

Exit codes of `verify`: 0 no discrepancy; 6 discrepancies found (or a bundle altered after
export); otherwise the codes of every waymark command (1 error, 2 usage, 3 chain unreachable
or wrong chain).
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from node.chain.client import ChainClient
from node.chain.deploy import Deployment, load_deployment
from node.chain.errors import ChainError, WrongChainId
from node.chain.keystore import load_keystore
from node.settings import SignerSettings
from waymark.common import ChainId, InputFileError, RpcUrl, chain_settings, console, database_settings, read_input

if TYPE_CHECKING:
    from node.audit import AuditReport
    from node.audit.bundle import Selector

# The audit engine and the database layer are imported where they are used, so that the CLI's
# other commands start without loading them (waymark.cli).

EXIT_DISCREPANCIES = 6
SHOWN = 25  # discrepancies listed on the terminal; the JSON and HTML reports hold them all

app = typer.Typer(help="Auditor: re-verify the history against the chain; export and check evidence bundles.", no_args_is_help=True)

DbUrl = Annotated[str | None, typer.Option("--db", help="Database URL of the node to audit (env WAYMARK_DB_URL)")]
DeploymentOpt = Annotated[
    Path | None,
    typer.Option("--deployment", help="Deployment record (contract addresses) (default: the chain's record in the deployments folder)"),
]


class EvidenceOfAnotherChain(WrongChainId):
    """A deployment record or bundle of another chain than the one audited (exit code 3, as a wrong chain)."""

    def __init__(self, what: str, its_chain: int, chain_id: int) -> None:
        self.expected, self.actual = chain_id, its_chain
        ChainError.__init__(self, f"{what} is of chain {its_chain}, not of chain {chain_id}")


def _deployment(path: Path | None, chain_id: int, deployments_file: Path) -> Deployment:
    deployment = load_deployment(path or deployments_file)
    if deployment.chain_id != chain_id:
        raise EvidenceOfAnotherChain(f"deployment record {path or deployments_file}", deployment.chain_id, chain_id)
    return deployment


class _Bars:
    """One rich progress bar per audit stage (chain, events, escrow), fed by the engine."""

    LABELS = {"chain": "replaying the chain (blocks)", "events": "verifying events", "escrow": "checking escrow"}

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        task = self.tasks.get(stage)
        if task is None:
            task = self.tasks[stage] = self.progress.add_task(self.LABELS.get(stage, stage), total=total or None)
        self.progress.update(task, completed=done, total=total or None)


def _summary(report: AuditReport, manifest_problems: list[str]) -> Table:
    from node.audit.report import CHECKED_TITLES, KIND_TITLES

    table = Table(title=f"Audit of chain {report.chain_id}, blocks {report.from_block}-{report.to_block}", title_justify="left")
    table.add_column("checked")
    table.add_column("count", justify="right")
    checked = report.checked.to_json()
    for key, title in CHECKED_TITLES:
        table.add_row(title, str(checked.get(key, 0)))
    table.add_section()
    for kind, title in KIND_TITLES.items():
        count = report.by_kind()[kind.value]
        table.add_row(f"[red]{title}[/]" if count else title, f"[bold red]{count}[/]" if count else "0")
    if manifest_problems:
        table.add_section()
        table.add_row("[red]Bundle files not matching the manifest[/]", f"[bold red]{len(manifest_problems)}[/]")
    return table


def _listing(report: AuditReport) -> Table:
    table = Table(show_lines=False)
    table.add_column("kind", no_wrap=True)
    table.add_column("subject", overflow="fold")
    table.add_column("detail", overflow="fold")
    for d in report.discrepancies[:SHOWN]:
        table.add_row(d.kind.value, d.subject, d.detail)
    return table


@app.command("verify")
def verify_command(
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
    deployment: DeploymentOpt = None,
    db: DbUrl = None,
    bundle: Annotated[Path | None, typer.Option("--bundle", help="Verify this evidence bundle (zip) instead of a database; needs only --rpc-url", exists=True, dir_okay=False)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the machine-readable report (JSON) here")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the human report (one self-contained HTML file) here")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Processes verifying events (default: the number of cores)")] = None,
    checkpoint_out: Annotated[Path | None, typer.Option("--checkpoint", help="If the audit is clean, write a checkpoint signed by --auditor-keystore here")] = None,
    since: Annotated[Path | None, typer.Option("--since", help="Re-audit from this signed checkpoint: verify only what was anchored after it", exists=True, dir_okay=False)] = None,
    auditor: Annotated[str | None, typer.Option("--auditor", help="Address whose signature a --since checkpoint must carry (default: the --auditor-keystore's)")] = None,
    auditor_keystore: Annotated[Path | None, typer.Option("--auditor-keystore", help="The auditor's encrypted keystore (signs --checkpoint)")] = None,
    auditor_password_file: Annotated[Path | None, typer.Option("--auditor-password-file", help="File holding that keystore's password")] = None,
) -> None:
    """Replay the chain from the deployment block and check every event, root and escrow
    transition of the evidence (the node's database, or a bundle) against it.

    With --checkpoint, a clean audit leaves a checkpoint signed by the auditor's key; with --since
    such a checkpoint (its signature, chain and block checked first), only events anchored after
    it are verified again. Without --since the audit is a full replay.

    Exit code 0 when nothing is wrong, 6 when discrepancies are found."""
    from node.audit import DatabaseEvidence, SignedCheckpoint, audit, audit_and_checkpoint, load_checkpoint, save_checkpoint
    from node.audit.bundle import BundleEvidence
    from node.audit.report import write_html, write_json
    from node.db import Database

    manifest_problems: list[str] = []
    if bundle is not None:
        from_bundle = BundleEvidence(bundle)
        read_input(bundle, "an evidence bundle (zip)")
        try:
            opened = from_bundle.bundle
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise InputFileError(bundle, f"is not an evidence bundle ({exc})") from None
        evidence: BundleEvidence | DatabaseEvidence = from_bundle
        manifest_problems = [str(p) for p in opened.problems]
        if chain_id is not None and chain_id != opened.chain_id:
            raise EvidenceOfAnotherChain(f"bundle {bundle}", opened.chain_id, chain_id)
        settings = chain_settings(rpc_url, opened.chain_id)
        chain = ChainClient(settings.rpc_url, expected_chain_id=opened.chain_id)
        # The bundle names its contracts; a deployment record, when given, pins them instead.
        contracts = _deployment(deployment, opened.chain_id, settings.deployment_file) if deployment else opened.deployment
    else:
        settings = chain_settings(rpc_url, chain_id)
        chain = ChainClient(settings.rpc_url, expected_chain_id=settings.chain_id)
        contracts = _deployment(deployment, chain.chain_id, settings.deployment_file)
        database = Database(database_settings(db, must_exist=True).url)
        evidence = DatabaseEvidence(database)
    for problem in manifest_problems:
        console.print(f"[bold red]bundle altered:[/] {problem}", highlight=False)
    signer = None
    if auditor_keystore is not None:
        password = SignerSettings(password_file=auditor_password_file).resolved_password()
        signer = load_keystore(auditor_keystore, password)
    if checkpoint_out is not None and signer is None:
        raise typer.BadParameter("signing a checkpoint needs the auditor's key", param_hint="--auditor-keystore")
    signed = None
    if since is not None:
        trusted = auditor or (signer.address if signer is not None else None)
        if trusted is None:
            raise typer.BadParameter("whose checkpoint to trust: --auditor ADDRESS (or --auditor-keystore)", param_hint="--auditor")
        signed = SignedCheckpoint(*load_checkpoint(since), trusted)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:
        if checkpoint_out is not None and signer is not None:
            report, made = audit_and_checkpoint(chain, contracts, evidence, signer, progress=_Bars(progress),
                                                workers=workers, since=signed)
        else:
            report, made = audit(chain, contracts, evidence, progress=_Bars(progress), workers=workers, since=signed), None
    if checkpoint_out is not None:
        if made is not None:
            save_checkpoint(checkpoint_out, *made)
            console.print(f"checkpoint (block {made[0].to_block}, signed by {made[0].auditor}) -> {checkpoint_out}")
        else:
            console.print("no checkpoint: only a clean audit of complete evidence is checkpointed")
    console.print(_summary(report, manifest_problems))
    if report.discrepancies:
        console.print(_listing(report))
        if len(report.discrepancies) > SHOWN:
            console.print(f"... and {len(report.discrepancies) - SHOWN} more (see the JSON or HTML report)")
    if json_out is not None:
        write_json(report, json_out, manifest_problems)
        console.print(f"JSON report -> {json_out}")
    if html_out is not None:
        write_html(report, html_out, manifest_problems)
        console.print(f"HTML report -> {html_out}")
    clean = report.ok and not manifest_problems
    console.print(
        f"[green]no discrepancies[/] ({report.elapsed_s:.1f} s)" if clean
        else f"[bold red]{len(report.discrepancies)} discrepancies[/]"
        + (f", {len(manifest_problems)} altered bundle file(s)" if manifest_problems else "")
        + f" ({report.elapsed_s:.1f} s)"
    )
    if not clean:
        raise typer.Exit(EXIT_DISCREPANCIES)


def _selector(product: str | None, lot: tuple[str, str] | None, order: str | None,
              time_from: str | None, time_to: str | None) -> Selector:
    from node.audit.bundle import InvalidSelection, make_selector

    try:
        return make_selector(product=lot[0] if lot else product, lot=lot[1] if lot else None, order=order,
                             time_from=time_from, time_to=time_to)
    except InvalidSelection as exc:
        hint = {"product": "--product/--lot", "lot": "--lot"}.get(exc.field or "", f"--{exc.field}" if exc.field else None)
        raise typer.BadParameter(str(exc), param_hint=hint) from None


def _default_out(selector: Selector) -> Path:
    from node.audit.bundle import Lot, OrderSel, Product

    if isinstance(selector, Product):
        name = f"product-{selector.gtin}"
    elif isinstance(selector, Lot):
        name = f"lot-{selector.gtin}-{''.join(c if c.isalnum() or c in '-_' else '_' for c in selector.lot)}"
    elif isinstance(selector, OrderSel):
        name = f"order-{selector.order_id:064x}"[:22]
    else:
        name = f"events-{selector.start_ms // 1000}-{selector.end_ms // 1000}"
    return Path(f"evidence-{name}.zip")


@app.command("export")
def export_command(
    product: Annotated[str | None, typer.Option("--product", metavar="GTIN", help="Every unit of a product (GTIN-14)")] = None,
    lot: Annotated[tuple[str, str] | None, typer.Option("--lot", metavar="GTIN LOT", help="Every unit of one lot")] = None,
    order: Annotated[str | None, typer.Option("--order", metavar="ID", help="An escrow order: its attestations and its shipment's events")] = None,
    time_from: Annotated[str | None, typer.Option("--from", metavar="TIME", help="Events from this event time (ISO 8601 or unix seconds)")] = None,
    time_to: Annotated[str | None, typer.Option("--to", metavar="TIME", help="Events up to this event time (inclusive)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Bundle file to write (default: evidence-<selection>.zip)")] = None,
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
    deployment: DeploymentOpt = None,
    db: DbUrl = None,
) -> None:
    """Write a self-contained evidence bundle (zip): the events as stored with their signatures
    and Merkle proofs (a unit's with those of every case, pallet and container it was in), their
    roots and anchor transactions, an order's relayed attestations, the chain's id and contract
    addresses, and a manifest of sha-256 hashes. `waymark audit verify --bundle` checks it."""
    from node.audit.bundle import export_bundle
    from node.db import Database

    if product and lot:
        raise typer.BadParameter("--lot names its product: give --lot GTIN LOT alone", param_hint="--lot")
    selector = _selector(product, lot, order, time_from, time_to)
    settings = chain_settings(rpc_url, chain_id)
    chain = ChainClient(settings.rpc_url, expected_chain_id=settings.chain_id)
    contracts = _deployment(deployment, chain.chain_id, settings.deployment_file)
    database = Database(database_settings(db, must_exist=True).url)
    target = out or _default_out(selector)
    started = time.monotonic()
    with console.status(f"exporting {selector.describe()}"):
        manifest = export_bundle(database, chain, contracts, selector, target)
    counts = manifest["counts"]
    console.print(
        f"{target}: {counts['events']} event(s) under {counts['roots']} root(s)"
        + (f", {counts['orders']} order(s)" if counts["orders"] else "")
        + f" ({time.monotonic() - started:.1f} s)"
    )
    if manifest["pendingEvents"]:
        console.print(f"[yellow]{len(manifest['pendingEvents'])} event(s) not anchored yet were left out[/]")
