"""The page's trust does not come from the server it checks (issue 14 point 4) and other members'
nodes confirm what it shows (issue 12 point 8), in a real Chromium.

One world on a real Anvil; the page built for its consortium and its bundle hash voted into the
registry; the honest API; member nodes in their own processes, listed in the registry's node
directory: three honest ones, one that lacks an event (removed from its database) and one that
holds an extra, anchored event of the unit that the API's node does not (captured and anchored
through the node's own path on that node's database only). The adversaries: a server that lies
about the trust anchors or the verifier script in front of the honest API, and a counterfeiter's
API serving its own chain's history with the approved page."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import requests

from api.page_bundle import PageAnchors, build_page
from node.chain.build import build
from node.db import Database
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from node.member.history import unit_history
from node.paths import PROJECT_ROOT
from node.protocol import epcis
from node.member.runtime import NodeRuntime, build_anchorer, build_capture
from tests.api.world import FACTORY, ApiServer, World, build_world
from tests.node.story import MANUFACTURER, capture_document, iso
from tests.scanner_web.pages import LyingServer, NodeProcess, copy_database, drop_event, served_page, set_node_record

pytestmark = pytest.mark.browser

MANUFACTURER_ACCOUNT, CARRIER_ACCOUNT, CUSTOMS_ACCOUNT = 1, 3, 4  # devnet accounts of organisations 1, 3, 4


@dataclass
class Network:
    world: World
    api: ApiServer
    static: Path
    honest: list[NodeProcess]
    lacking: NodeProcess  # lacks `dropped`
    adding: NodeProcess  # holds `extra` too
    dropped: str
    extra: str

    def path(self) -> str:
        return self.world.unit("genuine").uri("http://x").removeprefix("http://x")

    def list_nodes(self, carrier: str, customs: str) -> None:
        """The directory as the test needs it: the manufacturer's node is honest; the carrier's
        and the customs office's are at the given URLs."""
        set_node_record(self.world, MANUFACTURER_ACCOUNT, self.honest[0].url)
        set_node_record(self.world, CARRIER_ACCOUNT, carrier)
        set_node_record(self.world, CUSTOMS_ACCOUNT, customs)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    build()
    anvil = AnvilProcess(port=free_port()).start()
    folder = tmp_path_factory.mktemp("trust")
    nodes: list[NodeProcess] = []
    try:
        world = build_world(anvil, folder, lots={"genuine": "genuine"}, lot_size=2)
        static = served_page(world, folder)
        source = Path(world.database.url.removeprefix("sqlite:///"))
        unit = world.unit("genuine")
        history = unit_history(world.db, unit.canonical_uri)
        dropped = next(e.event_id for e in history if e.biz_step and "inspecting" in e.biz_step)

        databases = {name: folder / f"{name}.sqlite3" for name in ("honest0", "honest1", "honest2", "lacking", "adding")}
        for database in databases.values():
            copy_database(source, database)
        drop_event(databases["lacking"], dropped)
        extra = capture_and_anchor_on(world, databases["adding"], epcis.object_event(
            epcs=[unit], action="OBSERVE", event_time=iso(world.lots["genuine"].start + 50), biz_step="retail_selling", biz_location=FACTORY))

        nodes = [NodeProcess(world, database, folder / f"node-{name}").start() for name, database in databases.items()]
        for node in nodes:
            node.wait()
            # warm: the first history read of a fresh process is its slowest; the page waits 8 s per node
            assert requests.get(f"{node.url}/units/{quote(unit.canonical_uri, safe='')}/history", timeout=60).status_code == 200
        with ApiServer(world, folder, static_dir=static) as api:
            yield Network(world, api, static, nodes[:3], nodes[3], nodes[4], dropped, extra)
    finally:
        for node in nodes:
            node.stop()
        anvil.stop()


def capture_and_anchor_on(world: World, database: Path, event: dict[str, Any]) -> str:
    """Capture and anchor one manufacturer's event through the node's own path, on one node's database only."""
    runtime = NodeRuntime(world.runtime.node, world.chain_settings, Database(f"sqlite:///{database}"), world.client, world.deployment)
    result = build_capture(runtime).capture(orjson.dumps(capture_document([(event, MANUFACTURER)], runtime.domain)))
    build_anchorer(runtime, MANUFACTURER).drain()
    (event_id,) = result.event_ids
    return str(event_id)


