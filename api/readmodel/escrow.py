"""The escrow side of the read model: which shipment keys an order may name for a unit, and the
orders an ownership claim by escrow refers to.

The passport's order section is read per scan from node.escrow.orders.OrderIndex (orders by
shipment key, kept current from the indexed TradeEscrow logs): an indexed lookup, never a load
of every order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson
from sqlalchemy import select
from web3 import Web3

from api.readmodel.chain_view import ChainView
from node.db import ChainLog, Database
from node.protocol.attestation import keccak256
from node.protocol.gs1 import Identifier, UnitId, encode_component

ESCROW_STATES = ("None", "Created", "Funded", "Delivered", "Disputed", "Released", "Refunded", "Cancelled", "Resolved")
_SHIPMENT_REF = 9  # index of OrderTerms.shipmentRef in the terms tuple


def shipment_keys(identifier: Identifier, containers: Iterable[str]) -> list[bytes]:
    """What an escrow order's shipmentRef may be for this unit: keccak256 of its canonical id,
    of its lot's (https://id.gs1.org/01/<gtin>/10/<lot>), or of a container it travelled in."""
    keys = [keccak256(identifier.canonical_uri.encode())]
    if isinstance(identifier, UnitId) and identifier.lot is not None:
        keys.append(keccak256(f"https://id.gs1.org/01/{identifier.gtin}/10/{encode_component(identifier.lot)}".encode()))
    for container in containers:
        key = keccak256(container.encode())
        if key not in keys:
            keys.append(key)
    return keys


def order_levels(identifier: Identifier, containers: Iterable[str]) -> tuple[tuple[bytes, ...], ...]:
    """`shipment_keys` one level each, most specific first: the unit, its lot, then each
    container it travelled in, innermost first (the rule is node.escrow.orders')."""
    return tuple((key,) for key in shipment_keys(identifier, containers))


@dataclass(frozen=True)
class EscrowOrder:
    order_id: int
    buyer: str
    shipment_ref: bytes
    state: str


class EscrowOrders:
    """One escrow order as the indexer stored its `OrderCreated` log (found by its order id, an
    indexed key), with its state read from TradeEscrow. Without a TradeEscrow in the deployment
    (or before the indexer has seen one) every lookup answers None."""

    def __init__(self, db: Database, chain: ChainView) -> None:
        self.db = db
        self.chain = chain
        self.contract = chain.client.contract("TradeEscrow", chain.escrow_address) if chain.escrow_address else None

    def order(self, order_id: int) -> EscrowOrder | None:
        for found_id, buyer, ref in self._created("0x" + order_id.to_bytes(32, "big").hex()):
            if found_id == order_id:
                return EscrowOrder(order_id, buyer, ref, self._state(order_id))
        return None

    def _created(self, key: str) -> list[tuple[int, str, bytes]]:
        if self.contract is None:
            return []
        query = select(ChainLog.args).where(
            ChainLog.chain_id == self.chain.chain_id, ChainLog.contract == "TradeEscrow", ChainLog.event == "OrderCreated",
            ChainLog.key == key,
        )
        with self.db.connect() as conn:
            rows = conn.execute(query).scalars().all()
        found: list[tuple[int, str, bytes]] = []
        for raw in rows:
            args = orjson.loads(raw)
            terms = args.get("terms")
            ref = terms.get("shipmentRef") if isinstance(terms, Mapping) else terms[_SHIPMENT_REF] if isinstance(terms, list) else None
            if isinstance(ref, str) and ref.startswith("0x"):
                found.append((int(args["orderId"]), Web3.to_checksum_address(args["buyer"]), bytes.fromhex(ref[2:])))
        return found

    def _state(self, order_id: int) -> str:
        assert self.contract is not None
        order = self.chain.client.call(self.contract.functions.getOrder(order_id))
        state = int(order[0])
        return ESCROW_STATES[state] if state < len(ESCROW_STATES) else str(state)
