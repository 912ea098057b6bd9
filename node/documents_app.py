"""HTTP routes of the encrypted document store (node/documents.py), as a router the node app mounts:

    app.include_router(build_document_router(runtime))

    POST   /documents                    upload (signed "upload"; body = the document's bytes)
    GET    /documents/{digest}           the document (signed "read"); 410 once erased
    GET    /documents/{digest}/status    public: digest, type, available | erased
    DELETE /documents/{digest}           erase (signed "erase"): key and ciphertext go, the hash stays

`digest` is ``sha256:<hex>`` (percent-encoding the colon is optional) or bare hex. An upload
sends the document type in `Waymark-Document-Type` (e.g. inspection_report), its media type
in `Content-Type`, optionally further reader organisations in `Waymark-Readers` (comma
separated ids); an erasure may give `Waymark-Erasure-Reason`. Signing: see node.documents.
Errors are JSON `{code, message, field?}`: 401 unsigned or badly signed, 403 not allowed,
404 unknown, 410 erased, 413 too large, 422 malformed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from node.documents import (
    AccessPolicy,
    ChainMembership,
    DocumentError,
    DocumentErased,
    DocumentInvalid,
    DocumentSettings,
    DocumentStore,
    DocumentTooLarge,
    FileBlobStore,
    digest_text,
    parse_digest,
    sha256,
    verify_document_request,
)


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
    max_age: int = 300,
) -> APIRouter:
    router = APIRouter(tags=["documents"])

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
            digest = sha256(content)
            account = verify_document_request(chain_id, registry_address, "upload", digest, headers, max_age=max_age)
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
            meta, fresh = store.put(
                content, document_type=document_type, media_type=media_type,
                owner_org=member.org_id, uploaded_by=account, readers=readers,
            )
            return _json(meta.public(), 201 if fresh else 200)

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

    @router.get("/documents/{digest}")
    async def read(digest: str, request: Request) -> Response:
        headers = request.headers

        def work() -> Response:
            raw = parse_digest(digest)
            account = verify_document_request(chain_id, registry_address, "read", raw, headers, max_age=max_age)
            meta = store.meta(raw)
            if meta is None:
                return _json({"code": "document_not_found", "message": f"no document {digest_text(raw)} in this store"}, 404)
            policy.check_read(account, meta)
            meta, content = store.read(raw)
            return Response(
                content,
                media_type=meta.media_type,
                headers={"Waymark-Document-Type": meta.document_type, "Cache-Control": "no-store"},
            )

        return await guarded(work)

    @router.delete("/documents/{digest}")
    async def erase(digest: str, request: Request) -> Response:
        headers = request.headers

        def work() -> Response:
            raw = parse_digest(digest)
            account = verify_document_request(chain_id, registry_address, "erase", raw, headers, max_age=max_age)
            meta = store.meta(raw)
            if meta is None:
                return _json({"code": "document_not_found", "message": f"no document {digest_text(raw)} in this store"}, 404)
            policy.check_erase(account, meta)
            reason = (headers.get("waymark-erasure-reason") or "").strip() or None
            return _json(store.erase(raw, by=account, reason=reason).public())

        return await guarded(work)

    return router


def build_document_store(runtime: Any, settings: DocumentSettings | None = None) -> DocumentStore:
    """The node's store: blobs in `settings.blob_dir`, keys and metadata in the node's database."""
    settings = settings or DocumentSettings()
    return DocumentStore(runtime.db, FileBlobStore(settings.blob_dir), max_bytes=settings.max_bytes)


def build_document_router(
    runtime: Any, settings: DocumentSettings | None = None, store: DocumentStore | None = None
) -> APIRouter:
    """The router for a `node.service.NodeRuntime` (its database, chain client and deployment)."""
    settings = settings or DocumentSettings()
    store = store or build_document_store(runtime, settings)
    registry = runtime.deployment.address("ConsortiumRegistry")
    members = ChainMembership(runtime.client, registry, ttl=settings.membership_ttl)
    return documents_router(
        store, AccessPolicy(members), chain_id=runtime.client.chain_id, registry_address=registry, max_age=settings.max_age
    )
