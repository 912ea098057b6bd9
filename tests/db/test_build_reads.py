"""What a passport build reads for the API besides its core, each in one statement, on each
backend: a unit's scan window with its claim and state (`read_window`), and the orders of its
shipment keys with the check that no newer TradeEscrow log is stored (`read_orders`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert

from api.readmodel.clone_rules import WINDOW_CAP
from api.readmodel.scans import read_window
from node.db import ChainLog, Database, EscrowOrderRow
from node.db.scans import OwnershipClaim, Scan, UnitState
from node.escrow.orders import read_orders

UNIT = "https://id.gs1.org/01/09521234543213/21/ABC"
OTHER = "https://id.gs1.org/01/09521234543213/21/XYZ"
CHAIN = 1337


def _statements(db: Database) -> list[str]:
    """The SELECTs run on `db` from now on (SQLite's BEGIN aside)."""
    seen: list[str] = []
    sa_event.listen(db.engine, "before_cursor_execute", lambda _c, _cur, statement, *_a: seen.append(statement) if statement.startswith("SELECT") else None)
    return seen


def _scan(unit: str, at_ms: int, device: int, region: str | None = "DE") -> dict[str, Any]:
    return {"unit_key": unit, "gtin": "09521234543213", "known": True, "region": region, "region_source": "proxy",
            "device_hash": bytes([device]) * 16, "at_ms": at_ms, "flags": ""}


def test_a_unit_with_no_scans_claim_or_state_reads_as_empty(db: Database) -> None:
    statements = _statements(db)
    assert read_window(db, UNIT, 0) == ([], None, None)
    assert len(statements) == 1


def test_the_window_is_the_newest_scans_since_with_the_claim_and_the_state_in_one_statement(db: Database) -> None:
    since = 1_000
    # More scans than the window holds, two at one instant (the later row first), some before
    # `since`, and another unit's.
    rows = [_scan(UNIT, 500 + i, 9) for i in range(3)] + [_scan(UNIT, since + i, i % 7) for i in range(WINDOW_CAP + 5)]
    rows += [_scan(UNIT, since + WINDOW_CAP + 10, 1, None), _scan(UNIT, since + WINDOW_CAP + 10, 2, "FR"), _scan(OTHER, since + 99_999, 3)]
    with db.write() as s:
        s.execute(insert(Scan), rows)
        s.execute(insert(OwnershipClaim), [{"unit_key": UNIT, "method": "code", "claimed_at_ms": 1_500, "device_hash": b"\x05" * 16}])
        s.execute(insert(UnitState), [{"unit_key": UNIT, "decommissioned_at_ms": 2_000, "decommissioned_by": "0x" + "ab" * 20,
                                       "decommission_reason": "recalled", "signals": '{"too_many_devices": {}}',
                                       "suspected_until_ms": 9_000, "updated_at_ms": 2_000}])
    statements = _statements(db)
    scans, claim, state = read_window(db, UNIT, since)
    assert len(statements) == 1

    # Newest first, the later inserted (a higher id) first among scans of one instant.
    newest_first = [r for _, r in sorted(((i, r) for i, r in enumerate(rows) if r["unit_key"] == UNIT and r["at_ms"] >= since),
                                         key=lambda ir: (ir[1]["at_ms"], ir[0]), reverse=True)]
    assert [tuple(s) for s in scans[:2]] == [(since + WINDOW_CAP + 10, "FR", b"\x02" * 16, "proxy"), (since + WINDOW_CAP + 10, None, b"\x01" * 16, "proxy")]
    assert [(int(s[0]), bytes(s[2])) for s in scans] == [(r["at_ms"], r["device_hash"]) for r in newest_first[:WINDOW_CAP]]
    assert claim is not None and (claim[0], int(claim[1]), bytes(claim[2])) == ("code", 1_500, b"\x05" * 16)
    assert state is not None and tuple(state) == (2_000, "0x" + "ab" * 20, "recalled", '{"too_many_devices": {}}', 9_000)


def test_a_claim_or_a_state_alone_and_no_scans_in_the_window(db: Database) -> None:
    with db.write() as s:
        s.execute(insert(Scan), [_scan(UNIT, 10, 1)])
        s.execute(insert(OwnershipClaim), [{"unit_key": UNIT, "method": "escrow", "order_id": "0x01", "owner": "0x" + "cd" * 20,
                                            "claimed_at_ms": 20}])
        s.execute(insert(UnitState), [{"unit_key": OTHER, "signals": None, "updated_at_ms": 30}])
    scans, claim, state = read_window(db, UNIT, 11)
    assert scans == [] and claim is not None and tuple(claim) == ("escrow", 20, None) and state is None
    scans, claim, state = read_window(db, OTHER, 0)
    assert scans == [] and claim is None and state is not None and tuple(state) == (None, None, None, None, None)


def _order(order_id: int, ref: bytes, created_block: int, *, chain_id: int = CHAIN) -> dict[str, Any]:
    return {"chain_id": chain_id, "order_id": f"0x{order_id:064x}", "shipment_ref": ref, "buyer": "0x" + "b1" * 20,
            "seller": "0x" + "5e" * 20, "milestones": 1, "state": "Funded", "created_block": created_block,
            "created_time": 1_700_000_000 + created_block, "last_block": created_block, "last_log_index": 0}


def _log(log_id: int, contract: str, *, chain_id: int = CHAIN) -> dict[str, Any]:
    return {"id": log_id, "chain_id": chain_id, "block_number": log_id, "block_hash": bytes(32), "block_time": 0,
            "tx_hash": log_id.to_bytes(32, "big"), "log_index": 0, "address": "0x" + "00" * 20, "contract": contract,
            "event": "OrderCreated", "key": None, "args": "{}"}


def test_the_orders_of_each_key_oldest_first_in_one_statement(db: Database) -> None:
    lot, container, none = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    with db.write() as s:
        s.execute(insert(EscrowOrderRow), [_order(3, lot, 50), _order(1, lot, 70), _order(2, container, 60),
                                           _order(4, container, 10, chain_id=CHAIN + 1)])
        s.execute(insert(ChainLog), [_log(1, "TradeEscrow"), _log(2, "TradeEscrow", chain_id=CHAIN + 1), _log(3, "ProvenanceRegistry")])
    statements = _statements(db)
    read = read_orders(db, CHAIN, 1, [lot, container, none, lot])
    assert len(statements) == 1
    assert read is not None and read.checkpoint == 1
    assert {key: [o.order_id for o in orders] for key, orders in read.orders.items()} == {lot: [3, 1], container: [2], none: []}
    assert read.orders[lot][0].created_time == 1_700_000_050 and read.orders[lot][0].buyer == "0x" + "b1" * 20
    assert read_orders(db, CHAIN, 1, []) == read_orders(db, CHAIN, 1, ()) is not None


def test_a_newer_trade_escrow_log_of_the_chain_makes_the_read_none(db: Database) -> None:
    key = b"\x01" * 32
    with db.write() as s:
        s.execute(insert(EscrowOrderRow), [_order(1, key, 5)])
        s.execute(insert(ChainLog), [_log(1, "TradeEscrow"), _log(2, "ProvenanceRegistry"), _log(3, "TradeEscrow", chain_id=CHAIN + 1)])
    assert read_orders(db, CHAIN, 1, [key]) is not None  # newer logs, but of another contract or chain
    with db.write() as s:
        s.execute(insert(ChainLog), [_log(4, "TradeEscrow")])
    assert read_orders(db, CHAIN, 1, [key]) is None
    assert read_orders(db, CHAIN, 1, []) is None
    assert read_orders(db, CHAIN, 4, [key]) is not None
