"""The simulated shipment of the demo: source records of a lot of vases made in Vietnam and
shipped to the Netherlands, the demo members' oracles that take them, and the escrow orders
that pay for the goods (a buyer's pallet, or the whole container).

A lot of glazed stoneware vases is made by Lumen Ceramics in Vietnam, inspected by Meridian
Inspection Services, packed into cartons (a CSV packing list) and onto two pallets, one per
buyer (an EPCIS document from the warehouse system), stuffed into a container and shipped by Bluewater
Ocean Freight from Ho Chi Minh City to Rotterdam (the booking names the pallets, so the carriers'
oracles attest milestones for orders that name a pallet). A data logger in the container reports
temperature and humidity every six hours; humidity rises past the product's limit for a
while in the Indian Ocean (one excursion). Customs in Rotterdam gets the declaration (the container and
the pallets in it, HS code, value, certificate of origin) and clears the goods with duty; the pallets are unloaded
and a courier delivers them in Utrecht. Escrow-relevant facts reach three carrier and three
customs organisations' oracles, so milestones can be attested 2-of-3 through the relayer.

Every record goes in through an oracle's adapters as a source system would send it: ERP
JSON and carrier/IoT/customs feeds to the webhooks, the packing list as a CSV file in the
drop folder, the pallets as an EPCIS 2.0 document to the capture endpoint. The oracles run in
the calling process (each on its own HTTP port), signing as the members' devnet accounts.

Time: simulated day d happens at `start + d * day_seconds` (wall clock).

This module sits above node, oracle and api (it drives all three), like the CLI: node never
imports it. `scripts/simulate.py` is its command line; `waymark demo` plays the whole story
with it (waymark/demo/story.py).
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eth_utils.crypto import keccak

from node.errors import WaymarkError
from node.escrow.client import EscrowClient
from node.escrow.terms import ZERO_ADDRESS, OrderTerms, arbitrators, customs_authorities, schedule
from node.protocol import epcis
from node.protocol.gs1 import SERIAL_ALPHABET, UnitId, make_sscc
from oracle.app import create_app
from oracle.runtime import RoleHistory, build_runtime, escrow_factory, fx_signer_for, organisation_roles
from oracle.settings import OracleSettings
from waymark.ports import free_port
from waymark.devnet.consortium import DEMO_BUYER_INDICES, DEMO_MEMBERS, devnet_account

GTIN = "09521234543213"
COMPANY_PREFIX = "9521234"
FACTORY_GLN = "9521234000013"
UNIT_PRICE = Decimal("38.50")
DUTY_RATE = Decimal("0.06")
PRODUCT = {"name": "Glazed stoneware vase, 30 cm", "temperature": {"min": -20, "max": 50}, "humidity": {"min": 10, "max": 85}}

ZONES = {"VN": timezone(timedelta(hours=7)), "SG": timezone(timedelta(hours=8)), "LK": timezone(timedelta(hours=5, minutes=30)),
         "EG": timezone(timedelta(hours=3)), "ES": timezone(timedelta(hours=2)), "NL": timezone(timedelta(hours=2))}
PLACES = {  # UN/LOCODE -> (latitude, longitude)
    "VNSGN": (10.7626, 106.7559), "SGSIN": (1.2644, 103.8220), "LKCMB": (6.9497, 79.8428), "EGSUZ": (29.9668, 32.5498),
    "ESALG": (36.1408, -5.4562), "NLRTM": (51.9496, 4.1453), "NLUTC": (52.0907, 5.1214),
}
# Which demo members' oracles take which records.
CARRIERS_SHIPPED = ("carrier", "forwarder")
CARRIERS_DELIVERED = ("courier", "forwarder")
CUSTOMS_PARTIES = ("customs", "broker", "port")
FX_ORACLES = ("broker", "port", "forwarder")


@dataclass(frozen=True)
class Step:
    day: float
    members: tuple[str, ...]
    channel: str  # webhook:<adapter> | capture | csv
    label: str
    record: Any = None
    csv_name: str | None = None


@dataclass
class Shipment:
    """The simulated lot, shipment and paperwork (identifiers and amounts)."""

    start: float
    day_seconds: float
    rng: random.Random
    units: int
    lot: str = ""
    serials: list[str] = field(default_factory=list)
    cartons: list[str] = field(default_factory=list)
    pallets: list[str] = field(default_factory=list)  # two: the first cartons on one, the rest on the other
    container: str = ""
    shipment_id: str = ""
    declaration_id: str = ""

    def __post_init__(self) -> None:
        made = datetime.fromtimestamp(self.start, ZONES["VN"])
        self.lot = f"L{made:%Y%m%d}"
        # 12 characters of 62 symbols: 71 bits, like node.protocol.gs1.new_serial (seedable here for repeatable demos).
        self.serials = ["".join(self.rng.choice(SERIAL_ALPHABET) for _ in range(12)) for _ in range(self.units)]
        base = self.rng.randrange(10**6, 10**8)
        # Up to 12 vases a carton, and at least two cartons (when there are two vases), so each pallet holds goods.
        per_carton = min(12, max(1, -(-self.units // 2)))
        self.cartons = [make_sscc(COMPANY_PREFIX, base + i) for i in range(-(-self.units // per_carton))]
        self.pallets = [make_sscc(COMPANY_PREFIX, base + 500), make_sscc(COMPANY_PREFIX, base + 501)]
        self.container = make_sscc(COMPANY_PREFIX, base + 900)
        self.shipment_id = f"BWOF-{made:%y%m%d}-{base % 10000:04d}"
        self.declaration_id = f"{made:%y}NL000396I{base % 10**6:06d}"

    def when(self, day: float, country: str = "VN") -> str:
        return datetime.fromtimestamp(self.start + day * self.day_seconds, ZONES[country]).isoformat(timespec="seconds")

    def unit_links(self) -> list[str]:
        return [UnitId(GTIN, s, self.lot).uri() for s in self.serials]

    def canonical(self, sscc: str) -> str:
        return f"https://id.gs1.org/00/{sscc}"

    @property
    def per_carton(self) -> int:
        return -(-self.units // len(self.cartons))

    def cartons_on(self, pallet: str) -> list[str]:
        """The cartons packed onto this pallet: the first half (rounded up) onto the first pallet."""
        half = -(-len(self.cartons) // 2)
        return self.cartons[:half] if pallet == self.pallets[0] else self.cartons[half:] if pallet == self.pallets[1] else []

    def loaded_pallets(self) -> list[str]:
        """The pallets that hold cartons (both, unless the lot is a single vase)."""
        return [p for p in self.pallets if self.cartons_on(p)]

    def pallet_of(self, link: str) -> str:
        """The pallet the unit (its Digital Link) is packed onto."""
        carton = self.cartons[self.unit_links().index(link) // self.per_carton]
        return next(p for p in self.pallets if carton in self.cartons_on(p))

    @property
    def declared_value(self) -> Decimal:
        return UNIT_PRICE * self.units

    @property
    def duty(self) -> Decimal:
        return (self.declared_value * DUTY_RATE).quantize(Decimal("0.01"))


def _place(code: str) -> dict[str, Any]:
    lat, lon = PLACES[code]
    return {"unlocode": code, "latitude": lat, "longitude": lon}


def _report_pdf(title: str, lines: list[str]) -> str:
    """A small document standing in for a PDF report (its bytes are what gets hashed and encrypted)."""
    text = "%PDF-1.4\n% " + title + "\n" + "\n".join(f"% {line}" for line in lines) + "\n%%EOF\n"
    return base64.b64encode(text.encode()).decode()


def build_plan(s: Shipment) -> list[Step]:
    """The journey as source records, in time order."""
    steps: list[Step] = []
    units = s.unit_links()
    steps.append(Step(0.0, FX_ORACLES, "webhook:fx", "EUR/USD reference rate", {
        "base": "EUR", "quote": "USD", "rate": f"{1.08 + s.rng.random() * 0.02:.4f}", "observedAt": s.when(0.0, "NL"),
        "source": "ECB euro foreign exchange reference rate"}))
    steps.append(Step(0.1, ("manufacturer",), "webhook:production", f"production run of {s.units} vases, lot {s.lot}", {
        "runId": f"PR-{s.lot}", "gtin": GTIN, "lot": s.lot, "serials": s.serials, "producedAt": s.when(0.1),
        "site": {"gln": FACTORY_GLN, "unlocode": "VNSGN"}, "expiry": None, "productionOrder": f"MO-{s.lot}"}))
    del steps[-1].record["expiry"]
    sample = s.rng.sample(units, min(8, len(units)))
    steps.append(Step(1.0, ("inspector",), "webhook:inspection", f"pre-shipment inspection of {len(sample)} sampled units", {
        "inspectionId": f"MIS-{s.lot}", "objects": sample, "result": "conformant", "inspectedAt": s.when(1.0),
        "site": {"gln": FACTORY_GLN}, "standard": "ISO 2859-1, general level II, AQL 2.5",
        "report": {"mediaType": "application/pdf", "contentBase64": _report_pdf(f"Inspection report MIS-{s.lot}", [
            f"Product: {PRODUCT['name']} (GTIN {GTIN}), lot {s.lot}", f"Sampled: {len(sample)} of {s.units} units",
            "Defects: 0 critical, 0 major, 1 minor (glaze speck)", "Result: conformant"])}}))
    rows = ["packing_id,parent,child,packed_at,site_gln"]
    for i, carton in enumerate(s.cartons):
        for link in units[i * s.per_carton:(i + 1) * s.per_carton]:
            rows.append(f"PK-{s.lot}-C{i + 1},{carton},{link},{s.when(2.0 + i * 0.01)},{FACTORY_GLN}")
    steps.append(Step(2.0, ("manufacturer",), "csv", f"packing list: {s.units} units into {len(s.cartons)} cartons",
                      "\n".join(rows) + "\n", f"packing_{s.lot}.csv"))
    pallet_events = [epcis.aggregation_event(
        parent_id=s.canonical(pallet), child_epcs=[s.canonical(c) for c in s.cartons_on(pallet)], action="ADD",
        event_time=s.when(2.2), event_time_zone_offset="+07:00", biz_step="packing", disposition="container_closed",
        biz_location=f"https://id.gs1.org/414/{FACTORY_GLN}") for pallet in s.loaded_pallets()]
    steps.append(Step(2.2, ("manufacturer",), "capture",
                      "warehouse system: cartons onto a pallet per buyer (EPCIS document)",
                      epcis.epcis_document(pallet_events, s.when(2.2))))
    booking = {"shipmentId": s.shipment_id, "status": "booked", "time": s.when(2.5), "containers": [s.container],
               "contents": s.loaded_pallets(), "goods": [{"gtin": GTIN, "lot": s.lot}],
               "transport": {"mode": "ocean", "vessel": "BLUEWATER HORIZON", "voyage": "042W", "billOfLading": f"BWOF{s.shipment_id[-4:]}SGNRTM"}}
    steps.append(Step(2.5, ("carrier", "forwarder", "courier"), "webhook:carrier", f"booking {s.shipment_id}", booking))

    def carrier(day: float, status: str, place: str, members: tuple[str, ...] = ("carrier",), **extra: Any) -> None:
        record = {"shipmentId": s.shipment_id, "status": status, "time": s.when(day, place[:2]), "location": _place(place), **extra}
        steps.append(Step(day, members, "webhook:carrier", f"{status.replace('_', ' ')} at {place}", record))

    carrier(3.0, "picked_up", "VNSGN")
    carrier(3.2, "loaded", "VNSGN", contents=s.loaded_pallets())
    carrier(4.0, "shipped", "VNSGN", CARRIERS_SHIPPED)
    carrier(4.1, "departed", "VNSGN")
    for day, place in ((7.0, "SGSIN"), (11.0, "LKCMB"), (17.0, "EGSUZ"), (23.0, "ESALG")):
        carrier(day, "in_transit", place)
    # The data logger: a message a day with four readings; humid air in the Indian Ocean crossing.
    for day in range(4, 29):
        readings = []
        for quarter in range(4):
            t = day + 0.25 * quarter + 0.125
            temperature = 24 + 6 * s.rng.random() + (3 if 10 <= day <= 20 else 0)
            humidity = 62 + 12 * s.rng.random()
            if day == 13 and quarter in (1, 2):
                humidity = 90.5 + 2.5 * s.rng.random()  # above the product's 85 %
            readings.append({"time": s.when(t, "SG"), "type": "temperature", "value": round(temperature, 1), "unit": "C"})
            readings.append({"time": s.when(t, "SG"), "type": "humidity", "value": round(humidity, 1), "unit": "%"})
        steps.append(Step(day + 0.99, ("carrier",), "webhook:iot", f"data logger, day {day}", {
            "deviceId": f"BWOF-TT-{s.container[-6:]}", "object": s.container, "readings": readings}))
    carrier(29.0, "arrived", "NLRTM", ("carrier", "forwarder"))
    steps.append(Step(29.3, CUSTOMS_PARTIES, "webhook:customs", f"customs declaration {s.declaration_id}", {
        "kind": "declaration", "declarationId": s.declaration_id, "containers": [s.container, *s.loaded_pallets()], "office": "NL000396",
        "lodgedAt": s.when(29.3, "NL"), "hsCode": "691390", "declaredValue": {"amount": str(s.declared_value), "currency": "EUR"},
        "originCountry": "VN", "originCertificate": {"documentType": "certificate_of_origin", "contentBase64": _report_pdf(
            "EVFTA statement on origin", [f"Exporter: Lumen Ceramics Co., VN; goods: {s.units} x {PRODUCT['name']}",
                                          "The exporter declares the goods to be of Vietnamese preferential origin"])}}))
    steps.append(Step(30.2, CUSTOMS_PARTIES, "webhook:customs", f"cleared, duty EUR {s.duty}", {
        "kind": "decision", "declarationId": s.declaration_id, "decision": "cleared", "decidedAt": s.when(30.2, "NL"),
        "duty": {"amount": str(s.duty), "currency": "EUR"}}))
    carrier(30.5, "unloaded", "NLRTM", contents=s.loaded_pallets())
    carrier(31.5, "out_for_delivery", "NLRTM", ("courier",), contents=s.loaded_pallets())
    carrier(32.0, "delivered", "NLUTC", CARRIERS_DELIVERED, contents=s.loaded_pallets())
    return sorted(steps, key=lambda step: step.day)


# ---- running the oracles --------------------------------------------------------------------


@dataclass
class RunningOracle:
    member: str
    runtime: Any
    url: str
    server: Any
    thread: threading.Thread


def start_oracles(
    members: list[str], *, node_urls: Mapping[str, str], relayer_url: str | None, data_dir: Path, deployment: Any, client: Any,
    products_file: Path, base_port: int | None = None,
) -> dict[str, RunningOracle]:
    """Serve the oracle of each member in a thread of this process, posting to `node_urls[member]`
    (its own organisation's node, or its host's); ports `base_port`, +1, ... (free ones if None)."""

    running: dict[str, RunningOracle] = {}
    consortium = deployment.address("ConsortiumRegistry")
    for offset, member in enumerate(members):
        index = member_index(member)
        port = free_port() if base_port is None else base_port + offset
        settings = OracleSettings(
            port=port, node_url=node_urls[member], relayer_url=relayer_url, data_dir=data_dir / f"oracle-{member}",
            devnet_account=index, products_file=products_file, csv_min_age=0, csv_poll=0.2, retry_max=5.0,
            # Every customs party names the customs authority as the payee of the duty, so their signatures agree.
            duty_payee=devnet_account(member_index("customs")).address
            if member in CUSTOMS_PARTIES else None,
        )
        account = devnet_account(index)
        runtime = build_runtime(
            settings, account, chain_id=client.chain_id, provenance_registry=deployment.address("ProvenanceRegistry"),
            consortium_registry=consortium, roles=organisation_roles(client, consortium, account.address),
            escrow=escrow_factory(settings, client, deployment, account), fx_signer=fx_signer_for(settings, client, deployment, account),
            role_at=RoleHistory(client, consortium, deployment.start_block),  # what the node checks, before answering 202
        )
        server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, name=f"oracle-{member}", daemon=True)
        thread.start()
        running[member] = RunningOracle(member, runtime, f"http://127.0.0.1:{port}", server, thread)
    # They start side by side; each must answer within the bound.
    deadline = time.monotonic() + 30
    for oracle in running.values():
        while not oracle.server.started:
            if time.monotonic() > deadline or not oracle.thread.is_alive():
                stop_oracles(running)
                raise OracleDidNotStart(oracle.member, oracle.server.config.port)
            time.sleep(0.05)
    return running


def send(step: Step, oracle: RunningOracle) -> str:
    """Hand one source record to an oracle as its source system would; what the oracle made of it."""

    if step.channel == "csv":
        inbox = oracle.runtime.settings.csv_dir() / "inbox"
        temporary = inbox / f".{step.csv_name}"
        temporary.write_text(step.record)
        temporary.rename(inbox / str(step.csv_name))
        return "dropped in the CSV folder"
    path = "/capture" if step.channel == "capture" else f"/webhooks/{step.channel.split(':', 1)[1]}"
    response = httpx.post(f"{oracle.url}{path}", json=step.record, timeout=30)
    if response.status_code != 202:
        raise OracleRefused(oracle.member, step.label, f"{response.status_code} {response.text}")
    answer = response.json()
    extra = f", {answer['notes']['excursions']} excursion(s)" if answer.get("notes", {}).get("excursions") else ""
    return f"{answer['accepted']} new event(s){extra}" if answer["eventIds"] else "recorded"


def wait_drained(oracles: dict[str, RunningOracle], timeout: float) -> bool:
    """Until every oracle delivered its documents and events (and, with an escrow agent, its attestations)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = sum(
            o.runtime.queue.pending(k) for o in oracles.values()
            for k in ("document", "event", *(("escrow", "fx") if o.runtime.escrow is not None else ()))
        )
        if pending == 0:
            return True
        time.sleep(0.2)
    return False


