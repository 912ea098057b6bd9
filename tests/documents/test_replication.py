"""Replicated but sealed, across three member nodes in their own processes (one Anvil chain,
a database and a blob folder each): a document uploaded at the manufacturer's node reaches the
customs and carrier nodes as ciphertext with wrapped keys, survives the loss of the node it was
uploaded to, opens only for the organisations its policy names, and an erasure notice given to
one node reaches every node (also one that was down, and one that never talks to the first),
destroying every wrapped key and the ciphertext; the passport then shows the document "erased".

Each node finds its peers, and every organisation's encryption key, in the registry's node
directory (each organisation publishes its node URL and key with setNodeRecord)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from api.main import create_app as create_api
from api.settings import ApiSettings
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from waymark.devnet.consortium import devnet_account
from node.documents import OrgKeystore, erasure_headers, open_sealed, sign_document_request, sign_erasure
from node.protocol import epcis
from node.protocol.attestation import AttestationDomain, sign_attestation
from node.settings import ChainSettings, DatabaseSettings
from tests.documents.keys import OrgKeys, make_org_keys
from tests.oracle.journey import GTIN, at
from tests.oracle.servers import NodeProcess

MANUFACTURER, CARRIER, CUSTOMS, AUDITOR = (devnet_account(i) for i in (1, 3, 4, 7))
INVOICE = b"%PDF-1.7 Commercial invoice LC-312: 500 vases, EUR 9,200.00, buyer Rotterdam Home B.V."


def wait_for(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


@pytest.fixture
def keys_and_nodes(
    anvil: AnvilProcess, chain: ChainClient, deployment: Deployment, deployment_file: Path, tmp_path: Path
) -> Iterator[tuple[OrgKeys, dict[str, NodeProcess]]]:
    ports = {member: free_port() for member in ("manufacturer", "customs", "carrier")}
    keys = make_org_keys(tmp_path / "org-keys", chain, deployment, urls={m: f"http://127.0.0.1:{p}" for m, p in ports.items()})
    made = {
        member: NodeProcess(
            anvil.rpc_url, anvil.chain_id, deployment_file, tmp_path / member, port=ports[member],
            keystore=keys.keystores[member], anchor_account=index, replicate=0.2,
        )
        for member, index in (("manufacturer", 1), ("customs", 4), ("carrier", 3))
    }
    try:
        for process in made.values():
            process.start(timeout=180)
        yield keys, made
    finally:
        for process in made.values():
            process.stop()


def signed(node: NodeProcess, account: Any, action: str, digest: bytes) -> dict[str, str]:
    registry = orjson.loads(node.deployment_file.read_bytes())["contracts"]["ConsortiumRegistry"]["address"]
    return sign_document_request(account.key, node.chain_id, registry, action, digest, audience=node.url)  # type: ignore[arg-type]


def status(node: NodeProcess, digest: str) -> str:
    return str(httpx.get(f"{node.url}/documents/{digest}/status", timeout=5).json()["status"])


def open_at(node: NodeProcess, account: Any, keystore: OrgKeystore, digest: str) -> bytes:
    raw = bytes.fromhex(digest[7:])
    response = httpx.get(f"{node.url}/documents/{digest}/sealed", headers=signed(node, account, "read", raw), timeout=5)
    assert response.status_code == 200, response.text
    envelope = response.json()
    return open_sealed(base64.b64decode(envelope["ciphertext"]), base64.b64decode(envelope["wrappedKey"]), keystore.private_key, raw, keystore.org_id)


def wraps_and_blob(node: NodeProcess, raw: bytes) -> tuple[dict[int, bytes], bool]:
    with sqlite3.connect(node.workdir / "node.sqlite3") as conn:
        rows = conn.execute("SELECT org_id, wrapped FROM document_key_wraps WHERE digest = ?", (raw,)).fetchall()
        assert conn.execute("SELECT count(*) FROM document_keys").fetchone()[0] == 0
    return {int(org): bytes(w) for org, w in rows}, (node.workdir / "blobs" / f"{raw.hex()}.bin").exists()


def test_documents_replicate_sealed_open_only_for_their_readers_and_erasure_reaches_every_node(
    keys_and_nodes: tuple[OrgKeys, dict[str, NodeProcess]], chain: ChainClient, deployment: Deployment, tmp_path: Path, chain_now: int
) -> None:
    org_keys, nodes = keys_and_nodes
    manufacturer, customs, carrier = nodes["manufacturer"], nodes["customs"], nodes["carrier"]
    raw = hashlib.sha256(INVOICE).digest()
    digest = "sha256:" + raw.hex()
    uploaded = httpx.post(f"{manufacturer.url}/documents", content=INVOICE, timeout=30, headers={
        **signed(manufacturer, MANUFACTURER, "upload", raw), "Content-Type": "application/pdf",
        "Waymark-Document-Type": "commercial_invoice", "Waymark-Readers": str(org_keys.org_ids["customs"]),
    })
    assert uploaded.status_code == 201, uploaded.text
    # The feed is for members only, and signed for the node it is read from.
    assert httpx.get(f"{manufacturer.url}/documents/sealed?after=0", timeout=5).status_code == 401
    wait_for(lambda: status(carrier, digest) == "available", "the carrier's node holds the invoice (via the customs node)")

    # The node it was uploaded to is lost; the others still serve it.
    manufacturer.stop()
    assert open_at(carrier, CUSTOMS, org_keys.keystore("customs"), digest) == INVOICE  # customs opens its copy on any node
    assert open_at(carrier, AUDITOR, org_keys.keystore("auditor"), digest) == INVOICE
    mine = httpx.get(f"{customs.url}/documents/{digest}", headers=signed(customs, CUSTOMS, "read", raw), timeout=5)
    assert mine.status_code == 200 and mine.content == INVOICE  # the customs node holds the customs keystore
    # The carrier holds a replica but cannot open it: not on its own node, not with its own keystore.
    for route in (f"/documents/{digest}", f"/documents/{digest}/sealed"):
        refused = httpx.get(f"{carrier.url}{route}", headers=signed(carrier, CARRIER, "read", raw), timeout=5)
        assert refused.status_code == 403, refused.text
    wraps, has_blob = wraps_and_blob(carrier, raw)
    assert has_blob and org_keys.org_ids["carrier"] not in wraps
    blob = (carrier.workdir / "blobs" / f"{raw.hex()}.bin").read_bytes()
    assert INVOICE not in blob and b"9,200" not in blob
    carrier_key = org_keys.keystore("carrier")
    for org, wrapped in wraps.items():
        with pytest.raises(Exception):
            open_sealed(blob, wrapped, carrier_key.private_key, raw, org)

    # An event at the carrier's node names the invoice by hash.
    unit = f"https://id.gs1.org/01/{GTIN}/21/REPL{chain_now}"
    event = epcis.object_event(epcs=[unit], action="OBSERVE", event_time=at(chain_now, 1), biz_step="receiving",
                               disposition="in_progress", documents=[epcis.document_ref("commercial_invoice", raw.hex())])
    domain = AttestationDomain(chain.chain_id, deployment.address("ProvenanceRegistry"))
    attestation = sign_attestation(CARRIER.key, domain, event)
    body = {k: v for k, v in event.items() if k != "@context"}
    body["wm:attestation"] = {"signer": CARRIER.address, "signature": attestation.signature_hex}
    captured = httpx.post(f"{carrier.url}/capture", content=orjson.dumps(epcis.epcis_document([body])), timeout=10)
    assert captured.status_code == 201, captured.text

    # The owner erases it at the customs node; the notice travels to the carrier's node, and to
    # the manufacturer's once it is back.
    registry = deployment.address("ConsortiumRegistry")
    forged = sign_erasure(CARRIER.key, chain.chain_id, registry, raw, "not the owner")
    assert httpx.delete(f"{customs.url}/documents/{digest}", headers=erasure_headers(forged), timeout=5).status_code == 403
    notice = sign_erasure(MANUFACTURER.key, chain.chain_id, registry, raw, "contract cancelled")
    erased = httpx.delete(f"{customs.url}/documents/{digest}", headers=erasure_headers(notice), timeout=5)
    assert erased.status_code == 200 and erased.json()["status"] == "erased"
    wait_for(lambda: status(carrier, digest) == "erased", "the erasure reached the carrier's node")
    # The carrier's node passes the owner's signed notice on in its own feed.
    target = "/documents/sealed?after=0&limit=200"
    feed = httpx.get(f"{carrier.url}{target}", timeout=5, headers=sign_document_request(
        CUSTOMS.key, chain.chain_id, registry, "replicate", hashlib.sha256(f"GET {target}".encode()).digest(), audience=carrier.url))
    assert feed.status_code == 200, feed.text
    (passed_on,) = [e for e in feed.json()["entries"] if e["digest"] == digest]
    assert passed_on["status"] == "erased" and passed_on["erasure"] == notice.to_json() and "ciphertext" not in passed_on
    manufacturer.start(timeout=180)
    wait_for(lambda: status(manufacturer, digest) == "erased", "the erasure reached the manufacturer's node after its restart")
    for node in (manufacturer, customs, carrier):
        assert wraps_and_blob(node, raw) == ({}, False), node.url
        gone = httpx.get(f"{node.url}/documents/{digest}/sealed", headers=signed(node, CUSTOMS, "read", raw), timeout=5)
        assert gone.status_code == 410
    # Nor does a lagging copy bring it back.
    again = httpx.post(f"{carrier.url}/documents", content=INVOICE, timeout=10, headers={
        **signed(carrier, CARRIER, "upload", raw), "Waymark-Document-Type": "commercial_invoice"})
    assert again.status_code == 410

    # The passport served from the carrier's node data shows the document as erased; the hash stays.
    deployments = tmp_path / "api-deployments"
    deployments.mkdir()
    shutil.copy(carrier.deployment_file, deployments / f"{carrier.chain_id}.json")
    api = create_api(
        ApiSettings(port=8700, public_url="http://127.0.0.1:8700", device_salt_file=tmp_path / "device-salt",
                    rate_limit_per_minute=100_000, rate_limit_burst=10_000),
        ChainSettings(rpc_url=carrier.rpc_url, chain_id=carrier.chain_id, deployments_dir=deployments),
        DatabaseSettings(url=carrier.db_url),
    )
    with TestClient(api) as client:
        response = client.get(f"/api/v1/passport?uri={quote(unit, safe='')}")
    assert response.status_code == 200, response.text
    documents = response.json()["documents"]
    assert [(d["type"], d["digest"], d["status"]) for d in documents] == [("commercial_invoice", digest, "erased")]
