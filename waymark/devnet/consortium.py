"""The demo consortium the devnet is deployed with: fictional member organisations, each
holding one of Anvil's public dev accounts (index into the devnet mnemonic).

Four members run member nodes (manufacturer, carrier, customs, operator): each holds ANCHORER and
has a second dev account linked at founding, from which its node anchors, so anchoring never races
the organisation's other transactions. The others are hosted by one of those nodes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eth_utils.crypto import keccak

from node.chain.consortium import DEFAULT_MAX_REPORTING_DELAY, ConsortiumSpec, Member
from node.chain.devnet_keys import devnet_account as devnet_account  # re-exported beside the demo members' account indices


@dataclass(frozen=True)
class DemoMember:
    key: str
    name: str
    country: str
    roles: tuple[str, ...]
    account_index: int
    #: GS1 Company Prefixes assigned at founding (the manufacturer's covers the demo GTINs).
    company_prefixes: tuple[str, ...] = ()
    #: The dev account its node anchors from (linked to it at founding); None when it runs no node.
    anchor_account_index: int | None = None
    #: The key of the member whose node hosts it; None when it runs its own node (or none at all).
    hosted_by: str | None = None

    @property
    def runs_node(self) -> bool:
        return self.anchor_account_index is not None


DEPLOYER_INDEX = 0
DEMO_COMPANY_PREFIX = "9521234"
DEMO_MEMBERS: tuple[DemoMember, ...] = (
    # 952 is GS1's range for demonstrations; 9521234 covers the demo GTIN 09521234543213.
    DemoMember("manufacturer", "Lumen Ceramics Co.", "VN", ("MANUFACTURER", "ORACLE", "ANCHORER"), 1, (DEMO_COMPANY_PREFIX,),
               anchor_account_index=20),
    # ANCHORER while the demo's single node still anchors from the inspector's account
    # (waymark/demo/network.py ANCHOR_ACCOUNT); it goes once every node anchors for itself.
    DemoMember("inspector", "Meridian Inspection Services", "SG", ("INSPECTOR", "ORACLE", "ANCHORER"), 2,
               hosted_by="manufacturer"),
    DemoMember("carrier", "Bluewater Ocean Freight", "SG", ("CARRIER", "ORACLE", "ANCHORER"), 3, anchor_account_index=21),
    DemoMember("customs", "Customs Office Rotterdam", "NL", ("CUSTOMS", "ORACLE", "ANCHORER"), 4, anchor_account_index=22),
    DemoMember("operator", "Waymark Marketplace B.V.", "NL", ("OPERATOR", "ANCHORER"), 5, anchor_account_index=23),
    DemoMember("arbitrator", "Hanseatic Trade Arbitration", "DE", ("ARBITRATOR",), 6),
    DemoMember("auditor", "Fjord Assurance AS", "NO", ("AUDITOR",), 7),
    # Milestones are attested k-of-n by distinct organisations: two more carriers (a freight
    # forwarder and the last-mile courier) and two more customs parties make 2-of-3 possible.
    DemoMember("forwarder", "Harbourline Forwarding B.V.", "NL", ("CARRIER", "ORACLE"), 8, hosted_by="carrier"),
    DemoMember("courier", "Polder Parcel Express", "NL", ("CARRIER", "ORACLE"), 9, hosted_by="carrier"),
    DemoMember("broker", "Maas Customs Brokers", "NL", ("CUSTOMS", "ORACLE"), 12, hosted_by="customs"),
    DemoMember("port", "Rotterdam Port Community Customs Desk", "NL", ("CUSTOMS", "ORACLE"), 13, hosted_by="customs"),
)
# A majority of the Active members, rounded up: 6 of the 11 founders, more as members join (the
# registry accepts no threshold of half or less).
DEMO_THRESHOLD_BPS = 5_001
DEMO_THRESHOLD = 6
# Accounts that are not members: buyers (on chain they are just accounts). Org ids follow the
# order above (manufacturer = 1 ... port = 11); new members go at the end so ids stay stable.
DEMO_BUYER_INDICES = (10, 11)


#: The demo's maximum reporting delay: the demo dates its events at the wall clock (simulated days
#: are seconds apart), so they are anchored well inside it.
DEMO_MAX_REPORTING_DELAY = DEFAULT_MAX_REPORTING_DELAY


def demo_member(key: str) -> DemoMember:
    return next(m for m in DEMO_MEMBERS if m.key == key)


def demo_org_id(key: str) -> int:
    """The organisation id a demo member gets at founding (its position in DEMO_MEMBERS, from 1)."""
    return next(i for i, m in enumerate(DEMO_MEMBERS, start=1) if m.key == key)


def demo_consortium(node_urls: Mapping[str, str] | None = None) -> ConsortiumSpec:
    """The demo consortium as a consortium spec, the same shape a real consortium file gives.
    `node_urls` (member key -> base URL) become the node records of the members that run nodes;
    without them the directory starts empty and the nodes publish their URLs themselves."""
    urls = node_urls or {}
    return ConsortiumSpec(
        DEMO_THRESHOLD_BPS,
        tuple(
            Member(
                m.name,
                m.country,
                devnet_account(m.account_index).address,
                m.roles,
                keccak(text=f"waymark-demo:{m.key}"),
                m.company_prefixes,
                other_accounts=() if m.anchor_account_index is None else (devnet_account(m.anchor_account_index).address,),
                node_url=urls.get(m.key, ""),
                host=0 if m.hosted_by is None else demo_org_id(m.hosted_by),
            )
            for m in DEMO_MEMBERS
        ),
        max_reporting_delay=DEMO_MAX_REPORTING_DELAY,
    )
