"""The scanner page in a real headless Chromium: passport, verdict, in-browser verification,
the fake camera, languages, a phone-sized screen. Screenshots go to test-artifacts/scanner_web/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import qrcode
import requests
from eth_utils.crypto import keccak

from node.chain.build import build
from node.chain.client import ChainClient
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from node.member.runtime import build_capture, build_indexer
from tests.api.world import ApiServer, World, build_world, journey
from tests.scanner_web.pages import served_page
from tests.node.escrow_env import EscrowEnv, escrow_env, member
from tests.node.story import INSPECTOR, capture_document

pytestmark = pytest.mark.browser


def path_of(world: World, lot: str, index: int = 0) -> str:
    return world.unit(lot, index).uri("http://x").removeprefix("http://x")


def test_page_shows_the_passport_with_its_timeline_and_verdict(world: World, server: ApiServer, browser: Any) -> None:
    shown = browser("passport", server.url + path_of(world, "genuine"), "passport-genuine")
    assert shown["verdict"] == "genuine"
    assert shown["verdictTitle"] == "Genuine"
    steps = [item["step"] for item in shown["timeline"]]
    assert steps[:3] == ["commissioning", "inspecting", "packing"] and "wmc:cleared" in steps and steps[-1] == "receiving"
    assert all(item["status"] == "verified" for item in shown["timeline"])
    assert shown["route"][0] == "VN" and "NL" in shown["route"]
    assert shown["manufacturer"] == "Lumen Ceramics Co. (VN)"
    # What the product is comes first: its registered name and picture, above the verdict.
    assert shown["productName"] == "Glazed stoneware vase, 30 cm"
    assert shown["productImage"] == 1  # the picture loaded (a 1x1 PNG)
    assert shown["heroAboveVerdict"] is True
    # The route follows places, not the reporting organisation's country (the carrier is in SG).
    assert shown["route"] == ["VN", "VN", "", "NL", "NL"]
    assert shown["routePlaces"] == ["Lumen Ceramics factory, Hai Phong", "Port of Hai Phong", "No place named (in transit)", "Port of Rotterdam", "Utrecht distribution centre"]
    assert shown["width"] <= shown["viewport"]  # nothing wider than a phone screen


def test_in_browser_verification_passes_for_a_genuine_unit(world: World, server: ApiServer, browser: Any) -> None:
    shown = browser("verify", server.url + path_of(world, "genuine", 1), "verify-genuine")
    assert shown["verifyState"] == "passed", shown["verifyText"]
    assert shown["verifyText"] == f"All {len(shown['timeline'])} events verified in this browser."
    assert all(item["browser"] == "verified" for item in shown["timeline"])


def test_in_browser_verification_names_the_failed_check_for_a_tampered_event(world: World, server: ApiServer, browser: Any) -> None:
    shown = browser("verify", server.url + path_of(world, "tampered"), "verify-tampered")
    assert shown["verdict"] == "suspicious"
    assert shown["verifyState"] == "failed"
    assert shown["failedCheck"] == "event_hash"
    assert "check “event hash”" in shown["verifyText"] and "Inspected" in shown["verifyText"]
    inspected = next(item for item in shown["timeline"] if item["step"] == "inspecting")
    assert inspected["browser"] == "failed"
    assert shown["width"] <= shown["viewport"]  # long hashes wrap on a phone


def test_pending_events_are_verified_as_far_as_they_go(world: World, server: ApiServer, browser: Any) -> None:
    shown = browser("verify", server.url + path_of(world, "pending"), "verify-pending")
    assert shown["verdict"] == "unverified"
    assert shown["verifyState"] == "pending"
    assert "are not anchored yet" in shown["verifyText"]


def test_a_qr_code_through_the_fake_camera_is_resolved(world: World, server: ApiServer, browser: Any, tmp_path: Path) -> None:
    unit = world.unit("genuine", 2)
    video = tmp_path / "qr.y4m"
    qr_video(unit.uri(server.url), video)
    shown = browser("camera", server.url + "/", "camera-scan", video=str(video))
    assert shown["verdict"] == "genuine"
    assert shown["path"] == path_of(world, "genuine", 2)
    assert shown["decoder"] in ("jsQR", "BarcodeDetector")


def test_an_unknown_code_is_shown_as_unknown(world: World, server: ApiServer, browser: Any) -> None:
    shown = browser("passport", server.url + "/01/09521234543213/10/L1/21/NEVERISSUED", "unknown-code")
    assert shown["verdict"] == "unknown"
    assert shown["verdictTitle"] == "Unknown code"


def test_language_follows_the_browser_and_can_be_switched(world: World, server: ApiServer, browser: Any) -> None:
    shown = browser("language", server.url + path_of(world, "genuine"), "language-zh", lang="zh-CN", switchTo="es")
    assert shown["initial"] == {"lang": "zh", "title": "正品"}
    assert shown["lang"] == "es" and shown["verdictTitle"] == "Auténtico"


def qr_video(text: str, path: Path, width: int = 640, height: int = 480, frames: int = 10) -> None:
    """A Y4M video (what Chromium's fake camera plays) of a QR code on white."""
    image = qrcode.make(text, border=4, box_size=8).get_image().convert("L")
    side = min(height - 40, image.size[0])
    image = image.resize((side, side))
    from PIL import Image

    canvas = Image.new("L", (width, height), 255)
    canvas.paste(image, ((width - side) // 2, (height - side) // 2))
    luma = canvas.tobytes()
    chroma = bytes([128]) * (width // 2) * (height // 2)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma + chroma + chroma)


# --- the order section: the unit's own order, its state now, in the page's language ---------------


@dataclass
class EscrowWorld:
    world: World
    env: EscrowEnv
    server: ApiServer

    def index(self) -> None:
        indexer = build_indexer(self.world.runtime)
        for _ in range(50):
            if indexer.step().logs == 0:
                break

    def container_order(self, lot: str, buyer: Any = None) -> Any:
        ref = keccak(text=self.world.lots[lot].container.canonical_uri)
        terms = self.env.terms(shipment_ref=ref, salt=time.time_ns() % 2**63, **({"buyer": buyer.address} if buyer else {}))
        return terms

    def wait_for_order(self, lot: str, wanted: dict[str, str] | None) -> None:
        """Until the API's passport shows `wanted` (it follows the indexed logs within about
        half a second); fails after 10 s."""
        deadline = time.monotonic() + 10
        uri = self.world.unit(lot).uri()
        while True:
            shown = requests.get(self.server.url + "/api/v1/passport", params={"uri": uri}, timeout=10).json()["escrow"]
            if shown == wanted or time.monotonic() > deadline:
                assert shown == wanted
                return
            time.sleep(0.05)


@pytest.fixture(scope="module")
def escrow_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EscrowWorld]:
    build()
    anvil = AnvilProcess(port=free_port()).start()
    folder = tmp_path_factory.mktemp("escrow-page")
    try:
        env = escrow_env(ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id), folder)
        world = build_world(anvil, folder, lots={"two": "genuine", "released": "genuine", "unrelated": "genuine"}, lot_size=1)
        with ApiServer(world, folder, passport_ttl=3600.0, static_dir=served_page(world, folder)) as server:
            yield EscrowWorld(world, env, server)
    finally:
        anvil.stop()


def deliver(env: EscrowEnv, terms: Any) -> None:
    for milestone in range(len(terms.milestones)):
        env.reach(terms, milestone)


def test_page_shows_no_order_when_two_buyers_orders_name_its_container(escrow_world: EscrowWorld, browser: Any) -> None:
    w = escrow_world
    mine = w.env.open(w.container_order("two"))
    w.index()
    w.wait_for_order("two", {"state": "Funded"})
    shown = browser("passport", w.server.url + path_of(w.world, "two"), "order-one-buyer")
    assert shown["escrow"] == "Funded" and shown["escrowText"] == "Paid into escrow"
    w.env.escrow.create(w.container_order("two", buyer=member(11)), w.env.seller)  # another buyer's order, same container
    w.index()
    w.wait_for_order("two", None)
    shown = browser("passport", w.server.url + path_of(w.world, "two"), "order-two-buyers")
    assert shown["escrow"] is None  # never the other buyer's order
    assert shown["verdict"] == "genuine" and mine.order_id


def test_page_shows_the_release_on_a_rescan(escrow_world: EscrowWorld, browser: Any) -> None:
    w = escrow_world
    terms = w.env.open(w.container_order("released"))
    deliver(w.env, terms)
    w.index()
    w.wait_for_order("released", {"state": "Delivered"})
    shown = browser("passport", w.server.url + path_of(w.world, "released"), "order-delivered")
    assert shown["escrow"] == "Delivered" and shown["escrowText"] == "Delivered, awaiting the buyer's confirmation"
    w.env.escrow.confirm(terms, w.env.buyer)
    w.index()
    w.wait_for_order("released", {"state": "Released"})
    shown = browser("passport", w.server.url + path_of(w.world, "released"), "order-released")
    assert shown["escrow"] == "Released" and shown["escrowText"] == "Completed: payment released to the seller"
    shown = browser("language", w.server.url + path_of(w.world, "released"), "order-released-de", lang="de-DE", switchTo="fr")
    assert shown["initial"]["lang"] == "de"
    assert shown["lang"] == "fr" and shown["escrowText"] == "Terminée : paiement versé au vendeur"


def test_page_keeps_the_units_order_when_an_unrelated_order_is_cancelled(escrow_world: EscrowWorld, browser: Any) -> None:
    w = escrow_world
    terms = w.env.open(w.container_order("unrelated"))
    deliver(w.env, terms)
    other = w.container_order("unrelated", buyer=member(11))
    w.env.escrow.create(other, w.env.seller)
    w.env.escrow.cancel(other, w.env.seller)
    w.index()
    w.wait_for_order("unrelated", {"state": "Delivered"})
    shown = browser("passport", w.server.url + path_of(w.world, "unrelated"), "order-unrelated-cancelled", lang="es-ES")
    assert shown["escrow"] == "Delivered" and shown["escrowText"] == "Entregado, pendiente de la confirmación del comprador"


def test_a_product_level_code_shows_the_product_and_its_lots_and_opens_a_lot(world: World, server: ApiServer, browser: Any) -> None:
    unit = world.unit("genuine")
    shown = browser("product", f"{server.url}/01/{unit.gtin.lstrip('0')}", "product-page", follow=unit.lot)
    assert shown["path"] == f"/passport/01/{unit.gtin.lstrip('0')}"  # the resolver's 307 to the default link
    assert shown["kind"] == "product" and shown["verdictHidden"] is True
    assert shown["productName"] == "Glazed stoneware vase, 30 cm" and shown["productImage"] == 1
    assert shown["manufacturer"] == "Lumen Ceramics Co. (VN)"
    assert [lot["lot"] for lot in shown["lots"]] == [unit.lot] and shown["lots"][0]["recalled"] == "no"
    assert shown["followed"]["kind"] == "lot" and shown["followed"]["path"] == f"/passport/01/{unit.gtin}/10/{unit.lot}"
    assert int(shown["followed"]["lotUnits"]) == sum(len(story.units) + 1 for story in world.lots.values())  # units and strays
    assert shown["width"] <= shown["viewport"]


def test_a_lot_level_code_shows_production_inspection_and_recall_state(world: World, server: ApiServer, browser: Any) -> None:
    unit = world.unit("genuine")
    shown = browser("product", f"{server.url}/01/{unit.gtin}/10/{unit.lot}", "lot-page")
    assert shown["kind"] == "lot" and shown["productName"] == "Glazed stoneware vase, 30 cm"
    assert shown["lotInspections"].startswith("inspected on")
    assert shown["lotRecalled"] == "no" and shown["lotRecall"] == "Not recalled"


def test_a_link_with_a_wrong_lot_is_flagged_on_the_page(world: World, server: ApiServer, browser: Any) -> None:
    unit = world.unit("genuine", 3)
    wrong = f"/01/{unit.gtin}/10/OTHERLOT/21/{unit.serial}"
    shown = browser("passport", server.url + wrong, "wrong-lot")
    assert shown["verdict"] == "suspicious"
    assert "lot_mismatch" in shown["reasons"]
    assert "The link names another lot than the one this unit was made in." in shown["reasonTexts"]
    assert shown["lot"] == unit.lot  # the lot it was made in, not the link's


def test_a_correction_is_shown_on_the_event_it_corrects(world: World, server: ApiServer, browser: Any) -> None:
    """An EPCIS error declaration of the lot's inspection, captured through the node's capture
    path, is stored beside the original and shown on the event it declares erroneous."""
    story = world.lots["genuine"]
    inspection = journey(story)[1][0]
    declaration = {**inspection, "errorDeclaration": {
        "declarationTime": "2026-01-02T03:04:05.000Z", "reason": "incorrect_data",
        "correctiveEventIDs": ["ni:///sha-256;" + "ab" * 32 + "?ver=CBV2.0"],
    }}
    result = build_capture(world.runtime).capture(orjson.dumps(capture_document([(declaration, INSPECTOR)], world.runtime.domain)))
    assert result.duplicates == 0  # stored under its own record id, not dropped as the original's duplicate
    server.app.state.services.passports.clear()
    shown = browser("passport", server.url + path_of(world, "genuine", 2), "correction")
    assert [c["step"] for c in shown["corrections"]] == ["inspecting"]
    text = shown["corrections"][0]["text"]
    assert text.startswith("Declared erroneous on") and "Reason: incorrect data" in text and "Corrected by 1 event(s)" in text
