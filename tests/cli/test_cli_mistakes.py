"""Every command group, on the mistakes a user makes, ends with one line on stderr naming what is
wrong, no traceback, and the documented exit code (waymark/cli.py, README "Exit codes").

The commands run through `waymark.cli.main`, the console script's entry point, in this process
(a subprocess per case would take minutes on a loaded machine; tests/cli/test_cli.py runs the
installed command as a subprocess), against a real Anvil with Waymark deployed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from waymark.devnet.anvil import AnvilControl, AnvilProcess
from waymark.ports import free_port
from waymark.devnet.consortium import devnet_account
from node.paths import PROJECT_ROOT
from waymark.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fails(capsys: pytest.CaptureFixture[str], code: int, *args: str, says: tuple[str, ...] = ()) -> str:
    """Run a command that must fail: exactly one line on stderr starting `error:`, the exit code, the phrases."""
    got, out, err = run(capsys, *args)
    lines = err.strip().splitlines()
    assert got == code, f"{args}: exit code {got}, expected {code}\n{out}{err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{args}: not one error line:\n{err}"
    assert "Traceback" not in out + err
    for phrase in says:
        assert phrase in lines[0], f"{args}: {phrase!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture
def env(anvil: AnvilProcess, devnet: AnvilControl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Path:
    """The test chain with Waymark deployed into a deployments folder of this test's own."""
    monkeypatch.setenv("WAYMARK_CHAIN_RPC_URL", anvil.rpc_url)
    monkeypatch.setenv("WAYMARK_CHAIN_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    monkeypatch.setenv("WAYMARK_DB_URL", f"sqlite:///{tmp_path / 'node.sqlite3'}")
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run(capsys, "deploy")
    assert code == 0, out + err
    return tmp_path


def keystore(tmp_path: Path, password: str = "right") -> Path:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(Account.encrypt(Account.create().key, password, kdf="pbkdf2", iterations=2)))
    return path


# ---- keys and keystores: exit code 4 -------------------------------------------------------------


def test_keys_create_without_its_password_file_names_the_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 4, "keys", "create", str(tmp_path / "new.json"), "--password-file", str(tmp_path / "nope"),
          says=("password file", "does not exist"))
    assert not (tmp_path / "new.json").exists()


def test_keys_create_never_overwrites_a_keystore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pw").write_text("secret\n")
    code, out, _ = run(capsys, "keys", "create", str(tmp_path / "k.json"), "--password-file", str(tmp_path / "pw"))
    assert code == 0 and out.strip().splitlines()[-1].startswith("0x")
    before = (tmp_path / "k.json").read_text()
    fails(capsys, 4, "keys", "create", str(tmp_path / "k.json"), "--password-file", str(tmp_path / "pw"), says=("already exists",))
    assert (tmp_path / "k.json").read_text() == before
    code, out, _ = run(capsys, "keys", "list", str(tmp_path))
    assert code == 0 and "k.json" in out


def test_an_empty_password_file_is_not_reported_as_a_wrong_password(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "empty").write_text("")
    fails(capsys, 4, "deploy", "--keystore", str(keystore(env)), "--password-file", str(env / "empty"), says=("is empty",))


def test_a_missing_password_file_is_not_reported_as_a_wrong_password(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = fails(capsys, 4, "deploy", "--keystore", str(keystore(env)), "--password-file", str(env / "nope"),
                 says=("password file", "does not exist"))
    assert "wrong password" not in line


def test_a_wrong_password_says_so_and_where_the_password_came_from(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "pw").write_text("wrong\n")
    fails(capsys, 4, "deploy", "--keystore", str(keystore(env)), "--password-file", str(env / "pw"),
          says=("wrong password", str(env / "pw")))


def test_a_keystore_without_any_password_asks_for_the_password_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 4, "deploy", "--keystore", str(keystore(env)), says=("needs its password", "--password-file"))


# ---- a new account: no gas -> exit code 7 ---------------------------------------------------------


