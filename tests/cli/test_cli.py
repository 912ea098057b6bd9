"""The `waymark` command as a user runs it: one clear message and a meaningful exit code on bad input,
never a traceback; idempotent deployment; a restarted devnet keeps its deployment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.chain.deploy import load_deployment
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from node.paths import PROJECT_ROOT


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waymark", *args],
        capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], exit_code: int, *phrases: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, output
    assert "Traceback" not in output
    for phrase in phrases:
        assert phrase in output, output


# What the commands that serve (node, API, oracle, relayer, demo) and the audit load: a registry,
# key or escrow command, or --help, starts without them.
SERVER_STACKS = ("fastapi", "uvicorn", "alembic", "node.db", "node.member.app", "api.main", "oracle.app", "node.relayer.app",
                 "node.audit", "waymark.demo.network")


def test_the_cli_starts_without_loading_the_servers_or_the_audit_engine() -> None:
    probe = f"import sys, waymark.cli; print(sorted(m for m in {SERVER_STACKS!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT, check=True)
    assert result.stdout.strip() == "[]", result.stdout
    # ... and a command that serves still finds its stack: the node's help, then its own start-up.
    assert run_cli("node", "run", "--help").returncode == 0


def test_wrong_rpc_url_ends_with_one_message_and_exit_code_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("status", "--rpc-url", url)
    assert_clean_failure(result, 3, f"cannot reach the chain at {url}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_chain_id_ends_with_one_message_and_exit_code_3(anvil: AnvilProcess) -> None:
    result = run_cli("status", "--rpc-url", anvil.rpc_url, "--chain-id", "2024")
    assert_clean_failure(result, 3, "has chain id 31337, expected 2024")


def test_missing_keystore_ends_with_one_message_and_exit_code_4(anvil: AnvilProcess, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = run_cli("deploy", "--rpc-url", anvil.rpc_url, "--keystore", str(missing))
    assert_clean_failure(result, 4, f"keystore file {missing} does not exist")


def test_keystore_with_the_wrong_password_ends_with_exit_code_4(anvil: AnvilProcess, tmp_path: Path) -> None:
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(Account.create().key, "right", kdf="pbkdf2", iterations=2)))
    password = tmp_path / "password"
    password.write_text("wrong\n")
    result = run_cli("deploy", "--rpc-url", anvil.rpc_url, "--keystore", str(keystore), "--password-file", str(password))
    assert_clean_failure(result, 4, f"cannot be decrypted with the password in {password}: wrong password")


def test_file_that_is_not_a_keystore_ends_with_exit_code_4(anvil: AnvilProcess, tmp_path: Path) -> None:
    keystore = tmp_path / "key.json"
    keystore.write_text('{"address": "0x00"}')
    result = run_cli("deploy", "--rpc-url", anvil.rpc_url, "--keystore", str(keystore))
    assert_clean_failure(result, 4, "is not a valid encrypted keystore")


def test_devnet_key_is_refused_on_another_chain(tmp_path: Path, accounts: list[LocalAccount]) -> None:
    other = AnvilProcess(port=free_port(), chain_id=4242).start()
    try:
        keystore = tmp_path / "key.json"
        keystore.write_text(json.dumps(Account.encrypt(accounts[0].key, "pw", kdf="pbkdf2", iterations=2)))
        (tmp_path / "pw").write_text("pw")
        consortium = tmp_path / "consortium.json"
        consortium.write_text(json.dumps({"threshold": 1, "members": [
            {"name": "A", "country": "NL", "account": Account.create().address, "roles": ["OPERATOR"]}]}))
        result = run_cli("deploy", "--rpc-url", other.rpc_url, "--chain-id", "4242", "--keystore", str(keystore),
                         "--password-file", str(tmp_path / "pw"), "--consortium", str(consortium))
        assert_clean_failure(result, 4, "publicly known devnet key", "refused on chain 4242")
    finally:
        other.stop()


def test_compile_error_prints_file_line_and_message_and_exits_5(tmp_path: Path) -> None:
    source = tmp_path / "contracts" / "Broken.sol"
    source.parent.mkdir()
    source.write_text("// SPDX-License-Identifier: UNLICENSED\npragma solidity 0.8.28;\n\ncontract Broken {\n    uint256 x\n}\n")
    result = run_cli("build", "--contracts", str(source.parent), "--out", str(tmp_path / "out"))
    assert_clean_failure(result, 5, f"{source}:6:1: ParserError: Expected ';' but got '}}'")


def test_unknown_subcommand_is_a_usage_error() -> None:
    result = run_cli("fly")
    assert_clean_failure(result, 2, "No such command")


def test_deploy_twice_then_status_after_a_killed_devnet_keeps_the_deployment(tmp_path: Path) -> None:
    """Deploy on a devnet with persisted state, kill -9 it, restart it: status still shows the deployment."""
    state = tmp_path / "state.json"
    env = {"WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(tmp_path / "deployments")}
    port = free_port()
    devnet = AnvilProcess(port=port, state_file=state).start()
    try:
        first = run_cli("deploy", "--rpc-url", devnet.rpc_url, env=env)
        assert first.returncode == 0, first.stderr
        assert "deployed ->" in first.stdout
        second = run_cli("deploy", "--rpc-url", devnet.rpc_url, env=env)
        assert second.returncode == 0 and "already deployed, nothing to do" in second.stdout
        record = load_deployment(tmp_path / "deployments" / "31337.json")
        registry = record.address("ConsortiumRegistry").lower()[2:]
        # Anvil saves its state every second; wait (bounded) until the saved state holds the registry.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (state.exists() and registry in state.read_text().lower()):
            time.sleep(0.1)
        assert state.exists() and registry in state.read_text().lower(), "anvil never saved its state"
        assert devnet.process is not None
        os.kill(devnet.process.pid, signal.SIGKILL)
        devnet.process.wait()
        devnet = AnvilProcess(port=port, state_file=state).start()
        status = run_cli("status", "--rpc-url", devnet.rpc_url, env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "deployment: deployed" in status.stdout
        assert record.address("ProvenanceRegistry") in status.stdout
    finally:
        devnet.stop()


@pytest.mark.parametrize("args", [["registry", "roles", "0x1234"], ["registry", "roles", "0x" + "11" * 20, "--at", "yesterday"]])
def test_registry_roles_rejects_bad_arguments_before_touching_the_chain(args: list[str]) -> None:
    result = run_cli(*args, "--rpc-url", f"http://127.0.0.1:{free_port()}")
    assert_clean_failure(result, 2, "Invalid value")
