"""`waymark registry` governance on the devnet as members run it: a GS1 Company Prefix assigned
by vote, an account linked by offer and acceptance, bad input refused with one clear message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from node.devnet.anvil import AnvilControl, AnvilProcess
from node.devnet.consortium import devnet_account
from tests.cli.test_cli import assert_clean_failure, run_cli

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


def test_prefix_by_vote_and_account_by_offer_and_acceptance(cli_env: dict[str, str]) -> None:
    orgs = ok("registry", "orgs", env=cli_env)
    assert "9521234" in orgs  # the demo manufacturer's founding prefix
    assert "3 votes (25% of the active members, rounded up)" in orgs

    created = ok("registry", "propose", "prefix", "3", "0614141", "--as", "manufacturer", env=cli_env)
    match = re.search(r"proposal (\d+) created", created)
    assert match, created
    assert "executed" not in ok("registry", "vote", match.group(1), "--as", "inspector", env=cli_env)
    assert "executed" in ok("registry", "vote", match.group(1), "--as", "customs", env=cli_env)
    assert "0614141" in carrier_row(ok("registry", "orgs", env=cli_env))

    ok("registry", "account", "offer", BUYER, "--as", "carrier", env=cli_env)
    assert BUYER not in ok("registry", "orgs", env=cli_env)  # an offer links nothing
    assert "linked to organisation 3" in ok("registry", "account", "accept", "3", "--as", "buyer", env=cli_env)
    assert BUYER in ok("registry", "orgs", env=cli_env)


def test_bad_prefix_and_threshold_are_refused_before_touching_the_chain(cli_env: dict[str, str]) -> None:
    assert_clean_failure(run_cli("registry", "propose", "prefix", "3", "12ab", "--as", "manufacturer", env=cli_env), 2, "GS1 Company Prefix")
    assert_clean_failure(run_cli("registry", "propose", "threshold", "10001", "--as", "manufacturer", env=cli_env), 2)
    assert_clean_failure(run_cli("registry", "account", "accept", "5", "--as", "buyer", env=cli_env), 7, "RegistryNoOffer")