def test_a_new_accounts_first_transaction_without_gas_ends_in_one_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "pw").write_text("right\n")
    fails(capsys, 7, "escrow", "create", "--buyer", Account.create().address, "--token", "wUSD", "--amount", "1",
          "--schedule", "0,10000", "--keystore", str(keystore(env)), "--password-file", str(env / "pw"), says=("cannot pay for gas", "keys fund"))


# ---- contract errors with names: exit code 7 ---------------------------------------------------------


def test_a_wrong_state_names_the_states_and_the_order(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    buyer = Account.create().address
    code, out, err = run(capsys, "escrow", "create", "--buyer", buyer, "--token", "wUSD", "--amount", "5", "--schedule", "0,10000",
                          "--as", "manufacturer")
    assert code == 0, out + err
    order = out.strip().splitlines()[-1]
    assert run(capsys, "escrow", "cancel", order, "--as", "manufacturer")[0] == 0
    fails(capsys, 7, "escrow", "cancel", order, "--as", "manufacturer",
          says=("EscrowInvalidState", f"orderId={order}", "current=CANCELLED"))


def test_a_customs_milestone_without_customs_authorities_is_refused_before_any_transaction(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buyer = Account.create().address  # the default schedule clears customs: the order must say by whom
    fails(capsys, 2, "escrow", "create", "--buyer", buyer, "--token", "wUSD", "--amount", "5", "--as", "manufacturer",
          says=("--customs-authority", "milestone 1 (customs clearance) needs 2", "names 0"))


def test_organisations_named_in_the_terms_without_their_role_are_refused_before_any_transaction(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buyer, carrier = Account.create().address, devnet_account(3).address
    for option, role in (("--arbitrator", "ARBITRATOR"), ("--customs-authority", "CUSTOMS")):
        fails(capsys, 2, "escrow", "create", "--buyer", buyer, "--token", "wUSD", "--amount", "5", "--schedule", "0,10000",
              option, carrier, "--as", "manufacturer", says=(option, f"({carrier}) does not hold the {role} role"))


def test_a_wrong_role_names_the_role_and_the_accounts_organisation(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    buyer = Account.create().address
    code, out, err = run(capsys, "escrow", "create", "--buyer", buyer, "--token", "wUSD", "--amount", "5", "--schedule", "0,10000",
                          "--as", "manufacturer")
    assert code == 0, out + err
    order = out.strip().splitlines()[-1]
    # The carrier is no arbitrator: the contract says which role it lacks, and whose account it is.
    fails(capsys, 7, "escrow", "rule", order, "--buyer-share-bps", "5000", "--ruling-hash", "r", "--as", "carrier",
          says=("ARBITRATOR", "(Bluewater Ocean Freight)"))


def test_registry_proposal_by_an_account_of_no_member_names_it(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 7, "registry", "propose", "threshold", "5001", "--as", "buyer", says=("RegistryNotActiveMember", "of no organisation"))


# ---- bad input: exit code 2 ------------------------------------------------------------------------


def test_node_verify_on_a_missing_file_or_bad_json_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 2, "node", "verify", str(tmp_path / "proof.json"), says=(str(tmp_path / "proof.json"), "no such file"))
    (tmp_path / "bad.json").write_text("{")
    fails(capsys, 2, "node", "verify", str(tmp_path / "bad.json"), says=("is not valid JSON", "line 1"))
    fails(capsys, 2, "node", "verify", str(tmp_path), says=("is a folder",))


def test_escrow_input_mistakes(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 2, "escrow", "create", "--buyer", "0x12", "--token", "wUSD", "--amount", "1", "--as", "manufacturer",
          says=("--buyer", "not an account address"))
    fails(capsys, 2, "escrow", "create", "--buyer", Account.create().address, "--token", "wUSD", "--amount", "1",
          "--shipment", "095212340434710527", "--as", "manufacturer", says=("--shipment", "check digit"))
    fails(capsys, 2, "escrow", "show", "not-an-order", says=("ORDER_ID", "not an order id"))
    fails(capsys, 2, "escrow", "create", "--buyer", Account.create().address, "--token", "wUSD", "--amount", "1",
          "--as", "nobody", says=("unknown demo member",))
    fails(capsys, 2, "escrow", "show", "--bogus", says=("No such option", "--help"))


def test_registry_input_mistakes(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 2, "registry", "roles", "0xnope", says=("not an account address",))
    fails(capsys, 2, "registry", "roles", Account.create().address, "--at", "yesterday", says=("--at",))


def test_deploy_with_a_missing_or_invalid_consortium_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 2, "deploy", "--consortium", str(env / "nope.json"), says=(str(env / "nope.json"),))
    (env / "c.json").write_text("[1, 2")
    fails(capsys, 2, "deploy", "--consortium", str(env / "c.json"), says=("is not valid JSON",))


# ---- database: exit code 8, and nothing created ------------------------------------------------------


def test_audit_against_a_mistyped_sqlite_path_creates_nothing(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    typo = env / "typo" / "deeper" / "node.sqlite3"
    fails(capsys, 8, "audit", "verify", "--db", f"sqlite:///{typo}", says=(str(typo),))
    fails(capsys, 8, "audit", "export", "--lot", "09521234543213", "L1", "--out", str(env / "x.zip"), "--db", f"sqlite:///{typo}")
    assert not (env / "typo").exists()


def test_audit_against_a_database_that_is_not_a_nodes_says_so(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "other.sqlite3").write_bytes(b"")
    fails(capsys, 8, "audit", "verify", "--db", f"sqlite:///{env / 'other.sqlite3'}", says=("database cannot be used",))


def test_api_run_against_a_missing_database_refuses_before_serving(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 8, "api", "run", "--port", str(free_port()), "--database-url", f"sqlite:///{env / 'nope' / 'x.sqlite3'}")
    assert not (env / "nope").exists()


def test_audit_bundle_that_is_not_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lot.zip").write_text("not a zip")
    fails(capsys, 2, "audit", "verify", "--bundle", str(tmp_path / "lot.zip"), says=(str(tmp_path / "lot.zip"),))


# ---- oracle ----------------------------------------------------------------------------------------


def test_oracle_status_on_a_wrong_data_dir_names_it_and_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 1, "oracle", "status", "--data-dir", str(tmp_path / "nope"), says=("no oracle queue", "--data-dir"))
    fails(capsys, 1, "oracle", "requeue", "--data-dir", str(tmp_path / "nope"), says=("no oracle queue",))
    assert not (tmp_path / "nope").exists()


# ---- chain: exit code 3 ----------------------------------------------------------------------------


def test_wrong_chain_for_escrow_and_registry(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 3, "registry", "orgs", "--chain-id", "2026", says=("expected 2026",))
    fails(capsys, 3, "escrow", "show", "0x" + "11" * 32, "--rpc-url", f"http://127.0.0.1:{free_port()}", says=("cannot reach the chain",))


def test_an_invalid_setting_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WAYMARK_CHAIN_CHAIN_ID", "abc")
    fails(capsys, 2, "status", says=("invalid setting", "chain_id"))


# ---- demo --------------------------------------------------------------------------------------------


def test_demo_with_a_public_url_that_is_no_url_stops_before_starting_anything(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "waymark", "demo", "--root", str(tmp_path / "demo"), "--public-url", "phone"],
                            capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "--public-url 'phone'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# ---- benchmarks: --help explains, it does not run ------------------------------------------------------


# A benchmark is a script that runs as a program; the modules beside them (the guard process, the
# clone stream, the soak's scan load) are their parts.
BENCHMARKS = sorted(p.name for p in (PROJECT_ROOT / "scripts" / "bench").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def test_the_benchmarks_are_found() -> None:
    assert {"anchoring.py", "audit.py", "clones.py", "scale.py", "scan.py", "soak.py"} <= set(BENCHMARKS)


@pytest.mark.parametrize("script", BENCHMARKS)
def test_a_benchmarks_help_explains_without_running_it(script: str) -> None:
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "bench" / script), "--help"],
                            capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("usage:")
    assert not any(line.startswith("{") for line in result.stdout.splitlines()), "it ran and printed its figures"
