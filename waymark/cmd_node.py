"""node: run the node (capture API, indexer, anchorer, replicator), or one of its services, show
its replication status, and verify proof bundles.

Settings come from the environment (WAYMARK_NODE_*, WAYMARK_CHAIN_*, WAYMARK_DB_*,
WAYMARK_SIGNER_*; see node/member/settings.py and node/settings.py); options override them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from node.member.settings import NodeSettings
from node.settings import DatabaseSettings
from waymark.common import (
    AsMember,
    ChainId,
    KeystoreOpt,
    PasswordFileOpt,
    RpcUrl,
    chain_settings,
    connect,
    console,
    database_settings,
    read_json,
    signer,
)

if TYPE_CHECKING:
    from node.member.runtime import NodeRuntime

# The node's stack (server, runtime, replicator) is imported by the commands that use it, so that
# the CLI's other commands start without loading it (waymark.cli).

app = typer.Typer(help="The Waymark node: capture API, anchorer, indexer; proof verification.", no_args_is_help=True)

DbUrl = Annotated[str | None, typer.Option("--db", help="Database URL [env WAYMARK_DB_URL]")]


def _runtime(rpc_url: str | None, chain_id: int | None, db_url: str | None, **node: Any) -> NodeRuntime:
    from node.member.runtime import load_runtime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = NodeSettings(**{k: v for k, v in node.items() if v is not None})
    database = database_settings(db_url)
    return load_runtime(settings, chain_settings(rpc_url, chain_id), database)


def _watch_parent(parent: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        if os.getppid() != parent:
            stop.set()


def _until_signalled() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command("run")
def run(
    host: Annotated[str | None, typer.Option(help="Listen address [env WAYMARK_NODE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [env WAYMARK_NODE_PORT]")] = None,
    check_processes: Annotated[int | None, typer.Option(help="Processes that check capture documents; the number of cores uses them all [env WAYMARK_NODE_CHECK_PROCESSES]")] = None,
    anchorer: Annotated[bool, typer.Option("--anchorer/--no-anchorer", help="Run the anchorer (one per database)")] = True,
    indexer: Annotated[bool, typer.Option("--indexer/--no-indexer", help="Run the indexer")] = True,
    replicator: Annotated[bool, typer.Option("--replicator/--no-replicator", help="Run the replicator (imports other members' batches)")] = True,
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
    db: DbUrl = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    as_member: AsMember = None,
) -> None:
    """Serve the capture API (POST /capture, GET /events/{id}/proof, /units/{id}/history,
    /batches/{root}/bundle, /health), with the anchorer, the indexer and the replicator in a process
    of their own. The node's organisation is its anchor account's: capture takes only events of it
    and of the organisations it hosts."""
    import uvicorn

    from node.member.app import create_app
    from node.member.runtime import build_anchorer, build_indexer, build_replicator, check_pool, load_runtime, resolve_organisation

    runtime = _runtime(rpc_url, chain_id, db, host=host, port=port, check_processes=check_processes)
    account = None
    if anchorer and (keystore or as_member or runtime.node.anchor_devnet_account is None):
        account = signer(connect(rpc_url, chain_id), keystore, password_file, as_member)
    organisation = resolve_organisation(runtime, account) if (account is not None or anchorer) else runtime.node.organisation
    runtime.organisation = organisation
    url = runtime.db.url.render_as_string(hide_password=False)

    parent = os.getpid()

    def services() -> None:
        stop = _until_signalled()
        # Leave with the parent, however it ends (a SIGKILLed parent runs no clean-up).
        threading.Thread(target=_watch_parent, args=(parent, stop), daemon=True).start()
        own = load_runtime(runtime.node, runtime.chain, DatabaseSettings(url=url), migrate=False)
        own.organisation = organisation
        threads = []
        if indexer:
            threads.append(threading.Thread(target=build_indexer(own).run, args=(stop, own.node.indexer_poll), daemon=True))
        if anchorer:
            threads.append(threading.Thread(target=build_anchorer(own, account).run, args=(stop, own.node.anchorer_poll), daemon=True))
        pool = check_pool(own.node.replication_processes) if replicator and own.node.replication_processes else None
        if replicator:
            threads.append(threading.Thread(target=build_replicator(own, executor=pool).run, args=(stop, own.node.replication_poll), daemon=True))
        for thread in threads:
            thread.start()
        stop.wait()
        for thread in threads:
            thread.join(10)
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    runtime.db.dispose()  # the forked process opens its own connections
    # not daemonic: the services process may start worker processes of its own (replication_processes)
    side = multiprocessing.get_context("fork").Process(target=services, name="waymark-node-services", daemon=False)
    side.start()
    console.print(
        f"node listening on http://{runtime.node.host}:{runtime.node.port} (chain {runtime.client.chain_id}; "
        f"{runtime.node.check_processes or 'no'} check processes; organisation {organisation or 'unknown'}; "
        f"anchorer {'on' if anchorer else 'off'}, indexer {'on' if indexer else 'off'}, replicator {'on' if replicator else 'off'})"
    )
    # uvicorn re-raises the SIGINT/SIGTERM that stopped it once it is done; with a handler of
    # ours that only takes note, the clean-up below still runs.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.run(
            create_app(runtime, run_indexer=False, run_anchorer=False),
            host=runtime.node.host, port=runtime.node.port, log_level="warning",
        )
    finally:
        side.terminate()
        side.join(15)


@app.command("anchorer")
def anchorer_command(
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
    db: DbUrl = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    as_member: AsMember = None,
) -> None:
    """Run only the anchorer (one per database; safe to kill and restart at any time)."""
    from node.member.runtime import build_anchorer

    runtime = _runtime(rpc_url, chain_id, db)
    account = None
    if keystore or as_member or runtime.node.anchor_devnet_account is None:
        account = signer(connect(rpc_url, chain_id), keystore, password_file, as_member)
    build_anchorer(runtime, account).run(_until_signalled(), runtime.node.anchorer_poll)


@app.command("indexer")
def indexer_command(rpc_url: RpcUrl = None, chain_id: ChainId = None, db: DbUrl = None) -> None:
    """Run only the indexer (resumes from its last block)."""
    from node.member.runtime import build_indexer

    runtime = _runtime(rpc_url, chain_id, db)
    build_indexer(runtime).run(_until_signalled(), runtime.node.indexer_poll)


@app.command("replicator")
def replicator_command(rpc_url: RpcUrl = None, chain_id: ChainId = None, db: DbUrl = None) -> None:
    """Run only the replicator (needs the indexer's tables; resumes where it stopped)."""
    from node.member.runtime import build_replicator, resolve_organisation

    runtime = _runtime(rpc_url, chain_id, db)
    resolve_organisation(runtime)
    build_replicator(runtime).run(_until_signalled(), runtime.node.replication_poll)


@app.command("status")
def status_command(rpc_url: RpcUrl = None, chain_id: ChainId = None, db: DbUrl = None) -> None:
    """The node's replication of other members' batches: held, waiting, withheld (exit 3 if any is withheld)."""
    from node.member.network.replicator import replication_status

    runtime = _runtime(rpc_url, chain_id, db)
    status = replication_status(runtime.db, runtime.client.chain_id)
    console.print(f"batches of other members: {status['held']} held, {status['waiting']} waiting, "
                  f"{len(status['withheld'])} withheld; {status['refusedBundles']} bundles refused")
    for item in status["withheld"]:
        console.print(f"[red]withheld[/] batch {item['root']} of organisation {item['orgId']} ({item['eventCount']} events)")
    if status["withheld"]:
        raise typer.Exit(3)


@app.command("verify")
def verify_command(
    bundle: Annotated[Path, typer.Argument(help="Proof bundle (JSON, as GET /events/{id}/proof returns it)")],
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
    confirmations: Annotated[int, typer.Option(help="Blocks required on top of the anchor")] = 0,
    registry: Annotated[str | None, typer.Option(help="Expected ProvenanceRegistry address (default: the bundle's)")] = None,
) -> None:
    """Check a proof bundle against the chain alone. Exit code 0 if verified (marks, if any, are
    printed), 1 if a check failed or is still pending."""
    from node.member.proofs import verify_bundle

    settings = chain_settings(rpc_url, chain_id)
    result = verify_bundle(read_json(bundle, "a proof bundle (JSON, as GET /events/{id}/proof returns it)"), settings.rpc_url, min_confirmations=confirmations, registry_address=registry)
    for check in result.checks:
        console.print(f"{'[green]ok[/]  ' if check.ok else '[red]FAIL[/]'} {check.name}: {check.detail}", highlight=False)
    if not result.ok:
        console.print(f"[red]not verified:[/] {result.failure}")
        raise typer.Exit(1)
    if result.marks:
        marks = ", ".join(sorted(m.value for m in result.marks))
        console.print(f"[yellow]verified, but marked {marks}[/]: accepted, not plainly genuine (late: anchored past the "
                      "maximum reporting delay; signer_revoked: the signer lost its role before the anchor)")
        return
    console.print("[green]verified[/]")
