"""Evidence bundles: a self-contained zip of what an auditor needs to check part of the history
against the chain alone, and the evidence source that reads one back.

A bundle covers a product (GTIN), a lot (GTIN + lot), an escrow order, or a time range of
event times. For the events of a unit it holds the events of every case, pallet and container
the unit was in at the time (node.member.history). Files, all JSON:

| file | content |
|---|---|
| manifest.json | format, version, what was selected, when, and the sha-256 of every other file |
| chain.json | chain id, the deployment's contracts (address, block, ...) and start block |
| events.json | one proof bundle per event (node.member.proofs: the event as stored, its attestation, its Merkle proof and leaf index, its root and anchor transaction) |
| roots.json | every root those events are under: event count, anchor transaction, block number and hash, block time and anchoring organisation (as the chain reported them at export) |
| escrow.json | for an order: its terms (from its `OrderCreated` log), the relayed milestone attestations and the relayer's submissions |

A bundle holds a subset of every root's leaves: its roots are verified by each event's proof
against the anchored root, never by rebuilding the tree (see /work/team/audit-interface.md).
Nothing in the bundle is trusted: the manifest only tells a damaged or edited file apart from
a consistent one; every claim is checked against the chain by the audit engine.
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from datetime import datetime, timezone
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

import orjson
from sqlalchemy import and_, select
from web3 import Web3

from node.audit.evidence import StoredBatch, StoredEscrowAttestation, StoredEvent
from node.chain.client import ChainClient
from node.chain.deploy import DeployedContract, Deployment
from node.db import Batch, Database, Event, EventEpc
from node.db.relayer import RelaySignature, RelaySubmission
from node.errors import WaymarkError
from node.escrow import EscrowClient, order_key
from node.member.history import unit_history
from node.protocol.crypto import keccak256
from node.protocol.canonical_ids import event_epcs
from node.protocol.event_hash import hash_from_digest
from node.protocol.gs1 import CANONICAL_RESOLVER, encode_component, normalize_gtin
from node.member.proofs import PROVENANCE_ABI, proof_bundle

BUNDLE_FORMAT = "waymark-evidence-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILES = ("chain.json", "events.json", "roots.json", "escrow.json")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same evidence gives the same bytes


class BundleError(WaymarkError):
    code = "bundle_error"


class MalformedEvidenceBundle(BundleError):
    code = "malformed_bundle"

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path} is not a Waymark evidence bundle: {problem}")


class NothingToExport(BundleError):
    code = "nothing_to_export"

    def __init__(self, selector: "Selector") -> None:
        super().__init__(f"the database holds no anchored event for {selector.describe()}")


# ---- what to export --------------------------------------------------------------------------


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
        return f"event times {_iso(self.start_ms)} to {_iso(self.end_ms)}"

    def to_json(self) -> dict[str, Any]:
        return {"from": _iso(self.start_ms), "to": _iso(self.end_ms)}


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


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


# ---- choosing the events ---------------------------------------------------------------------


def _unit_prefix(gtin: str) -> str:
    return f"https://{CANONICAL_RESOLVER}/01/{gtin}/21/"


def _with_histories(db: Database, units: Iterable[str], direct: Iterable[bytes] = ()) -> set[bytes]:
    """Digests of the units' events and of their containers' events while they were inside."""
    found = set(direct)
    for unit in sorted(set(units)):
        found.update(bytes.fromhex(entry.event_id[14:78]) for entry in unit_history(db, unit))
    return found


def _product_units(db: Database, gtin: str) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute(select(EventEpc.epc).where(EventEpc.epc.like(_unit_prefix(gtin) + "%")).distinct()).scalars()
        return list(rows)


def _class_events(db: Database, class_uris: Iterable[str]) -> set[bytes]:
    """Digests of the events naming any of these class-level ids (quantity lists)."""
    uris = list(class_uris)
    if not uris:
        return set()
    with db.connect() as conn:
        rows = conn.execute(
            select(Event.digest).join(EventEpc, EventEpc.event_id == Event.id).where(EventEpc.epc.in_(uris)).distinct()
        ).scalars()
        return {bytes(r) for r in rows}


def _lot_units(db: Database, lot: Lot) -> list[str]:
    """The units of a lot: those an event commissions with ILMD `cbvmda:lotNumber` = the lot, and
    those any event names by a Digital Link carrying the lot (`/01/<gtin>/10/<lot>/21/...`)."""
    prefix = _unit_prefix(lot.gtin)
    marker = f"/01/{lot.gtin}/10/{encode_component(lot.lot)}/21/"
    units: set[str] = set()
    with db.connect() as conn:
        rows = conn.execute(
            select(Event.id, Event.body).where(
                Event.id.in_(select(EventEpc.event_id).where(EventEpc.epc.like(prefix + "%")))
            )
        ).all()
        ids_of_lot: list[int] = []
        for event_id, body in rows:
            event = orjson.loads(body)
            ilmd = event.get("ilmd")
            if isinstance(ilmd, Mapping) and str(ilmd.get("cbvmda:lotNumber", ilmd.get("lotNumber", ""))) == lot.lot:
                ids_of_lot.append(int(event_id))
            if marker in body:
                units.update(_canonical_units(event, marker, prefix))
        if ids_of_lot:
            named = conn.execute(
                select(EventEpc.epc).where(EventEpc.event_id.in_(ids_of_lot), EventEpc.epc.like(prefix + "%"))
            ).scalars()
            units.update(named)
    return sorted(units)


def _canonical_units(event: Mapping[str, Any], marker: str, prefix: str) -> set[str]:
    raw = [e for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList") for e in event.get(key) or ()]
    with_lot = {e for e in raw if isinstance(e, str) and marker in e}
    return {canonical for canonical, _relation in event_epcs({"epcList": sorted(with_lot)}) if canonical.startswith(prefix)}


def _range_events(db: Database, selection: TimeRange) -> set[bytes]:
    with db.connect() as conn:
        rows = conn.execute(
            select(Event.digest).where(Event.event_time_ms >= selection.start_ms, Event.event_time_ms <= selection.end_ms)
        ).scalars()
        return {bytes(r) for r in rows}


def _shipment_events(db: Database, shipment_ref: bytes) -> set[bytes]:
    """The events of what an order's shipmentRef names: keccak256 of a unit's, a container's or a
    lot's canonical id (api.readmodel.passport.shipment_keys). Nothing if it names nothing we hold."""
    with db.connect() as conn:
        epcs = list(conn.execute(select(EventEpc.epc).distinct()).scalars())
    for epc in epcs:
        if keccak256(epc.encode()) == shipment_ref:
            return _with_histories(db, [epc], _class_events(db, [epc]))
    for gtin in sorted({e[len(f"https://{CANONICAL_RESOLVER}/01/"):][:14] for e in epcs if "/01/" in e}):
        for lot_number in _lot_numbers(db, gtin):
            lot = Lot(gtin, lot_number)
            if keccak256(lot.class_uri.encode()) == shipment_ref:
                return _with_histories(db, _lot_units(db, lot), _class_events(db, [lot.class_uri]))
    return set()


