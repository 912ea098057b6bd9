"""The oracle's escrow agent: escrow facts -> signed milestone attestations for the relayer.

For a fact (oracle.service: shipped, customs_cleared with its duty, delivered,
customs_returned) the agent finds the TradeEscrow orders that cover the shipment (an order's
`shipmentRef` is keccak256 of the canonical id of a unit, a lot or a container, the same
rule as `api.readmodel.passport.shipment_keys`), picks in each funded order the milestone the fact
reaches, signs it as the organisation (EIP-712, domain "Waymark Escrow", with
node.escrow.signing) and posts the signature to the relayer (node/relayer/app.py), which
submits the bundle once k distinct organisations have signed.

| fact | signs | milestone | relayer |
|---|---|---|---|
| shipped | MilestoneAttestation(orderId, i, 0, 0x0, deadline) | the Shipped one | POST /milestones/{orderId}/{i} |
| customs_cleared | MilestoneAttestation(orderId, i, duty, dutyPayee, deadline) | the next CustomsCleared one | POST /milestones/{orderId}/{i} |
| delivered | MilestoneAttestation(orderId, i, 0, 0x0, deadline) | the Delivered one | POST /milestones/{orderId}/{i} |
| customs_returned | CustomsReturn(orderId, i, deadline) | the next CustomsCleared one | POST /customs-returns/{orderId}/{i} |

A duty is converted to token units: at the order's token decimals (fixed in its terms) when it
is in the token's currency, else at the latest FX rate this oracle received for the pair. Every
customs oracle of a quorum must name the same `dutyPayee` (the customs authority's account:
setting `duty_payee`), or their signatures do not agree. A customs oracle signs only for orders
that name its organisation among their `customsAuthorities` (others are skipped), only with a
payee that is an account of one of those authorities, and only a duty within the order's cap
(`maxDutyBps` of the deposit); a larger duty is refused here, since it needs the buyer's own
signature on chain. A deadline is the later of the wall clock
and the chain's clock plus `escrow_signature_ttl`, chosen once per (order, milestone) and
kept, so that a resend is the same signature. A milestone another quorum already reached is
no error: the fact is settled with that note.

Orders are read from the chain through `node.escrow.client.EscrowClient` (`OrderCreated`
logs of the TradeEscrow; `getOrder` for the state), so the agent needs no database of its
own. A fact no funded order covers is settled with an empty result (nothing to attest).

FX rates are not facts about a shipment: `fx_signer` keeps each observed rate, and the oracle
serves the newest per pair (`GET /fx-rates/{base}/{quote}`). A buyer asks for a quote for one
order (`?orderId=0x...`): the oracle then signs the escrow's `FxRate(orderId, base, quote,
rate·10^18, issuedAt, expiresAt, deadline)` with `issuedAt` the chain's time and `expiresAt`
`QUOTE_VALIDITY` seconds later (the contract refuses quotes valid for more than an hour), for the
buyer to assemble an `FxQuote` from `fxQuorum()` oracles. A quote names its order, so it can
neither fund another order nor be replayed.
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
from node.escrow.terms import FX_MAX_VALIDITY, MilestoneKind, OrderTerms, State
from oracle.adapters.base import FxObservation
from oracle.delivery import Refused, Transient, answer_of
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
#: Seconds an FX quote stays valid (the contract allows at most FX_MAX_VALIDITY).
QUOTE_VALIDITY = min(900, FX_MAX_VALIDITY)
#: How far before now a buyer may ask a quote's issue time to be (to align a quorum's quotes).
MAX_ISSUE_SKEW = 120
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
    """The relayer's HTTP API (node/relayer/app.py)."""

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
        return answer_of(response)

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


