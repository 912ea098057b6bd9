"""The sealed document store (node/documents/) through its HTTP routes, on SQLite and PostgreSQL,
with access decided by the real ConsortiumRegistry on Anvil: what is stored is ciphertext, the
database holds no key that opens it, each tier opens what its policy allows, erasure leaves a
verifiable hash. (Replication between node processes: tests/documents/.)"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from node.member.app import create_app
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Database
from node.db.documents import DocumentKey, DocumentKeyWrap, StoredDocument
from waymark.devnet.consortium import devnet_account
from node.documents import (
    AccessPolicy,
    ChainMembership,
    DocumentCorrupt,
    DocumentSettings,
    DocumentStore,
    FileBlobStore,
    StaticKeyDirectory,
    digest_text,
    encrypt,
    erasure_headers,
    open_sealed,
    sign_document_request,
    sign_erasure,
)
from node.documents.replication import DocumentReplicator, PollReport
from node.member.proofs import verify_bundle
from node.protocol import epcis
from node.protocol.attestation import sign_attestation
from node.member.runtime import NodeRuntime, build_anchorer
from tests.documents.keys import OrgKeys, make_org_keys
from tests.node.story import iso

MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS = (devnet_account(i) for i in (1, 2, 3, 4))
ARBITRATOR, AUDITOR, OUTSIDER = devnet_account(6), devnet_account(7), devnet_account(15)
REPORT = b"%PDF-1.7\nInspection report MIS-2025-0713: 125 units sampled, 0 defects (AQL 2.5). Inspector: S. Tan\n"
INVOICE = b"%PDF-1.7\nCommercial invoice LC-2025-311: 1,000 vases at EUR 18.40 = EUR 18,400.00\n"


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def keys(tmp_path: Path, chain: ChainClient, deployment: Deployment) -> OrgKeys:
    return make_org_keys(tmp_path / "keys", chain, deployment)


@pytest.fixture
def api(runtime: NodeRuntime, blob_dir: Path, keys: OrgKeys) -> Iterator[TestClient]:
    # The manufacturer's node: it holds the manufacturer's keystore and no other.
    settings = DocumentSettings(
        blob_dir=blob_dir, membership_ttl=0, key_ttl=0, org_keystore=keys.keystores["manufacturer"],
    )
    app: FastAPI = create_app(runtime, run_indexer=False, documents=settings)
    with TestClient(app) as client:
        yield client


def headers(runtime: NodeRuntime, account: object, action: str, digest: bytes, audience: str | None = None) -> dict[str, str]:
    registry = runtime.deployment.address("ConsortiumRegistry")
    return sign_document_request(
        account, runtime.client.chain_id, registry, action, digest, audience=audience or runtime.node.public_url  # type: ignore[arg-type]
    )


def upload(
    api: TestClient, runtime: NodeRuntime, content: bytes = REPORT, account: object = INSPECTOR, kind: str = "inspection_report",
    readers: str = "",
) -> dict[str, Any]:
    digest = hashlib.sha256(content).digest()
    response = api.post("/documents", content=content, headers={
        **headers(runtime, account, "upload", digest), "Content-Type": "application/pdf", "Waymark-Document-Type": kind,
        **({"Waymark-Readers": readers} if readers else {}),
    })
    assert response.status_code in (200, 201), response.text
    assert response.json()["digest"] == digest_text(digest)
    answer: dict[str, Any] = response.json()
    return answer


def open_for(api: TestClient, runtime: NodeRuntime, keys: OrgKeys, member: str, account: object, digest: str) -> bytes:
    """What an organisation reads: the envelope from the node, opened with its own keystore."""
    raw = bytes.fromhex(digest[7:])
    response = api.get(f"/documents/{digest}/sealed", headers=headers(runtime, account, "read", raw))
    assert response.status_code == 200, response.text
    envelope = response.json()
    keystore = keys.keystore(member)
    assert envelope["orgId"] == keystore.org_id
    return open_sealed(base64.b64decode(envelope["ciphertext"]), base64.b64decode(envelope["wrappedKey"]), keystore.private_key, raw, keystore.org_id)


def test_stored_bytes_are_ciphertext_and_no_key_in_the_database_opens_them(
    api: TestClient, runtime: NodeRuntime, blob_dir: Path, keys: OrgKeys
) -> None:
    answer = upload(api, runtime)
    digest = str(answer["digest"])
    raw = bytes.fromhex(digest[7:])
    blobs = list(blob_dir.iterdir())
    assert len(blobs) == 1
    stored = blobs[0].read_bytes()
    assert REPORT not in stored and b"Inspection report" not in stored and b"S. Tan" not in stored
    assert len(stored) == len(REPORT) + 4 + 12 + 16  # magic, nonce, GCM tag
    inspector, auditor, arbitrator = keys.org_ids["inspector"], keys.org_ids["auditor"], keys.org_ids["arbitrator"]
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(DocumentKey)) == 0  # no key in the clear, ever
        wraps = {w.org_id: bytes(w.wrapped) for w in s.scalars(select(DocumentKeyWrap).where(DocumentKeyWrap.digest == raw))}
        row = s.get(StoredDocument, raw)
    assert row is not None and row.owner_org == inspector and row.document_type == "inspection_report"
    # Sealed for the uploader and the role tier of inspection reports (auditors, arbitrators); not for a carrier.
    assert set(wraps) == {inspector, auditor, arbitrator} == set(answer["sealedFor"])
    for member, org in (("inspector", inspector), ("auditor", auditor)):
        assert open_sealed(stored, wraps[org], keys.keystore(member).private_key, raw, org) == REPORT
    # A wrapped key opens for its organisation's private key only, and for this document only.
    with pytest.raises(DocumentCorrupt):
        open_sealed(stored, wraps[auditor], keys.keystore("carrier").private_key, raw, auditor)
    with pytest.raises(DocumentCorrupt):
        open_sealed(stored, wraps[auditor], keys.keystore("auditor").private_key, hashlib.sha256(b"x").digest(), auditor)
    # Another document gets another key; the same one uploaded again is not stored twice.
    second = upload(api, runtime, b"%PDF other report")
    assert upload(api, runtime)["digest"] == digest and len(list(blob_dir.iterdir())) == 2 and second["digest"] != digest


def test_each_tier_opens_what_its_policy_allows(api: TestClient, runtime: NodeRuntime, keys: OrgKeys) -> None:
    customs = keys.org_ids["customs"]
    sealed = upload(api, runtime, INVOICE, MANUFACTURER, "commercial_invoice", readers=str(customs))
    digest = str(sealed["digest"])
    raw = bytes.fromhex(digest[7:])
    assert sealed["unsealed"] == []
    # Destination customs (named by the policy) opens the invoice with its own keystore; so does an auditor (role tier).
    assert open_for(api, runtime, keys, "customs", CUSTOMS, digest) == INVOICE
    assert open_for(api, runtime, keys, "auditor", AUDITOR, digest) == INVOICE
    # The node holds the manufacturer's keystore only: it opens the invoice for the manufacturer's
    # accounts, and tells customs to open its sealed copy itself.
    mine = api.get(f"/documents/{digest}", headers=headers(runtime, MANUFACTURER, "read", raw))
    assert mine.status_code == 200 and mine.content == INVOICE and mine.headers["content-type"] == "application/pdf"
    theirs = api.get(f"/documents/{digest}", headers=headers(runtime, CUSTOMS, "read", raw))
    assert theirs.status_code == 409 and theirs.json()["code"] == "sealed"
    # A carrier cannot open the invoice, by either route.
    for route in (f"/documents/{digest}", f"/documents/{digest}/sealed"):
        refused = api.get(route, headers=headers(runtime, CARRIER, "read", raw))
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", refused.text
    outsider = api.get(f"/documents/{digest}/sealed", headers=headers(runtime, OUTSIDER, "read", raw))
    assert outsider.status_code == 403 and "no member organisation" in outsider.json()["message"]
    unsigned = api.get(f"/documents/{digest}/sealed")
    assert unsigned.status_code == 401 and unsigned.json()["field"] == "waymark-account"
    # A signature is for one document, one action and one node.
    other = hashlib.sha256(b"another").digest()
    assert api.get(f"/documents/{digest}/sealed", headers=headers(runtime, CUSTOMS, "read", other)).json()["field"] == "waymark-signature"
    elsewhere = api.get(f"/documents/{digest}/sealed", headers=headers(runtime, CUSTOMS, "read", raw, audience="http://other-node.example"))
    assert elsewhere.status_code == 401 and elsewhere.json()["field"] == "waymark-audience"
    forged = {**headers(runtime, CUSTOMS, "read", raw, audience="http://other-node.example"), "Waymark-Audience": runtime.node.public_url}
    assert api.get(f"/documents/{digest}/sealed", headers=forged).json()["field"] == "waymark-signature"
    # Uploading needs an attesting role.
    content = b"auditor notes"
    response = api.post("/documents", content=content, headers={
        **headers(runtime, AUDITOR, "upload", hashlib.sha256(content).digest()), "Waymark-Document-Type": "inspection_report",
    })
    assert response.status_code == 403


def test_an_auditor_verifies_what_it_cannot_read(api: TestClient, runtime: NodeRuntime, keys: OrgKeys, chain_now: int) -> None:
    # Contact details of a consignee: personal data, sealed for the named parties only (no role tier).
    contact = b'{"consignee": "J. de Vries", "phone": "+31 6 1234 5678"}'
    sealed = upload(api, runtime, contact, CARRIER, "contact_details", readers=str(keys.org_ids["customs"]))
    digest = str(sealed["digest"])
    raw = bytes.fromhex(digest[7:])
    assert set(sealed["sealedFor"]) == {keys.org_ids["carrier"], keys.org_ids["customs"]}
    refused = api.get(f"/documents/{digest}/sealed", headers=headers(runtime, AUDITOR, "read", raw))
    assert refused.status_code == 403
    # The delivery event names the document by hash; it is public, anchored, and its proof verifies
    # for anyone: the auditor checks that the event (and so the hash it carries) is what was anchored.
    event = epcis.object_event(
        epcs=["https://id.gs1.org/01/09521234543213/21/AUDIT1"], action="OBSERVE", event_time=iso(chain_now + 1),
        biz_step="receiving", disposition="in_progress", documents=[epcis.document_ref("contact_details", digest[7:])],
    )
    signed = sign_attestation(CARRIER.key, runtime.domain, event)
    body = {k: v for k, v in event.items() if k != "@context"}
    body["wm:attestation"] = {"signer": CARRIER.address, "signature": signed.signature_hex}
    captured = api.post("/capture", content=orjson.dumps(epcis.epcis_document([body])))
    assert captured.status_code == 201, captured.text
    build_anchorer(runtime, CARRIER).drain()  # the carrier's own node anchors its events
    bundle = api.get(f"/events/{captured.json()['eventIds'][0].replace('?', '%3F')}/proof").json()
    assert bundle["event"]["wm:documents"][0]["wm:digest"] == digest
    assert verify_bundle(bundle, runtime.chain.rpc_url).ok
    assert b"de Vries" not in orjson.dumps(bundle)
    # And the document's existence, with the type the event names, is public.
    assert api.get(f"/documents/{digest}/status").json() == {"digest": digest, "documentType": "contact_details", "status": "available"}


def test_erasure_destroys_every_wrapped_key_and_leaves_a_verifiable_hash(
    api: TestClient, runtime: NodeRuntime, blob_dir: Path, keys: OrgKeys, chain_now: int
) -> None:
    digest = str(upload(api, runtime)["digest"])
    raw = bytes.fromhex(digest[7:])
    event = epcis.object_event(
        epcs=["https://id.gs1.org/01/09521234543213/21/ERASE1"], action="OBSERVE", event_time=iso(chain_now + 1),
        biz_step="inspecting", disposition="conformant", documents=[epcis.document_ref("inspection_report", digest[7:])],
    )
    signed = sign_attestation(INSPECTOR.key, runtime.domain, event)
    body = {k: v for k, v in event.items() if k != "@context"}
    body["wm:attestation"] = {"signer": INSPECTOR.address, "signature": signed.signature_hex}
    captured = api.post("/capture", content=orjson.dumps(epcis.epcis_document([body])))
    assert captured.status_code == 201, captured.text
    build_anchorer(runtime, MANUFACTURER).drain()

    chain_id, registry = runtime.client.chain_id, runtime.deployment.address("ConsortiumRegistry")
    # Only the owner (or an OPERATOR) erases; a notice must be signed by who it names.
    by_customs = sign_erasure(CUSTOMS.key, chain_id, registry, raw, "not mine")
    assert api.delete(f"/documents/{digest}", headers=erasure_headers(by_customs)).status_code == 403
    notice = sign_erasure(INSPECTOR.key, chain_id, registry, raw, "data subject request")
    tampered = {**erasure_headers(notice), "Waymark-Erasure-Reason": "something else"}
    assert api.delete(f"/documents/{digest}", headers=tampered).status_code == 401
    erased = api.delete(f"/documents/{digest}", headers=erasure_headers(notice))
    assert erased.status_code == 200 and erased.json()["status"] == "erased"
    assert list(blob_dir.iterdir()) == []
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(DocumentKeyWrap).where(DocumentKeyWrap.digest == raw)) == 0
        row = s.get(StoredDocument, raw)
        assert row is not None and row.erased_by == INSPECTOR.address and row.erasure_reason == "data subject request"
    gone = api.get(f"/documents/{digest}/sealed", headers=headers(runtime, AUDITOR, "read", raw))
    assert gone.status_code == 410 and gone.json()["status"] == "erased" and gone.json()["digest"] == digest
    status = api.get(f"/documents/{digest}/status").json()
    assert (status["digest"], status["status"], status["documentType"]) == (digest, "erased", "inspection_report")
    again = api.post("/documents", content=REPORT, headers={**headers(runtime, INSPECTOR, "upload", raw), "Waymark-Document-Type": "inspection_report"})
    assert again.status_code == 410
    # What remains verifies: whoever still holds the report can show it hashes to the digest in
    # the anchored, signed event, whose proof checks out against the chain.
    bundle = api.get(f"/events/{captured.json()['eventIds'][0].replace('?', '%3F')}/proof").json()
    assert bundle["event"]["wm:documents"][0]["wm:digest"] == digest == "sha256:" + hashlib.sha256(REPORT).hexdigest()
    assert verify_bundle(bundle, runtime.chain.rpc_url).ok
    store = DocumentStore(runtime.db, FileBlobStore(blob_dir))
    assert store.status(digest) == "erased" and store.status("sha256:" + "00" * 32) == "not_held"


def test_keys_kept_in_the_clear_before_0008_are_sealed_and_deleted(runtime: NodeRuntime, blob_dir: Path, keys: OrgKeys) -> None:
    digest = hashlib.sha256(REPORT).digest()
    key, blob = encrypt(REPORT, digest)
    inspector = keys.org_ids["inspector"]
    with runtime.db.write() as s:
        s.add(StoredDocument(digest=digest, document_type="inspection_report", media_type="application/pdf", size=len(REPORT),
                             owner_org=inspector, uploaded_by=INSPECTOR.address, readers="[]", reader_roles="[]", created_at_ms=1))
        s.flush()
        s.add(DocumentKey(digest=digest, key=key))
    FileBlobStore(blob_dir).put(digest, blob)
    directory = StaticKeyDirectory({inspector: keys.keystore("inspector").public_key})
    store = DocumentStore(runtime.db, FileBlobStore(blob_dir), directory=directory)
    assert store.seal_legacy_keys() == 0
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(DocumentKey)) == 0
    _meta, sealed_blob, wrapped = store.envelope(digest, inspector)
    assert open_sealed(sealed_blob, wrapped, keys.keystore("inspector").private_key, digest, inspector) == REPORT


def test_a_replica_must_show_its_uploader_and_an_erasure_its_owner(
    api: TestClient, runtime: NodeRuntime, keys: OrgKeys, tmp_path: Path
) -> None:
    """What a peer serves is checked before this node keeps it: a replica whose owner is not the
    organisation that signed its upload, or an erasure notice not signed by its owner, is skipped."""
    sealed = upload(api, runtime, INVOICE, MANUFACTURER, "commercial_invoice", readers=str(keys.org_ids["customs"]))
    digest = str(sealed["digest"])
    registry = runtime.deployment.address("ConsortiumRegistry")
    feed = api.get("/documents/sealed?after=0&limit=10", headers=headers(
        runtime, CUSTOMS, "replicate", hashlib.sha256(b"GET /documents/sealed?after=0&limit=10").digest()))
    assert feed.status_code == 200, feed.text
    (entry,) = [e for e in feed.json()["entries"] if e["digest"] == digest]
    assert entry["upload"]["account"] == MANUFACTURER.address and "ciphertext" in entry and "keys" in entry

    peer_db = Database(f"sqlite:///{tmp_path / 'peer.sqlite3'}")
    peer_db.migrate()
    try:
        store = DocumentStore(peer_db, FileBlobStore(tmp_path / "peer-blobs"))
        replicator = DocumentReplicator(
            store, AccessPolicy(ChainMembership(runtime.client, registry, ttl=0)), signer=CUSTOMS.key, chain_id=runtime.client.chain_id,
            registry=registry, peers=lambda: [], own_url="http://peer.example",
        )
        report = PollReport()
        # A peer claims the carrier owns the manufacturer's invoice (and so could erase it).
        replicator._apply("http://liar.example", {**entry, "ownerOrg": keys.org_ids["carrier"]}, report)
        assert store.meta(bytes.fromhex(digest[7:])) is None and "uploaded it" in report.skipped[0]
        # A carrier's signed "erasure" of a document it does not own is skipped too.
        forged = sign_erasure(CARRIER.key, runtime.client.chain_id, registry, bytes.fromhex(digest[7:]), "mine now")
        replicator._apply("http://liar.example", {**entry, "status": "erased", "erasure": forged.to_json()}, report)
        assert store.meta(bytes.fromhex(digest[7:])) is None and len(report.skipped) == 2
        # The honest entry is kept, sealed as it was: this node holds no keystore and cannot open it.
        replicator._apply("http://honest.example", entry, report)
        assert report.imported == 1 and store.status(digest) == "available"
        _meta, blob, wrapped = store.envelope(bytes.fromhex(digest[7:]), keys.org_ids["customs"])
        customs = keys.keystore("customs")
        assert open_sealed(blob, wrapped, customs.private_key, bytes.fromhex(digest[7:]), customs.org_id) == INVOICE
    finally:
        peer_db.dispose()
