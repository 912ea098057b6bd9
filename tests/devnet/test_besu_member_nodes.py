"""The Besu configuration documents each member's Waymark node (from the consortium file) and
allowlists the accounts its node anchors from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from waymark.devnet.besu.configs import accounts_before_deployment
from waymark.devnet.besu.generate import BESU_DIR, generate
from waymark.devnet.besu.spec import load_besu_network

EXAMPLE_CONSORTIUM = BESU_DIR / "consortium.example.json"
ANCHOR = "0x" + "ab" * 20


def consortium_with_a_hosted_member(tmp_path: Path) -> Path:
    data: dict[str, Any] = json.loads(EXAMPLE_CONSORTIUM.read_text())
    data["members"][0]["anchorAccounts"] = [ANCHOR]
    hosted = data["members"][1]
    del hosted["nodeUrl"]
    hosted["hostedBy"] = data["members"][0]["name"]
    path = tmp_path / "consortium.json"
    path.write_text(json.dumps(data))
    return path


def test_network_json_names_each_members_node_url_or_its_host(tmp_path: Path) -> None:
    network = load_besu_network(consortium_with_a_hosted_member(tmp_path))
    out = tmp_path / "out"
    generate(network, out, accounts_before_deployment(network), "test")
    nodes = json.loads((out / "network.json").read_text())["memberNodes"]
    assert nodes == [
        {"member": "Lumen Ceramics Co.", "nodeUrl": "https://waymark.lumen-ceramics.example", "hostedBy": None},
        {"member": "Meridian Inspection Services", "nodeUrl": None, "hostedBy": "Lumen Ceramics Co."},
        {"member": "Bluewater Ocean Freight", "nodeUrl": "https://waymark.bluewater-freight.example", "hostedBy": None},
        {"member": "Customs Office Rotterdam", "nodeUrl": "https://waymark.customs-rotterdam.example", "hostedBy": None},
    ]


def test_anchor_accounts_are_allowlisted_before_the_registry_exists(tmp_path: Path) -> None:
    network = load_besu_network(consortium_with_a_hosted_member(tmp_path))
    accounts = accounts_before_deployment(network)
    assert accounts[:2] == [network.consortium.members[0].account.lower(), ANCHOR]
    assert network.deployer is not None and accounts[-1] == network.deployer.lower()