# --- independent confirmation ----------------------------------------------------------------------


def test_every_member_node_confirms_an_honest_history(network: Network, browser: Any) -> None:
    network.list_nodes(carrier=network.honest[1].url, customs=network.honest[2].url)
    shown = browser("confirm", network.api.url + network.path(), "confirm-honest")
    assert shown["bundle"] == "approved"
    assert shown["verdict"] == "genuine", shown["pageReasons"]
    assert shown["confirmation"]["confirmed"] == 3 and shown["confirmation"]["total"] == 3
    assert shown["confirmation"]["summary"] == "Confirmed by 3 of 3 member nodes"
    assert shown["confirmation"]["discrepancies"] == []
    assert [item["heldBy"] for item in shown["heldBy"]] == [3] * len(shown["timeline"])
    assert all(item["browser"] == "verified" for item in shown["heldBy"])


def test_a_node_that_lacks_an_event_and_one_that_holds_another_are_named(network: Network, browser: Any) -> None:
    network.list_nodes(carrier=network.lacking.url, customs=network.adding.url)
    shown = browser("confirm", network.api.url + network.path(), "confirm-discrepancies")
    c = shown["confirmation"]
    assert (c["confirmed"], c["total"]) == (2, 3)  # the manufacturer's and the customs office's nodes hold every event shown
    assert c["summary"] == "Confirmed by 2 of 3 member nodes"
    by_kind = {d["kind"]: d for d in c["discrepancies"]}
    assert len(c["discrepancies"]) == 2
    lacking = by_kind["lacking"]
    assert lacking["eventId"] == network.dropped
    assert lacking["text"].startswith("Inspected") and lacking["text"].endswith("is missing on Bluewater Ocean Freight.")
    omitted = by_kind["omitted"]
    assert omitted["eventId"] == network.extra
    assert omitted["text"].startswith("Sold") and "is held by Customs Office Rotterdam but not shown by this server" in omitted["text"]
    held = {item["eventId"]: item["heldBy"] for item in shown["heldBy"]}
    assert held.pop(network.dropped) == 2 and set(held.values()) == {3}
    # A record other members hold and this server leaves out: never "genuine", and the page says why.
    assert shown["verdict"] == "unverified"
    assert [r["code"] for r in shown["pageReasons"]] == ["records_omitted"]


def test_too_few_answering_nodes_withhold_the_genuine_verdict(network: Network, browser: Any) -> None:
    nobody = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]  # listed, but nothing answers there
    network.list_nodes(carrier=nobody[0], customs=nobody[1])
    shown = browser("confirm", network.api.url + network.path(), "confirm-silent")
    c = shown["confirmation"]
    assert (c["confirmed"], c["total"]) == (1, 3)
    assert c["summary"] == "Confirmed by 1 of 3 member nodes · Bluewater Ocean Freight, Customs Office Rotterdam did not answer."
    assert all(item["browser"] == "verified" for item in shown["heldBy"])  # the chain says every event is genuine...
    assert shown["verdict"] == "unverified"  # ...but one node cannot show that nothing is left out
    assert [r["code"] for r in shown["pageReasons"]] == ["too_few_answers"]


# --- a server that lies --------------------------------------------------------------------------------


@pytest.mark.parametrize("claims", [
    {"chainId": 999},
    {"consortiumRegistry": "0x" + "11" * 20},
    {"provenanceRegistry": "0x" + "22" * 20},
    {"rpcUrl": "http://127.0.0.1:9"},
], ids=["chain-id", "consortium-registry", "provenance-registry", "rpc-url"])
def test_a_server_that_states_other_trust_anchors_gets_no_genuine_verdict(network: Network, browser: Any, claims: dict[str, Any]) -> None:
    network.list_nodes(carrier=network.honest[1].url, customs=network.honest[2].url)
    with LyingServer(network.api.url, claims=claims) as liar:
        shown = browser("confirm", liar.url + "/passport" + network.path(), f"liar-{next(iter(claims))}")
    assert shown["verdict"] == "suspicious"
    assert "Genuine" != shown["verdictTitle"]
    mismatch = next(r for r in shown["pageReasons"] if r["code"] == "anchors_mismatch")
    (field, value), = claims.items()
    assert f"{field} {value}" in mismatch["text"]
    # The page checked against its own anchors, not the stated ones: the real chain verified every event.
    assert all(item["browser"] == "verified" for item in shown["heldBy"])


