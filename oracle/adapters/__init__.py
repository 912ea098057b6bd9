"""Source adapters: each turns one kind of source record into EPCIS events (and documents,
escrow facts, FX rates). `all_adapters()` maps the names used in settings and URLs to them."""

from __future__ import annotations

from oracle.adapters.base import Adapter
from oracle.adapters.carrier import CarrierAdapter
from oracle.adapters.customs import CustomsAdapter
from oracle.adapters.epcis_capture import EpcisAdapter
from oracle.adapters.fx import FxAdapter
from oracle.adapters.inspection import InspectionAdapter
from oracle.adapters.iot import IotAdapter
from oracle.adapters.production import PackingAdapter, ProductionAdapter


def all_adapters() -> dict[str, Adapter]:
    adapters: list[Adapter] = [
        ProductionAdapter(), PackingAdapter(), EpcisAdapter(), CarrierAdapter(), IotAdapter(),
        InspectionAdapter(), CustomsAdapter(), FxAdapter(),
    ]
    return {a.name: a for a in adapters}
