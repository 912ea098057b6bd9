"""The member-node directory, read from the ConsortiumRegistry (never from configuration).

Each organisation publishes its node's public base URL with `setNodeRecord(url, key)`; hosting
(`hostOf`) says which node serves an organisation without a node of its own. A node publishes
its own record at start (`publish_node_record`), keeping the encryption key already there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from node.chain.client import ChainClient
from node.chain.registry import RegistryClient


@dataclass(frozen=True)
class Peer:
    org_id: int
    url: str


class Directory:
    """Node URLs and hosting by organisation (node.chain.registry's readers), re-read at most every
    `ttl` seconds, and only when the chain's head is not the block the last read saw (the directory
    changes only by transactions: an idle network costs one call per `ttl`)."""

    def __init__(self, client: ChainClient, registry_address: str, *, ttl: float = 5.0) -> None:
        self.registry = RegistryClient(client, registry_address)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._read_block: bytes | None = None
        self._urls: dict[int, str] = {}
        self._hosts: dict[int, int] = {}

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._read_at < self.ttl:
                return
            head = bytes(self.registry.client.w3.eth.get_block("latest")["hash"])
            if head != self._read_block:
                urls = {r.org_id: r.url.rstrip("/") for r in self.registry.node_directory() if r.has_node}
                count = int(self.registry.client.call(self.registry.contract.functions.organisationCount()))
                self._urls = urls
                self._hosts = {org: self.registry.host_of(org) for org in range(1, count + 1)}
                self._read_block = head
            self._read_at = time.monotonic()

    def url_of(self, org_id: int) -> str | None:
        """The public base URL of the node serving `org_id` (its own, or its host's)."""
        self._refresh()
        return self._urls.get(org_id) or self._urls.get(self._hosts.get(org_id, 0))

    def peers(self, own_org: int | None) -> list[Peer]:
        """Every other member node in the directory."""
        self._refresh()
        return [Peer(org, url) for org, url in sorted(self._urls.items()) if org != own_org]

    def organisation_of(self, account: str) -> int:
        return int(self.registry.client.call(self.registry.contract.functions.organisationOf(to_checksum_address(account))))


def publish_node_record(client: ChainClient, registry_address: str, org_id: int, url: str, sender: LocalAccount) -> bool:
    """Make the organisation's directory entry name `url` (sent from `sender`, an account of it,
    waiting for the transaction), keeping its published encryption key. True if it had to change."""
    registry = RegistryClient(client, registry_address)
    record = registry.node_record(org_id)
    if record.url == url.rstrip("/"):
        return False
    registry.set_node_record(url.rstrip("/"), record.encryption_key, sender)
    return True
