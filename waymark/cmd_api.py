"""api: run the buyer-facing API (Digital Link resolver, passports, scans, claims, alerts)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from api.settings import ApiSettings
from waymark.common import ChainId, RpcUrl, chain_settings, console, database_settings

app = typer.Typer(help="The buyer-facing API: GS1 Digital Link resolver, scan page, passports, claims, alerts.", no_args_is_help=True)


@app.command("run")
def run(
    host: Annotated[str | None, typer.Option(help="Listen address (env WAYMARK_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (env WAYMARK_API_PORT)")] = None,
    public_url: Annotated[str | None, typer.Option(help="Base URL buyers reach the resolver at (env WAYMARK_API_PUBLIC_URL)")] = None,
    browser_rpc_url: Annotated[str | None, typer.Option(help="Read-only RPC URL the scanner page verifies against (env WAYMARK_API_BROWSER_RPC_URL)")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (env WAYMARK_DB_URL)")] = None,
    rpc_url: RpcUrl = None,
    chain_id: ChainId = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the API and the scanner page until Ctrl-C (one process: the clone rules keep their window in it)."""
    import uvicorn  # the server's stack, loaded by the command that runs it (waymark.cli)

    from api.main import build_services, create_app

    overrides: dict[str, Any] = {k: v for k, v in {"host": host, "port": port, "public_url": public_url, "browser_rpc_url": browser_rpc_url}.items() if v is not None}
    api = ApiSettings(**overrides)
    if "public_url" not in api.model_fields_set:  # unset: the resolver is this server, on its own port
        shown_host = "127.0.0.1" if api.host in ("0.0.0.0", "::", "") else api.host
        api = api.model_copy(update={"public_url": f"http://{shown_host}:{api.port}"})
    chain = chain_settings(rpc_url, chain_id)
    database = database_settings(database_url, must_exist=True)
    # Fail here, with the CLI's exit codes, rather than inside the server's lifespan.
    build_services(api, chain, database).db.dispose()
    console.print(f"Waymark API on http://{api.host}:{api.port} (resolver {api.public_url}, chain {chain.rpc_url}); docs at /docs")
    uvicorn.run(create_app(api, chain, database), host=api.host, port=api.port, log_level=log_level, loop="uvloop", http="httptools", access_log=False)
