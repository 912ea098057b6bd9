"""The encrypted document store (node/documents.py) through its HTTP routes, on SQLite and
PostgreSQL, with access decided by the real ConsortiumRegistry on Anvil: what is stored is not
the plaintext, a reader without access is refused, erasure leaves a verifiable hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from node.app import create_app
from node.db.documents import DocumentKey, StoredDocument
from node.devnet.consortium import devnet_account
from node.documents import DocumentSettings, digest_text, sign_document_request
from node.provenance import epcis
from node.provenance.attestation import sign_attestation
from node.service import NodeRuntime, build_anchorer
from node.proofs import verify_bundle

MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS = (devnet_account(i) for i in (1, 2, 3, 4))
AUDITOR, OUTSIDER = devnet_account(7), devnet_account(15)
REPORT = b"%PDF-1.7\nInspection report MIS-2025-0713: 125 units sampled, 0 defects (AQL 2.5). Inspector: S. Tan\n"


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def api(runtime: NodeRuntime, blob_dir: Path) -> Iterator[TestClient]:
    app: FastAPI = create_app(runtime, run_indexer=False, documents=DocumentSettings(blob_dir=blob_dir, membership_ttl=0))
    with TestClient(app) as client:
        yield client


def headers(runtime: NodeRuntime, account: object, action: str, digest: bytes) -> dict[str, str]:
    registry = runtime.deployment.address("ConsortiumRegistry")
    return sign_document_request(account, runtime.client.chain_id, registry, action, digest)  # type: ignore[arg-type]


def upload(api: TestClient, runtime: NodeRuntime, content: bytes = REPORT, account: object = INSPECTOR, kind: str = "inspection_report") -> str:
    digest = hashlib.sha256(content).digest()
    response = api.post("/documents", content=content, headers={
        **headers(runtime, account, "upload", digest), "Content-Type": "application/pdf", "Waymark-Document-Type": kind,
    })
    assert response.status_code in (200, 201), response.text
    assert response.json()["digest"] == digest_text(digest)
    return digest_text(digest)


def test_stored_bytes_are_ciphertext_and_keys_live_apart(api: TestClient, runtime: NodeRuntime, blob_dir: Path) -> None:
    digest = upload(api, runtime)
    raw = bytes.fromhex(digest[7:])
    blobs = list(blob_dir.iterdir())
    assert len(blobs) == 1
    stored = blobs[0].read_bytes()
    assert REPORT not in stored and b"Inspection report" not in stored and b"S. Tan" not in stored
    assert len(stored) == len(REPORT) + 4 + 12 + 16  # magic, nonce, GCM tag
    with runtime.db.session() as s:
        key = s.scalar(select(DocumentKey.key).where(DocumentKey.digest == raw))
        row = s.get(StoredDocument, raw)
    assert key is not None and len(key) == 32 and key not in stored
    assert row is not None and row.owner_org == 2 and row.document_type == "inspection_report"
    # Another document gets another key; the same one uploaded again is not stored twice.
    second = upload(api, runtime, b"%PDF other report")
    with runtime.db.session() as s:
        assert len(set(s.scalars(select(DocumentKey.key)).all())) == 2
    assert upload(api, runtime) == digest and len(list(blob_dir.iterdir())) == 2 and second != digest


def test_readers_by_policy_and_everyone_else_refused(api: TestClient, runtime: NodeRuntime) -> None:
    digest = upload(api, runtime)
    raw = bytes.fromhex(digest[7:])
    for reader in (INSPECTOR, MANUFACTURER, CUSTOMS, AUDITOR):  # uploader's org, then READ_ROLES of inspection reports
        response = api.get(f"/documents/{digest}", headers=headers(runtime, reader, "read", raw))
        assert response.status_code == 200, response.text
        assert response.content == REPORT and response.headers["content-type"] == "application/pdf"
    refused = api.get(f"/documents/{digest}", headers=headers(runtime, CARRIER, "read", raw))
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert "CARRIER" in refused.json()["message"]
    outsider = api.get(f"/documents/{digest}", headers=headers(runtime, OUTSIDER, "read", raw))
    assert outsider.status_code == 403 and "no member organisation" in outsider.json()["message"]
    unsigned = api.get(f"/documents/{digest}")
    assert unsigned.status_code == 401 and unsigned.json()["field"] == "waymark-account"
    # A read signature is for that document and that action only.
    other = hashlib.sha256(b"another").digest()
    wrong = api.get(f"/documents/{digest}", headers=headers(runtime, CUSTOMS, "read", other))
    assert wrong.status_code == 401 and wrong.json()["field"] == "waymark-signature"
    assert api.delete(f"/documents/{digest}", headers=headers(runtime, CUSTOMS, "read", raw)).status_code == 401
    # Uploading needs an attesting role; erasing needs the uploader's organisation (or OPERATOR).
    content = b"auditor notes"
    response = api.post("/documents", content=content, headers={
        **headers(runtime, AUDITOR, "upload", hashlib.sha256(content).digest()), "Waymark-Document-Type": "inspection_report",
    })
    assert response.status_code == 403
    assert api.delete(f"/documents/{digest}", headers=headers(runtime, CUSTOMS, "erase", raw)).status_code == 403
    assert api.get(f"/documents/{digest}/status").json()["status"] == "available"


def test_erasure_removes_ciphertext_and_key_and_leaves_a_verifiable_hash(
    api: TestClient, runtime: NodeRuntime, blob_dir: Path, chain_now: int
) -> None:
    from tests.node.story import iso

    digest = upload(api, runtime)
    raw = bytes.fromhex(digest[7:])
    # An inspection event names the report by its hash, and is anchored.
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

    erased = api.delete(f"/documents/{digest}", headers={**headers(runtime, INSPECTOR, "erase", raw), "Waymark-Erasure-Reason": "data subject request"})
    assert erased.status_code == 200 and erased.json()["status"] == "erased"
    assert list(blob_dir.iterdir()) == []
    with runtime.db.session() as s:
        assert s.scalar(select(DocumentKey).where(DocumentKey.digest == raw)) is None
        row = s.get(StoredDocument, raw)
        assert row is not None and row.erased_by == INSPECTOR.address and row.erasure_reason == "data subject request"
    gone = api.get(f"/documents/{digest}", headers=headers(runtime, CUSTOMS, "read", raw))
    assert gone.status_code == 410 and gone.json()["status"] == "erased" and gone.json()["digest"] == digest
    status = api.get(f"/documents/{digest}/status").json()
    assert (status["digest"], status["status"], status["documentType"]) == (digest, "erased", "inspection_report")
    again = api.post("/documents", content=REPORT, headers={**headers(runtime, INSPECTOR, "upload", raw), "Waymark-Document-Type": "inspection_report"})
    assert again.status_code == 410
    # What remains verifies: whoever still holds the report can show it hashes to the digest in
    # the anchored, signed event, whose proof checks out against the chain.
    event_id = captured.json()["eventIds"][0]
    bundle = api.get(f"/events/{event_id.replace('?', '%3F')}/proof").json()
    assert bundle["event"]["wm:documents"][0]["wm:digest"] == digest == "sha256:" + hashlib.sha256(REPORT).hexdigest()
    assert verify_bundle(bundle, runtime.chain.rpc_url).ok
    from node.documents import DocumentStore, FileBlobStore

    assert DocumentStore(runtime.db, FileBlobStore(blob_dir)).status(digest) == "erased"
    assert DocumentStore(runtime.db, FileBlobStore(blob_dir)).status("sha256:" + "00" * 32) == "not_held"
