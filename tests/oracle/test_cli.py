"""`waymark oracle run` as an operator starts it: a process signing as a demo member, taking a
webhook record and delivering it to the node; `waymark oracle status` shows its queue."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from node.paths import PROJECT_ROOT
from tests.oracle.journey import Journey
from tests.oracle.servers import NodeProcess
from waymark.demo.processes import await_answer


def test_waymark_oracle_run_delivers_a_webhook_record(anvil: AnvilProcess, node: NodeProcess, deployment_file: Path, chain_now: int, tmp_path: Path) -> None:
    deployments = tmp_path / "deployments"
    deployments.mkdir()
    shutil.copy(deployment_file, deployments / f"{anvil.chain_id}.json")
    port = free_port()
    env = {
        **os.environ, "PYTHONPATH": str(PROJECT_ROOT), "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(deployments),
        "WAYMARK_ORACLE_RETRY_MAX": "0.5",
    }
    data = tmp_path / "oracle"
    command = [sys.executable, "-m", "waymark", "oracle", "run", "--as", "manufacturer", "--port", str(port), "--node-url", node.url,
               "--rpc-url", anvil.rpc_url, "--chain-id", str(anvil.chain_id), "--data-dir", str(data), "--adapters", "production,packing"]
    log = open(tmp_path / "oracle.log", "wb")
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        answer = await_answer(f"http://127.0.0.1:{port}/health", 60, running=lambda: process.poll() is None)
        assert answer is not None, (tmp_path / "oracle.log").read_text()
        assert answer.json()["account"] == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # the manufacturer's dev account
        adapters = [a["name"] for a in httpx.get(f"http://127.0.0.1:{port}/adapters", timeout=5).json()]
        assert adapters == ["production", "packing"]
        response = httpx.post(f"http://127.0.0.1:{port}/webhooks/production", json=Journey(chain_now + 5, tag=9).production(), timeout=10)
        assert response.status_code == 202, response.text
        node.wait_anchored(response.json()["eventIds"])
        refused = httpx.post(f"http://127.0.0.1:{port}/webhooks/iot", json={}, timeout=5)
        assert refused.status_code == 404 and "production, packing" in refused.json()["message"]
    finally:
        process.terminate()
        process.wait(timeout=20)
    status = subprocess.run([sys.executable, "-m", "waymark", "oracle", "status", "--data-dir", str(data)],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["queue"] == {"event": {"delivered": 1}}
