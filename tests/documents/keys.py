"""Document keystores for the demo organisations of a test, and the directory of their public keys.

The registry of these tests may predate node records (helper `registry` adds them), so the
public keys are handed to the nodes as a key directory file (WAYMARK_DOCUMENTS_KEY_DIRECTORY_FILE);
each organisation's private key stays in its own keystore file, which only that organisation's
node (or client) is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.devnet.consortium import DEMO_MEMBERS, devnet_account
from node.documents import OrgKeystore


@dataclass(frozen=True)
class OrgKeys:
    directory_file: Path
    keystores: dict[str, Path]  # by demo member key (manufacturer, customs, ...)
    org_ids: dict[str, int]

    def keystore(self, member: str) -> OrgKeystore:
        return OrgKeystore.load(self.keystores[member])


def make_org_keys(folder: Path, chain: ChainClient, deployment: Deployment) -> OrgKeys:
    registry = chain.contract("ConsortiumRegistry", deployment.address("ConsortiumRegistry"))
    folder.mkdir(parents=True, exist_ok=True)
    keystores: dict[str, Path] = {}
    org_ids: dict[str, int] = {}
    public: dict[str, str] = {}
    for member in DEMO_MEMBERS:
        org_id = int(chain.call(registry.functions.organisationOf(devnet_account(member.account_index).address)))
        assert org_id, f"{member.key} has no organisation on this chain"
        path = folder / f"{member.key}.keystore.json"
        keystore = OrgKeystore.create(path, org_id)
        keystores[member.key], org_ids[member.key], public[str(org_id)] = path, org_id, keystore.public_hex
    directory_file = folder / "directory.json"
    directory_file.write_bytes(orjson.dumps(public))
    return OrgKeys(directory_file, keystores, org_ids)