def _lot_numbers(db: Database, gtin: str) -> set[str]:
    found: set[str] = set()
    with db.connect() as conn:
        bodies = conn.execute(
            select(Event.body).where(
                Event.id.in_(select(EventEpc.event_id).where(EventEpc.epc.like(f"https://{CANONICAL_RESOLVER}/01/{gtin}/%"))),
                Event.body.like("%lotNumber%"),
            )
        ).scalars()
        for body in bodies:
            ilmd = orjson.loads(body).get("ilmd")
            if isinstance(ilmd, Mapping):
                number = ilmd.get("cbvmda:lotNumber", ilmd.get("lotNumber"))
                if number is not None:
                    found.add(str(number))
    return found


def select_events(db: Database, selector: Selector, shipment_ref: bytes | None = None) -> set[bytes]:
    """Digests of the events a bundle for `selector` holds (for an order: give its shipmentRef)."""
    if isinstance(selector, Product):
        units = _product_units(db, selector.gtin)
        classes = [f"https://{CANONICAL_RESOLVER}/01/{selector.gtin}"]
        with db.connect() as conn:
            classes += conn.execute(
                select(EventEpc.epc).where(EventEpc.epc.like(f"https://{CANONICAL_RESOLVER}/01/{selector.gtin}/10/%")).distinct()
            ).scalars()
        return _with_histories(db, units, _class_events(db, classes))
    if isinstance(selector, Lot):
        return _with_histories(db, _lot_units(db, selector), _class_events(db, [selector.class_uri]))
    if isinstance(selector, TimeRange):
        return _range_events(db, selector)
    return _shipment_events(db, shipment_ref) if shipment_ref is not None else set()


