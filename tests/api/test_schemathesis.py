"""Property-based run of schemathesis (4.32.5) against the API's own OpenAPI spec: no input it
generates, valid or not, gets a 5xx, an undocumented status or content type, or a body that
breaks the documented schema.

schemathesis' pytest plugin (`from_fixture`) does not run under pytest 9, so each operation is
driven with Hypothesis directly from the operation's own strategy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance
from schemathesis.generation import GenerationMode

from api.main import create_app
from api.settings import ApiSettings
from tests.api.world import World, api_settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Operations, read from the spec of an app that is not started (the spec needs no chain).
_SPEC = create_app(ApiSettings(docs=True)).openapi()["paths"]
OPERATIONS = [
    (path, method.upper(), mode)
    for path, item in _SPEC.items()
    for method, operation in item.items()
    # Invalid input only exists for operations that take some.
    for mode in ([GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if operation.get("parameters") or operation.get("requestBody") else [GenerationMode.POSITIVE])
]


@pytest.fixture(scope="module")
def live_schema(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app: FastAPI = create_app(api_settings(world, Path(tmp_path_factory.mktemp("schemathesis"))), world.chain_settings, world.database)
    with TestClient(app):  # runs the lifespan: chain client, database, scan log
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS, ids=[f"{m} {p} {g.value}" for p, m, g in OPERATIONS])
def test_no_input_breaks_the_api_or_its_schema(live_schema: Any, path: str, method: str, mode: GenerationMode) -> None:
    operation = live_schema[path][method]

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    run()
