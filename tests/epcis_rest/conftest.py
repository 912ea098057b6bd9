"""EPCIS REST tests: a node (real Anvil, real database) with its app run in-process, and a
client that signs every request as a member account would (node.documents' signed requests
over node.member.epcis_rest.request_target_digest)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from node.member.app import create_app
from node.documents import sign_document_request
from node.member.epcis_rest import request_target_digest
from node.member.runtime import NodeRuntime
from tests.node.conftest import chain_now, db, db_backend, deployment, runtime  # noqa: F401 - fixtures
from tests.node.story import MANUFACTURER


def signing_hook(runtime: NodeRuntime, account: LocalAccount) -> Any:
    registry = runtime.deployment.address("ConsortiumRegistry")

    def sign(request: httpx.Request) -> None:
        target = request.url.raw_path.decode("latin-1")
        headers = sign_document_request(account.key, runtime.client.chain_id, registry, "read",
                                        request_target_digest(request.method, target), audience=runtime.node.public_url)
        request.headers.update(headers)

    return sign


@pytest.fixture
def client(runtime: NodeRuntime) -> Iterator[TestClient]:
    """A member (the demo manufacturer) reading with signed requests."""
    with TestClient(create_app(runtime, run_indexer=False)) as test_client:
        test_client.event_hooks = {"request": [signing_hook(runtime, MANUFACTURER)], "response": []}
        yield test_client
