"""What an oracle remembers between source records: shipments it has seen booked (their
containers and goods), customs declarations it has lodged (so a decision can be matched to
one, and one for an unknown shipment refused), and the latest FX rates it has attested.

One SQLite file (the queue's), its own tables. Every write is an upsert, so re-sending a
source record after a crash leaves the same state.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shipments (
    shipment_id TEXT PRIMARY KEY,
    containers TEXT NOT NULL,
    goods TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shipment_objects (
    object TEXT NOT NULL,
    shipment_id TEXT NOT NULL,
    PRIMARY KEY (object, shipment_id)
);
CREATE TABLE IF NOT EXISTS declarations (
    declaration_id TEXT PRIMARY KEY,
    containers TEXT NOT NULL,
    detail TEXT NOT NULL,
    decision TEXT
);
CREATE TABLE IF NOT EXISTS escrow_deadlines (
    order_id TEXT NOT NULL,
    milestone INTEGER NOT NULL,
    kind TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    PRIMARY KEY (order_id, milestone, kind)
);
CREATE TABLE IF NOT EXISTS fx_signed (
    base TEXT NOT NULL,
    quote TEXT NOT NULL,
    observed_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (base, quote)
);
CREATE TABLE IF NOT EXISTS fx_rates (
    base TEXT NOT NULL,
    quote TEXT NOT NULL,
    rate TEXT NOT NULL,
    observed_at INTEGER NOT NULL,
    PRIMARY KEY (base, quote)
);
"""


@dataclass(frozen=True)
class Shipment:
    shipment_id: str
    containers: tuple[str, ...]  # canonical ids (https://id.gs1.org/00/<SSCC>)
    goods: tuple[str, ...]  # GTINs of the goods inside
    detail: dict[str, Any]


@dataclass(frozen=True)
class Declaration:
    declaration_id: str
    containers: tuple[str, ...]
    detail: dict[str, Any]
    decision: str | None


class OracleState:
    def __init__(self, path: Path | str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._conn.execute(sql, args)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    # ---- shipments --------------------------------------------------------------------------

    def save_shipment(self, shipment: Shipment) -> None:
        """Record (or update) a shipment; its containers and goods are merged with what was known."""
        known = self.shipment(shipment.shipment_id)
        containers = tuple(dict.fromkeys((*(known.containers if known else ()), *shipment.containers)))
        goods = tuple(dict.fromkeys((*(known.goods if known else ()), *shipment.goods)))
        detail = {**(known.detail if known else {}), **shipment.detail}
        statements: list[tuple[str, tuple[Any, ...]]] = [(
            "INSERT INTO shipments (shipment_id, containers, goods, detail) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (shipment_id) DO UPDATE SET containers = excluded.containers, goods = excluded.goods, detail = excluded.detail",
            (shipment.shipment_id, orjson.dumps(containers).decode(), orjson.dumps(goods).decode(), orjson.dumps(detail).decode()),
        )]
        for container in (*containers, *detail.get("contents", [])):
            statements.append(("INSERT OR IGNORE INTO shipment_objects (object, shipment_id) VALUES (?, ?)", (container, shipment.shipment_id)))
        self._write(statements)

    def shipment(self, shipment_id: str) -> Shipment | None:
        row = self._one("SELECT shipment_id, containers, goods, detail FROM shipments WHERE shipment_id = ?", (shipment_id,))
        if row is None:
            return None
        return Shipment(row[0], tuple(orjson.loads(row[1])), tuple(orjson.loads(row[2])), orjson.loads(row[3]))

    def shipments_of(self, object_id: str) -> list[Shipment]:
        with self._lock:
            rows = self._conn.execute("SELECT shipment_id FROM shipment_objects WHERE object = ? ORDER BY rowid", (object_id,)).fetchall()
        found = [self.shipment(r[0]) for r in rows]
        return [s for s in found if s is not None]

    # ---- customs declarations ---------------------------------------------------------------

    def save_declaration(self, declaration: Declaration) -> None:
        self._write([(
            "INSERT INTO declarations (declaration_id, containers, detail, decision) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (declaration_id) DO UPDATE SET containers = excluded.containers, detail = excluded.detail",
            (declaration.declaration_id, orjson.dumps(list(declaration.containers)).decode(), orjson.dumps(declaration.detail).decode(), declaration.decision),
        )])

    def decide(self, declaration_id: str, decision: str) -> None:
        self._write([("UPDATE declarations SET decision = ? WHERE declaration_id = ?", (decision, declaration_id))])

    def declaration(self, declaration_id: str) -> Declaration | None:
        row = self._one("SELECT declaration_id, containers, detail, decision FROM declarations WHERE declaration_id = ?", (declaration_id,))
        if row is None:
            return None
        return Declaration(row[0], tuple(orjson.loads(row[1])), orjson.loads(row[2]), row[3])

    # ---- FX --------------------------------------------------------------------------------

    def save_rate(self, base: str, quote: str, rate: Decimal, observed_at: int) -> None:
        self._write([(
            "INSERT INTO fx_rates (base, quote, rate, observed_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (base, quote) DO UPDATE SET rate = excluded.rate, observed_at = excluded.observed_at"
            " WHERE excluded.observed_at >= fx_rates.observed_at",
            (base, quote, str(rate), observed_at),
        )])

    def save_signed_rate(self, base: str, quote: str, observed_at: int, body: dict[str, Any]) -> None:
        """Keep the newest signed FxRate of a pair (what GET /fx-rates/{base}/{quote} serves)."""
        self._write([(
            "INSERT INTO fx_signed (base, quote, observed_at, body) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (base, quote) DO UPDATE SET observed_at = excluded.observed_at, body = excluded.body"
            " WHERE excluded.observed_at >= fx_signed.observed_at",
            (base, quote, observed_at, orjson.dumps(body).decode()),
        )])

    def signed_rate(self, base: str, quote: str) -> dict[str, Any] | None:
        row = self._one("SELECT body FROM fx_signed WHERE base = ? AND quote = ?", (base, quote))
        return orjson.loads(row[0]) if row is not None else None

    # ---- escrow signatures -----------------------------------------------------------------

    def escrow_deadline(self, order_id: int, milestone: int, kind: str, proposed: int) -> int:
        """The deadline this oracle signs (order, milestone, kind) with: the first one proposed,
        kept, so a resend after a lost answer is the very same signature (the relayer refuses a
        second, different one from the same signer)."""
        key = (hex(order_id), milestone, kind)
        self._write([("INSERT OR IGNORE INTO escrow_deadlines (order_id, milestone, kind, deadline) VALUES (?, ?, ?, ?)", (*key, proposed))])
        row = self._one("SELECT deadline FROM escrow_deadlines WHERE order_id = ? AND milestone = ? AND kind = ?", key)
        return int(row[0])

    def rate(self, base: str, quote: str) -> tuple[Decimal, int] | None:
        row = self._one("SELECT rate, observed_at FROM fx_rates WHERE base = ? AND quote = ?", (base, quote))
        return (Decimal(row[0]), int(row[1])) if row is not None else None