@pytest.mark.parametrize("alteration", ["appended", "another-rpc"])
def test_an_altered_verifier_script_is_refused(network: Network, browser: Any, tmp_path: Path, alteration: str) -> None:
    approved = (network.static / "dist" / "app.js").read_bytes()
    if alteration == "appended":
        bundle = approved + b'\ndocument.title="Genuine";'
    else:  # a working page built for another RPC (e.g. a chain the server controls)
        anchors = PageAnchors.of(network.world.deployment, "http://127.0.0.1:9", network.world.chain_settings.confirmations)
        build_page(anchors, tmp_path / "other")
        bundle = (tmp_path / "other" / "dist" / "app.js").read_bytes()
    with LyingServer(network.api.url, bundle=bundle) as liar:
        shown = browser("refused", liar.url + "/passport" + network.path(), f"refused-{alteration}", lang="de-DE")
    assert shown["bundle"] == "mismatch" and shown["verdict"] == "untrusted"
    assert shown["verdictTitle"] == "Dieser Seite ist nicht zu trauen" and shown["lang"] == "de"
    assert "0x" + hashlib.sha256(bundle).hexdigest() in shown["message"]
    assert "0x" + hashlib.sha256(approved).hexdigest() in shown["message"]
    assert shown["timeline"] == 0 and "Echt" not in shown["text"] and "Genuine" not in shown["text"]


def test_a_page_that_cannot_check_its_bundle_runs_nothing(network: Network, browser: Any, tmp_path: Path) -> None:
    """Built without the consortium's anchors, or for an RPC nobody answers at: the loader cannot
    learn the approved hash, so no bundle runs and no verdict is shown (fail closed)."""
    unconfigured, unchecked = tmp_path / "unconfigured", tmp_path / "unchecked"
    subprocess.run(["node", str(PROJECT_ROOT / "scanner_web" / "build.mjs"), "--outdir", str(unconfigured / "dist")], check=True, capture_output=True)
    shutil.copyfile(PROJECT_ROOT / "scanner_web" / "index.html", unconfigured / "index.html")
    build_page(PageAnchors.of(network.world.deployment, f"http://127.0.0.1:{free_port()}"), unchecked)
    for static, reason, text in [(unconfigured, "unconfigured", "built without the consortium's chain and registry"),
                                 (unchecked, "unchecked", "could not check its verifier against the consortium's registry")]:
        with ApiServer(network.world, tmp_path / reason, static_dir=static) as api:
            shown = browser("refused", api.url + network.path(), f"refused-{reason}")
        assert (shown["bundle"], shown["verdict"]) == (reason, "untrusted")
        assert text in shown["message"] and "Genuine" not in shown["text"] and shown["timeline"] == 0


@pytest.fixture(scope="module")
def counterfeiter(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, ApiServer]]:
    """A counterfeiter's chain (the same consortium deployed at the same addresses, its events
    signed by the same devnet keys and anchored there) and its API serving the approved page."""
    anvil = AnvilProcess(port=free_port()).start()
    folder = tmp_path_factory.mktemp("counterfeiter")
    try:
        world = build_world(anvil, folder, lots={"fake": "genuine"}, lot_size=1)
        with ApiServer(world, folder, static_dir=network.static) as api:
            yield world, api
    finally:
        anvil.stop()


def test_a_counterfeit_anchored_on_the_servers_own_chain_is_not_genuine(network: Network, counterfeiter: tuple[World, ApiServer], browser: Any) -> None:
    world, api = counterfeiter
    path = world.unit("fake").uri("http://x").removeprefix("http://x")
    served = requests.get(api.url + "/api/v1/passport", params={"uri": world.unit("fake").uri()}, timeout=30).json()
    assert served["verdict"] == "genuine" and served["chain"]["rpcUrl"] == world.anvil.rpc_url  # what the server claims
    assert (served["chain"]["chainId"], served["chain"]["consortiumRegistry"]) == (network.world.client.chain_id, network.world.deployment.address("ConsortiumRegistry"))
    shown = browser("confirm", api.url + path, "counterfeit")
    assert shown["bundle"] == "approved"  # the approved page, checked against the consortium's registry
    assert shown["verdict"] == "suspicious"
    codes = [r["code"] for r in shown["pageReasons"]]
    assert "browser_failed" in codes and "anchors_mismatch" in codes
    assert any(item["browser"] == "failed" for item in shown["heldBy"])
