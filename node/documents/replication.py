"""Document replication between member nodes: sealed, so a document survives the loss of a node
without any node learning what it says.

Each node serves its changes at `GET /documents/sealed?after=<seq>&limit=<n>` (a request
signed, action "replicate", by an account of an active member organisation, for that node:
see node.documents.signing): ciphertexts with their wrapped keys, and the signed erasure
notices of erased documents. `DocumentReplicator.poll_once` reads every peer's feed from
where it stopped (peers: the registry's node directory and configured URLs) and imports:

* a sealed document it does not hold, as it is (it opens only with a reader's keystore), once
  the uploader's signed upload request that travels with it shows that the owner it names is
  the organisation of the account that uploaded it;
* an erasure notice whose signature recovers to an account allowed to erase the document
  (node.documents.policy): every wrapped key and the ciphertext go here too, and the notice
  enters this node's own feed, so it travels on to nodes that never talk to the first one.

A notice that does not verify, or an entry that is malformed, is skipped and reported, and the
cursor moves on (a peer cannot stall replication with one bad entry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from node.db import Database
from node.db.documents import DocumentPeerCursor
from node.documents.errors import DocumentError
from node.documents.policy import AccessPolicy
from node.documents.signing import ErasureNotice, request_target_digest, sign_document_request, verify_erasure, verify_upload_proof
from node.documents.storage import DocumentStore, parse_digest
from node.protocol.audience import normalise_audience
from node.protocol.crypto import PrivateKeyLike

log = logging.getLogger(__name__)

FEED_PATH = "/documents/sealed"


@dataclass
class PollReport:
    imported: int = 0
    erased: int = 0
    skipped: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


class DocumentReplicator:
    """Pulls peers' sealed feeds into `store`."""

    def __init__(
        self,
        store: DocumentStore,
        policy: AccessPolicy,
        *,
        signer: PrivateKeyLike,
        chain_id: int,
        registry: str,
        peers: Callable[[], list[str]],
        own_url: str,
        limit: int = 200,
        http: httpx.Client | None = None,
    ) -> None:
        self.store = store
        self.db: Database = store.db
        self.policy = policy
        self.signer = signer
        self.chain_id = chain_id
        self.registry = registry
        self.peers = peers
        self.own_url = normalise_audience(own_url)
        self.limit = limit
        self.http = http or httpx.Client(timeout=10.0)

    def _cursor(self, peer: str) -> int:
        with self.db.session() as s:
            row = s.get(DocumentPeerCursor, peer)
            return int(row.seq) if row is not None else 0

    def _advance(self, peer: str, seq: int) -> None:
        with self.db.write() as s:
            row = s.get(DocumentPeerCursor, peer)
            if row is None:
                s.add(DocumentPeerCursor(peer_url=peer, seq=seq))
            elif seq > row.seq:
                row.seq = seq

    def fetch(self, peer: str, after: int) -> dict[str, Any]:
        target = f"{FEED_PATH}?{urlencode({'after': after, 'limit': self.limit})}"
        headers = sign_document_request(
            self.signer, self.chain_id, self.registry, "replicate", request_target_digest("GET", target), audience=peer
        )
        response = self.http.get(peer + target, headers=headers)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("entries"), list) or not isinstance(body.get("last"), int):
            raise ValueError(f"{peer}{FEED_PATH} answered something other than {{entries, last}}")
        return body

    def poll_once(self) -> PollReport:
        report = PollReport()
        for peer in dict.fromkeys(normalise_audience(p) for p in self.peers()):
            if peer == self.own_url:
                continue
            try:
                while True:
                    after = self._cursor(peer)
                    body = self.fetch(peer, after)
                    for entry in body["entries"]:
                        self._apply(peer, entry, report)
                    if body["last"] <= after:
                        break
                    self._advance(peer, body["last"])
            except (httpx.HTTPError, ValueError) as exc:
                report.unreachable.append(f"{peer}: {exc}")
                log.warning("document feed of %s unreadable: %s", peer, exc)
        return report

    def _owner(self, entry: dict[str, Any]) -> int:
        """The owner organisation a replica names, checked against its uploader's signed upload request."""
        digest = parse_digest(str(entry.get("digest")))
        account = verify_upload_proof(self.chain_id, self.registry, digest, entry.get("upload"))
        member = self.policy.members.membership(account)
        if member is None or member.org_id != int(entry["ownerOrg"]):
            raise ValueError(f"the replica names organisation {entry['ownerOrg']} as owner, but {account} uploaded it")
        return member.org_id

    def _apply(self, peer: str, entry: Any, report: PollReport) -> None:
        try:
            if not isinstance(entry, dict):
                raise ValueError("a feed entry is an object")
            owner = self._owner(entry)
            if entry.get("status") == "erased":
                notice = ErasureNotice.from_json(entry.get("erasure"))
                if "sha256:" + notice.digest.hex() != entry.get("digest"):
                    raise ValueError("the erasure notice is for another document")
                account = verify_erasure(self.chain_id, self.registry, notice)
                # The owner as this node knows it: a peer cannot name another owner to erase what it does not own.
                held = self.store.meta(notice.digest)
                self.policy.check_erase(account, held.owner_org if held is not None else owner)
                if self.store.import_erasure(entry, notice):
                    report.erased += 1
            elif self.store.import_sealed(entry):
                report.imported += 1
        except (DocumentError, ValueError, KeyError, TypeError) as exc:
            digest = entry.get("digest") if isinstance(entry, dict) else None
            report.skipped.append(f"{peer} {digest}: {exc}")
            log.warning("skipped document feed entry %s from %s: %s", digest, peer, exc)
