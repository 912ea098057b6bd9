"""Organisations' document-encryption keys: the private one in the organisation's keystore
file, the public ones from the registry's node directory.

* **Keystore** (`OrgKeystore`): a JSON file ``{"orgId": 4, "x25519PrivateKey": "<64 hex>"}``
  readable by its owner only (mode 0600). It lives with the organisation (a node's setting
  `WAYMARK_DOCUMENTS_ORG_KEYSTORE`, an auditor's CLI), never in a node database next to the
  ciphertexts. `OrgKeystore.create` makes one; its `public_hex` is what the organisation
  publishes as `encryptionKey` with `ConsortiumRegistry.setNodeRecord`.
* **Directory** (`KeyDirectory`): organisation id -> raw 32-byte public key, and which active
  organisations hold a role (for policies such as "the auditors"). `RegistryKeyDirectory`
  reads `nodeRecord(orgId).encryptionKey` and the organisations' roles from the chain.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from node.chain.registry import ROLE_IDS, OrgStatus, RegistryClient
from node.documents.crypto import public_bytes
from node.documents.errors import KeystoreError


@dataclass(frozen=True)
class OrgKeystore:
    org_id: int
    private_key: X25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return public_bytes(self.private_key)

    @property
    def public_hex(self) -> str:
        return "0x" + self.public_key.hex()

    @classmethod
    def create(cls, path: Path, org_id: int) -> "OrgKeystore":
        """A fresh key for `org_id`, written to `path` (refused if the file exists)."""
        private = X25519PrivateKey.generate()
        body = orjson.dumps({"orgId": org_id, "x25519PrivateKey": private.private_bytes_raw().hex()})
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeystoreError(f"{path} exists: a keystore is never overwritten (its key may still open documents)") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        return cls(org_id, private)

    @classmethod
    def load(cls, path: Path) -> "OrgKeystore":
        try:
            data = orjson.loads(Path(path).read_bytes())
            org_id = int(data["orgId"])
            raw = bytes.fromhex(str(data["x25519PrivateKey"]))
        except FileNotFoundError:
            raise KeystoreError(f"no keystore at {path}") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise KeystoreError(f"{path} is not a document keystore ({{\"orgId\": n, \"x25519PrivateKey\": hex}})") from None
        if org_id <= 0 or len(raw) != 32:
            raise KeystoreError(f"{path}: orgId must be positive and x25519PrivateKey 32 bytes of hex")
        return cls(org_id, X25519PrivateKey.from_private_bytes(raw))


class KeyDirectory(Protocol):
    def encryption_key(self, org_id: int) -> bytes | None:
        """The organisation's raw X25519 public key, None if it published none."""
        ...

    def organisations_with_role(self, role: str) -> list[int]:
        """Ids of the active organisations holding `role`."""
        ...


class StaticKeyDirectory:
    """A fixed directory (tests of the store alone)."""

    def __init__(self, keys: Mapping[int, bytes], roles: Mapping[str, list[int]] | None = None) -> None:
        self.keys = dict(keys)
        self.roles = {k: list(v) for k, v in (roles or {}).items()}

    def encryption_key(self, org_id: int) -> bytes | None:
        return self.keys.get(org_id)

    def organisations_with_role(self, role: str) -> list[int]:
        return list(self.roles.get(role, []))


class RegistryKeyDirectory:
    """Keys and role holders from the ConsortiumRegistry (cached for `ttl` seconds)."""

    def __init__(self, client: Any, deployment: Any, *, ttl: float = 30.0) -> None:
        self.registry = RegistryClient(client, deployment)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._keys: dict[int, tuple[float, bytes | None]] = {}
        self._roles: tuple[float, dict[str, list[int]]] | None = None

    def _cached(self, org_id: int, load: Callable[[], bytes | None]) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            hit = self._keys.get(org_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = load()
        with self._lock:
            self._keys[org_id] = (now, value)
        return value

    def encryption_key(self, org_id: int) -> bytes | None:
        return self._cached(org_id, lambda: self.registry.node_record(org_id).encryption_key)

    def organisations_with_role(self, role: str) -> list[int]:
        now = time.monotonic()
        with self._lock:
            cached = self._roles
        if cached is None or now - cached[0] >= self.ttl:
            client, functions = self.registry.client, self.registry.contract.functions
            table: dict[str, list[int]] = {}
            for org_id in range(1, int(client.call(functions.organisationCount())) + 1):
                if int(client.call(functions.organisation(org_id))[4]) != OrgStatus.ACTIVE:
                    continue
                for held in client.call(functions.rolesOf(org_id)):
                    name = ROLE_IDS.get(bytes(held))
                    if name is not None:
                        table.setdefault(name, []).append(org_id)
            cached = (now, table)
            with self._lock:
                self._roles = cached
        return list(cached[1].get(role, []))
