"""QR codes and printable label sheets for Digital Link codes.

``qr_png`` / ``qr_svg`` render one link; ``label_page_svg`` lays out one A4 page of labels
(QR code plus the human-readable GS1 fields "(01) GTIN (10) LOT (21) SERIAL" or "(00) SSCC")
and ``label_sheet_html`` puts all pages of a lot into one printable HTML document.

The SVG is drawn from the QR module matrix as a single path (no embedded bitmaps), so it is
small, sharp at any print resolution, and the same bytes for the same input.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Iterable, Sequence
from xml.sax.saxutils import escape

import qrcode
import qrcode.constants
from qrcode.image.pil import PilImage

from node.protocol.digital_link import ParsedLink, parse_digital_link
from node.protocol.gs1 import ContainerId, UnitId

_LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
QUIET_ZONE = 4  # modules of white border the QR specification asks for


def qr_matrix(data: str, error_correction: str = "M") -> list[list[bool]]:
    """The QR module matrix (True = dark), without quiet zone."""
    if error_correction not in _LEVELS:
        raise ValueError(f"error correction is one of L, M, Q, H, got {error_correction!r}")
    code = qrcode.QRCode(error_correction=_LEVELS[error_correction], border=0)
    code.add_data(data)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


def qr_png(data: str, *, box_size: int = 8, error_correction: str = "M") -> bytes:
    """A PNG of the QR code (``box_size`` pixels per module, 4-module quiet zone)."""
    if error_correction not in _LEVELS:
        raise ValueError(f"error correction is one of L, M, Q, H, got {error_correction!r}")
    code = qrcode.QRCode(error_correction=_LEVELS[error_correction], box_size=box_size, border=QUIET_ZONE)
    code.add_data(data)
    code.make(fit=True)
    image = code.make_image(image_factory=PilImage)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _path_data(matrix: Sequence[Sequence[bool]], x0: float = 0, y0: float = 0, module: float = 1) -> str:
    # One horizontal run of dark modules per sub-path keeps the path short.
    parts = []
    for y, row in enumerate(matrix):
        x = 0
        width = len(row)
        while x < width:
            if row[x]:
                start = x
                while x < width and row[x]:
                    x += 1
                parts.append(
                    f"M{_num(x0 + start * module)} {_num(y0 + y * module)}"
                    f"h{_num((x - start) * module)}v{_num(module)}h{_num(-(x - start) * module)}z"
                )
            else:
                x += 1
    return "".join(parts)


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def qr_svg(data: str, *, module_size: float = 4, error_correction: str = "M") -> bytes:
    """A standalone SVG of the QR code (``module_size`` user units per module)."""
    matrix = qr_matrix(data, error_correction)
    size = (len(matrix) + 2 * QUIET_ZONE) * module_size
    path = _path_data(matrix, QUIET_ZONE * module_size, QUIET_ZONE * module_size, module_size)
    svg = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(size)}" height="{_num(size)}" '
        f'viewBox="0 0 {_num(size)} {_num(size)}" shape-rendering="crispEdges">'
        f"<title>{escape(data)}</title>"
        f'<rect width="100%" height="100%" fill="#fff"/>'
        f'<path fill="#000" d="{path}"/></svg>\n'
    )
    return svg.encode("utf-8")


# --- label sheets -------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelLayout:
    """An A4 sheet in millimetres: columns x rows of labels with margins and gaps."""

    page_width: float = 210.0
    page_height: float = 297.0
    columns: int = 3
    rows: int = 7
    margin: float = 10.0
    gap: float = 4.0
    qr_size: float = 26.0
    font_size: float = 2.6

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    @property
    def label_width(self) -> float:
        return (self.page_width - 2 * self.margin - (self.columns - 1) * self.gap) / self.columns

    @property
    def label_height(self) -> float:
        return (self.page_height - 2 * self.margin - (self.rows - 1) * self.gap) / self.rows


def human_readable(link: str | ParsedLink) -> list[str]:
    """The GS1 human-readable lines of a code: ``(01) ...``, ``(22) ...``, ``(10) ...``,
    ``(21) ...`` (or ``(00) ...``), then its data attributes (``(17) ...``) in the order given."""
    parsed = parse_digital_link(link) if isinstance(link, str) else link
    identifier = parsed.identifier
    attributes = [f"({ai}) {value}" for ai, value in parsed.attributes]
    if isinstance(identifier, UnitId):
        lines = [f"(01) {identifier.gtin}"]  # element string AI 01 is N14: the HRI shows 14 digits
        if identifier.cpv is not None:
            lines.append(f"(22) {identifier.cpv}")
        if identifier.lot is not None:
            lines.append(f"(10) {identifier.lot}")
        lines.append(f"(21) {identifier.serial}")
        return lines + attributes
    assert isinstance(identifier, ContainerId)
    return [f"(00) {identifier.sscc}", *attributes]


def _label_group(link: str, x: float, y: float, layout: LabelLayout, error_correction: str) -> str:
    matrix = qr_matrix(link, error_correction)
    modules = len(matrix) + 2 * QUIET_ZONE
    module = layout.qr_size / modules
    offset = QUIET_ZONE * module
    path = _path_data(matrix, x + offset, y + (layout.label_height - layout.qr_size) / 2 + offset, module)
    text_x = x + layout.qr_size + 2
    lines = human_readable(link)
    line_height = layout.font_size * 1.35
    text_y = y + (layout.label_height - line_height * len(lines)) / 2 + layout.font_size
    texts = "".join(
        f'<text x="{_num(text_x)}" y="{_num(text_y + i * line_height)}">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    return (
        f'<g><rect x="{_num(x)}" y="{_num(y)}" width="{_num(layout.label_width)}" '
        f'height="{_num(layout.label_height)}" rx="1.5" fill="none" stroke="#bbb" stroke-width="0.2"/>'
        f'<path fill="#000" d="{path}"/>{texts}</g>'
    )


def label_page_svg(
    links: Sequence[str], layout: LabelLayout = LabelLayout(), *, title: str | None = None,
    error_correction: str = "M",
) -> bytes:
    """One A4 page (SVG, millimetre units) with up to ``layout.per_page`` labels."""
    if len(links) > layout.per_page:
        raise ValueError(f"a page holds {layout.per_page} labels, got {len(links)}")
    groups = []
    for i, link in enumerate(links):
        column, row = i % layout.columns, i // layout.columns
        x = layout.margin + column * (layout.label_width + layout.gap)
        y = layout.margin + row * (layout.label_height + layout.gap)
        groups.append(_label_group(link, x, y, layout, error_correction))
    heading = (
        f'<text x="{_num(layout.margin)}" y="{_num(layout.margin * 0.7)}" font-size="3.2">{escape(title)}</text>'
        if title
        else ""
    )
    svg = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(layout.page_width)}mm" '
        f'height="{_num(layout.page_height)}mm" viewBox="0 0 {_num(layout.page_width)} '
        f'{_num(layout.page_height)}" shape-rendering="crispEdges" '
        f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{_num(layout.font_size)}">'
        f'<rect width="100%" height="100%" fill="#fff"/>{heading}{"".join(groups)}</svg>\n'
    )
    return svg.encode("utf-8")


def _pages(links: Sequence[str], per_page: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(links), per_page):
        yield links[start:start + per_page]


def label_sheet_html(
    links: Sequence[str], layout: LabelLayout = LabelLayout(), *, title: str = "Waymark labels",
    error_correction: str = "M",
) -> str:
    """A printable HTML document: one A4 SVG page per ``layout.per_page`` labels."""
    if not links:
        raise ValueError("no labels to print")
    pages = []
    for number, page in enumerate(_pages(links, layout.per_page), start=1):
        svg = label_page_svg(page, layout, title=f"{title} - page {number}", error_correction=error_correction)
        body = svg.decode("utf-8").split("\n", 1)[1]  # drop the XML declaration inside HTML
        pages.append(f'<section class="page">{body}</section>')
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        "<style>@page{size:A4;margin:0}body{margin:0}"
        ".page{width:210mm;height:297mm;page-break-after:always;break-after:page}"
        ".page:last-child{page-break-after:auto;break-after:auto}svg{display:block}</style>"
        f'</head><body>{"".join(pages)}</body></html>\n'
    )
