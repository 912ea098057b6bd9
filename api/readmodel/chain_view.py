"""What the read model asks of the chain, cached so that a cold passport costs no RPC per scan.

* The registry's history (roles, organisations, hosting and the maximum reporting delay at a
  time: node.protocol.verification's `Registry`) is answered in memory by a `RoleMirror`
  (node.member.ingest.roles) that replays the ConsortiumRegistry's logs. It re-reads the newest
  logs when the head has moved (seen at most once a second), in whichever thread asks first
  while the others read the state as it is: one eth_getLogs per new block for the whole
  process, never one per scan or per event.
* Anchors are read from the BatchAnchored logs the node's indexer stored (the indexer keeps
  only confirmed blocks and rolls back what a reorganisation removed): every root of a passport
  not cached yet in one indexed read (`prefetch_anchors`), kept per root for `ttl` seconds, so
  every unit whose events share a batch shares the lookup. An anchor not in the index is asked
  of the chain only if the indexer had not stored every block up to the head when the root was
  read (a root anchored since, or one organisation's anchor after another's); otherwise the
  index answers none, as the chain would. The chain's answers are kept per (root,
  organisation) for `ttl` seconds.
* The head (number and time of the latest block) is read once a second.
* Current facts (an account's organisation and roles now, a product's registration, an
  organisation's name) are cached per account, product or organisation for `ttl` seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Database
from node.member.indexer import indexed_anchors_of, indexed_through
from node.member.ingest.roles import RoleMirror, RoleState, base_from_database
from node.protocol.attestation import AttestationDomain
from node.protocol.crypto import keccak256
from node.protocol.verification import Anchor


@dataclass(frozen=True)
class OrgInfo:
    id: int
    name: str
    country: str

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "country": self.country}


@dataclass(frozen=True)
class RootAnchors:
    """A root's anchors read from the node's index. `complete` if the indexer had stored every
    block up to the head when they were read (asked before the read): then an organisation
    missing from `anchors` had no anchor of the root at that head, as the chain would say."""

    anchors: tuple[Anchor, ...]
    complete: bool


class TTLCache:
    """A bounded map whose entries expire; `get` loads a missing or expired entry (outside the lock).

    One load per key at a time: while one thread reloads an expired entry, the others are answered
    with the expired value (at most one load's duration older), and without one they wait for that
    load. Without this, every request in flight when a busy entry (the chain head, once a second)
    expires would ask the chain the same question at once.
    """

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._data: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._loading: dict[Any, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        while True:
            now = time.monotonic()
            with self._lock:
                hit = self._data.get(key)
                if hit is not None and hit[0] > now:
                    return hit[1]
                loading = self._loading.get(key)
                if loading is None:
                    loading = self._loading[key] = threading.Event()
                    break  # this thread loads
                if hit is not None:
                    return hit[1]  # another thread is reloading it: the expired value meanwhile
            loading.wait()  # nothing to answer with yet: wait for the other thread's load, then look again
        try:
            value = load()
            with self._lock:
                self._store(key, value)
            return value
        finally:
            with self._lock:
                del self._loading[key]
            loading.set()  # a failed load lets the waiters try themselves

    def fresh(self, key: Any) -> Any:
        """The entry's value if it has not expired, else None (nothing is loaded)."""
        with self._lock:
            hit = self._data.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def missing(self, keys: Iterable[Any]) -> list[Any]:
        """The keys without an entry that has not expired, in the order given."""
        now = time.monotonic()
        with self._lock:
            return [key for key in keys if (hit := self._data.get(key)) is None or hit[0] <= now]

    def put(self, key: Any, value: Any) -> None:
        """Store a value loaded by the caller (several at once: `missing`, then one read for all)."""
        with self._lock:
            self._store(key, value)

    def _store(self, key: Any, value: Any) -> None:
        """Caller holds the lock."""
        now = time.monotonic()
        self._data[key] = (now + self.ttl, value)
        self._data.move_to_end(key)
        # Oldest first, and one ttl for all: expired entries leave from the front (a process
        # that runs for days holds what it loaded in the last ttl, not `size`).
        oldest = next(iter(self._data))
        while oldest != key and (len(self._data) > self.size or self._data[oldest][0] <= now):
            self._data.popitem(last=False)
            oldest = next(iter(self._data))


class ChainView:
    """Read-only, cached views of the registries for passports, claims and authorisation; a
    node.protocol.verification AnchorOf, and its Registry as of the head (`registry`)."""

    def __init__(self, client: ChainClient, deployment: Deployment, *, ttl: float = 30.0, db: Database | None = None) -> None:
        """With the node's `db`, the mirror starts from the registry logs its indexer stored, so
        that only the newest blocks are asked of the chain (a long chain is never read whole)."""
        self.client = client
        self.chain_id = client.chain_id
        self.provenance_address = deployment.address("ProvenanceRegistry")
        self.consortium_address = deployment.address("ConsortiumRegistry")
        self.escrow_address = deployment.contracts["TradeEscrow"].address if "TradeEscrow" in deployment.contracts else None
        self.provenance = client.contract("ProvenanceRegistry", self.provenance_address)
        self.consortium = client.contract("ConsortiumRegistry", self.consortium_address)
        self.domain = AttestationDomain(self.chain_id, self.provenance_address)
        self.db = db
        # Refreshed by `_registry` when the head moves, never by the mirror's own clock.
        base, base_block = base_from_database(db, self.chain_id, self.consortium_address) if db is not None else ([], None)
        self._mirror = RoleMirror(client.w3, self.consortium_address, start_block=deployment.start_block,
                                  refresh_interval=math.inf, base_logs=base, base_block=base_block, pager=client.logs)
        self._mirrored_head: int | None = None
        self._mirror_lock = threading.Lock()
        self._orgs = TTLCache(ttl)
        self._current = TTLCache(ttl)
        self._anchors = TTLCache(ttl, size=200_000)  # asked of the chain, by (root, organisation)
        self._root_anchors = TTLCache(ttl, size=200_000)  # read from the index, by root
        self._anchor_on_chain = client.view(self.provenance, "anchorOfOrganisation")
        self._latest = TTLCache(1.0, 1)
        self._indexed_through = TTLCache(1.0, 1)

    # ---- the registry's history (node.protocol.verification.Registry), from the mirror ----------

    def registry(self) -> RoleState:
        """The registry's history as of the head, as one state: for a build's many questions (a few
        per event), asked of it directly rather than each through the head's cache and the mirror."""
        return self._registry().snapshot()

    def _registry(self) -> RoleMirror:
        """The mirror, re-read first if the head moved since its last refresh. The first read
        waits for it; later ones refresh in the thread that gets the lock, the rest go on with
        the state as it is (at most one block old)."""
        head = self.head()
        if head != self._mirrored_head:
            first = self._mirrored_head is None
            if self._mirror_lock.acquire(blocking=first):
                try:
                    if head != self._mirrored_head:
                        self._mirror.refresh(force=True)
                        self._mirrored_head = head
                finally:
                    self._mirror_lock.release()
        return self._mirror

    # ---- anchors and the head ----------------------------------------------------------------

    def anchor_of(self, root: bytes, org_id: int) -> Anchor | None:
        """`org_id`'s anchor of `root` (anchorOfOrganisation; node.protocol.verification.AnchorOf), kept for
        the cache's time: which anchor counts for an event is node.protocol.verification's rule."""
        if org_id <= 0:
            return None
        if self.db is not None:
            indexed = self._indexed(root)
            own = next((anchor for anchor in indexed.anchors if anchor.org_id == org_id), None)
            if own is not None or indexed.complete:
                return own

        # Not in an index that lags the head: an organisation with no anchor of the root, or an
        # anchor in a block the indexer has not stored yet (a new root, or a front-run one
        # anchored by its owner after a rival). Only the chain can tell.
        def load() -> Anchor | None:
            org, block_number, timestamp, count = self._anchor_on_chain(root, org_id)
            return Anchor(root, int(org), int(block_number), int(timestamp), int(count)) if int(org) else None

        return self._anchors.get((root, org_id), load)  # type: ignore[no-any-return]

    def prefetch_anchors(self, roots: Iterable[bytes]) -> None:
        """Read the indexed anchors of every root not cached yet in one statement (a passport's
        roots, before its events are verified one by one)."""
        if self.db is None:
            return
        missing = self._root_anchors.missing(dict.fromkeys(roots))
        if missing:
            for root, read in self._read_indexed(self.db, missing).items():
                self._root_anchors.put(root, read)

    def _indexed(self, root: bytes) -> RootAnchors:
        """The root's anchors as the node's indexer stored their BatchAnchored logs."""
        db = self.db
        assert db is not None
        return self._root_anchors.get(root, lambda: self._read_indexed(db, [root])[root])  # type: ignore[no-any-return]

    def _read_indexed(self, db: Database, roots: list[bytes]) -> dict[bytes, RootAnchors]:
        """The roots' anchors from the index in one read, each with whether it is complete."""
        complete = self._index_covers_head()  # before the read: see RootAnchors
        with db.connect() as conn:
            found = indexed_anchors_of(conn, self.chain_id, self.provenance_address, roots)
        return {root: RootAnchors(tuple(found.get(root, ())), complete) for root in roots}

    def _index_covers_head(self) -> bool:
        """Whether the node's indexer has stored every block up to the head (its cursor read at
        most once a second, as the head is)."""
        if self.db is None:
            return False
        db = self.db

        def load() -> int | None:
            with db.connect() as conn:
                return indexed_through(conn, self.chain_id)

        through: int | None = self._indexed_through.get("cursor", load)
        return through is not None and through >= self.head()

    def head(self) -> int:
        """The latest block's number (read at most once a second)."""
        return self._head()[0]

    def head_time(self) -> int:
        """The latest block's time (read with its number)."""
        return self._head()[1]

    def _head(self) -> tuple[int, int]:
        def load() -> tuple[int, int]:
            block = self.client.w3.eth.get_block("latest")
            return int(block["number"]), int(block["timestamp"])

        return self._latest.get("latest", load)  # type: ignore[no-any-return]

    # ---- current facts --------------------------------------------------------------------------

    def organisation(self, org_id: int) -> OrgInfo | None:
        def load() -> OrgInfo | None:
            if org_id <= 0 or org_id > int(self.client.call(self.consortium.functions.organisationCount())):
                return None
            _id, name, country, _meta, _status = self.client.call(self.consortium.functions.organisation(org_id))
            return OrgInfo(int(org_id), str(name), bytes(country).decode("ascii", "replace"))

        return self._orgs.get(org_id, load)  # type: ignore[no-any-return]

    def current_org(self, account: str) -> int:
        return int(self._current.get(("orgOf", account), lambda: int(self.client.call(self.consortium.functions.organisationOf(account)))))

    def has_role(self, account: str, role: str) -> bool:
        return bool(self._current.get(("hasRole", account, role), lambda: bool(self.client.call(self.consortium.functions.hasRole(account, keccak256(role.encode()))))))

    def product_org(self, gtin: str) -> int | None:
        """The organisation that registered product class `gtin` (None if unregistered)."""
        return self._product(gtin)[0]

    def product_hash(self, gtin: str) -> bytes | None:
        """The master data hash registered with product class `gtin` (None if unregistered)."""
        return self._product(gtin)[1]

    def _product(self, gtin: str) -> tuple[int | None, bytes | None]:
        def load() -> tuple[int | None, bytes | None]:
            org_id, _registered_at, metadata = self.client.call(self.provenance.functions.productOf(int(gtin)))
            return (int(org_id) or None), (bytes(metadata) if org_id else None)

        return self._current.get(("product", gtin), load)  # type: ignore[no-any-return]
