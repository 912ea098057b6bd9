"""A consortium's founding members and vote threshold, as written in a JSON file.

The same file drives the registry's deployment and the Besu network's generated
configuration, so the two cannot disagree.

The threshold is a share of the Active members in basis points (`thresholdBps`, 1..10000), the
votes a proposal needs being that share of the members rounded up, so it keeps its weight as
membership grows. A file may instead give `threshold`, a number of the founding members' votes;
it is turned into the basis points that need exactly that many votes among the founders.
Each member may list `gs1CompanyPrefixes`: the GS1 Company Prefixes (4 to 12 digits, leading
zeros significant) inside which it registers products.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from node.errors import WaymarkError

#: Basis points in one whole.
BPS = 10_000

ROLES = ("MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE", "ARBITRATOR", "AUDITOR", "OPERATOR")


class ConsortiumFileError(WaymarkError):
    code = "consortium_file_invalid"

    def __init__(self, path: Path, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{path}: {field}: {problem}")


@dataclass(frozen=True)
class Member:
    name: str
    country: str
    account: str
    roles: tuple[str, ...]
    metadata_hash: bytes
    #: GS1 Company Prefixes assigned at founding, as digit strings ("9521234").
    company_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsortiumSpec:
    #: Share of the Active members whose votes pass a proposal, in basis points (1..10000).
    threshold_bps: int
    members: tuple[Member, ...]
    #: The consortium chain's id (optional top-level `chainId`); None where the file has none.
    chain_id: int | None = None

    @property
    def threshold(self) -> int:
        """Votes a proposal needs among the founding members."""
        return votes_needed(self.threshold_bps, len(self.members))

    def founding_members(self) -> list[tuple[str, bytes, bytes, str, list[bytes], list[tuple[int, int]]]]:
        return [
            (
                m.name,
                m.country.encode(),
                m.metadata_hash,
                m.account,
                [keccak(text=r) for r in m.roles],
                [prefix_value(p) for p in m.company_prefixes],
            )
            for m in self.members
        ]


def votes_needed(threshold_bps: int, active_members: int) -> int:
    """The registry's rule: ceil(active members * share), the share in basis points."""
    return -(-active_members * threshold_bps // BPS)


def bps_for_votes(votes: int, members: int) -> int:
    """The largest share in basis points that needs exactly `votes` of `members` votes (members < 10000)."""
    return votes * BPS // members


def is_company_prefix(text: str) -> bool:
    return re.fullmatch(r"[0-9]{4,12}", text) is not None


def prefix_value(prefix: str) -> tuple[int, int]:
    """A GS1 Company Prefix as the registry stores it: (value, number of digits)."""
    return int(prefix), len(prefix)


def load_consortium(path: Path) -> ConsortiumSpec:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConsortiumFileError(path, "(file)", exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise ConsortiumFileError(path, "(file)", f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConsortiumFileError(path, "(file)", "must be a JSON object with members and threshold")
    members_raw = data.get("members")
    if not isinstance(members_raw, list) or not members_raw:
        raise ConsortiumFileError(path, "members", "must be a non-empty list")
    members = []
    for i, raw in enumerate(members_raw):
        where = f"members[{i}]"
        if not isinstance(raw, dict):
            raise ConsortiumFileError(path, where, "must be an object with name, country, account and roles")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConsortiumFileError(path, f"{where}.name", "must be a non-empty string")
        country = raw.get("country")
        if not isinstance(country, str) or not re.fullmatch(r"[A-Z]{2}", country):
            raise ConsortiumFileError(path, f"{where}.country", "must be an ISO 3166-1 alpha-2 code like 'NL'")
        account = raw.get("account")
        if not isinstance(account, str) or not is_address(account):
            raise ConsortiumFileError(path, f"{where}.account", "must be a 0x-prefixed account address")
        roles = raw.get("roles", [])
        if not isinstance(roles, list):
            raise ConsortiumFileError(path, f"{where}.roles", f"must be a list of role names ({', '.join(ROLES)})")
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise ConsortiumFileError(path, f"{where}.roles", f"unknown roles {unknown}; known: {', '.join(ROLES)}")
        metadata = raw.get("metadataHash", "0x" + "00" * 32)
        if not isinstance(metadata, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", metadata):
            raise ConsortiumFileError(path, f"{where}.metadataHash", "must be 0x followed by 64 hex digits")
        prefixes = raw.get("gs1CompanyPrefixes", [])
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and is_company_prefix(p) for p in prefixes):
            raise ConsortiumFileError(path, f"{where}.gs1CompanyPrefixes", "must be a list of 4- to 12-digit strings like '9521234'")
        members.append(
            Member(name, country, to_checksum_address(account), tuple(roles), bytes.fromhex(metadata[2:]), tuple(prefixes))
        )
    taken = [p for m in members for p in m.company_prefixes]
    for p in taken:
        if any(q != p and q.startswith(p) for q in taken) or taken.count(p) > 1:
            raise ConsortiumFileError(path, "gs1CompanyPrefixes", f"prefix {p} overlaps another member's")
    threshold_bps = data.get("thresholdBps")
    threshold = data.get("threshold")
    if threshold_bps is not None and threshold is not None:
        raise ConsortiumFileError(path, "thresholdBps", "give thresholdBps or threshold, not both")
    if threshold_bps is not None:
        if not _is_int(threshold_bps) or not 1 <= threshold_bps <= BPS:
            raise ConsortiumFileError(path, "thresholdBps", f"must be a whole number of basis points from 1 to {BPS}")
    elif not _is_int(threshold) or not 1 <= threshold <= len(members):
        raise ConsortiumFileError(path, "threshold", f"must be a whole number from 1 to {len(members)} (or give thresholdBps)")
    else:
        threshold_bps = bps_for_votes(threshold, len(members))
    chain_id = data.get("chainId")
    if chain_id is not None and (not _is_int(chain_id) or not 1 <= chain_id <= MAX_CHAIN_ID):
        raise ConsortiumFileError(path, "chainId", f"must be a whole number from 1 to {MAX_CHAIN_ID}")
    return ConsortiumSpec(threshold_bps, tuple(members), chain_id)


# Wallets and JavaScript tooling handle chain ids only up to 2^53 - 1 exactly.
MAX_CHAIN_ID = 2**53 - 1


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
