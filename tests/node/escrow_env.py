"""Waymark deployed as `waymark deploy` does it on the devnet (demo consortium, TradeEscrow, the two
test stablecoins allowlisted and minted to the demo buyers), plus the people of an order.

Demo organisations (ids in DEMO_MEMBERS order): manufacturer 1 (the default seller), carrier 3,
customs 4, operator 5, arbitrator 6, forwarder 8 and courier 9 (CARRIER), broker 10 and port 11
(CUSTOMS); the buyers are dev accounts 10 and 11, members of nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from node.chain.deploy import Deployment, deploy, waymark_steps
from waymark.devnet.consortium import demo_consortium, devnet_account
from waymark.devnet.escrow import devnet_token_steps, setup_devnet_escrow
from node.escrow import EscrowClient, OrderTerms, TermsStore, schedule
from node.escrow.signing import sign_milestone
from node.escrow.terms import Attestation, arbitrators, customs_authorities

DAY = 24 * 3600
USD = 10**6  # one wUSD (6 decimals)
RELAYER_INDEX = 15  # a funded dev account that belongs to no organisation


@cache
def member(index: int) -> LocalAccount:
    return devnet_account(index)


@dataclass
class EscrowEnv:
    chain: ChainClient
    deployment: Deployment
    record: Path
    escrow: EscrowClient
    usd: str
    eur: str
    seller: LocalAccount = field(default_factory=lambda: member(1))  # manufacturer, org 1
    buyer: LocalAccount = field(default_factory=lambda: member(10))
    # CARRIER orgs 3, 8, 9; CUSTOMS orgs 4, 10, 11; ORACLE orgs 2, 3, 4 (not the seller's).
    carriers: tuple[LocalAccount, ...] = field(default_factory=lambda: (member(3), member(8), member(9)))
    customs: tuple[LocalAccount, ...] = field(default_factory=lambda: (member(4), member(12), member(13)))
    oracles: tuple[LocalAccount, ...] = field(default_factory=lambda: (member(2), member(3), member(4)))
    arbitrator: LocalAccount = field(default_factory=lambda: member(6))
    relayer: LocalAccount = field(default_factory=lambda: member(RELAYER_INDEX))
    outsider: LocalAccount = field(default_factory=lambda: member(16))

    def now(self) -> int:
        return self.escrow.chain_time()

    def terms(self, **overrides: Any) -> OrderTerms:
        now = self.now()
        base = OrderTerms(
            seller=self.seller.address, buyer=self.buyer.address, token=self.usd, amount=1_000 * USD,
            ship_by=now + 7 * DAY, deliver_by=now + 30 * DAY, milestones=schedule(0, 3000, 7000),
            platform=member(5).address, platform_fee_bps=100, shipment_ref=b"\x11" * 32, max_duty_bps=1_000,
            customs_authorities=customs_authorities([self.escrow.organisation_of(a.address) for a in self.customs]),
            arbitrators=arbitrators([self.escrow.organisation_of(self.arbitrator.address)]),
        )
        chosen = base.but(**overrides)
        complete = self.escrow.complete(chosen)
        derived = {k: getattr(complete, k) for k in ("seller_org", "buyer_org", "token_decimals") if k not in overrides}
        return chosen.but(**derived)

    def open(self, terms: OrderTerms, seller: LocalAccount | None = None) -> OrderTerms:
        """Created by the seller and funded by the buyer."""
        self.escrow.create(terms, seller or self.seller)
        self.escrow.fund(terms, self.buyer)
        return terms

    def sign(self, signer: LocalAccount, terms: OrderTerms, milestone: int, *, deadline: int | None = None,
             duty: int = 0, payee: str = "0x" + "00" * 20) -> Attestation:
        when = deadline if deadline is not None else self.now() + DAY
        return sign_milestone(signer, self.escrow.domain, terms.order_id, milestone, when, duty, payee)

    def reach(self, terms: OrderTerms, milestone: int) -> None:
        """Reach a milestone directly (two signers of its role), as any submitter could."""
        pool = self.customs if terms.milestones[milestone].role == "CUSTOMS" else self.carriers
        sigs = [self.sign(a, terms, milestone) for a in pool[:2]]
        self.escrow.attest_milestone(terms, milestone, sigs, self.outsider)


def escrow_env(chain: ChainClient, tmp_path: Path) -> EscrowEnv:
    steps = waymark_steps(demo_consortium()) + devnet_token_steps(chain.chain_id)
    deployment, _ = deploy(chain, devnet_account(0), steps, deployment_record(chain, tmp_path))
    setup_devnet_escrow(chain, deployment)
    return attach_escrow_env(chain, deployment, tmp_path)


def deployment_record(chain: ChainClient, folder: Path) -> Path:
    return folder / "deployments" / f"{chain.chain_id}.json"


def attach_escrow_env(chain: ChainClient, deployment: Deployment, folder: Path) -> EscrowEnv:
    """The env of a deployment escrow_env made, its files (deployment record, terms) in folder."""
    record = deployment_record(chain, folder)
    escrow = EscrowClient.from_deployment(chain, deployment, TermsStore(folder / "terms.json"))
    return EscrowEnv(
        chain=chain, deployment=deployment, record=record, escrow=escrow,
        usd=deployment.address("DevStablecoin:wUSD"), eur=deployment.address("DevStablecoin:wEUR"),
    )
