"""What a bundle covers: a product, a lot, an escrow order or a time range of event times, made
from the words a user gives (CLI options, API query)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Union

from node.audit.bundle.format import BundleError
from node.protocol.timestamps import iso_ms
from node.errors import WaymarkError
from node.escrow import order_key
from node.protocol.gs1 import CANONICAL_RESOLVER, encode_component, normalize_gtin


@dataclass(frozen=True)
class Product:
    gtin: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "gtin", normalize_gtin(self.gtin))

    def describe(self) -> str:
        return f"product {self.gtin}"

    def to_json(self) -> dict[str, Any]:
        return {"product": self.gtin}


@dataclass(frozen=True)
class Lot:
    gtin: str
    lot: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "gtin", normalize_gtin(self.gtin))

    @property
    def class_uri(self) -> str:
        """The lot's canonical id (a class-level EPC, as quantity lists and shipment refs name it)."""
        return f"https://{CANONICAL_RESOLVER}/01/{self.gtin}/10/{encode_component(self.lot)}"

    def describe(self) -> str:
        return f"lot {self.lot} of product {self.gtin}"

    def to_json(self) -> dict[str, Any]:
        return {"product": self.gtin, "lot": self.lot}


@dataclass(frozen=True)
class OrderSel:
    order_id: int

    def describe(self) -> str:
        return f"escrow order {order_key(self.order_id)}"

    def to_json(self) -> dict[str, Any]:
        return {"order": order_key(self.order_id)}


@dataclass(frozen=True)
class TimeRange:
    """Events whose event time is in [start_ms, end_ms] (unix milliseconds, both inclusive)."""

    start_ms: int
    end_ms: int

    def describe(self) -> str:
        return f"event times {iso_ms(self.start_ms)} to {iso_ms(self.end_ms)}"

    def to_json(self) -> dict[str, Any]:
        return {"from": iso_ms(self.start_ms), "to": iso_ms(self.end_ms)}


Selector = Union[Product, Lot, OrderSel, TimeRange]


class InvalidSelection(BundleError):
    code = "invalid_selection"

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(problem)


def parse_time_ms(text: str, field: str) -> int:
    """Unix milliseconds of an ISO 8601 time (UTC when it names no offset) or of unix seconds."""
    value = text.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidSelection(f"{field}: {text!r} is neither an ISO 8601 time nor unix seconds", field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def make_selector(*, product: str | None = None, lot: str | None = None, order: str | None = None,
                  time_from: str | None = None, time_to: str | None = None) -> Selector:
    """What to export, from the words a user gives (CLI options, API query): a product; a
    product and a lot; an order id (0x + 64 hex digits, or decimal); or a from/to time range."""
    if lot is not None and product is None:
        raise InvalidSelection("a lot is named with its product (GTIN)", "lot")
    chosen = [name for name, value in (("product", product), ("order", order), ("from", time_from or time_to)) if value]
    if len(chosen) != 1:
        raise InvalidSelection("name exactly one of: a product (and a lot), an order, a from/to time range"
                               + (f"; got {' and '.join(chosen)}" if chosen else ""), chosen[-1] if chosen else None)
    if product is not None:
        try:
            return Lot(product, lot) if lot is not None else Product(product)
        except WaymarkError as exc:
            raise InvalidSelection(str(exc), "product") from None
    if order is not None:
        try:
            return OrderSel(int(order, 16) if order.strip().lower().startswith("0x") else int(order))
        except ValueError:
            raise InvalidSelection(f"{order!r} is not an order id (0x + 64 hex digits, or decimal)", "order") from None
    if not time_from or not time_to:
        raise InvalidSelection("a time range needs both from and to", "to" if time_from else "from")
    start, end = parse_time_ms(time_from, "from"), parse_time_ms(time_to, "to")
    if end < start:
        raise InvalidSelection("the range ends (to) before it starts (from)", "to")
    return TimeRange(start, end)
