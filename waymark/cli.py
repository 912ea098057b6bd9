"""`waymark`: build, run the devnet, deploy, and govern the consortium.

Every command ends a mistake with one line on stderr, `error: <what is wrong>`, and an exit code
that says what kind of mistake it was (never a traceback; WAYMARK_DEBUG=1 shows one):

    0  success
    1  another Waymark error (the message says what)
    2  bad usage or bad input: an unknown option, a wrong value, a missing or unreadable file, a file
       that is not valid JSON, an invalid setting
    3  the chain (or a service such as the relayer) cannot be reached, or it is the wrong chain
    4  a keystore problem: file missing or not a keystore, password file missing, wrong password,
       a public devnet key on another chain
    5  the contracts do not compile
    6  an audit found discrepancies (or an evidence bundle was altered)
    7  the chain refused a transaction: a contract error (named: wrong state, missing role, not the
       buyer, ...) or an account that cannot pay for gas
    8  the database cannot be used: missing (a mistyped path), unreachable, or not a Waymark database
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import typer
import typer.main
from pydantic import ValidationError
from rich.markup import escape
from typer._click.exceptions import ClickException, UsageError  # typer's own click (typer >= 0.29 vendors it)

from node.chain.build import CompileError
from node.chain.errors import ContractRevert, RpcUnreachable, WrongChainId
from node.chain.keystore import KeystoreError
from node.errors import WaymarkError
from waymark import cmd_api, cmd_audit, cmd_chain, cmd_demo, cmd_escrow, cmd_keys, cmd_node, cmd_oracle, cmd_registry
from waymark.common import DatabaseNotFound, InputFileError, err_console, organisation_namer

app = typer.Typer(
    help="Waymark: provenance and escrow for cross-border trade on a consortium EVM chain.\n\n"
    "Exit codes: 0 success, 1 Waymark error, 2 bad usage or input file, 3 chain unreachable or wrong "
    "chain, 4 keystore problem, 5 compile error, 6 audit discrepancies, 7 transaction refused by the "
    "chain, 8 database problem.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
cmd_chain.register(app)
app.command("demo")(cmd_demo.demo)
app.add_typer(cmd_keys.app, name="keys")
app.add_typer(cmd_registry.app, name="registry")
app.add_typer(cmd_node.app, name="node")
app.add_typer(cmd_escrow.app, name="escrow")
app.add_typer(cmd_oracle.app, name="oracle")
app.add_typer(cmd_api.app, name="api")
app.add_typer(cmd_audit.app, name="audit")

EXIT_USAGE, EXIT_CHAIN, EXIT_REFUSED, EXIT_DATABASE = 2, 3, 7, 8

EXIT_CODES: list[tuple[type[WaymarkError], int]] = [
    (InputFileError, EXIT_USAGE),
    (RpcUnreachable, EXIT_CHAIN),
    (WrongChainId, EXIT_CHAIN),
    (KeystoreError, 4),
    (CompileError, 5),
    (ContractRevert, EXIT_REFUSED),
    (DatabaseNotFound, EXIT_DATABASE),
]


def exit_code_for(error: WaymarkError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    if error.code in ("transaction_failed", "transaction_dropped"):
        return EXIT_REFUSED
    if error.code in ("relayer_unreachable",):
        return EXIT_CHAIN
    if error.code in ("invalid_input", "malformed_bundle", "invalid_identifier"):
        return EXIT_USAGE
    if error.code.startswith("database") or error.code in ("unsupported_database",):
        return EXIT_DATABASE
    return 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe(exc: BaseException) -> tuple[str, int]:
    """One line naming what is wrong, and the exit code, for any exception a command lets out."""
    if isinstance(exc, ContractRevert):
        return exc.describe(organisation_namer()), EXIT_REFUSED
    if isinstance(exc, WaymarkError):
        text = str(exc)
        if exc.code == "transaction_failed" and _no_gas(text):
            return _gas_message(text), EXIT_REFUSED
        return text, exit_code_for(exc)
    if isinstance(exc, UsageError):
        ctx = exc.ctx
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return exc.format_message() + hint, EXIT_USAGE
    if isinstance(exc, ClickException):
        return exc.format_message(), exc.exit_code
    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
        return f"invalid setting ({exc.title}): {problems}", EXIT_USAGE
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", EXIT_USAGE
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return f"{exc.filename or 'a file'}: {exc.strerror}", EXIT_USAGE
    module = type(exc).__module__.split(".")[0]
    if module == "sqlalchemy":
        original = getattr(exc, "orig", None) or exc
        return (f"the database cannot be used ({type(original).__name__}: {_one_line(str(original)).split(' [SQL')[0]}); "
                "is WAYMARK_DB_URL / --db the node's database?"), EXIT_DATABASE
    if module == "web3":
        text = _one_line(str(exc))
        if _no_gas(text):
            return _gas_message(text), EXIT_REFUSED
        return f"the chain refused the request: {text}", EXIT_REFUSED
    if module in ("requests", "httpx", "urllib3") or isinstance(exc, ConnectionError):
        return f"cannot reach a service: {type(exc).__name__}: {_one_line(str(exc))[:200]}", EXIT_CHAIN
    return f"unexpected {type(exc).__name__}: {_one_line(str(exc))[:300]} (WAYMARK_DEBUG=1 shows the traceback)", 1


def _no_gas(text: str) -> bool:
    lowered = text.lower()
    return "exceeds allowance" in lowered or "insufficient funds" in lowered or "out of gas" in lowered


def _gas_message(text: str) -> str:
    return ("the signing account cannot pay for gas (it has no ether on this chain): fund it first, on the devnet with "
            "`waymark keys fund ADDRESS`, on a consortium chain ask the operator (chain said: "
            f"{_one_line(text)[:160]})")


def _tidy_paragraphs(text: str) -> str:
    """A help text's paragraphs each on one line (the terminal wraps them), so that no sentence is
    broken where the source line happened to end; indented blocks (lists, examples) stay as written."""
    paragraphs = []
    for paragraph in text.strip().split("\n\n"):
        lines = paragraph.split("\n")
        if any(line.startswith((" ", "\t")) for line in lines[1:]) or paragraph.lstrip().startswith("\b"):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


_ENV_HINT = re.compile(r"\[(env [^\]]+)\]")


def tidy_help(command: Any) -> Any:
    """The click command tree with tidy help texts: paragraphs unbroken, and `[env X]` hints written
    as `(env X)` (the rich help formatter would take the brackets for markup and drop them)."""
    if command.help:
        command.help = _tidy_paragraphs(command.help)
    for param in getattr(command, "params", []):
        if getattr(param, "help", None):
            param.help = _ENV_HINT.sub(r"(\1)", param.help)
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    return command


def main(argv: list[str] | None = None) -> int:
    try:
        command = tidy_help(typer.main.get_command(app))
        result = command.main(args=argv, standalone_mode=False, prog_name="waymark")
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except Exception as exc:  # noqa: BLE001 - every mistake ends in one line, never a traceback
        if os.environ.get("WAYMARK_DEBUG"):
            raise
        message, code = describe(exc)
        if not message.strip() or message.startswith(" (see"):  # no arguments: the help was shown
            return code
        err_console.print(f"[bold red]error:[/] {escape(_one_line(message))}", highlight=False, soft_wrap=True, markup=True)
        return code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
