"""A small JSON file of order terms, so that a client finds an order's terms by its id alone.

The chain is the source of truth (every `OrderCreated` carries the terms in full, see
`EscrowClient.terms`); this file is a cache of what this machine created or looked up, and
holds terms the chain does not know yet (prepared by a seller, not created). Entries are keyed
by escrow address and order id, and an entry is accepted only if its terms hash to its id.
Writes replace the file atomically under an exclusive lock, so several processes can share it.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from node.escrow.terms import OrderTerms
from node.errors import WaymarkError


class TermsStoreError(WaymarkError):
    code = "terms_store_error"

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def order_key(order_id: int) -> str:
    return f"0x{order_id:064x}"


class TermsStore:
    """`{"generated": ..., "<escrow address>": {"<0x order id>": <terms JSON>}}` in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, escrow: str, order_id: int) -> OrderTerms | None:
        entry = self._read().get(to_checksum_address(escrow), {}).get(order_key(order_id))
        if entry is None:
            return None
        terms = OrderTerms.from_json(entry)
        if terms.order_id != order_id:
            raise TermsStoreError(self.path, f"the terms kept for order {order_key(order_id)} hash to another id")
        return terms

    def put(self, escrow: str, terms: OrderTerms) -> None:
        with self._locked():
            data = self._read()
            data.setdefault(to_checksum_address(escrow), {})[order_key(terms.order_id)] = terms.to_json()
            self._write(data)

    def all(self, escrow: str) -> list[OrderTerms]:
        return [OrderTerms.from_json(v) for v in self._read().get(to_checksum_address(escrow), {}).values()]

    # ---- file ----------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise TermsStoreError(self.path, f"unreadable ({exc})") from None
        if not isinstance(data, dict):
            raise TermsStoreError(self.path, "not a JSON object")
        return {k: v for k, v in data.items() if k != "generated" and isinstance(v, dict)}

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(self.path.suffix + f".{os.getpid()}.tmp")
        body = {"generated": "by the Waymark escrow client: order terms by escrow and order id", **data}
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        os.replace(tmp, self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(self.path.suffix + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
