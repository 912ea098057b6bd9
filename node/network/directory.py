"""The member-node directory, read from the ConsortiumRegistry (never from configuration).

Each organisation publishes its node's public base URL with `setNodeRecord(url, key)`; hosting
(`hostOf`, `hostOfAt`) says which node serves an organisation without a node of its own. The
few registry functions used here are declared inline so the directory works against any
deployment that has them; a registry without them (an older deployment) has no directory.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception

log = logging.getLogger(__name__)

_NODE_RECORD = [
    {"name": "url", "type": "string"},
    {"name": "encryptionKey", "type": "bytes32"},
    {"name": "updatedAt", "type": "uint48"},
]
DIRECTORY_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "organisationCount", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint64"}]},
    {"type": "function", "name": "organisationOf", "stateMutability": "view",
     "inputs": [{"name": "account", "type": "address"}], "outputs": [{"name": "", "type": "uint64"}]},
    {"type": "function", "name": "nodeRecord", "stateMutability": "view",
     "inputs": [{"name": "orgId", "type": "uint64"}],
     "outputs": [{"name": "", "type": "tuple", "components": _NODE_RECORD}]},
    {"type": "function", "name": "hostOf", "stateMutability": "view",
     "inputs": [{"name": "orgId", "type": "uint64"}], "outputs": [{"name": "", "type": "uint64"}]},
    {"type": "function", "name": "hostOfAt", "stateMutability": "view",
     "inputs": [{"name": "orgId", "type": "uint64"}, {"name": "timestamp", "type": "uint256"}],
     "outputs": [{"name": "", "type": "uint64"}]},
]


@dataclass(frozen=True)
class Peer:
    org_id: int
    url: str


class Directory:
    """Node URLs and hosting by organisation, re-read from the chain at most every `ttl` seconds."""

    def __init__(self, w3: Web3, registry_address: str, *, ttl: float = 5.0) -> None:
        self.contract = w3.eth.contract(address=Web3.to_checksum_address(registry_address), abi=DIRECTORY_ABI)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._urls: dict[int, str] = {}
        self._hosts: dict[int, int] = {}
        self._host_at: dict[tuple[int, int], int] = {}

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._read_at < self.ttl:
                return
            fns = self.contract.functions
            urls: dict[int, str] = {}
            hosts: dict[int, int] = {}
            for org in range(1, int(fns.organisationCount().call()) + 1):
                url = _or_none(lambda o=org: str(fns.nodeRecord(o).call()[0]))
                if url:
                    urls[org] = url.rstrip("/")
                hosts[org] = _or_none(lambda o=org: int(fns.hostOf(o).call())) or 0
            self._urls, self._hosts = urls, hosts
            self._read_at = time.monotonic()

    def refresh(self) -> None:
        """Read the directory again now."""
        self._read_at = -1e9
        self._refresh()

    def url_of(self, org_id: int) -> str | None:
        """The public base URL of the node serving `org_id` (its own, or its host's)."""
        self._refresh()
        return self._urls.get(org_id) or self._urls.get(self._hosts.get(org_id, 0))

    def host_of(self, org_id: int) -> int:
        """The organisation hosting `org_id` now (0: none)."""
        self._refresh()
        return self._hosts.get(org_id, 0)

    def hosted_by(self, org_id: int) -> set[int]:
        """Organisations `org_id`'s node hosts now."""
        self._refresh()
        return {hosted for hosted, host in self._hosts.items() if host == org_id}

    def host_of_at(self, org_id: int, timestamp: int) -> int:
        """The organisation that hosted `org_id` at `timestamp` (0: none). Immutable once past: cached."""
        key = (org_id, timestamp)
        if key not in self._host_at:
            self._host_at[key] = _or_none(lambda: int(self.contract.functions.hostOfAt(org_id, timestamp).call())) or 0
        return self._host_at[key]

    def peers(self, own_org: int | None) -> list[Peer]:
        """Every other member node in the directory."""
        self._refresh()
        return [Peer(org, url) for org, url in sorted(self._urls.items()) if org != own_org]

    def organisation_of(self, account: str) -> int:
        return int(self.contract.functions.organisationOf(Web3.to_checksum_address(account)).call())


def _or_none(call: Any) -> Any:
    """A registry read, or None where the deployed registry lacks the function (older deployment)."""
    try:
        return call()
    except (ContractLogicError, Web3Exception, ValueError) as exc:
        log.debug("directory read failed: %s", exc)
        return None
