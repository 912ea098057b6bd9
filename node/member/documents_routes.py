"""HTTP routes of the sealed document store (node/documents/), as a router the node app mounts:

    app.include_router(build_document_router(runtime))

    POST   /documents                    upload (signed "upload"; body = the document's bytes): sealed for its policy
    GET    /documents/sealed?after=&limit=   the replication feed (signed "replicate" by a member account)
    GET    /documents/{digest}/status    public: digest, type, available | erased
    GET    /documents/{digest}/sealed    signed "read": the ciphertext and the key wrapped for the reader's organisation
    GET    /documents/{digest}           signed "read": the plaintext, when this node holds the reader organisation's keystore
    DELETE /documents/{digest}           erase: the headers carry the owner's signed erasure notice (node.documents.signing)

`digest` is ``sha256:<hex>`` (percent-encoding the colon is optional) or bare hex. An upload
sends the document type in `Waymark-Document-Type` (e.g. commercial_invoice), its media type
in `Content-Type`, and the organisations its policy names (the parties to the order, the
destination's customs) in `Waymark-Readers` (comma separated ids); the type adds its role tier
(node.documents.policy). Requests are signed for this node (`audience` = its public URL).
Errors are JSON `{code, message, field?}`: 401 unsigned or badly signed, 403 not allowed, 404
unknown, 409 sealed for a reader whose keystore this node does not hold, 410 erased, 413 too
large, 422 malformed.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from node.documents import (
    AccessPolicy,
    ChainMembership,
    DocumentError,
    DocumentErased,
    DocumentInvalid,
    DocumentNotFound,
    DocumentSettings,
    DocumentStore,
    DocumentTooLarge,
    FileBlobStore,
    OrgKeystore,
    RegistryKeyDirectory,
    digest_text,
    parse_digest,
    request_target,
    request_target_digest,
    sha256,
    verify_document_request,
    verify_erasure,
)
from node.documents.replication import FEED_PATH, DocumentReplicator
from node.documents.signing import erasure_from_headers, upload_proof
from node.member.runtime import NodeRuntime, anchor_account, build_directory
from node.protocol.audience import normalise_audience

log = logging.getLogger(__name__)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(exc: DocumentError) -> Response:
    body: dict[str, Any] = {"code": exc.code, "message": str(exc)}
    if exc.field is not None:
        body["field"] = exc.field
    if isinstance(exc, DocumentErased):
        body["digest"] = digest_text(exc.digest)
        body["status"] = "erased"
        body["erasedAtMs"] = exc.erased_at_ms
    return _json(body, exc.status)


def documents_router(
    store: DocumentStore,
    policy: AccessPolicy,
    *,
    chain_id: int,
    registry_address: str,
    audience: str,
    max_age: int = 300,
    feed_limit: int = 200,
    replicator: DocumentReplicator | None = None,
    replicate_interval: float = 0.0,
) -> APIRouter:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if replicator is not None and replicate_interval > 0:
            def run() -> None:
                while not stop.is_set():
                    try:
                        replicator.poll_once()
                    except Exception:  # noqa: BLE001 - a failed round is logged and retried at the next one
                        log.exception("document replication round failed")
                    stop.wait(replicate_interval)

            thread = threading.Thread(target=run, name="document-replication", daemon=True)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=10)

    router = APIRouter(tags=["documents"], lifespan=lifespan)

    def signed(action: Any, digest: bytes, headers: Any) -> str:
        return verify_document_request(chain_id, registry_address, action, digest, headers, audience=audience, max_age=max_age)

    async def guarded(work: Callable[[], Response]) -> Response:
        try:
            return await anyio.to_thread.run_sync(work)
        except DocumentError as exc:
            return _error(exc)

    @router.post("/documents")
    async def upload(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > store.max_bytes:
            return _error(DocumentTooLarge(int(declared), store.max_bytes))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > store.max_bytes:
                return _error(DocumentTooLarge(size, store.max_bytes))
            chunks.append(chunk)
        content = b"".join(chunks)
        headers = request.headers

        def work() -> Response:
            account = signed("upload", sha256(content), headers)
            proof = upload_proof(headers, audience)
            member = policy.check_upload(account)
            document_type = (headers.get("waymark-document-type") or "").strip()
            if not document_type:
                raise DocumentInvalid("missing header Waymark-Document-Type (e.g. inspection_report)", "waymark-document-type")
            media_type = (headers.get("content-type") or "application/octet-stream").split(";")[0].strip()
            readers: list[int] = []
            for part in (headers.get("waymark-readers") or "").split(","):
                if part.strip():
                    if not part.strip().isdigit():
                        raise DocumentInvalid(f"Waymark-Readers lists organisation ids, got {part.strip()!r}", "waymark-readers")
                    readers.append(int(part))
            sealed = store.put(
                content, document_type=document_type, media_type=media_type,
                owner_org=member.org_id, uploaded_by=account, readers=readers, upload_proof=proof,
            )
            return _json({**sealed.meta.members(), "unsealed": list(sealed.unsealed)}, 201 if sealed.fresh else 200)

        return await guarded(work)

    @router.get(FEED_PATH)
    async def feed(request: Request, after: int = 0, limit: int = feed_limit) -> Response:
        headers = request.headers
        target = request_target(request.scope)

        def work() -> Response:
            if after < 0 or not 1 <= limit <= feed_limit:
                raise DocumentInvalid(f"after >= 0 and 1 <= limit <= {feed_limit}", "limit" if after >= 0 else "after")
            policy.member(signed("replicate", request_target_digest("GET", target), headers), "replicate")
            entries, last = store.feed(after, limit)
            return _json({"entries": entries, "last": last})

        return await guarded(work)

    @router.get("/documents/{digest}/status")
    async def status(digest: str) -> Response:
        def work() -> Response:
            raw = parse_digest(digest)
            meta = store.meta(raw)
            if meta is None:
                return _json({"digest": digest_text(raw), "status": "not_held"}, 404)
            return _json(meta.public())

        return await guarded(work)

    def opened(digest: str, headers: Any) -> tuple[bytes, int]:
        """The digest of a document the signed reader may open, and the reader's organisation."""
        raw = parse_digest(digest)
        account = signed("read", raw, headers)
        meta = store.meta(raw)
        if meta is None:
            raise DocumentNotFound(raw)
        if meta.erased_at_ms is not None:  # public anyway (the status route), and no key is left to deny
            raise DocumentErased(raw, meta.erased_at_ms)
        return raw, policy.check_open(account, meta.document_type, meta.sealed_for).org_id

    @router.get("/documents/{digest}/sealed")
    async def sealed(digest: str, request: Request) -> Response:
        headers = request.headers

        def work() -> Response:
            raw, org_id = opened(digest, headers)
            meta, blob, wrapped = store.envelope(raw, org_id)
            return _json({
                "digest": digest_text(raw), "documentType": meta.document_type, "mediaType": meta.media_type, "orgId": org_id,
                "ciphertext": base64.b64encode(blob).decode(), "wrappedKey": base64.b64encode(wrapped).decode(),
            })

        return await guarded(work)

    @router.get("/documents/{digest}")
    async def read(digest: str, request: Request) -> Response:
        headers = request.headers

        def work() -> Response:
            meta, content = store.read(*opened(digest, headers))
            return Response(
                content, media_type=meta.media_type,
                headers={"Waymark-Document-Type": meta.document_type, "Cache-Control": "no-store"},
            )

        return await guarded(work)

    @router.delete("/documents/{digest}")
    async def erase(digest: str, request: Request) -> Response:
        headers = request.headers

        def work() -> Response:
            raw = parse_digest(digest)
            notice = erasure_from_headers(raw, headers, max_age=max_age)
            account = verify_erasure(chain_id, registry_address, notice)
            meta = store.meta(raw)
            if meta is None:
                raise DocumentNotFound(raw)
            policy.check_erase(account, meta.owner_org)
            return _json(store.erase(notice).public())

        return await guarded(work)

    return router


