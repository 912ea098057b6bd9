"""Tables of the buyer side: the scan log, ownership claims, claim codes, clone alerts.

Nothing here is personal data: a scan keeps a coarse region (a country code), a salted hash
of the scanning device and a time; a claim keeps how it was proven (an escrow order id and
the buyer's account, or only the hash of the one-time code from inside the packaging); a
unit's state keeps its decommissioning and its clone suspicion, so both survive a restart.
Migrations: node/db/migrations/versions/0002_scans_claims_alerts.py, 0010_clones_unit_state.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Boolean, Connection, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from node.db.models import Base, BigId


class Scan(Base):
    """One resolution of a code by a buyer's device."""

    __tablename__ = "scans"
    __table_args__ = (Index("ix_scans_unit_key_at_ms", "unit_key", "at_ms"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Canonical id on id.gs1.org (the form events use), e.g. https://id.gs1.org/01/<gtin>/21/<serial>.
    unit_key: Mapped[str] = mapped_column(String(512))
    gtin: Mapped[str | None] = mapped_column(String(14))
    known: Mapped[bool] = mapped_column(Boolean)
    # ISO 3166-1 alpha-2 country, or NULL when neither stated nor derivable.
    region: Mapped[str | None] = mapped_column(String(2))
    # proxy (a trusted proxy's header) | none; older rows may say stated or language (no longer judged)
    region_source: Mapped[str] = mapped_column(String(8))
    # HMAC-SHA256(server salt, device id) truncated to 16 bytes; the device id itself is never stored.
    device_hash: Mapped[bytes] = mapped_column(LargeBinary(16))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    # Clone rules this scan tripped, comma-separated ('' for none).
    flags: Mapped[str] = mapped_column(String(160), default="")


class OwnershipClaim(Base):
    """A unit claimed by its buyer; at most one claim per unit."""

    __tablename__ = "ownership_claims"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_key: Mapped[str] = mapped_column(String(512), unique=True)
    method: Mapped[str] = mapped_column(String(8))  # code | escrow
    order_id: Mapped[str | None] = mapped_column(String(66))
    owner: Mapped[str | None] = mapped_column(String(42))  # buyer account, escrow claims only
    device_hash: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    claimed_at_ms: Mapped[int] = mapped_column(BigInteger)


class ClaimCode(Base):
    """The hash of the one-time code a manufacturer put inside a unit's packaging."""

    __tablename__ = "claim_codes"

    unit_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    org_id: Mapped[int] = mapped_column(BigInteger)
    registered_by: Mapped[str] = mapped_column(String(42))
    registered_at_ms: Mapped[int] = mapped_column(BigInteger)


class ScanAlert(Base):
    """A clone rule tripped for a unit; one per unit, rule and UTC day."""

    __tablename__ = "scan_alerts"
    __table_args__ = (
        UniqueConstraint("unit_key", "rule", "day"),
        Index("ix_scan_alerts_org_id_id", "org_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Manufacturer organisation of the GTIN (ProvenanceRegistry.productOf); NULL if unregistered.
    org_id: Mapped[int | None] = mapped_column(BigInteger)
    gtin: Mapped[str | None] = mapped_column(String(14))
    unit_key: Mapped[str] = mapped_column(String(512))
    rule: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    day: Mapped[int] = mapped_column(Integer)  # unix day (UTC) of the first trip
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    # Why, as JSON: the scans the rule read (time, region, device tag) and the regions; NULL before 0008.
    evidence: Mapped[str | None] = mapped_column(Text)
    # Until when the unit is shown as suspicious unless a new signal extends it; NULL for alert-only rules.
    suspected_until_ms: Mapped[int | None] = mapped_column(BigInteger)


class UnitState(Base):
    """What the clone rules need to remember about a unit beyond its scans (one row once it has any).

    The FMD-like state is active, claimed (an ownership_claims row) or decommissioned (here);
    the suspicion is the same for every scanner and ends at suspected_until_ms."""

    __tablename__ = "unit_states"

    unit_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    decommissioned_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    decommissioned_by: Mapped[str | None] = mapped_column(String(42))  # the manufacturer's signing account
    decommission_reason: Mapped[str | None] = mapped_column(String(16))
    # JSON {rule: {"message", "firstMs", "lastMs"}} of the clone signals that made it suspicious.
    signals: Mapped[str | None] = mapped_column(Text)
    suspected_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


SCAN_COLUMNS = ("unit_key", "gtin", "known", "region", "region_source", "device_hash", "at_ms", "flags")


def insert_scans(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Scan rows (tuples in SCAN_COLUMNS order) straight to the driver: executemany of tuples runs
    in C, so the writer holds the GIL (and stalls the API's event loop) far less than ORM rows would."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO scans ({', '.join(SCAN_COLUMNS)}) VALUES ({', '.join([mark] * len(SCAN_COLUMNS))})"
    conn.exec_driver_sql(sql, list(rows))
