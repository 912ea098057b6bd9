"""Document keystores for the demo organisations of a test, their public keys published in the
registry's node directory (ConsortiumRegistry.setNodeRecord, by an account of each organisation).

Each organisation's private key stays in its own keystore file, which only that organisation's
node (or client) is given; nodes learn the public keys, and the peers' URLs, from the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from waymark.devnet.consortium import DEMO_MEMBERS, devnet_account
from node.documents import OrgKeystore
from node.chain.registry import RegistryClient


@dataclass(frozen=True)
class OrgKeys:
    keystores: dict[str, Path]  # by demo member key (manufacturer, customs, ...)
    org_ids: dict[str, int]

    def keystore(self, member: str) -> OrgKeystore:
        return OrgKeystore.load(self.keystores[member])


def make_org_keys(folder: Path, chain: ChainClient, deployment: Deployment, urls: Mapping[str, str] | None = None) -> OrgKeys:
    """A keystore per demo organisation, its public key (and node URL, from `urls` by member key) published."""
    registry = RegistryClient(chain, deployment)
    folder.mkdir(parents=True, exist_ok=True)
    keystores: dict[str, Path] = {}
    org_ids: dict[str, int] = {}
    for member in DEMO_MEMBERS:
        account = devnet_account(member.account_index)
        org_id = int(chain.call(registry.contract.functions.organisationOf(account.address)))
        assert org_id, f"{member.key} has no organisation on this chain"
        path = folder / f"{member.key}.keystore.json"
        keystore = OrgKeystore.create(path, org_id)
        registry.set_node_record((urls or {}).get(member.key, ""), keystore.public_key, sender=account)
        keystores[member.key], org_ids[member.key] = path, org_id
    return OrgKeys(keystores, org_ids)
