"""`waymark escrow` as users run it on the devnet: a seller, a buyer, oracles posting to a relayer
started from the CLI, an arbitrator; bad input ends in one clear message and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from waymark.devnet.anvil import AnvilControl, AnvilProcess
from waymark.ports import free_port
from waymark.devnet.consortium import devnet_account
from node.paths import PROJECT_ROOT
from tests.cli.test_cli import run_cli
from tests.cli.test_cli_mistakes import fails
from waymark.demo.processes import await_answer

BUYER = devnet_account(10).address
PLATFORM = devnet_account(5).address
CUSTOMS = devnet_account(4).address
BROKER = devnet_account(12).address
ARBITRATOR = devnet_account(6).address


@pytest.fixture
def cli_env(anvil: AnvilProcess, devnet: AnvilControl, tmp_path: Path) -> dict[str, str]:
    """The test chain, a deployment folder and database of this test's own, Waymark deployed."""
    env = {
        "WAYMARK_CHAIN_RPC_URL": anvil.rpc_url,
        "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(tmp_path / "deployments"),
        "WAYMARK_DB_URL": f"sqlite:///{tmp_path / 'relayer.sqlite3'}",
        "WAYMARK_RELAYER_DEVNET_ACCOUNT": "15",
    }
    deployed = run_cli("deploy", env=env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "DevStablecoin:wUSD" in deployed.stdout and "allowed wUSD as USD" in deployed.stdout
    return env


def ok(*args: str, env: dict[str, str]) -> str:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout


def create_order(env: dict[str, str], *extra: str) -> str:
    out = ok("escrow", "create", "--as", "manufacturer", "--buyer", BUYER, "--token", "wUSD", "--amount", "1250.50",
             "--platform", PLATFORM, "--platform-fee-bps", "100", "--shipment", "SSCC 00 0614141 123456789 0",
             "--customs-authority", CUSTOMS, "--customs-authority", BROKER, "--max-duty-bps", "500",
             "--arbitrator", ARBITRATOR, *extra,
             env=env)
    order_id = out.strip().splitlines()[-1]
    assert order_id.startswith("0x") and len(order_id) == 66, out
    assert "1250.5 wUSD" in out
    return order_id


def show(env: dict[str, str], order_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok("escrow", "show", order_id, "--json", env=env))
    return data


@pytest.fixture
def relayer_url(cli_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "relayer.log"  # a file, not a pipe nobody reads: a full pipe would stop the relayer
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "waymark", "escrow", "relayer", "run", "--port", str(port), "--sweep-interval", "0.5"],
            cwd=PROJECT_ROOT, env={**os.environ, **cli_env}, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        answer = await_answer(url + "/health", 60, running=lambda: process.poll() is None, ready=lambda r: r.status_code == 200)
        assert answer is not None, f"relayer exited: {log.read_text()}"
        yield url
    finally:
        process.terminate()
        process.wait(15)


def test_an_order_goes_from_offer_to_payout_through_the_cli_and_the_relayer(
    cli_env: dict[str, str], relayer_url: str
) -> None:
    env = cli_env
    order_id = create_order(env)
    funded = ok("escrow", "fund", order_id, "--as", "buyer", "--permit", env=env)
    assert "1250.5 wUSD deposited" in funded

    first = ok("escrow", "attest", order_id, "0", "--as", "carrier", "--relayer", relayer_url, env=env)
    assert "signature recorded: 1 of 2 organisations" in first
    assert "milestone 0 reached" in ok("escrow", "attest", order_id, "0", "--as", "forwarder", "--relayer", relayer_url, env=env)
    for member in ("customs", "broker"):
        out = ok("escrow", "attest", order_id, "1", "--as", member, "--duty", "50.5", "--duty-payee", CUSTOMS,
                 "--relayer", relayer_url, env=env)
    assert "milestone 1 reached" in out
    for member in ("courier", "forwarder"):
        out = ok("escrow", "attest", order_id, "2", "--as", member, "--relayer", relayer_url, env=env)
    assert "milestone 2 reached" in out
    delivered = show(env, order_id)
    assert delivered["order"]["state"] == "DELIVERED"

    table = ok("escrow", "show", order_id, env=env)
    assert f"order {order_id}: delivered" in table and "reached" in table

    assert "confirmed and released" in ok("escrow", "confirm", order_id, "--as", "buyer", env=env)
    # 1250.5 - 50.5 duty = 1200, of which the platform takes 1%.
    withdrawn = ok("escrow", "withdraw", "--token", "wUSD", "--as", "manufacturer", env=env)
    assert "withdrew 1188 wUSD to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8" in withdrawn
    assert "withdrew 50.5 wUSD" in ok("escrow", "withdraw", "--token", "wUSD", "--as", "customs", env=env)
    released = show(env, order_id)
    assert released["order"]["state"] == "RELEASED"
    assert released["credits"] == {"seller": "0", "buyer": "0", "platform": "12000000"}


def test_a_dispute_is_ruled_by_the_arbitrator_through_the_cli(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = cli_env
    # The terms file is a cache: another machine (here: no file at all) finds the terms on chain.
    order_id = create_order(env, "--terms-store", str(tmp_path / "seller-terms.json"))
    ok("escrow", "fund", order_id, "--as", "buyer", env=env)
    evidence = tmp_path / "photos.txt"
    evidence.write_text("three cracked vases\n")
    assert "dispute opened" in ok("escrow", "dispute", order_id, "--as", "buyer", "--evidence", str(evidence), env=env)
    ruled = ok("escrow", "rule", order_id, "--as", "arbitrator", "--buyer-share-bps", "4000", "--ruling-hash",
               "ruling 2026/17", env=env)
    assert "500.2 wUSD to the buyer" in ruled and "742.797 wUSD to the seller" in ruled
    assert show(env, order_id)["order"]["state"] == "RESOLVED"
    assert "withdrew 500.2 wUSD" in ok("escrow", "withdraw", "--token", "wUSD", "--as", "buyer", env=env)


def test_a_dispute_nobody_rules_on_lapses_through_the_cli_while_the_order_is_within_its_deadlines(
    cli_env: dict[str, str], devnet: AnvilControl
) -> None:
    env = cli_env
    order_id = create_order(env, "--ship-by", "20d", "--deliver-by", "40d")
    ok("escrow", "fund", order_id, "--as", "buyer", env=env)
    ok("escrow", "dispute", order_id, "--as", "buyer", "--evidence-hash", "late", env=env)
    devnet.increase_time(15 * 24 * 3600)  # past the 14-day dispute timeout, before ship-by
    assert "dispute lapsed" in ok("escrow", "resolve", order_id, "--as", "operator", env=env)
    assert show(env, order_id)["order"]["state"] == "FUNDED"


def test_bad_input_ends_with_one_clear_message_and_a_non_zero_exit(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = cli_env
    order_id = create_order(env)
    unknown = "0x" + "ab" * 32
    cases = [
        (("escrow", "show", "0xnothex"), 2, "is not an order id"),
        (("escrow", "show", unknown), 1, f"no order {unknown} in the OrderCreated logs"),
        (("escrow", "create", "--as", "manufacturer", "--buyer", BUYER, "--token", "wXYZ", "--amount", "1"), 2,
         "is neither an address nor a token of this deployment (wUSD, wEUR)"),
        (("escrow", "create", "--as", "manufacturer", "--buyer", BUYER, "--token", "wUSD", "--amount", "1.1234567"), 1,
         "has more than the 6 decimals of wUSD"),
        (("escrow", "create", "--as", "manufacturer", "--buyer", BUYER, "--token", "wUSD", "--amount", "1",
          "--schedule", "0,3000"), 2, "shares must sum to 10000 basis points, not 3000"),
        (("escrow", "create", "--as", "manufacturer", "--buyer", "0x12", "--token", "wUSD", "--amount", "1"), 2,
         "'0x12' is not an account address"),
        (("escrow", "confirm", order_id, "--as", "buyer"), 7, "EscrowInvalidState("),
        (("escrow", "fund", order_id, "--as", "carrier"), 7, "EscrowNotBuyer("),
        (("escrow", "withdraw", "--token", "wUSD", "--as", "buyer"), 7, "EscrowNothingToWithdraw("),
        (("escrow", "rule", order_id, "--as", "arbitrator", "--buyer-share-bps", "10001", "--ruling-hash", "x"), 2,
         "10001 is not between 0 and 10000"),
        (("escrow", "attest", order_id, "0", "--as", "carrier", "--relayer", f"http://127.0.0.1:{free_port()}"), 3,
         "cannot reach the relayer at"),
        (("escrow", "fund", order_id, "--as", "nobody"), 2, "unknown demo member 'nobody'"),
    ]
    # Each case is one command: run through the console script's entry point in this process, as
    # tests/cli/test_cli_mistakes.py does (a subprocess per case takes seconds on a loaded machine).
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for args, code, phrase in cases:
        fails(capsys, code, *args, says=(phrase,))
