"""The demo's story, chapter by chapter, told as each user would see it.

1. Two buyers each order a pallet of vases from the manufacturer through the marketplace (both
   pallets travel in one container; each order names its buyer's pallet) and pay into escrow:
   the first with platform and carrier fees and a customs milestone (the duty comes out of
   escrow), the second without customs (duty settled outside escrow).
2. The lot is made in Vietnam, inspected, packed, loaded into a container and shipped to
   Rotterdam with a data logger (one humidity excursion); customs clears it with duty; a
   courier delivers it in Utrecht. Every record goes through a member's oracle; milestones are
   attested 2-of-3 through the relayer.
3. The first buyer scans a vase (the scan API's resolver), confirms delivery with a signed
   message the marketplace relays, and everybody withdraws: seller, carrier fee, platform fee,
   customs duty.
4. The second buyer finds broken vases and opens a dispute; the arbitrator rules a split; both
   sides withdraw.
5. A vase's code is copied: scanned in the Netherlands and in Brazil within minutes, the scan
   API flags it; a code nobody issued is answered as unknown.

Every chapter is idempotent: it looks at the chain (and the scan API) first and does only what
is missing, so a story interrupted half-way plays on from where it stopped, with the same
identifiers (they come from the seed kept in the story record).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from waymark.devnet.consortium import DEMO_BUYER_INDICES, DEMO_MEMBERS, DemoMember, devnet_account
from node.errors import WaymarkError
from node.escrow.client import EscrowClient
from node.escrow.terms import OrderTerms, State
from node.protocol.gs1 import UnitId, new_serial
from node.protocol.labels import qr_png, qr_svg
from waymark.demo import simulation as sim
from waymark.demo.layout import REGION_HEADER
from waymark.demo.network import Network

Say = Callable[[str], None]

FIRST_BUYER = DEMO_BUYER_INDICES[0]  # an Amsterdam design shop
SECOND_BUYER = DEMO_BUYER_INDICES[1]  # an Antwerp garden centre
BUYERS = {FIRST_BUYER: "buyer 1 (Amsterdam design shop)", SECOND_BUYER: "buyer 2 (Antwerp garden centre)"}
PLATFORM_FEE_BPS = 150
CARRIER_FEE_BPS = 400
DISPUTE_BUYER_SHARE_BPS = 4000  # the arbitrator refunds 40 % of what remains to the second buyer
RECORD_FILE = "story.json"
ESCROW_WAIT = 120.0
ANCHOR_WAIT = 120.0


class StoryError(WaymarkError):
    code = "demo_story_error"


class StoryTimeout(StoryError):
    def __init__(self, what: str, seconds: float, detail: str = "") -> None:
        super().__init__(f"{what} did not happen within {seconds:.0f}s" + (f": {detail}" if detail else ""))


class StoryMismatch(StoryError):
    def __init__(self, record: Path, detail: str) -> None:
        super().__init__(f"the story recorded in {record} does not match this chain ({detail}); "
                         f"start afresh by removing {record.parent} (make clean-devnet)")


def member(key: str) -> DemoMember:
    return next(m for m in DEMO_MEMBERS if m.key == key)


def who(key: str) -> str:
    m = member(key)
    return f"{key} ({m.name}, {m.country})"


def account(key: str) -> LocalAccount:
    return devnet_account(sim.member_index(key))


@dataclass
class StoryRecord:
    """What the story made, kept in `<root>/story.json`: enough to play it again identically and to
    check that the chain and the database still hold it."""

    seed: int
    start: float
    day_seconds: float
    units: int
    chain_id: int
    escrow: str
    complete: bool = False
    lot: str = ""
    container: str = ""
    demo_unit: str = ""
    cloned_unit: str = ""
    unknown_code: str = ""
    orders: dict[str, str] = field(default_factory=dict)  # "happy" / "dispute" -> 0x order id
    qr: dict[str, str] = field(default_factory=dict)  # code name -> image path (PNG; SVG next to it)

    def save(self, path: Path) -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> "StoryRecord":
        return cls(**json.loads(path.read_text()))


@dataclass(frozen=True)
class Scan:
    """What a phone got back from the resolver."""

    status: int
    passport: dict[str, Any]

    @property
    def verdict(self) -> str:
        return str(self.passport.get("verdict"))

    def flags(self) -> list[str]:
        return [f["code"] for f in self.passport.get("scans", {}).get("flags", [])]


class Story:
    """The demo story on a running network (waymark/demo/network.py)."""

    def __init__(self, network: Network, say: Say, *, day_seconds: float = 0.5, units: int = 24, seed: int | None = None) -> None:
        self.network = network
        self.say = say
        self.client = network.client()
        self.escrow = EscrowClient.from_deployment(self.client, network.deployment)
        self.record_path = network.root / RECORD_FILE
        if self.record_path.exists():
            self.record = StoryRecord.load(self.record_path)
            self.check_record()
        else:
            chain_now = self.escrow.chain_time()
            self.record = StoryRecord(
                seed=seed if seed is not None else random.SystemRandom().randrange(2**63), start=max(time.time(), chain_now) + 1,
                day_seconds=day_seconds, units=units, chain_id=self.client.chain_id, escrow=network.deployment.address("TradeEscrow"),
            )
            self.record.save(self.record_path)
        # The identifiers and readings come from the seed: the same on every run.
        self.shipment = sim.Shipment(self.record.start, self.record.day_seconds, random.Random(self.record.seed), self.record.units)
        self.plan = sim.build_plan(self.shipment)
        self.links = self.shipment.unit_links()
        self.record.lot, self.record.container = self.shipment.lot, self.shipment.container
        # The demo unit is one the inspector sampled, so its passport shows every kind of step.
        sampled = next(step.record["objects"] for step in self.plan if step.channel == "webhook:inspection")
        self.record.demo_unit = sampled[0]
        # Each buyer's order names the pallet it buys (its SSCC's Digital Link, as the events name
        # it): buyer 1 the pallet the demo unit is packed onto, buyer 2 the other one.
        first_pallet = self.shipment.pallet_of(self.record.demo_unit)
        self.goods = {"happy": first_pallet, "dispute": next(p for p in self.shipment.pallets if p != first_pallet)}
        self.terms = {
            "happy": sim.order_terms(self.shipment, network.deployment, self.client, buyer_index=FIRST_BUYER,
                                     shares=(2000, 3000, 5000), platform_fee_bps=PLATFORM_FEE_BPS, carrier_fee_bps=CARRIER_FEE_BPS,
                                     ship_by_ahead=False, goods=self.goods["happy"]),
            "dispute": sim.order_terms(self.shipment, network.deployment, self.client, buyer_index=SECOND_BUYER,
                                       shares=(3000, 7000), price_factor=Decimal("0.5"), platform_fee_bps=PLATFORM_FEE_BPS,
                                       ship_by_ahead=False, goods=self.goods["dispute"]),
        }
        self.token = self.escrow.token_info(self.terms["happy"].token)
        self.record.cloned_unit = next(link for link in self.links if link not in sampled)
        if not self.record.unknown_code:
            self.record.unknown_code = UnitId(sim.GTIN, new_serial(), self.shipment.lot).uri()
        self.record.orders = {name: f"{t.order_id:#066x}" for name, t in self.terms.items()}
        self.save()
        self.oracles: dict[str, sim.RunningOracle] = {}

    # ---- bookkeeping ---------------------------------------------------------------------

    def check_record(self) -> None:
        """The recorded story belongs to this chain and escrow (else the chain was reset without it)."""
        if self.record.chain_id != self.client.chain_id:
            raise StoryMismatch(self.record_path, f"chain id {self.record.chain_id} recorded, {self.client.chain_id} now")
        escrow = self.network.deployment.address("TradeEscrow")
        if self.record.escrow != escrow:
            raise StoryMismatch(self.record_path, f"escrow {self.record.escrow} recorded, {escrow} deployed now")
        for name, order_id in self.record.orders.items():
            if self.record.complete and self.escrow.order(int(order_id, 16)).state is State.NONE:
                raise StoryMismatch(self.record_path, f"the {name} order {order_id} is not on the chain")

    def save(self) -> None:
        self.record.save(self.record_path)

    def state(self, name: str) -> State:
        return self.escrow.order(self.terms[name].order_id).state

    def url_of(self, link: str) -> str:
        """The code's link on this network's resolver (the scan API)."""
        return self.network.public_base + link.removeprefix("https://id.gs1.org")

    def played(self) -> bool:
        """The whole story is on the chain and in the database: both orders settled, the demo
        unit's passport genuine with its customs clearance."""
        if not self.record.complete:
            return False
        if self.state("happy") is not State.RELEASED or self.state("dispute") is not State.RESOLVED:
            return False
        passport = self.passport(self.record.demo_unit)
        return passport.get("verdict") == "genuine" and has_step(passport, "cleared")

    # ---- the oracles ---------------------------------------------------------------------

    def start_oracles(self) -> None:
        if self.oracles:
            return
        products = self.network.root / "products.json"
        products.write_text(json.dumps({sim.GTIN: sim.PRODUCT}, indent=2))
        members = sorted({m for step in self.plan for m in step.members})
        self.oracles = sim.start_oracles(
            members, node_urls={m: self.network.node_of(m).node_url for m in members}, relayer_url=self.network.relayer_url, data_dir=self.network.root / "oracles",
            deployment=self.network.deployment, client=self.client, products_file=products,
            base_port=self.network.ports.oracles or None,
        )
        self.say("oracles     " + ", ".join(f"{m} {o.url} (to the {self.network.node_of(m).member} node)" for m, o in self.oracles.items()))

    def close(self) -> None:
        sim.stop_oracles(self.oracles)
        self.oracles = {}

    # ---- chapter 1: the product and the orders --------------------------------------------

    def register_product(self) -> None:
        """The manufacturer registers the vase's GTIN as its product class (codes of an unregistered
        product are never genuine)."""
        registry = self.client.contract("ProvenanceRegistry", self.network.deployment.address("ProvenanceRegistry"))
        org_id, _registered_at, _metadata = self.client.call(registry.functions.productOf(int(sim.GTIN)))
        if not org_id:
            metadata = keccak(text=json.dumps(sim.PRODUCT, sort_keys=True))
            self.client.transact(registry.functions.registerProduct(int(sim.GTIN), metadata), sender=account("manufacturer"))
            self.say(f"{who('manufacturer')} registers product {sim.GTIN} ({sim.PRODUCT['name']})")

    def place_orders(self) -> None:
        """Both buyers place their orders with the manufacturer and fund them."""
        seller = account("manufacturer")
        for name, index in (("happy", FIRST_BUYER), ("dispute", SECOND_BUYER)):
            terms = self.terms[name]
            state = self.state(name)
            if state is State.NONE:
                sim.check_ship_by(terms, self.escrow)
                self.escrow.create(terms, seller)
                self.say(f"{who('manufacturer')} offers order {short(terms.order_id)}: {self.order_summary(terms)}")
                state = State.CREATED
            if state is State.CREATED:
                self.escrow.fund(terms, devnet_account(index))
                self.say(f"{BUYERS[index]} pays {self.token.show(terms.amount)} into escrow for order {short(terms.order_id)}")

    def order_summary(self, terms: OrderTerms) -> str:
        goods = next(self.goods[name] for name, t in self.terms.items() if t.order_id == terms.order_id)
        kinds = ", ".join(f"{m.kind.name.lower()} {m.share_bps / 100:g}%" for m in terms.milestones)
        fees = f"platform fee {terms.platform_fee_bps / 100:g}%" + (f", carrier fee {terms.carrier_fee_bps / 100:g}%" if terms.carrier_fee_bps else "")
        return f"{self.token.show(terms.amount)} for the vases on pallet {goods} (container {self.shipment.container}); milestones {kinds} (2-of-3); {fees}"

    # ---- chapter 2: the journey ------------------------------------------------------------

    def ship(self, *, wait: bool = True) -> None:
        """Every source record of the journey through its members' oracles, at its planned time."""
        self.start_oracles()
        logger_days = excursions = 0
        for step in self.plan:
            due = self.record.start + step.day * self.record.day_seconds
            if wait and due > time.time():
                time.sleep(due - time.time())
            outcomes = {m: sim.send(step, self.oracles[m]) for m in step.members}
            if step.channel == "webhook:iot":
                logger_days += 1
                if "excursion" in " ".join(outcomes.values()):
                    excursions += 1
                    self.say(f"day {step.day:4.1f}  {who('carrier')}: {step.label}: humidity above the vases' 85 % limit -> excursion event")
                continue
            if logger_days and step.label.startswith("arrived"):
                self.say(f"           {who('carrier')}: data logger sent {logger_days} daily messages, {excursions} with an excursion")
            actors = " + ".join(step.members) if len(step.members) > 1 else who(step.members[0])
            first = next(iter(outcomes.values()))
            self.say(f"day {step.day:4.1f}  {actors}: {step.label} ({first})")
        if not sim.wait_drained(self.oracles, ANCHOR_WAIT):
            raise StoryTimeout("delivery of every oracle's events and attestations", ANCHOR_WAIT)

    def wait_delivered(self) -> None:
        """Until the relayer has brought both orders to Delivered (2-of-3 milestone attestations)."""
        deadline = time.monotonic() + ESCROW_WAIT
        for name, terms in self.terms.items():
            while self.state(name) is State.FUNDED:
                if time.monotonic() > deadline:
                    order = self.escrow.order(terms.order_id)
                    raise StoryTimeout(f"order {short(terms.order_id)} reaching Delivered", ESCROW_WAIT,
                                       f"{order.milestones_reached} of {len(terms.milestones)} milestones reached")
                time.sleep(0.3)
            order = self.escrow.order(terms.order_id)
            self.say(f"relayer     order {short(terms.order_id)}: {order.milestones_reached} milestones attested 2-of-3 -> {order.state.name}")

    def wait_genuine(self, link: str) -> dict[str, Any]:
        """Until every event of the unit is anchored and its passport says genuine (no scan is logged)."""
        deadline = time.monotonic() + ANCHOR_WAIT
        passport: dict[str, Any] = {}
        while time.monotonic() < deadline:
            passport = self.passport(link)
            if passport.get("verdict") == "genuine" and has_step(passport, "receiving"):
                return passport
            time.sleep(0.3)
        raise StoryTimeout(f"a genuine passport for {link}", ANCHOR_WAIT, f"verdict {passport.get('verdict')}")

    # ---- chapter 3: the first buyer --------------------------------------------------------

    def passport(self, link: str) -> dict[str, Any]:
        response = httpx.get(f"{self.network.api_url}/api/v1/passport", params={"uri": link}, timeout=15)
        return dict(response.json())

    def scan(self, link: str, *, region: str, device: str) -> Scan:
        """A phone scans the code: the resolver's JSON answer, from a device in `region`. The story
        stands in for the operator's reverse proxy, which names the country it saw the phone in
        (REGION_HEADER, trusted from loopback only: a phone that states its own place is not believed)."""
        # Asked on loopback: this machine's own requests never leave it, whatever URL the QR codes carry.
        response = httpx.get(self.network.api_url + link.removeprefix("https://id.gs1.org"), headers={"Accept": "application/json", REGION_HEADER: region,
                                                          "Waymark-Device": device}, timeout=15)
        return Scan(response.status_code, dict(response.json()))

    def buyer_scans(self) -> Scan:
        link = self.record.demo_unit
        self.wait_genuine(link)
        scan = self.scan(link, region="NL", device="buyer-1-phone")
        p = scan.passport
        steps = [e.get("bizStep") for e in p.get("timeline", [])]
        self.say(f"{BUYERS[FIRST_BUYER]} scans {self.url_of(link)}")
        self.say(f"           -> {scan.verdict}: {p['product']['manufacturer']['name'] if p.get('product') else '?'}, "
                 f"{len(steps)} verified events ({', '.join(dict.fromkeys(s or '?' for s in steps))}), "
                 f"{len(p.get('sensorExcursions', []))} sensor excursion(s), escrow {p.get('escrow', {}) and p['escrow'].get('state')}")
        return scan

    def buyer_confirms(self) -> None:
        """The first buyer signs a delivery confirmation; the marketplace relays it (the buyer holds no gas)."""
        terms = self.terms["happy"]
        if self.state("happy") is not State.DELIVERED:
            return
        deadline = self.escrow.chain_time() + 3600
        signature = self.escrow.sign_confirmation(devnet_account(FIRST_BUYER), terms.order_id, deadline)
        self.escrow.confirm_by_signature(terms, deadline, signature, account("operator"))
        self.say(f"{BUYERS[FIRST_BUYER]} confirms receipt (a signed message); {who('operator')} relays it -> order {short(terms.order_id)} {self.state('happy').name}")

    def withdraw(self, parties: Mapping[str, LocalAccount]) -> dict[str, int]:
        """Each party withdraws its whole credit in the order token; what each got."""
        got: dict[str, int] = {}
        for name, party in parties.items():
            if self.escrow.credit(self.token.address, party.address) == 0:
                continue
            got[name] = self.escrow.withdraw(self.token.address, party)
            self.say(f"{name:<11} withdraws {self.token.show(got[name])}")
        return got

    def everybody_withdraws(self) -> dict[str, int]:
        return self.withdraw({"seller": account("manufacturer"), "carrier": account("carrier"),
                              "platform": account("operator"), "customs": account("customs")})

    # ---- chapter 4: the dispute ------------------------------------------------------------

    def second_buyer_disputes(self) -> None:
        terms = self.terms["dispute"]
        if self.state("dispute") is State.DELIVERED:
            evidence = keccak(text=f"photos of 5 broken vases, order {terms.order_id:#x}")
            self.escrow.dispute(terms, evidence, devnet_account(SECOND_BUYER))
            self.say(f"{BUYERS[SECOND_BUYER]} finds 5 broken vases and opens a dispute (evidence {evidence.hex()[:12]}...) -> {self.state('dispute').name}")

    def arbitrator_rules(self) -> None:
        terms = self.terms["dispute"]
        if self.state("dispute") is State.DISPUTED:
            ruling = keccak(text=f"ruling HTA-{terms.order_id % 10**6:06d}: 40 % of the remainder to the buyer")
            self.escrow.rule(terms, DISPUTE_BUYER_SHARE_BPS, ruling, account("arbitrator"))
            self.say(f"{who('arbitrator')} rules {DISPUTE_BUYER_SHARE_BPS / 100:g}% of what remains to the buyer -> {self.state('dispute').name}")

    def dispute_withdrawals(self) -> dict[str, int]:
        return self.withdraw({"buyer 2": devnet_account(SECOND_BUYER), "seller": account("manufacturer"),
                              "platform": account("operator")})

    # ---- chapter 5: a counterfeit ----------------------------------------------------------

    def clone_scanned(self) -> tuple[Scan, Scan]:
        """The code of a second vase, copied onto fakes: scanned in Utrecht, then in Sao Paulo."""
        link = self.record.cloned_unit
        self.wait_genuine(link)
        first = self.scan(link, region="NL", device="utrecht-shopper")
        second = self.scan(link, region="BR", device="sao-paulo-market")
        self.say(f"a shopper in NL scans {self.url_of(link)} -> {first.verdict}")
        self.say(f"minutes later a phone in BR scans the same code -> {second.verdict} ({', '.join(second.flags())})")
        return first, second

    def unknown_scanned(self) -> Scan:
        scan = self.scan(self.record.unknown_code, region="DE", device="berlin-shopper")
        self.say(f"a shopper in DE scans a code nobody issued -> {scan.status}, verdict {scan.verdict}")
        return scan

    # ---- QR codes --------------------------------------------------------------------------

    def write_qr(self, folder: Path) -> dict[str, Path]:
        """PNG and SVG of the codes the story scanned, and a label of the container."""
        folder.mkdir(parents=True, exist_ok=True)
        codes = {"demo-unit": self.url_of(self.record.demo_unit), "cloned-unit": self.url_of(self.record.cloned_unit),
                 "unknown-code": self.url_of(self.record.unknown_code),
                 "container": self.url_of(self.shipment.canonical(self.shipment.container))}
        written: dict[str, Path] = {}
        for name, url in codes.items():
            (folder / f"{name}.png").write_bytes(qr_png(url))
            (folder / f"{name}.svg").write_bytes(qr_svg(url))
            written[name] = folder / f"{name}.png"
        (folder / "codes.txt").write_text("".join(f"{name}\t{url}\n" for name, url in codes.items()))
        self.record.qr = {name: str(path) for name, path in written.items()}
        return written

    # ---- the whole story -------------------------------------------------------------------

    def play(self, *, wait: bool = True) -> None:
        """Every chapter (each does only what is not done yet), then the record is marked complete."""
        self.register_product()
        self.place_orders()
        self.ship(wait=wait and not self.record.complete)
        self.wait_delivered()
        self.buyer_scans()
        self.buyer_confirms()
        self.everybody_withdraws()
        self.second_buyer_disputes()
        self.arbitrator_rules()
        self.dispute_withdrawals()
        self.clone_scanned()
        self.unknown_scanned()
        self.record.complete = True
        self.save()


def has_step(passport: Mapping[str, Any], step: str) -> bool:
    """Whether the passport's timeline holds an event with this business step (short name, e.g. wmc:cleared)."""
    return any(re.split(r"[:/]", str(e.get("bizStep") or ""))[-1] == step for e in passport.get("timeline", []))


def short(order_id: int) -> str:
    return f"{order_id:#x}"[:10] + "..."

