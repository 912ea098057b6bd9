"""QR codes and label sheets decode back to the link (decoded with jsQR under node)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
from eth_account import Account
from PIL import Image

from node.protocol import gs1, labels
from node.protocol import digital_link
from node.protocol import issuance

REPO = Path(__file__).resolve().parents[2]
DECODE = r"""
const jsQR = require('jsqr');
let input = '';
process.stdin.on('data', c => { input += c; });
process.stdin.on('end', () => {
  const { width, height, rgba } = JSON.parse(input);
  const code = jsQR(Uint8ClampedArray.from(Buffer.from(rgba, 'base64')), width, height);
  process.stdout.write(JSON.stringify(code ? code.data : null));
});
"""


def decode_qr(image: Image.Image) -> str | None:
    import base64

    node = shutil.which("node")
    assert node is not None, "node decodes the QR codes (jsQR)"
    rgba = image.convert("RGBA")
    payload = {"width": rgba.width, "height": rgba.height, "rgba": base64.b64encode(rgba.tobytes()).decode()}
    result = subprocess.run([node, "-e", DECODE], input=json.dumps(payload), capture_output=True, text=True,
                            cwd=REPO, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def rasterise_path(d: str, width: float, height: float, scale: float) -> Image.Image:
    """Draw the rectangles of one of our QR paths (``M x y h w v h h -w z`` runs) to pixels."""
    image = Image.new("L", (int(width * scale) + 1, int(height * scale) + 1), 255)
    pixels = image.load()
    assert pixels is not None
    for x, y, w, h in re.findall(r"M([\d.]+) ([\d.]+)h([\d.]+)v([\d.]+)h-[\d.]+z", d):
        x0, y0 = float(x) * scale, float(y) * scale
        for px in range(round(x0), round(x0 + float(w) * scale)):
            for py in range(round(y0), round(y0 + float(h) * scale)):
                pixels[px, py] = 0
    return image


def signed_links(count: int) -> list[str]:
    manufacturer = Account.create()
    return [issuance.issue_unit("9506000134352", "LOT-24A", private_key=manufacturer.key, chain_id=31337,
                           resolver="scan.waymark.example")[1] for _ in range(count)]


def test_png_qr_decodes_to_the_signed_link() -> None:
    link = signed_links(1)[0]
    png = labels.qr_png(link, box_size=4)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert decode_qr(Image.open(io.BytesIO(png))) == link


def test_svg_qr_is_deterministic_and_decodes_to_the_link() -> None:
    link = signed_links(1)[0]
    svg = labels.qr_svg(link, module_size=4)
    assert svg == labels.qr_svg(link, module_size=4)
    root = ElementTree.fromstring(svg)
    size = float(root.get("width", "0"))
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    assert decode_qr(rasterise_path(path.get("d", ""), size, size, 1)) == link


def test_label_page_has_qr_and_human_readable_fields_for_each_unit() -> None:
    links = signed_links(5)
    svg = labels.label_page_svg(links, title="Lot LOT-24A")
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    groups = root.findall(f"{ns}g")
    assert len(groups) == 5
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "Lot LOT-24A" in texts
    for link in links:
        unit = digital_link.parse_digital_link(link).identifier
        assert isinstance(unit, gs1.UnitId)
        assert f"(21) {unit.serial}" in texts
    assert texts.count("(01) 09506000134352") == 5
    assert texts.count("(10) LOT-24A") == 5
    # the first label's QR code, drawn at 20 px per millimetre, scans back to the first link
    path = groups[0].find(f"{ns}path")
    assert path is not None
    assert decode_qr(rasterise_path(path.get("d", ""), 80, 80, 20)) == links[0]


def test_sheet_html_paginates_a_lot() -> None:
    layout = labels.LabelLayout()
    links = [gs1.UnitId("09506000134352", gs1.new_serial(), "L1").uri("scan.waymark.example")
             for _ in range(layout.per_page + 3)]
    sscc = gs1.make_sscc("9506000", 1)
    links.append(gs1.ContainerId(sscc).uri("scan.waymark.example"))
    html = labels.label_sheet_html(links, layout, title="Lot L1")
    assert html.startswith("<!DOCTYPE html>")
    assert html.count('<section class="page">') == 2
    assert html.count("<g>") == len(links)
    assert f"(00) {sscc}" in html
    with pytest.raises(ValueError):
        labels.label_page_svg(links, layout)
    with pytest.raises(ValueError):
        labels.label_sheet_html([])


def test_human_readable_lines_follow_gs1_element_strings() -> None:
    assert labels.human_readable("https://x.example/01/09506000134352/10/L%2F1/21/S1") == [
        "(01) 09506000134352", "(10) L/1", "(21) S1"]
    sscc = gs1.make_sscc("9506000", 1)
    assert labels.human_readable(f"https://x.example/00/{sscc}") == [f"(00) {sscc}"]
