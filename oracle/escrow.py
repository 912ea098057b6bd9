"""The oracle's escrow agent: escrow facts -> signed milestone attestations for the relayer.

For a fact (oracle.service: shipped, customs_cleared with its duty, delivered,
customs_returned) the agent finds the TradeEscrow orders that cover the shipment (an order's
`shipmentRef` is keccak256 of the canonical id of a unit, a lot or a container, the same
rule as `node.passport.shipment_keys`), picks in each funded order the milestone the fact
reaches, signs it as the organisation (EIP-712, domain "Waymark Escrow", with
node.escrow.signing) and posts the signature to the relayer (node/relayer_app.py), which
submits the bundle once k distinct organisations have signed.

| fact | signs | milestone | relayer |
|---|---|---|---|
| shipped | MilestoneAttestation(orderId, i, 0, 0x0, deadline) | the Shipped one | POST /milestones/{orderId}/{i} |
| customs_cleared | MilestoneAttestation(orderId, i, duty, dutyPayee, deadline) | the next CustomsCleared one | POST /milestones/{orderId}/{i} |
| delivered | MilestoneAttestation(orderId, i, 0, 0x0, deadline) | the Delivered one | POST /milestones/{orderId}/{i} |
| customs_returned | CustomsReturn(orderId, i, deadline) | the next CustomsCleared one | POST /customs-returns/{orderId}/{i} |

A duty is converted to token units: at the token's decimals when it is in the token's
currency, else at the latest FX rate this oracle received for the pair. Every customs oracle
of a quorum must name the same `dutyPayee` (the customs authority's account: setting
`duty_payee`), or their signatures do not agree. A deadline is the later of the wall clock
and the chain's clock plus `escrow_signature_ttl`, chosen once per (order, milestone) and
kept, so that a resend is the same signature. A milestone another quorum already reached is
no error: the fact is settled with that note.

Orders are read from the chain through `node.escrow.client.EscrowClient` (`OrderCreated`
logs of the TradeEscrow; `getOrder` for the state), so the agent needs no database of its
own. A fact no funded order covers is settled with an empty result (nothing to attest).

FX rates are not facts about a shipment: `fx_signer` signs each rate as the escrow's
`FxRate(base, quote, rate·10^18, timestamp, deadline)`, and the oracle serves the newest per
pair (`GET /fx-rates/{base}/{quote}`) for a buyer to assemble an `FxQuote`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

import httpx
import orjson
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.escrow.client import EscrowClient
from node.escrow.signing import EscrowDomain, sign_customs_return, sign_fx_rate, sign_milestone
from node.escrow.store import order_key
from node.escrow.terms import MilestoneKind, OrderTerms, State
from oracle.adapters.base import FxObservation
from oracle.delivery import Refused, Transient, _check
from oracle.settings import OracleSettings
from oracle.state import OracleState

log = logging.getLogger(__name__)

ZERO = "0x" + "00" * 20
_FACT_KIND = {
    "shipped": MilestoneKind.SHIPPED,
    "delivered": MilestoneKind.DELIVERED,
    "customs_cleared": MilestoneKind.CUSTOMS_CLEARED,
    "customs_returned": MilestoneKind.CUSTOMS_CLEARED,
}
# Relayer answers that mean "nothing left to do" rather than "refused".
_SETTLED_CODES = ("milestone_already_reached", "order_closed")


@dataclass(frozen=True)
class OrderView:
    order_id: int
    terms: OrderTerms
    state: State
    reached: int


class Relayer(Protocol):
    def post_milestone(self, order_id: int, milestone: int, body: Mapping[str, Any]) -> Any: ...
    def post_customs_return(self, order_id: int, milestone: int, body: Mapping[str, Any]) -> Any: ...


class HttpRelayer:
    """The relayer's HTTP API (node/relayer_app.py)."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        try:
            response = self.http.post(path, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise Transient(f"{self.base_url}{path} unreachable: {type(exc).__name__}: {exc}") from None
        return _check(response)

    def post_milestone(self, order_id: int, milestone: int, body: Mapping[str, Any]) -> Any:
        return self._post(f"/milestones/{order_key(order_id)}/{milestone}", body)

    def post_customs_return(self, order_id: int, milestone: int, body: Mapping[str, Any]) -> Any:
        return self._post(f"/customs-returns/{order_key(order_id)}/{milestone}", body)


def covering_orders(escrow: EscrowClient, refs: Sequence[str]) -> list[OrderView]:
    """Orders whose shipmentRef is keccak256 of one of these canonical ids, with their state now."""
    wanted = {keccak(text=r) for r in refs}
    found = {t.order_id: t for t in escrow.find_orders() if t.shipment_ref in wanted}
    views = []
    for order_id, terms in found.items():
        order = escrow.order(order_id)
        views.append(OrderView(order_id, terms, order.state, order.milestones_reached))
    return views


def milestone_for(fact: str, order: OrderView) -> int | None:
    """The index of the milestone `fact` reaches in this order, or None if none is left to reach."""
    wanted = _FACT_KIND[fact]
    for index, step in enumerate(order.terms.milestones):
        if step.kind is wanted and index >= order.reached:
            return index
    return None


def to_units(amount: Decimal, decimals: int) -> int:
    return int((amount * (Decimal(10) ** decimals)).to_integral_value(rounding=ROUND_DOWN))


def fx_signer(account: LocalAccount, domain: EscrowDomain, ttl: int) -> Callable[[FxObservation], dict[str, Any]]:
    """Signs an FX observation as the escrow's FxRate; the JSON a buyer puts in an FxQuote."""

    def sign(rate: FxObservation) -> dict[str, Any]:
        units = to_units(rate.rate, 18)
        deadline = max(int(time.time()), rate.observed_at) + ttl
        signed = sign_fx_rate(account, domain, rate.base, rate.quote, units, rate.observed_at, deadline)
        return {
            "base": rate.base, "quote": rate.quote, "rate": str(units), "rateDecimal": str(rate.rate),
            "timestamp": rate.observed_at, "signer": signed.signer, "deadline": deadline,
            "signature": "0x" + signed.signature.hex(), "source": rate.source,
        }

    return sign


class EscrowAgent:
    """Signs escrow facts as the organisation and posts them to the relayer."""

    def __init__(
        self,
        client: ChainClient,
        escrow_address: str,
        start_block: int,
        account: LocalAccount,
        relayer: Relayer,
        state: OracleState,
        *,
        duty_payee: str | None = None,
        ttl: int = 7 * 24 * 3600,
    ) -> None:
        self.client = client
        self.escrow = EscrowClient(client, escrow_address, from_block=start_block)
        self.domain = self.escrow.domain
        self.account = account
        self.relayer = relayer
        self.state = state
        self.duty_payee = to_checksum_address(duty_payee) if duty_payee else account.address
        self.ttl = ttl

    @classmethod
    def from_deployment(
        cls, settings: OracleSettings, client: ChainClient, deployment: Deployment, account: LocalAccount, state: OracleState
    ) -> "EscrowAgent":
        assert settings.relayer_url is not None
        return cls(
            client, deployment.address("TradeEscrow"), deployment.contracts["TradeEscrow"].block, account,
            HttpRelayer(settings.relayer_url, settings.request_timeout), state,
            duty_payee=settings.duty_payee, ttl=settings.escrow_signature_ttl,
        )

    def _deadline(self, order_id: int, milestone: int, kind: str) -> int:
        try:
            chain_now = int(self.client.w3.eth.get_block("latest")["timestamp"])
        except Exception as exc:  # noqa: BLE001 - the chain being down is a passing problem
            raise Transient(f"chain unreachable: {exc}") from None
        return self.state.escrow_deadline(order_id, milestone, kind, max(int(time.time()), chain_now) + self.ttl)

    def _duty_units(self, duty: Mapping[str, str] | None, token: str) -> int:
        if not duty:
            return 0
        info = self.escrow.token_info(token)
        amount = Decimal(duty["amount"])
        if info.currency is None:
            raise Refused(f"the order's token {token} stands for no currency: a duty cannot be converted into it")
        if duty["currency"] != info.currency:
            rate = self._rate(duty["currency"], info.currency)
            if rate is None:
                raise Refused(f"no FX rate {duty['currency']}/{info.currency} known to convert the duty into the order's token")
            amount *= rate
        return to_units(amount, info.decimals)

    def _rate(self, base: str, quote: str) -> Decimal | None:
        direct = self.state.rate(base, quote)
        if direct is not None:
            return direct[0]
        inverse = self.state.rate(quote, base)
        return Decimal(1) / inverse[0] if inverse is not None else None

    def _attest(self, fact: str, order: OrderView, milestone: int, duty_text: Mapping[str, str] | None) -> Any:
        if fact == "customs_returned":
            deadline = self._deadline(order.order_id, milestone, "return")
            signed = sign_customs_return(self.account, self.domain, order.order_id, milestone, deadline)
            body: dict[str, Any] = {"signer": signed.signer, "deadline": deadline, "signature": "0x" + signed.signature.hex()}
            return self.relayer.post_customs_return(order.order_id, milestone, body)
        duty = self._duty_units(duty_text, order.terms.token) if fact == "customs_cleared" else 0
        payee = self.duty_payee if duty else ZERO
        deadline = self._deadline(order.order_id, milestone, "milestone")
        signed = sign_milestone(self.account, self.domain, order.order_id, milestone, deadline, duty, payee)
        body = {"signer": signed.signer, "deadline": deadline, "signature": "0x" + signed.signature.hex(),
                "duty": str(duty), "dutyPayee": payee}
        return self.relayer.post_milestone(order.order_id, milestone, body)

    def deliver_fact(self, payload: Mapping[str, Any]) -> Any:
        """Attest the fact in every funded order that covers its shipment. Transient problems
        retry the whole fact (the relayer answers repeats as already recorded); refusals of
        some orders are collected and reported together once the others are done."""
        fact = str(payload["fact"])
        try:
            orders = covering_orders(self.escrow, list(payload["refs"]))
        except (Transient, Refused):
            raise
        except Exception as exc:  # noqa: BLE001 - RPC trouble: try again later
            raise Transient(f"reading escrow orders failed: {type(exc).__name__}: {exc}") from None
        results: list[dict[str, Any]] = []
        refused: list[str] = []
        for order in orders:
            key = order_key(order.order_id)
            if order.state is not State.FUNDED:
                results.append({"orderId": key, "skipped": f"the order is {order.state.name}, not FUNDED"})
                continue
            milestone = milestone_for(fact, order)
            if milestone is None:
                results.append({"orderId": key, "skipped": f"no {fact} milestone left to reach"})
                continue
            try:
                answer = self._attest(fact, order, milestone, payload.get("duty"))
            except Refused as exc:
                if exc.code in _SETTLED_CODES:
                    results.append({"orderId": key, "milestone": milestone, "skipped": str(exc)})
                    continue
                refused.append(f"order {key} milestone {milestone}: {exc}")
                continue
            results.append({"orderId": key, "milestone": milestone, "relayer": answer})
        if refused:
            raise Refused("; ".join(refused))
        return {"fact": fact, "orders": results}