class FxSigner:
    """Keeps FX observations as the JSON the oracle serves, and signs a quote of one for one
    order (`for_order`): the escrow's FxRate, issued at the chain's time (`clock`)."""

    def __init__(self, account: LocalAccount, domain: EscrowDomain, clock: Callable[[], int] | None = None,
                 validity: int = QUOTE_VALIDITY) -> None:
        if not 0 < validity <= FX_MAX_VALIDITY:
            raise ValueError(f"an FX quote is valid for 1 to {FX_MAX_VALIDITY} s, not {validity}")
        self.account = account
        self.domain = domain
        self.clock = clock or (lambda: int(time.time()))
        self.validity = validity

    def __call__(self, rate: FxObservation) -> dict[str, Any]:
        """The observation as served (no signature: a quote is signed per order)."""
        return {
            "base": rate.base, "quote": rate.quote, "rate": str(to_units(rate.rate, 18)), "rateDecimal": str(rate.rate),
            "observedAt": rate.observed_at, "signer": self.account.address, "source": rate.source,
        }

    def for_order(self, kept: Mapping[str, Any], order_id: int, issued_at: int | None = None) -> dict[str, Any]:
        """A quote of the kept rate for order `order_id`, valid for `validity` seconds from now, or
        from `issued_at` (so that the oracles of a quorum sign the same times) when that lies
        within MAX_ISSUE_SKEW seconds before now. ValueError for any other `issued_at`."""
        now = int(self.clock())
        issued = now if issued_at is None else int(issued_at)
        if not now - MAX_ISSUE_SKEW <= issued <= now:
            raise ValueError(f"issuedAt {issued} is not within {MAX_ISSUE_SKEW} s before now ({now})")
        expires = issued + self.validity
        rate = int(kept["rate"])
        signed = sign_fx_rate(self.account, self.domain, order_id, kept["base"], kept["quote"], rate, issued, expires)
        return {**kept, "orderId": order_key(order_id), "issuedAt": issued, "expiresAt": expires,
                "deadline": signed.deadline, "signature": "0x" + signed.signature.hex()}


def fx_signer(account: LocalAccount, domain: EscrowDomain, ttl: int, clock: Callable[[], int] | None = None) -> FxSigner:
    """The oracle's FX signer; `ttl` (the signature lifetime of milestones) caps the quote validity."""
    return FxSigner(account, domain, clock, max(1, min(ttl, QUOTE_VALIDITY)))


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

    def _duty_units(self, duty: Mapping[str, str] | None, terms: OrderTerms) -> int:
        if not duty:
            return 0
        token = terms.token
        info = self.escrow.token_info(token)
        amount = Decimal(duty["amount"])
        if info.currency is None:
            raise Refused(f"the order's token {token} stands for no currency: a duty cannot be converted into it")
        if duty["currency"] != info.currency:
            rate = self._rate(duty["currency"], info.currency)
            if rate is None:
                raise Refused(f"no FX rate {duty['currency']}/{info.currency} known to convert the duty into the order's token")
            amount *= rate
        return to_units(amount, terms.token_decimals)

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
        duty = self._duty_units(duty_text, order.terms) if fact == "customs_cleared" else 0
        payee = self.duty_payee if duty else ZERO
        if duty:
            self._check_duty(order, duty, payee)
        deadline = self._deadline(order.order_id, milestone, "milestone")
        signed = sign_milestone(self.account, self.domain, order.order_id, milestone, deadline, duty, payee)
        body = {"signer": signed.signer, "deadline": deadline, "signature": "0x" + signed.signature.hex(),
                "duty": str(duty), "dutyPayee": payee}
        return self.relayer.post_milestone(order.order_id, milestone, body)

    def _check_duty(self, order: OrderView, duty: int, payee: str) -> None:
        """As the contract: the payee is an account of one of the order's customs authorities
        (the quorum's oracles name the same one), the duty within the cap."""
        authorities = [a for a in order.terms.customs_authorities if a]
        if self.escrow.organisation_of(payee) not in authorities or payee in (order.terms.buyer, order.terms.seller):
            raise Refused(f"the duty payee {payee} is not an account of a customs authority of the order {authorities}")
        allowed = self.escrow.duty_allowance(order.terms, self.escrow.order(order.order_id))
        if duty > allowed:
            raise Refused(f"a duty of {duty} exceeds the {allowed} the order's cap leaves ({order.terms.max_duty_bps} bps of "
                          "the deposit, less the duty its earlier customs steps paid): it needs the buyer's own signature "
                          "on chain, or a dispute")

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
            if order.state not in (State.FUNDED, State.DISPUTED):  # a dispute does not stop the goods' milestones
                results.append({"orderId": key, "skipped": f"the order is {order.state.name}, not FUNDED or DISPUTED"})
                continue
            milestone = milestone_for(fact, order)
            if milestone is None:
                results.append({"orderId": key, "skipped": f"no {fact} milestone left to reach"})
                continue
            if fact.startswith("customs_"):
                own = self.escrow.organisation_of(self.account.address)
                if own not in order.terms.customs_authorities or own == 0:
                    results.append({"orderId": key, "skipped": "this organisation is not a customs authority of the order"})
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
