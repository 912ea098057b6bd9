"""The persistent devnet saves its current state (at an interval and on exit), not every
historical state: state.json stays small as blocks accumulate, and a restart has every block."""

from __future__ import annotations

import json
import time
from pathlib import Path

from waymark.devnet.anvil import AnvilProcess, rpc
from waymark.ports import free_port


def _dumped_head(state: Path) -> int | None:
    """The head block of the state Anvil dumped, None while there is none or it is being written
    (Anvil writes its interval dump in place: a read can meet half of it)."""
    try:
        return json.loads(state.read_text()).get("best_block_number")  # type: ignore[no-any-return]
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_state_file_keeps_no_historical_states_and_a_restart_keeps_every_block(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    anvil = AnvilProcess(port=free_port(), state_file=state, log_file=tmp_path / "anvil.log", state_interval=1, history_states=16).start()
    try:
        sender, receiver = rpc(anvil.rpc_url, "eth_accounts")[:2]
        sent = [rpc(anvil.rpc_url, "eth_sendTransaction", [{"from": sender, "to": receiver, "value": "0x1"}]) for _ in range(200)]
        # Anvil answers a send once the transaction is in its pool and mines it a moment later, so a
        # transfer sent meanwhile can share its block (seen in CI under load: 199 blocks for 200
        # transfers). The head is read once the last one is mined; the restart below must keep it
        # and every transfer.
        deadline = time.monotonic() + 15
        while rpc(anvil.rpc_url, "eth_getTransactionReceipt", [sent[-1]]) is None:
            assert time.monotonic() < deadline, "the last transfer was not mined"
            time.sleep(0.05)
        head = int(rpc(anvil.rpc_url, "eth_blockNumber"), 16)
        deadline = time.monotonic() + 15  # the interval dump (every second here)
        while _dumped_head(state) != head:
            assert time.monotonic() < deadline, "no interval dump of the state"
            time.sleep(0.1)
    finally:
        anvil.stop()  # SIGTERM: dumped on exit
    saved = json.loads(state.read_text())
    assert saved["historical_states"] is None
    # About 3-4 KB per block of one transfer (blocks and receipts); every historical state
    # (--preserve-historical-states) made it about ten times that.
    assert state.stat().st_size < 200 * 5_000, state.stat().st_size
    again = AnvilProcess(port=free_port(), state_file=state, log_file=tmp_path / "anvil2.log").start()
    try:
        assert int(rpc(again.rpc_url, "eth_blockNumber"), 16) == head
        assert rpc(again.rpc_url, "eth_getBlockByNumber", ["0x5", False])["number"] == "0x5"
        balance = int(rpc(again.rpc_url, "eth_getBalance", [receiver, "latest"]), 16)
        assert balance == 1_000_000 * 10**18 + 200
    finally:
        again.stop()
