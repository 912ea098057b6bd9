"""Start, stop and inspect the embedded Anvil devnet, and Anvil's own RPC controls."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

# The devnet's facts live low, where production reads them; re-exported for the devnet tooling.
from node.chain.devnet_keys import DEVNET_ACCOUNTS as DEVNET_ACCOUNTS
from node.chain.devnet_keys import DEVNET_CHAIN_ID as DEVNET_CHAIN_ID
from node.chain.devnet_keys import DEVNET_MNEMONIC as DEVNET_MNEMONIC
from node.chain.devnet_keys import DEVNET_PORT as DEVNET_PORT
from node.errors import WaymarkError
from node.paths import DEVNET_DIR, NODE_MODULES

STATE_DIR = DEVNET_DIR / "anvil" / "state"


class DevnetError(WaymarkError):
    code = "devnet_error"


class AnvilNotInstalled(DevnetError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"anvil binary not found at {path}; run `make setup`")


class AnvilStartFailed(DevnetError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"anvil did not start: {detail}")


def anvil_binary() -> Path:
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = platform.system().lower()
    path = NODE_MODULES / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if not path.exists():
        raise AnvilNotInstalled(path)
    return path


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    response = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=timeout
    )
    body = response.json()
    if "error" in body:
        raise DevnetError(f"{method} failed: {body['error'].get('message')}")
    return body["result"]


def answers(url: str) -> bool:
    try:
        rpc(url, "eth_chainId", timeout=1.0)
        return True
    except (requests.RequestException, ValueError, DevnetError):
        return False


@dataclass
class AnvilProcess:
    """A running Anvil. `state_file` set means chain state is loaded from and saved to disk."""

    port: int
    chain_id: int = DEVNET_CHAIN_ID
    state_file: Path | None = None
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    block_time: float | None = None
    """Seconds between blocks (interval mining, as a Besu/QBFT network); None mines each transaction at once."""
    state_interval: int = 10
    history_states: int = 16

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--mnemonic", DEVNET_MNEMONIC,
            "--accounts", str(DEVNET_ACCOUNTS),
            "--balance", "1000000",
            # A consortium chain charges no fees; the code still works with a base fee.
            "--base-fee", "0",
            "--gas-price", "0",
        ]
        if self.block_time is not None:
            cmd += ["--block-time", f"{self.block_time:g}"]
        if self.state_file is not None:
            # Saved every `state_interval` seconds and on exit (SIGTERM), so even a killed devnet
            # keeps its deployment and loses at most that many seconds of blocks. Only the current
            # state is saved, and anvil keeps the last `history_states` states in memory (an
            # eth_call at an older block is refused; blocks, receipts and logs are all kept):
            # `--preserve-historical-states` made state.json grow by every state at every block
            # and anvil's memory, CPU and pauses with it, so a demo degraded by the minute.
            # What stays (anvil 1.7.1, measured for issue 17): every block, transaction, receipt
            # and call trace in memory, about 20-30 KB per mined transaction at first (less once
            # its heap is warm), with or without --prune-history, and even with
            # --transaction-block-keeper (which also drops the old logs an audit replays). A
            # restart from state.json keeps every log (tests/devnet/test_anvil_restart_logs.py)
            # but reloads every block too (54 MB after 1,441 transactions, 73 MB before the
            # restart, 26 MB empty): memory grows with the chain, not with time; interval
            # mining (--block-time) grows faster per transaction than one block per transaction.
            # What bounds it per minute is the node's anchor_interval: a member anchors a partial
            # batch at most every 5 s, 12 transactions a minute under a steady stream.
            cmd += [
                "--state", str(self.state_file), "--state-interval", str(self.state_interval),
                "--prune-history", str(self.history_states),
            ]
        return cmd

    def start(self, timeout: float = 30.0) -> "AnvilProcess":
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AnvilStartFailed(f"exited with code {self.process.returncode}" + self._log_tail())
            if answers(self.rpc_url):
                return self
            time.sleep(0.05)
        self.stop()
        raise AnvilStartFailed(f"no answer on {self.rpc_url} within {timeout:.0f}s" + self._log_tail())

    def _log_tail(self) -> str:
        if self.log_file and self.log_file.exists():
            return "; log: " + self.log_file.read_text(errors="replace")[-500:].strip()
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # SIGTERM lets anvil write its state file
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class AnvilControl:
    """Anvil's own RPC methods: time travel, mining, snapshots. Devnet and tests only."""

    def __init__(self, rpc_url: str) -> None:
        self.rpc_url = rpc_url

    def mine(self, blocks: int = 1) -> None:
        rpc(self.rpc_url, "anvil_mine", [hex(blocks)])

    def increase_time(self, seconds: int) -> None:
        rpc(self.rpc_url, "evm_increaseTime", [seconds])
        self.mine()

    def set_next_block_timestamp(self, timestamp: int) -> None:
        rpc(self.rpc_url, "evm_setNextBlockTimestamp", [timestamp])

    def snapshot(self) -> str:
        return str(rpc(self.rpc_url, "evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if not rpc(self.rpc_url, "evm_revert", [snapshot_id]):
            raise DevnetError(f"snapshot {snapshot_id} could not be restored")

    def set_interval_mining(self, seconds: int) -> None:
        """Mine a block every `seconds` from now on (automine off), as `--block-time` does from the start."""
        rpc(self.rpc_url, "evm_setIntervalMining", [seconds])

    def set_automine(self, enabled: bool) -> None:
        rpc(self.rpc_url, "evm_setAutomine", [enabled])

    def drop_all_transactions(self) -> None:
        rpc(self.rpc_url, "anvil_dropAllTransactions")


# ---- the persistent devnet the CLI manages ---------------------------------------------


@dataclass(frozen=True)
class DevnetStatus:
    running: bool
    pid: int | None
    rpc_url: str
    chain_id: int | None
    block: int | None
    state_file: Path


PID_FILE = STATE_DIR / "anvil.pid"
STATE_FILE = STATE_DIR / "state.json"
LOG_FILE = STATE_DIR / "anvil.log"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded_pid() -> int | None:
    try:
        pid = int(json.loads(PID_FILE.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None
    return pid if _pid_alive(pid) else None


def devnet_status(port: int = DEVNET_PORT) -> DevnetStatus:
    url = f"http://127.0.0.1:{port}"
    pid = _recorded_pid()
    chain_id = block = None
    if answers(url):
        chain_id = int(rpc(url, "eth_chainId"), 16)
        block = int(rpc(url, "eth_blockNumber"), 16)
    return DevnetStatus(pid is not None and chain_id is not None, pid, url, chain_id, block, STATE_FILE)


def devnet_up(port: int = DEVNET_PORT, block_time: float | None = None) -> DevnetStatus:
    """Start the persistent devnet in the background unless it already runs. Idempotent."""
    status = devnet_status(port)
    if status.running:
        return status
    if status.chain_id is not None:
        raise AnvilStartFailed(f"port {port} is taken by another chain (chain id {status.chain_id})")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    anvil = AnvilProcess(port=port, state_file=STATE_FILE, log_file=LOG_FILE, block_time=block_time).start()
    assert anvil.process is not None
    PID_FILE.write_text(json.dumps({"pid": anvil.process.pid, "port": port}))
    return devnet_status(port)


def devnet_down(timeout: float = 15.0) -> bool:
    """Stop the persistent devnet, letting it save its state. Returns False if it was not running."""
    pid = _recorded_pid()
    if pid is None:
        PID_FILE.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    return True
