"""The oracle's escrow agent: escrow facts -> signed milestone attestations for the relayer.

For a fact (oracle.service: shipped, customs_cleared with its duty, delivered,
customs_returned) the agent finds the TradeEscrow orders that cover the shipment (an order's
`shipmentRef` is keccak256 of the canonical id of a unit, a lot or a container, the same
rule as `node.passport.shipment_keys`), picks in each funded order the milestone the fact
reaches, signs it as the organisation (EIP-712, domain "Waymark Escrow", with node.escrow.signing) and posts the
signature to the relayer, which submits once k distinct organisations have signed.

| fact | signs | milestone |
|---|---|---|
| shipped | MilestoneAttestation(orderId, i, 0, 0x0, deadline) | the Shipped one |
| customs_cleared | MilestoneAttestation(orderId, i, duty, dutyPayee, deadline) | the next CustomsCleared one |
| delivered | MilestoneAttestation(orderId, i, 0, 0x0, deadline) | the Delivered one |
| customs_returned | CustomsReturn(orderId, i, deadline) | the next CustomsCleared one |

A duty is converted to token units: at the token's decimals when it is in the token's
currency, else at the latest FX rate this oracle attested for the pair. FX observations are
signed as FxRate(base, quote, rate·10^18, timestamp, deadline). A deadline is the later of the
wall clock and the chain's clock, plus `escrow_signature_ttl`.

Orders are read from the chain through `node.escrow.client.EscrowClient` (`OrderCreated`
logs of the TradeEscrow; `getOrder` for the state), so the agent needs no database of its own. A fact
no funded order covers is settled with an empty result (nothing to attest).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

import httpx
import orjson
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.escrow.client import EscrowClient
from node.escrow.signing import sign_customs_return, sign_fx_rate, sign_milestone
from node.escrow.terms import MilestoneKind, OrderTerms, State
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


@dataclass(frozen=True)
class OrderView:
    order_id: int
    terms: OrderTerms
    state: State
    reached: int


class Relayer(Protocol):
    def post_milestone(self, body: Mapping[str, Any]) -> Any: ...
    def post_customs_return(self, body: Mapping[str, Any]) -> Any: ...
    def post_fx(self, body: Mapping[str, Any]) -> Any: ...


class HttpRelayer:
    """The relayer's HTTP API (node/relayer_app.py)."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        try:
            response = self.http.post(path, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise Transient(f"{self.base_url}{path} unreachable: {type(exc).__name__}: {exc}") from None
        return _check(response)

    def post_milestone(self, body: Mapping[str, Any]) -> Any:
        return self._post("/milestones", body)

    def post_customs_return(self, body: Mapping[str, Any]) -> Any:
        return self._post("/customs-returns", body)

    def post_fx(self, body: Mapping[str, Any]) -> Any:
        return self._post("/fx-rates", body)


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


class EscrowAgent:
    """Signs escrow facts and FX rates as the organisation and posts them to the relayer."""

    def __init__(
        self,
        client: ChainClient,
        escrow_address: str,
        start_block: int,
        account: LocalAccount,
        relayer: Relayer,
        state: OracleState | None = None,
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
        cls, settings: OracleSettings, client: ChainClient, deployment: Deployment, account: LocalAccount, state: OracleState | None = None
    ) -> "EscrowAgent":
        assert settings.relayer_url is not None
        return cls(
            client, deployment.address("TradeEscrow"), deployment.contracts["TradeEscrow"].block, account,
            HttpRelayer(settings.relayer_url, settings.request_timeout), state,
            duty_payee=settings.duty_payee, ttl=settings.escrow_signature_ttl,
        )

    # ---- signing ---------------------------------------------------------------------------

    def deadline(self) -> int:
        try:
            chain_now = int(self.client.w3.eth.get_block("latest")["timestamp"])
        except Exception as exc:  # noqa: BLE001 - the chain being down is a passing problem
            raise Transient(f"chain unreachable: {exc}") from None
        return max(int(time.time()), chain_now) + self.ttl

    # ---- facts -----------------------------------------------------------------------------

    def _duty_units(self, duty: Mapping[str, str] | None, token: str) -> int:
        if not duty:
            return 0
        token_info = self.escrow.token_info(token)
        currency, decimals = token_info.currency, token_info.decimals
        amount = Decimal(duty["amount"])
        if currency is None:
            raise Refused(f"the order's token {token} stands for no currency: a duty cannot be converted into it")
        if duty["currency"] != currency:
            rate = self._rate(duty["currency"], currency)
            if rate is None:
                raise Refused(f"no FX rate {duty['currency']}/{currency} known to convert the duty into the order's token")
            amount *= rate
        return to_units(amount, decimals)

    def _rate(self, base: str, quote: str) -> Decimal | None:
        if self.state is None:
            return None
        direct = self.state.rate(base, quote)
        if direct is not None:
            return direct[0]
        inverse = self.state.rate(quote, base)
        return Decimal(1) / inverse[0] if inverse is not None else None

    def deliver_fact(self, payload: Mapping[str, Any]) -> Any:
        fact = str(payload["fact"])
        try:
            orders = covering_orders(self.escrow, list(payload["refs"]))
        except (Transient, Refused):
            raise
        except Exception as exc:  # noqa: BLE001 - RPC trouble: try again later
            raise Transient(f"reading escrow orders failed: {type(exc).__name__}: {exc}") from None
        results: list[dict[str, Any]] = []
        for order in orders:
            if order.state is not State.FUNDED:
                results.append({"orderId": str(order.order_id), "skipped": f"the order is {order.state.name}, not FUNDED"})
                continue
            milestone = milestone_for(fact, order)
            if milestone is None:
                results.append({"orderId": str(order.order_id), "skipped": f"no {fact} milestone left to reach"})
                continue
            deadline = self.deadline()
            body: dict[str, Any]
            if fact == "customs_returned":
                signed = sign_customs_return(self.account, self.domain, order.order_id, milestone, deadline)
                body = {"orderId": str(order.order_id), "milestone": milestone, "signer": signed.signer,
                        "deadline": deadline, "signature": "0x" + signed.signature.hex()}
                answer = self.relayer.post_customs_return(body)
            else:
                duty = self._duty_units(payload.get("duty"), order.terms.token) if fact == "customs_cleared" else 0
                payee = self.duty_payee if duty else ZERO
                signed = sign_milestone(self.account, self.domain, order.order_id, milestone, deadline, duty, payee)
                body = {"orderId": str(order.order_id), "milestone": milestone, "duty": str(duty), "dutyPayee": payee,
                        "signer": signed.signer, "deadline": deadline, "signature": "0x" + signed.signature.hex()}
                answer = self.relayer.post_milestone(body)
            results.append({"orderId": str(order.order_id), "milestone": milestone, "relayer": answer})
        return {"fact": fact, "orders": results}

    def deliver_fx(self, payload: Mapping[str, Any]) -> Any:
        rate = to_units(Decimal(payload["rate"]), 18)
        deadline = self.deadline()
        signed = sign_fx_rate(self.account, self.domain, payload["base"], payload["quote"], rate, int(payload["observedAt"]), deadline)
        return self.relayer.post_fx({
            "base": payload["base"], "quote": payload["quote"], "rate": str(rate), "timestamp": int(payload["observedAt"]),
            "signer": signed.signer, "deadline": deadline, "signature": "0x" + signed.signature.hex(),
        })