# ---- writing -----------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def _event_records(db: Database, digests: set[bytes], chain_id: int, registry: str) -> tuple[list[dict[str, Any]], list[Batch], list[str]]:
    """(proof bundles of the anchored events, oldest first; their batches; ids of pending events)."""
    records: list[dict[str, Any]] = []
    batches: dict[int, Batch] = {}
    pending: list[str] = []
    wanted = sorted(digests)
    with db.session() as s:
        for start in range(0, len(wanted), 500):
            rows = s.execute(
                select(Event, Batch)
                .outerjoin(Batch, and_(Batch.id == Event.batch_id, Batch.status.in_(("anchored", "confirmed"))))
                .where(Event.digest.in_(wanted[start : start + 500]))
            ).all()
            for event, batch in rows:
                if batch is None or event.proof is None:
                    pending.append(hash_from_digest(bytes(event.digest)))
                    continue
                batches[batch.id] = batch
                record = proof_bundle(event, batch, chain_id=chain_id, registry_address=registry)
                record["eventTimeMs"] = event.event_time_ms
                records.append(record)
    records.sort(key=lambda r: (r["eventTimeMs"], r["eventId"]))
    return records, sorted(batches.values(), key=lambda b: b.id), sorted(pending)


def _roots(client: ChainClient, registry: str, batches: list[Batch]) -> list[dict[str, Any]]:
    """Each root with its anchor: the node's record of the transaction, and what the chain says."""
    provenance = client.w3.eth.contract(address=Web3.to_checksum_address(registry), abi=PROVENANCE_ABI)
    roots = []
    for batch in batches:
        org_id, block_number, timestamp, count = provenance.functions.anchorOf(bytes(batch.root)).call()
        roots.append({
            "root": "0x" + bytes(batch.root).hex(),
            "eventCount": batch.event_count,
            "txHash": "0x" + bytes(batch.tx_hash or b"").hex(),
            "blockNumber": batch.block_number,
            "blockHash": "0x" + bytes(batch.block_hash or b"").hex(),
            # As the chain reported at export (None: the chain did not know the root then).
            "blockTime": int(timestamp) if org_id else None,
            "orgId": int(org_id) if org_id else None,
            "anchoredCount": int(count) if org_id else None,
            "anchoredBlock": int(block_number) if org_id else None,
        })
    return roots


def _escrow(db: Database, client: ChainClient, deployment: Deployment, order_id: int) -> tuple[dict[str, Any], bytes]:
    """The order's terms, relayed attestations and submissions; and its shipmentRef."""
    escrow = EscrowClient.from_deployment(client, deployment)
    terms = escrow.terms(order_id)
    key = order_key(order_id)
    with db.session() as s:
        signatures = s.scalars(
            select(RelaySignature)
            .where(RelaySignature.chain_id == client.chain_id, RelaySignature.escrow == escrow.address, RelaySignature.order_id == key)
            .order_by(RelaySignature.kind, RelaySignature.milestone, RelaySignature.id)
        ).all()
        submissions = s.scalars(
            select(RelaySubmission)
            .where(RelaySubmission.chain_id == client.chain_id, RelaySubmission.escrow == escrow.address, RelaySubmission.order_id == key)
            .order_by(RelaySubmission.kind, RelaySubmission.milestone)
        ).all()
    record = {
        "escrow": escrow.address,
        "orders": [{
            "orderId": key,
            "terms": terms.to_json(),
            "attestations": [
                {"kind": r.kind, "milestone": r.milestone, "signer": r.signer, "orgId": r.org_id, "duty": r.duty,
                 "dutyPayee": r.duty_payee, "deadline": r.deadline, "signature": "0x" + bytes(r.signature).hex(),
                 "receivedAtMs": r.received_at_ms}
                for r in signatures
            ],
            "submissions": [
                {"kind": r.kind, "milestone": r.milestone, "status": r.status,
                 "txHash": "0x" + bytes(r.tx_hash).hex() if r.tx_hash else None, "detail": r.detail}
                for r in submissions
            ],
        }],
    }
    return record, terms.shipment_ref


