"""`waymark registry` governance on the devnet as members run it: a GS1 Company Prefix assigned
by vote, an account linked by offer and acceptance, bad input refused with one clear message."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from waymark.devnet.anvil import AnvilControl, AnvilProcess, rpc
from waymark.devnet.consortium import devnet_account
from tests.cli.test_cli import assert_clean_failure, run_cli
from tests.cli.test_cli_mistakes import fails

BUYER = devnet_account(10).address


@pytest.fixture
def cli_env(anvil: AnvilProcess, devnet: AnvilControl, tmp_path: Path) -> dict[str, str]:
    env = {"WAYMARK_CHAIN_RPC_URL": anvil.rpc_url, "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(tmp_path / "deployments")}
    deployed = run_cli("deploy", env=env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    return env


def ok(*args: str, env: dict[str, str]) -> str:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout


def carrier_row(orgs: str) -> str:
    return next(line for line in orgs.splitlines() if "Bluewater" in line)


def vote_to_majority(proposal: str, cli_env: dict[str, str]) -> None:
    """After the manufacturer's proposal, four more votes leave it pending and the fifth (6 of the
    11 demo members: more than half) executes it."""
    for member in ("inspector", "carrier", "customs", "operator"):
        assert "executed" not in ok("registry", "vote", proposal, "--as", member, env=cli_env)
    assert "executed" in ok("registry", "vote", proposal, "--as", "arbitrator", env=cli_env)


def test_prefix_by_vote_and_account_by_offer_and_acceptance(cli_env: dict[str, str]) -> None:
    orgs = ok("registry", "orgs", env=cli_env)
    assert "9521234" in orgs  # the demo manufacturer's founding prefix
    assert "6 votes (50.01% of the active members, rounded up)" in orgs

    created = ok("registry", "propose", "prefix", "3", "0614141", "--as", "manufacturer", env=cli_env)
    match = re.search(r"proposal (\d+) created", created)
    assert match, created
    vote_to_majority(match.group(1), cli_env)
    assert "0614141" in carrier_row(ok("registry", "orgs", env=cli_env))

    ok("registry", "account", "offer", BUYER, "--as", "carrier", env=cli_env)
    assert BUYER not in ok("registry", "orgs", env=cli_env)  # an offer links nothing
    assert "linked to organisation 3" in ok("registry", "account", "accept", "3", "--as", "buyer", env=cli_env)
    assert BUYER in ok("registry", "orgs", env=cli_env)


@pytest.fixture
def in_process(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """cli_env for commands run through the console script's entry point in this process, as
    tests/cli/test_cli_mistakes.py runs mistakes (a subprocess per case takes seconds on a loaded machine)."""
    for name, value in cli_env.items():
        monkeypatch.setenv(name, value)


def test_bad_prefix_and_threshold_are_refused_before_touching_the_chain(in_process: None, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, 2, "registry", "propose", "prefix", "3", "12ab", "--as", "manufacturer", says=("GS1 Company Prefix",))
    fails(capsys, 2, "registry", "propose", "threshold", "10001", "--as", "manufacturer")
    fails(capsys, 2, "registry", "propose", "threshold", "5000", "--as", "manufacturer")  # half is not a majority
    fails(capsys, 7, "registry", "account", "accept", "5", "--as", "buyer", says=("RegistryNoOffer",))


def block_number(anvil: AnvilProcess) -> int:
    return int(rpc(anvil.rpc_url, "eth_blockNumber"), 16)


def test_node_records_hosting_and_consortium_parameters_through_the_cli(cli_env: dict[str, str], tmp_path: Path) -> None:
    key = bytes(range(32)).hex()
    assert "node record of organisation 1 set: https://node.lumen.example" in ok(
        "registry", "node-record", "set", "--url", "https://node.lumen.example", "--encryption-key", "0x" + key,
        "--as", "manufacturer", env=cli_env)
    shown = ok("registry", "node-record", "show", "1", env=cli_env)
    assert "https://node.lumen.example" in shown and key in shown

    # The auditor (org 7) runs no node: the carrier (org 3) hosts it once both agree.
    assert "asked organisation 3" in ok("registry", "hosting", "request", "3", "--as", "auditor", env=cli_env)
    assert "asked 3 (Bluewater" in ok("registry", "node-record", "show", "7", env=cli_env)
    assert_clean_failure(run_cli("registry", "hosting", "accept", "7", "--as", "customs", env=cli_env), 7, "RegistryNoHostingRequest")
    assert "hosts organisation 7" in ok("registry", "hosting", "accept", "7", "--as", "carrier", env=cli_env)
    assert "3 (Bluewater Ocean Freight)" in ok("registry", "node-record", "show", "7", env=cli_env)
    assert_clean_failure(run_cli("registry", "hosting", "end", "7", "--as", "customs", env=cli_env), 7, "RegistryNotHosting")
    ok("registry", "hosting", "end", "7", "--as", "auditor", env=cli_env)
    assert "Bluewater" not in ok("registry", "node-record", "show", "7", env=cli_env)

    assert "maximum reporting delay: 7 days" in ok("registry", "orgs", env=cli_env)
    created = ok("registry", "propose", "reporting-delay", "36h", "--as", "manufacturer", env=cli_env)
    proposal = re.search(r"proposal (\d+) created \(set_max_reporting_delay\)", created)
    assert proposal, created
    vote_to_majority(proposal.group(1), cli_env)
    assert_clean_failure(run_cli("registry", "vote", proposal.group(1), "--as", "auditor", env=cli_env), 7,
                         "RegistryProposalAlreadyExecuted")

    bundle = tmp_path / "app.js"
    bundle.write_text("console.log('verifier');\n")
    created = ok("registry", "propose", "verifier-bundle", "--file", str(bundle), "--as", "manufacturer", env=cli_env)
    proposal = re.search(r"proposal (\d+) created", created)
    assert proposal, created
    vote_to_majority(proposal.group(1), cli_env)
    orgs = ok("registry", "orgs", env=cli_env)
    assert "maximum reporting delay: 36 hours" in orgs
    assert "sha-256 " + hashlib.sha256(bundle.read_bytes()).hexdigest() in orgs


BAD_INPUTS: list[tuple[tuple[str, ...], str]] = [
    (("node-record", "set", "--url", "ftp://node.example"), "must start with http:// or https://"),
    (("node-record", "set", "--url", "https://node.example/"), "must not end with '/'"),
    (("node-record", "set", "--url", "https://node.example", "--encryption-key", "12ab"), "64 hex digits"),
    (("propose", "reporting-delay", "0"), "must be from 1 second"),
    (("propose", "reporting-delay", "400d"), "366 days"),
    (("propose", "reporting-delay", "seven days"), "is not a duration"),
    (("propose", "verifier-bundle", "0x" + "00" * 32), "not all zero"),
    (("propose", "verifier-bundle"), "not both or neither"),
    (("hosting", "accept", "0"), "greater than or equal to 1"),
]


def test_bad_node_records_and_parameters_are_refused_before_any_transaction(
    in_process: None, anvil: AnvilProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    before = block_number(anvil)
    for args, phrase in BAD_INPUTS:
        fails(capsys, 2, "registry", *args, "--as", "manufacturer", says=(phrase,))
    assert block_number(anvil) == before