def stop_oracles(oracles: dict[str, RunningOracle], timeout: float = 10.0) -> None:
    """Stop the oracles' servers and close their queues (what is still queued stays on disk)."""
    for oracle in oracles.values():
        oracle.server.should_exit = True
    for oracle in oracles.values():
        oracle.thread.join(timeout=timeout)
        oracle.runtime.close()


class OracleRefused(WaymarkError):
    def __init__(self, member: str, label: str, answer: str) -> None:
        super().__init__(f"the {member} oracle refused {label}: {answer}")


class OracleDidNotStart(WaymarkError):
    def __init__(self, member: str, port: int) -> None:
        super().__init__(f"the {member} oracle did not start on port {port} (is the port taken?)")


class NoEscrowInDeployment(WaymarkError):
    def __init__(self) -> None:
        super().__init__("the deployment has no TradeEscrow with the dev EUR stablecoin: run the devnet deployment (waymark deploy)")


class ShipByPassed(WaymarkError):
    def __init__(self, ship_by: int, chain_now: int) -> None:
        super().__init__(f"the plan's ship-by time {ship_by} is not after the chain's time {chain_now}: start the plan later")


def order_terms(
    shipment: Shipment, deployment: Any, client: Any, *, buyer_index: int = DEMO_BUYER_INDICES[0],
    shares: tuple[int, ...] = (2000, 3000, 5000), price_factor: Decimal = Decimal(2), platform_fee_bps: int = 0,
    carrier_fee_bps: int = 0, ship_by_ahead: bool = True, goods: str | None = None,
) -> Any:
    """Terms of an order for `goods` (an SSCC: a buyer's pallet; by default the whole container),
    its shipment ref keccak256 of the SSCC's canonical Digital Link (as the events name it), sold
    by the manufacturer to a demo buyer and priced in the dev EUR stablecoin at `price_factor` times the declared value. Milestones: `shares` (the
    first Shipped, the last Delivered, those between CustomsCleared), each attested 2-of-3. The
    platform fee goes to the marketplace operator, the carrier fee to Bluewater Ocean Freight.
    The three demo customs organisations are the order's customs authorities, and a duty of up
    to 25% of the deposit is paid without the buyer's further signature; the parties'
    organisations and the token's decimals are read from the chain (`EscrowClient.complete`)."""


    if "TradeEscrow" not in deployment.contracts or "DevStablecoin:wEUR" not in deployment.contracts:
        raise NoEscrowInDeployment()
    escrow = EscrowClient.from_deployment(client, deployment)
    token = escrow.token_info(deployment.address("DevStablecoin:wEUR"))
    terms = OrderTerms(
        seller=devnet_account(member_index("manufacturer")).address, buyer=devnet_account(buyer_index).address,
        token=token.address, amount=token.units(str(shipment.declared_value * price_factor)),
        ship_by=int(shipment.start + 10 * shipment.day_seconds) + 3600, deliver_by=int(shipment.start + 40 * shipment.day_seconds) + 7200,
        milestones=schedule(*shares, quorum=2), shipment_ref=keccak(text=shipment.canonical(goods or shipment.container)),
        platform=devnet_account(member_index("operator")).address if platform_fee_bps else ZERO_ADDRESS, platform_fee_bps=platform_fee_bps,
        carrier=devnet_account(member_index("carrier")).address if carrier_fee_bps else ZERO_ADDRESS, carrier_fee_bps=carrier_fee_bps,
        salt=shipment.rng.randrange(2**32), max_duty_bps=2_500,
        customs_authorities=customs_authorities(
            [escrow.organisation_of(devnet_account(member_index(m)).address) for m in ("customs", "broker", "port")]),
        arbitrators=arbitrators([escrow.organisation_of(devnet_account(member_index("arbitrator")).address)]),
    )
    terms = escrow.complete(terms)
    if ship_by_ahead:
        check_ship_by(terms, escrow)
    return terms


def check_ship_by(terms: Any, escrow: Any) -> None:
    """An order can be created only while its ship-by time lies ahead on the chain."""
    now = escrow.chain_time()
    if terms.ship_by <= now:
        raise ShipByPassed(terms.ship_by, now)


def place_order(shipment: Shipment, deployment: Any, client: Any, **options: Any) -> Any:
    """The seller offers the order (`order_terms`) and the buyer funds it; its terms."""

    terms = order_terms(shipment, deployment, client, **options)
    escrow = EscrowClient.from_deployment(client, deployment)
    escrow.create(terms, devnet_account(member_index("manufacturer")))
    buyer = next(i for i in DEMO_BUYER_INDICES if devnet_account(i).address == terms.buyer)
    escrow.fund(terms, devnet_account(buyer))
    return terms


def member_index(key: str) -> int:
    """The devnet account index of a demo member (manufacturer, carrier, customs, ...)."""
    return next(m.account_index for m in DEMO_MEMBERS if m.key == key)
