"""The demo consortium the devnet is deployed with: fictional member organisations, each
holding one of Anvil's public dev accounts (index into the devnet mnemonic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from node.consortium import ConsortiumSpec, Member
from node.devnet.anvil import DEVNET_MNEMONIC


@dataclass(frozen=True)
class DemoMember:
    key: str
    name: str
    country: str
    roles: tuple[str, ...]
    account_index: int
    #: GS1 Company Prefixes assigned at founding (the manufacturer's covers the demo GTINs).
    company_prefixes: tuple[str, ...] = ()


DEPLOYER_INDEX = 0
DEMO_COMPANY_PREFIX = "9521234"
DEMO_MEMBERS: tuple[DemoMember, ...] = (
    # 952 is GS1's range for demonstrations; 9521234 covers the demo GTIN 09521234543213.
    DemoMember("manufacturer", "Lumen Ceramics Co.", "VN", ("MANUFACTURER", "ORACLE"), 1, (DEMO_COMPANY_PREFIX,)),
    DemoMember("inspector", "Meridian Inspection Services", "SG", ("INSPECTOR", "ORACLE"), 2),
    DemoMember("carrier", "Bluewater Ocean Freight", "SG", ("CARRIER", "ORACLE"), 3),
    DemoMember("customs", "Customs Office Rotterdam", "NL", ("CUSTOMS", "ORACLE"), 4),
    DemoMember("operator", "Waymark Marketplace B.V.", "NL", ("OPERATOR",), 5),
    DemoMember("arbitrator", "Hanseatic Trade Arbitration", "DE", ("ARBITRATOR",), 6),
    DemoMember("auditor", "Fjord Assurance AS", "NO", ("AUDITOR",), 7),
    # Milestones are attested k-of-n by distinct organisations: two more carriers (a freight
    # forwarder and the last-mile courier) and two more customs parties make 2-of-3 possible.
    DemoMember("forwarder", "Harbourline Forwarding B.V.", "NL", ("CARRIER", "ORACLE"), 8),
    DemoMember("courier", "Polder Parcel Express", "NL", ("CARRIER", "ORACLE"), 9),
    DemoMember("broker", "Maas Customs Brokers", "NL", ("CUSTOMS", "ORACLE"), 12),
    DemoMember("port", "Rotterdam Port Community Customs Desk", "NL", ("CUSTOMS", "ORACLE"), 13),
)
# A quarter of the Active members, rounded up: 3 of the 11 founders, more as members join.
DEMO_THRESHOLD_BPS = 2_500
DEMO_THRESHOLD = 3
# Accounts that are not members: buyers (on chain they are just accounts). Org ids follow the
# order above (manufacturer = 1 ... port = 11); new members go at the end so ids stay stable.
DEMO_BUYER_INDICES = (10, 11)


def devnet_account(index: int) -> LocalAccount:
    Account.enable_unaudited_hdwallet_features()
    # from_mnemonic is an eth_utils combomethod, whose descriptor erases the return type to Any.
    return cast(LocalAccount, Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"))


def demo_consortium() -> ConsortiumSpec:
    """The demo consortium as a consortium spec, the same shape a real consortium file gives."""
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
            )
            for m in DEMO_MEMBERS
        ),
    )