def export_bundle(db: Database, client: ChainClient, deployment: Deployment, selector: Selector, out_path: Path) -> dict[str, Any]:
    """Write the evidence bundle of `selector` to `out_path` (a zip); returns its manifest.
    Raises NothingToExport when there is neither an anchored event nor an escrow record."""
    chain_id = client.chain_id
    registry = deployment.address("ProvenanceRegistry")
    escrow: dict[str, Any] = {"escrow": None, "orders": []}
    shipment_ref = None
    if isinstance(selector, OrderSel):
        escrow, shipment_ref = _escrow(db, client, deployment, selector.order_id)
    events, batches, pending = _event_records(db, select_events(db, selector, shipment_ref), chain_id, registry)
    if not events and not escrow["orders"]:
        raise NothingToExport(selector)
    files = {
        "chain.json": _dump({
            "chainId": chain_id,
            "startBlock": deployment.start_block,
            "deployer": deployment.deployer,
            "contracts": {name: asdict(c) for name, c in sorted(deployment.contracts.items())},
        }),
        "events.json": _dump(events),
        "roots.json": _dump(_roots(client, registry, batches)),
        "escrow.json": _dump(escrow),
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_FORMAT_VERSION,
        "selection": selector.to_json(),
        "createdAt": _iso(int(time.time() * 1000)),
        "chainId": chain_id,
        "counts": {"events": len(events), "roots": len(batches), "orders": len(escrow["orders"])},
        "pendingEvents": pending,  # held by the node, not anchored yet: no evidence to give
        "files": {name: {"sha256": sha256_hex(data), "bytes": len(data)} for name, data in files.items()},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in [(MANIFEST, _dump(manifest)), *files.items()]:
            archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED)
    tmp.replace(out_path)
    return manifest


