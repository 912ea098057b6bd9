"""oracle: run one organisation's oracle (webhooks, EPCIS capture, CSV drop folder, delivery), and look at its queue.

Settings come from the environment (WAYMARK_ORACLE_*, WAYMARK_CHAIN_*; see oracle/settings.py
and node/settings.py); options override them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from node.errors import WaymarkError
from oracle.queue import DurableQueue
from oracle.settings import ALL_ADAPTERS, OracleSettings
from waymark.common import AsMember, ChainId, KeystoreOpt, PasswordFileOpt, RpcUrl, chain_settings, connect, console, signer

app = typer.Typer(help="An organisation's oracle: source adapters -> signed EPCIS events and escrow attestations.", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Queue, state and CSV folders [env WAYMARK_ORACLE_DATA_DIR]")]


def _settings(**overrides: Any) -> OracleSettings:
    return OracleSettings(**{k: v for k, v in overrides.items() if v is not None})


@app.command("run")
def run(
    host: Annotated[str | None, typer.Option(help="Listen address [env WAYMARK_ORACLE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [env WAYMARK_ORACLE_PORT]")] = None,
    node_url: Annotated[str | None, typer.Option("--node-url", help="The node's base URL [env WAYMARK_ORACLE_NODE_URL]")] = None,
    relayer_url: Annotated[str | None, typer.Option("--relayer-url", help="The escrow relayer's base URL [env WAYMARK_ORACLE_RELAYER_URL]")] = None,
    data_dir: DataDir = None,
    adapters: Annotated[str | None, typer.Option(help=f"Comma-separated adapters to run (default all: {','.join(ALL_ADAPTERS)})")] = None,
    products: Annotated[Path | None, typer.Option("--products", help="Product catalogue JSON (IoT ranges) [env WAYMARK_ORACLE_PRODUCTS_FILE]")] = None,
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
    keystore: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    as_member: AsMember = None,
) -> None:
    """Serve the webhooks (POST /webhooks/{adapter}) and EPCIS capture (POST /capture), watch the CSV
    drop folder, and deliver signed events to the node (and escrow attestations to the relayer)."""
    import uvicorn  # the server's stack, loaded by the command that runs it (waymark.cli)

    from oracle.app import create_app
    from oracle.runtime import load_runtime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = _settings(
        host=host, port=port, node_url=node_url, relayer_url=relayer_url, data_dir=data_dir, products_file=products,
        adapters=[a.strip() for a in adapters.split(",") if a.strip()] if adapters else None,
        keystore=keystore, password_file=password_file,
    )
    account = None
    if as_member is not None:
        account = signer(connect(rpc_url, chain_id), None, None, as_member)
    runtime = load_runtime(settings, chain_settings(rpc_url, chain_id), account=account)
    console.print(
        f"oracle of {runtime.account.address} listening on http://{settings.host}:{settings.port}"
        f" (adapters: {', '.join(runtime.oracle.adapters)}; CSV inbox: {settings.csv_dir() / 'inbox'};"
        f" node: {settings.node_url}; relayer: {settings.relayer_url or 'none'})",
        highlight=False,
    )
    try:
        uvicorn.run(create_app(runtime), host=settings.host, port=settings.port, log_level="warning")
    finally:
        runtime.close()


class NoOracleQueue(WaymarkError):
    code = "oracle_queue_missing"

    def __init__(self, path: Path) -> None:
        super().__init__(f"no oracle queue at {path}: is --data-dir (env WAYMARK_ORACLE_DATA_DIR) the oracle's data folder? "
                         "(in the demo: var/demo/oracles/oracle-<member>)")


def _require_queue(settings: OracleSettings) -> None:
    if not settings.queue_path().is_file():  # never create a queue (or its folder) for a mistyped path
        raise NoOracleQueue(settings.queue_path())


@app.command("status")
def status(data_dir: DataDir = None) -> None:
    """Queue counts by kind and state, and the jobs a receiver refused (with its reason)."""
    settings = _settings(data_dir=data_dir)
    _require_queue(settings)
    queue = DurableQueue(settings.queue_path())
    console.print_json(json.dumps({"queue": queue.counts(), "rejected": [
        {"kind": j.kind, "key": j.key, "error": j.last_error} for j in queue.rejected()
    ]}))


@app.command("requeue")
def requeue(data_dir: DataDir = None, kind: Annotated[str | None, typer.Option(help="Only jobs of this kind (event, document, escrow, fx)")] = None) -> None:
    """Send refused jobs again, after fixing their cause (e.g. a role granted)."""
    settings = _settings(data_dir=data_dir)
    _require_queue(settings)
    count = DurableQueue(settings.queue_path()).requeue_rejected(kind)
    console.print(f"{count} job(s) queued again")
