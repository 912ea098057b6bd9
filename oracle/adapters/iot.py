"""IoT sensor readings: temperature and relative humidity (`iot`), JSON:

    {"deviceId": "TT-4471", "object": "195212340000000038", "gtin": "09521234543213",
     "location": {"latitude": 1.26, "longitude": 103.84},
     "readings": [{"time": "2025-07-08T06:00:00Z", "type": "temperature", "value": 27.4, "unit": "C"},
                  {"time": "2025-07-08T06:00:00Z", "type": "humidity", "value": 71, "unit": "%"}]}

Units: temperature in C / CEL / °C, F / FAH or K / KEL; humidity in % / P1 / %RH. Any other
unit is refused, naming the reading (`readings[1].unit`).

The allowed range comes from the product catalogue (`WAYMARK_ORACLE_PRODUCTS_FILE`):

    {"09521234543213": {"name": "Glazed stoneware vase", "temperature": {"min": -20, "max": 50},
                        "humidity": {"min": 10, "max": 85}}}

(temperature in °C, humidity in %) for `gtin`, or, without one, for the goods of the shipment
the object travels in (from the carrier feed's booking). A message about an object whose
product this oracle cannot tell is refused.

A message becomes one ObjectEvent OBSERVE of the object, bizStep sensor_reporting, with the
in-range readings as sensor reports, plus one excursion event per run of consecutive
out-of-range readings of one measurement: the same shape, its reports marked
`exception: ALARM_CONDITION` and carrying the allowed `wm:allowedMin` / `wm:allowedMax`. The
passport lists reports with an exception as sensor excursions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from node.protocol import epcis
from oracle.adapters.base import Adapter, Context, FieldError, Gtin, Ident, Location, ObjectRef, Output, Record, Timestamp, device_uri, offset_of, unix

_TEMPERATURE_UNITS = {"C": "CEL", "CEL": "CEL", "°C": "CEL", "DEGC": "CEL", "F": "FAH", "FAH": "FAH", "°F": "FAH", "K": "KEL", "KEL": "KEL"}
_HUMIDITY_UNITS = {"%": "P1", "P1": "P1", "%RH": "P1", "RH": "P1"}
_COLDEST, _HOTTEST = -273.15, 2000.0  # °C: no sensor reading outside this is a temperature
_MEASUREMENT = {"temperature": "Temperature", "humidity": "RelativeHumidity"}


class Reading(Record):
    time: Timestamp
    type: Literal["temperature", "humidity"]
    value: float = Field(allow_inf_nan=False, strict=True, description="A number (true/false and strings are refused)")
    unit: str

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str, info: Any) -> str:
        kind = info.data.get("type")
        table = _TEMPERATURE_UNITS if kind == "temperature" else _HUMIDITY_UNITS if kind == "humidity" else None
        if table is not None and unit.upper() not in table:
            allowed = "C, F or K" if kind == "temperature" else "% (relative humidity)"
            raise ValueError(f"a {kind} reading is in {allowed}, got {unit!r}")
        return unit.upper()

    def uom(self) -> str:
        return (_TEMPERATURE_UNITS if self.type == "temperature" else _HUMIDITY_UNITS)[self.unit]

    def celsius_or_percent(self) -> float:
        """The value in the catalogue's units (°C, %)."""
        uom = self.uom()
        if uom == "FAH":
            return (self.value - 32) * 5 / 9
        if uom == "KEL":
            return self.value - 273.15
        return self.value


class SensorMessage(Record):
    device_id: Ident
    object: ObjectRef = Field(description="The container, pallet or unit the sensor watches")
    gtin: Gtin | None = Field(None, description="Product whose range applies (default: the goods of the object's shipment)")
    location: Location | None = None
    readings: list[Reading] = Field(min_length=1, max_length=5000)

    @field_validator("readings")
    @classmethod
    def _humidity_is_a_percentage(cls, readings: list[Reading]) -> list[Reading]:
        for i, reading in enumerate(readings):
            if reading.type == "humidity" and not 0 <= reading.value <= 100:
                raise ValueError(f"readings[{i}]: relative humidity is 0-100 %, got {reading.value}")
            if reading.type == "temperature" and not _COLDEST <= reading.celsius_or_percent() <= _HOTTEST:
                raise ValueError(
                    f"readings[{i}].value: {reading.value} {reading.unit} is outside {_COLDEST} to {_HOTTEST} °C (absolute zero to a furnace)"
                )
        return readings


def product_limits(ctx: Context, record: SensorMessage) -> tuple[str, Mapping[str, Any]]:
    """(gtin, catalogue entry) whose range applies to the message."""
    candidates = [record.gtin] if record.gtin else [g for s in ctx.state.shipments_of(record.object) for g in s.goods]
    for gtin in dict.fromkeys(candidates):
        entry = ctx.products.get(gtin)
        if entry is not None:
            return gtin, entry
    if record.gtin:
        raise FieldError("gtin", f"product {record.gtin} is not in this oracle's product catalogue (no allowed range known)")
    raise FieldError(
        "object",
        f"no product range known for {record.object}: name its gtin, or book its shipment (with its goods) through the carrier feed first",
    )


class IotAdapter(Adapter):
    name = "iot"
    model = SensorMessage
    description = "Temperature and humidity readings; out-of-range readings become excursion events"

    def build(self, record: SensorMessage, ctx: Context) -> Output:
        gtin, entry = product_limits(ctx, record)
        device = device_uri(record.device_id)
        readings = sorted(enumerate(record.readings), key=lambda item: (unix(item[1].time), item[0]))
        normal: list[epcis.Json] = []
        runs: list[list[epcis.Json]] = []
        open_run: dict[str, list[epcis.Json]] = {}
        for _index, reading in readings:
            limits = entry.get(reading.type) or {}
            low, high = limits.get("min"), limits.get("max")
            value = reading.celsius_or_percent()
            report = epcis.sensor_report(_MEASUREMENT[reading.type], reading.value, reading.uom(), time=reading.time)
            outside = (low is not None and value < low) or (high is not None and value > high)
            if not outside:
                normal.append(report)
                if reading.type in open_run:
                    runs.append(open_run.pop(reading.type))
                continue
            report = {"type": report["type"], "exception": "ALARM_CONDITION", **{k: v for k, v in report.items() if k != "type"}}
            if low is not None:
                report["wm:allowedMin"] = _in_unit(low, reading.uom())
            if high is not None:
                report["wm:allowedMax"] = _in_unit(high, reading.uom())
            open_run.setdefault(reading.type, []).append(report)
        runs.extend(open_run.values())
        output = Output(notes={"gtin": gtin, "readings": len(record.readings), "excursions": len(runs)})
        location = record.location
        for reports in ([normal] if normal else []) + runs:
            times = [r["time"] for r in reports]
            output.events.append(epcis.object_event(
                epcs=[record.object],
                action="OBSERVE",
                event_time=max(times, key=lambda t: unix(t)),
                event_time_zone_offset=offset_of(record.readings[0].time),
                biz_step="sensor_reporting",
                read_point=location.read_point() if location else None,
                biz_location=location.business_location() if location else None,
                sensor_elements=[epcis.sensor_element(
                    reports,
                    start_time=min(times, key=lambda t: unix(t)),
                    end_time=max(times, key=lambda t: unix(t)),
                    device_id=device,
                )],
            ))
        return output


def _in_unit(celsius_or_percent: float, uom: str) -> float:
    if uom == "FAH":
        return round(celsius_or_percent * 9 / 5 + 32, 4)
    if uom == "KEL":
        return round(celsius_or_percent + 273.15, 4)
    return celsius_or_percent
