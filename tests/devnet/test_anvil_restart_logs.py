"""What a restart of the embedded devnet from its saved state keeps: every block's logs, so an
audit's replay from the deployment block (eth_getLogs over old blocks) works after it. Anvil keeps
every block and transaction in memory (no option bounds that and keeps old logs; see the soak
notes in waymark/devnet/anvil.py), so a restart at a quiet moment is the one way its memory
starts over; this is what makes it safe."""

from __future__ import annotations

import time
from pathlib import Path

from waymark.devnet.anvil import AnvilProcess, rpc
from waymark.ports import free_port

TOPIC = "0x" + "ab" * 32
# Runtime: LOG1(calldata, TOPIC); the init code returns it.
RUNTIME = "366000600037" + "7f" + "ab" * 32 + "366000a100"
INIT = f"60{len(RUNTIME) // 2:02x}80600b6000396000f3" + RUNTIME


def receipt(url: str, tx: str) -> dict[str, str]:
    deadline = time.monotonic() + 10
    while (found := rpc(url, "eth_getTransactionReceipt", [tx])) is None:
        assert time.monotonic() < deadline, f"{tx} not mined"
        time.sleep(0.05)
    return dict(found)


def test_a_restart_from_the_saved_state_keeps_every_old_log(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    anvil = AnvilProcess(port=free_port(), state_file=state, log_file=tmp_path / "anvil.log").start()
    try:
        sender = rpc(anvil.rpc_url, "eth_accounts")[0]
        deployed = receipt(anvil.rpc_url, rpc(anvil.rpc_url, "eth_sendTransaction", [{"from": sender, "data": "0x" + INIT}]))
        contract, deployment_block = deployed["contractAddress"], deployed["blockNumber"]
        for i in range(50):
            sent = rpc(anvil.rpc_url, "eth_sendTransaction", [{"from": sender, "to": contract, "data": "0x" + f"{i:064x}"}])
        receipt(anvil.rpc_url, sent)  # Anvil answers before it mines: the last log is there only once mined
        query = {"fromBlock": deployment_block, "toBlock": "latest", "address": contract, "topics": [TOPIC]}
        before = rpc(anvil.rpc_url, "eth_getLogs", [query])
        assert len(before) == 50
    finally:
        anvil.stop()  # SIGTERM: the state is saved on exit
    again = AnvilProcess(port=free_port(), state_file=state, log_file=tmp_path / "anvil2.log").start()
    try:
        after = rpc(again.rpc_url, "eth_getLogs", [query])
        assert [(log["blockNumber"], log["data"]) for log in after] == [(log["blockNumber"], log["data"]) for log in before]
        assert int(after[7]["data"], 16) == 7
    finally:
        again.stop()