def build_document_store(runtime: Any, settings: DocumentSettings | None = None) -> DocumentStore:
    """The node's store: blobs in `settings.blob_dir`, metadata and wrapped keys in the node's
    database, public keys from the registry's node directory, its own organisation's keystore if configured."""
    settings = settings or DocumentSettings()
    directory = RegistryKeyDirectory(runtime.client, runtime.deployment, ttl=settings.key_ttl)
    keystore = OrgKeystore.load(settings.org_keystore) if settings.org_keystore is not None else None
    return DocumentStore(runtime.db, FileBlobStore(settings.blob_dir), directory=directory, keystore=keystore, max_bytes=settings.max_bytes)


def registry_peers(runtime: NodeRuntime, extra: list[str]) -> Callable[[], list[str]]:
    """Peer node URLs: `extra` and the registry's node directory (node.member.network.directory's cache)."""
    directory = build_directory(runtime)

    def peers() -> list[str]:
        return [*extra, *(peer.url for peer in directory.peers(None))]

    return peers


def build_document_router(
    runtime: Any, settings: DocumentSettings | None = None, store: DocumentStore | None = None
) -> APIRouter:
    """The router for a `node.member.runtime.NodeRuntime` (its database, chain client and deployment)."""
    settings = settings or DocumentSettings()
    store = store or build_document_store(runtime, settings)
    left = store.seal_legacy_keys()
    if left:
        log.warning("%d document keys from before migration 0008 stay unsealed: their owners have published no encryption key", left)
    registry = runtime.deployment.address("ConsortiumRegistry")
    members = ChainMembership(runtime.client, registry, ttl=settings.membership_ttl)
    policy = AccessPolicy(members)
    audience = normalise_audience(runtime.node.public_url)
    replicator = None
    if settings.replicate_interval > 0:
        replicator = DocumentReplicator(
            store, policy, signer=anchor_account(runtime).key, chain_id=runtime.client.chain_id, registry=registry,
            peers=registry_peers(runtime, settings.peers), own_url=audience, limit=settings.feed_limit,
        )
    return documents_router(
        store, policy, chain_id=runtime.client.chain_id, registry_address=registry, audience=audience,
        max_age=settings.max_age, feed_limit=settings.feed_limit, replicator=replicator, replicate_interval=settings.replicate_interval,
    )
