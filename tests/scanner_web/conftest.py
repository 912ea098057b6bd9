"""Browser tests: a real Anvil, a world built through the node, the API served by uvicorn,
and the Debian chromium (headless) driven by playwright-core (tests/scanner_web/driver.mjs).
The page each API serves is built for its world's consortium (api.page_bundle) and its bundle's
sha-256 voted into the registry, as the consortium's members would."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.chain.build import build
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from node.paths import PROJECT_ROOT
from tests.api.world import ApiServer, World, build_world
from tests.scanner_web.pages import served_page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "scanner_web"
DRIVER = Path(__file__).parent / "driver.mjs"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    build()
    anvil = AnvilProcess(port=free_port()).start()
    try:
        yield build_world(anvil, tmp_path_factory.mktemp("world"))
    finally:
        anvil.stop()


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    folder = tmp_path_factory.mktemp("api")
    with ApiServer(world, folder, static_dir=served_page(world, folder)) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is not installed at {CHROMIUM} (scripts/debian-packages.txt lists it)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def drive(scenario: str, url: str, name: str, **extra: Any) -> dict[str, Any]:
        args = {
            "scenario": scenario,
            "url": url,
            "userDataDir": str(tmp_path / f"profile-{name}"),  # a fresh profile per run
            "screenshot": str(ARTIFACTS / f"{name}.png"),
            "executable": CHROMIUM,
            **extra,
        }
        done = subprocess.run(["node", str(DRIVER), json.dumps(args)], capture_output=True, text=True, timeout=180, cwd=PROJECT_ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        result: dict[str, Any] = json.loads(done.stdout)
        assert "failure" not in result, result["failure"] + "\nconsole:\n" + "\n".join(result["console"][-20:])
        assert not result["errors"], result["errors"]
        return result

    return drive
