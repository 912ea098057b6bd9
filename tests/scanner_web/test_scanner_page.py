"""The scanner page in a real headless Chromium: passport, verdict, in-browser verification,
the fake camera, languages, a phone-sized screen. Screenshots go to test-artifacts/scanner_web/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import qrcode

from tests.api.world import ApiServer, World

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
