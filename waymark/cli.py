"""`waymark`: build, run the devnet, deploy, and govern the consortium.

Exit codes: 0 success; 1 a Waymark error (message on stderr); 2 bad usage;
3 the chain cannot be reached or is the wrong chain; 4 a keystore problem; 5 compile error;
6 an audit found discrepancies (or an altered evidence bundle).
"""

from __future__ import annotations

import sys

import typer
from typer.exceptions import TyperException

from node.chain.build import CompileError
from node.chain.errors import RpcUnreachable, WrongChainId
from node.chain.keystore import KeystoreError
from node.errors import WaymarkError
from waymark import cmd_api, cmd_audit, cmd_chain, cmd_demo, cmd_escrow, cmd_node, cmd_oracle, cmd_registry
from waymark.common import err_console

app = typer.Typer(
    help="Waymark: provenance and escrow for cross-border trade on a consortium EVM chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
cmd_chain.register(app)
app.command("demo")(cmd_demo.demo)
app.add_typer(cmd_registry.app, name="registry")
app.add_typer(cmd_node.app, name="node")
app.add_typer(cmd_escrow.app, name="escrow")
app.add_typer(cmd_oracle.app, name="oracle")
app.add_typer(cmd_api.app, name="api")
app.add_typer(cmd_audit.app, name="audit")

EXIT_CODES: list[tuple[type[WaymarkError], int]] = [
    (RpcUnreachable, 3),
    (WrongChainId, 3),
    (KeystoreError, 4),
    (CompileError, 5),
]


def exit_code_for(error: WaymarkError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return 1


def main(argv: list[str] | None = None) -> int:
    try:
        result = app(args=argv, standalone_mode=False, prog_name="waymark")
    except WaymarkError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        return exit_code_for(error)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except TyperException as exc:  # usage errors: typer prints them with the command's help hint
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