# ---- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestProblem:
    """A file of the bundle that does not match its manifest entry (edited, damaged, added, missing)."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


class Bundle:
    """An evidence bundle read back from its zip. Opening checks the manifest (`problems`) but
    refuses only what cannot be read at all: an edited file is still handed to the engine, which
    then reports what the edit broke."""

    def __init__(self, path: Path | str | bytes) -> None:
        self.path = "(bytes)" if isinstance(path, bytes) else str(path)
        try:
            with zipfile.ZipFile(io.BytesIO(path) if isinstance(path, bytes) else path) as archive:
                contents = {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
        except (OSError, zipfile.BadZipFile) as exc:
            raise MalformedEvidenceBundle(self.path, f"not a readable zip ({exc})") from None
        if MANIFEST not in contents:
            raise MalformedEvidenceBundle(self.path, f"no {MANIFEST}")
        self.manifest = self._json(MANIFEST, contents[MANIFEST])
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != BUNDLE_FORMAT:
            raise MalformedEvidenceBundle(self.path, f"{MANIFEST} does not name the format {BUNDLE_FORMAT}")
        if self.manifest.get("version") != BUNDLE_FORMAT_VERSION:
            raise MalformedEvidenceBundle(self.path, f"format version {self.manifest.get('version')!r}; this auditor reads {BUNDLE_FORMAT_VERSION}")
        self.problems = self._check(contents)
        for name in FILES:
            if name not in contents:
                raise MalformedEvidenceBundle(self.path, f"no {name}")
        chain = self._json("chain.json", contents["chain.json"])
        self.events: list[dict[str, Any]] = self._json("events.json", contents["events.json"])
        self.roots: list[dict[str, Any]] = self._json("roots.json", contents["roots.json"])
        self.escrow: dict[str, Any] = self._json("escrow.json", contents["escrow.json"])
        try:
            self.chain_id = int(chain["chainId"])
            self.deployment = Deployment(
                chain_id=self.chain_id,
                deployer=str(chain.get("deployer", "")),
                start_block=int(chain["startBlock"]),
                contracts={str(n): DeployedContract(**c) for n, c in chain["contracts"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedEvidenceBundle(self.path, f"chain.json: {type(exc).__name__}: {exc}") from None
        if not isinstance(self.events, list) or not isinstance(self.roots, list) or not isinstance(self.escrow, dict):
            raise MalformedEvidenceBundle(self.path, "events.json and roots.json must be lists, escrow.json an object")

    def _json(self, name: str, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise MalformedEvidenceBundle(self.path, f"{name} is not JSON ({exc})") from None

    def _check(self, contents: Mapping[str, bytes]) -> list[ManifestProblem]:
        listed = self.manifest.get("files")
        if not isinstance(listed, dict):
            raise MalformedEvidenceBundle(self.path, f"{MANIFEST} lists no files")
        problems = []
        for name, entry in sorted(listed.items()):
            expected = entry.get("sha256") if isinstance(entry, dict) else None
            if name not in contents:
                problems.append(ManifestProblem(name, "listed in the manifest but missing"))
            elif sha256_hex(contents[name]) != expected:
                problems.append(ManifestProblem(name, f"sha-256 {sha256_hex(contents[name])} does not match the manifest's {expected}"))
        for name in sorted(set(contents) - set(listed) - {MANIFEST}):
            problems.append(ManifestProblem(name, "not listed in the manifest"))
        return problems

    @property
    def selection(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in (self.manifest.get("selection") or {}).items())


def _bytes(text: Any) -> bytes:
    return bytes.fromhex(str(text).removeprefix("0x"))


class BundleEvidence:
    """An evidence bundle as the audit engine's `Evidence` (node.audit.evidence).

    Partial: it holds some leaves of its roots and none of other roots, so the engine checks
    each event's proof against its anchored root instead of rebuilding trees, reports no root
    outside the bundle, and checks the escrow transitions of the bundle's orders only. A value
    the bundle gets wrong (an edited field) is handed over as it is, for the engine to report."""

    partial = True

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._bundle: Bundle | None = None

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (BundleEvidence, (str(self.path),))  # a worker re-reads the zip

    @property
    def bundle(self) -> Bundle:
        if self._bundle is None:
            self._bundle = Bundle(self.path)
        return self._bundle

    @property
    def manifest_problems(self) -> list[ManifestProblem]:
        return self.bundle.problems

    def describe(self) -> str:
        return f"bundle {self.path} ({self.bundle.selection})"

    def batches(self) -> list[StoredBatch]:
        return [
            StoredBatch(_bytes(r["root"]), int(r["eventCount"]), "anchored",
                        _bytes(r["txHash"]) if r.get("txHash") else None,
                        int(r["blockNumber"]) if r.get("blockNumber") is not None else None)
            for r in self.bundle.roots
        ]

    def event_parts(self, target_size: int) -> list[tuple[str, int, int]]:
        """("roots", first, last) ranges of roots.json, whole roots per part."""
        roots = [str(r["root"]).lower() for r in self.bundle.roots]
        counts: dict[str, int] = {}
        for event in self.bundle.events:
            key = str((event.get("merkle") or {}).get("root", "")).lower()
            counts[key] = counts.get(key, 0) + 1
        parts: list[tuple[str, int, int]] = []
        start, total = 0, 0
        for index, root in enumerate(roots):
            total += counts.get(root, 0)
            if total >= target_size:
                parts.append(("roots", start, index))
                start, total = index + 1, 0
        if start < len(roots) or not parts:
            parts.append(("roots", start, len(roots) - 1))
        orphans = sum(n for root, n in counts.items() if root not in set(roots))
        if orphans:
            parts.append(("unrooted", 0, 0))
        return parts

    def events(self, part: Hashable) -> list[StoredEvent]:
        kind, first, last = part if isinstance(part, tuple) else ("", 0, -1)
        roots = {str(r["root"]).lower() for r in self.bundle.roots}
        wanted = {str(r["root"]).lower() for r in self.bundle.roots[first : last + 1]} if kind == "roots" else None
        found = []
        for record in self.bundle.events:
            merkle = record.get("merkle") or {}
            root = str(merkle.get("root", "")).lower()
            if (wanted is not None and root in wanted) or (wanted is None and root not in roots):
                found.append(_stored_event(record))
        return found

    def orders(self) -> frozenset[int]:
        return frozenset(int(str(o["orderId"]), 16) for o in self.bundle.escrow.get("orders", []))

    def escrow_attestations(self) -> Iterator[StoredEscrowAttestation]:
        escrow = str(self.bundle.escrow.get("escrow") or "")
        for order in self.bundle.escrow.get("orders", []):
            for a in order.get("attestations", []):
                yield StoredEscrowAttestation(
                    self.bundle.chain_id, escrow, str(a["kind"]), int(str(order["orderId"]), 16), int(a["milestone"]),
                    str(a["signer"]), _bytes(a["signature"]), int(a["deadline"]), int(a["duty"]), str(a["dutyPayee"]),
                )


def _stored_event(record: Mapping[str, Any]) -> StoredEvent:
    attestation = record.get("attestation") or {}
    merkle = record.get("merkle") or {}
    proof = b"".join(_bytes(p) for p in merkle.get("proof") or [])
    return StoredEvent(
        digest=_bytes(str(record["eventId"]).split(";", 1)[-1][:64]),
        # events.json holds the stored body parsed; orjson writes it back byte for byte as stored.
        body=orjson.dumps(record["event"]).decode(),
        signer=str(attestation.get("signer", "")),
        signature=_bytes(attestation.get("signature", "")),
        role=str(attestation.get("role", "")),
        event_time=int(attestation.get("eventTime", 0)),
        subject=_bytes(attestation.get("subject", "")),
        batch_root=_bytes(merkle["root"]) if merkle.get("root") else None,
        leaf_index=int(merkle["leafIndex"]) if merkle.get("leafIndex") is not None else None,
        proof=proof if merkle else None,
    )
