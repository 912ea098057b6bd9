"""A consortium's founding members and vote threshold, as written in a JSON file.

The same file drives the registry's deployment and the Besu network's generated
configuration, so the two cannot disagree.

The threshold is a share of the Active members in basis points (`thresholdBps`, 5001..10000:
more than half, as the registry requires), the votes a proposal needs being that share of the
members rounded up, so it keeps its weight as membership grows. A file may instead give
`threshold`, a number of the founding members' votes (more than half of them); it is turned into
the basis points that need exactly that many votes among the founders.
Each member may list `gs1CompanyPrefixes`: the GS1 Company Prefixes (4 to 12 digits, leading
zeros significant) inside which it registers products.

A member that runs a node gives its `nodeUrl` (the node's public base URL) and, usually, its
`anchorAccounts` (accounts linked to it at founding from which its node anchors batches); either
gives it the ANCHORER role from founding. A member may publish its document-encryption public key
(`encryptionKey`, 32 bytes in hex), and a member without a node names the member whose node
hosts it (`hostedBy`, that member's name). The consortium's maximum reporting delay
(`maxReportingDelay`, seconds, default 7 days) and the approved scanner-page verifier bundle
(`verifierBundleHash`, its sha-256, optional) are set at deployment too; later changes go by vote.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeGuard

from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from node.errors import WaymarkError
from node.protocol.roles import ATTESTING_ROLES as ATTESTING_ROLES
from node.protocol.roles import ROLES as ROLES

#: Basis points in one whole.
BPS = 10_000
#: The smallest threshold the registry accepts: more than half of the Active members.
MIN_THRESHOLD_BPS = BPS // 2 + 1

#: The maximum reporting delay a deployment starts with unless its file says otherwise (seconds).
DEFAULT_MAX_REPORTING_DELAY = 7 * 24 * 3600
#: The registry's bounds on the maximum reporting delay (MAX_REPORTING_DELAY_LIMIT on chain).
MAX_REPORTING_DELAY_LIMIT = 366 * 24 * 3600
#: The registry's longest node URL, in bytes.
MAX_NODE_URL_LENGTH = 256

NO_KEY = b"\0" * 32


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
    #: Further accounts linked at founding (its node's anchor accounts).
    other_accounts: tuple[str, ...] = ()
    #: Its node's public base URL; empty when it runs no node.
    node_url: str = ""
    #: Its X25519 document-encryption public key (32 bytes); all zero for none.
    encryption_key: bytes = NO_KEY
    #: The founding id (1-based position in the members) of the member whose node hosts it; 0 for none.
    host: int = 0


@dataclass(frozen=True)
class ConsortiumSpec:
    #: Share of the Active members whose votes pass a proposal, in basis points (5001..10000).
    threshold_bps: int
    members: tuple[Member, ...]
    #: The consortium chain's id (optional top-level `chainId`); None where the file has none.
    chain_id: int | None = None
    #: The maximum reporting delay at deployment, in seconds.
    max_reporting_delay: int = DEFAULT_MAX_REPORTING_DELAY
    #: sha-256 of the approved scanner-page verifier bundle at deployment; all zero for none yet.
    verifier_bundle_hash: bytes = NO_KEY

    @property
    def threshold(self) -> int:
        """Votes a proposal needs among the founding members."""
        return votes_needed(self.threshold_bps, len(self.members))

    def founding_members(self) -> list[FoundingMemberArgs]:
        """The registry constructor's `founders` argument."""
        return [
            (
                m.name,
                m.country.encode(),
                m.metadata_hash,
                m.account,
                [keccak(text=r) for r in m.roles],
                [prefix_value(p) for p in m.company_prefixes],
                list(m.other_accounts),
                m.node_url,
                m.encryption_key,
                m.host,
            )
            for m in self.members
        ]

    def constructor_args(self) -> list[object]:
        """The ConsortiumRegistry constructor's arguments."""
        return [self.founding_members(), self.threshold_bps, self.max_reporting_delay, self.verifier_bundle_hash]


FoundingMemberArgs = tuple[str, bytes, bytes, str, list[bytes], list[tuple[int, int]], list[str], str, bytes, int]


def node_url_problem(url: str) -> str | None:
    """Why the registry would refuse `url` as a node URL, or None when it accepts it (empty = no node)."""
    if url == "":
        return None
    raw = url.encode()
    if not (url.startswith("https://") or url.startswith("http://")) or url in ("https://", "http://"):
        return "must start with http:// or https:// and name a host"
    if len(raw) > MAX_NODE_URL_LENGTH:
        return f"is {len(raw)} bytes long; at most {MAX_NODE_URL_LENGTH} are allowed"
    if url.endswith("/"):
        return "must not end with '/' (paths are appended to it)"
    if any(b <= 0x20 or b >= 0x7F for b in raw):
        return "may hold printable ASCII characters only, without spaces"
    return None


def reporting_delay_problem(seconds: int) -> str | None:
    """Why the registry would refuse `seconds` as the maximum reporting delay, or None."""
    if not 1 <= seconds <= MAX_REPORTING_DELAY_LIMIT:
        return f"must be from 1 second to {MAX_REPORTING_DELAY_LIMIT} seconds (366 days), not {seconds}"
    return None


def votes_needed(threshold_bps: int, active_members: int) -> int:
    """The registry's rule: ceil(active members * share), the share in basis points."""
    return -(-active_members * threshold_bps // BPS)


def bps_for_votes(votes: int, members: int) -> int:
    """The largest share in basis points that needs exactly `votes` of `members` votes (members <= 5000,
    so that more than half of them gives more than MIN_THRESHOLD_BPS)."""
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
    hosts: list[object] = []
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
        anchor_accounts = raw.get("anchorAccounts", [])
        if not isinstance(anchor_accounts, list) or not all(isinstance(a, str) and is_address(a) for a in anchor_accounts):
            raise ConsortiumFileError(path, f"{where}.anchorAccounts", "must be a list of 0x-prefixed account addresses")
        node_url = raw.get("nodeUrl", "")
        problem = node_url_problem(node_url) if isinstance(node_url, str) else "must be a string"
        if problem:
            raise ConsortiumFileError(path, f"{where}.nodeUrl", problem)
        key = raw.get("encryptionKey", "0x" + "00" * 32)
        if not isinstance(key, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", key):
            raise ConsortiumFileError(path, f"{where}.encryptionKey", "must be 0x followed by 64 hex digits (a raw X25519 public key)")
        if (node_url or anchor_accounts) and "ANCHORER" not in roles:
            roles = [*roles, "ANCHORER"]  # a member that runs a node anchors its batches from the start
        hosts.append(raw.get("hostedBy"))
        members.append(
            Member(name, country, to_checksum_address(account), tuple(roles), bytes.fromhex(metadata[2:]), tuple(prefixes),
                   tuple(to_checksum_address(a) for a in anchor_accounts), node_url, bytes.fromhex(key[2:]))
        )
    accounts = [a for m in members for a in (m.account, *m.other_accounts)]
    for a in accounts:
        if accounts.count(a) > 1:
            raise ConsortiumFileError(path, "members", f"account {a} is named twice (an account belongs to one member)")
    names = [m.name for m in members]
    for i, host in enumerate(hosts):
        if host is None:
            continue
        if not isinstance(host, str) or host not in names or host == names[i]:
            raise ConsortiumFileError(path, f"members[{i}].hostedBy", "must be the name of another member (whose node hosts this one)")
        members[i] = replace(members[i], host=names.index(host) + 1)
    taken = [p for m in members for p in m.company_prefixes]
    for p in taken:
        if any(q != p and q.startswith(p) for q in taken) or taken.count(p) > 1:
            raise ConsortiumFileError(path, "gs1CompanyPrefixes", f"prefix {p} overlaps another member's")
    threshold_bps = data.get("thresholdBps")
    threshold = data.get("threshold")
    if threshold_bps is not None and threshold is not None:
        raise ConsortiumFileError(path, "thresholdBps", "give thresholdBps or threshold, not both")
    if threshold_bps is not None:
        if not _is_int(threshold_bps) or not MIN_THRESHOLD_BPS <= threshold_bps <= BPS:
            raise ConsortiumFileError(path, "thresholdBps", f"must be a whole number of basis points from {MIN_THRESHOLD_BPS} "
                                                            f"to {BPS} (more than half of the members)")
    else:
        fewest = len(members) // 2 + 1
        if not _is_int(threshold) or not fewest <= threshold <= len(members):
            raise ConsortiumFileError(path, "threshold", f"must be a whole number from {fewest} to {len(members)}, more than half "
                                                         f"of the {len(members)} members (or give thresholdBps)")
        threshold_bps = bps_for_votes(threshold, len(members))
    chain_id = data.get("chainId")
    if chain_id is not None and (not _is_int(chain_id) or not 1 <= chain_id <= MAX_CHAIN_ID):
        raise ConsortiumFileError(path, "chainId", f"must be a whole number from 1 to {MAX_CHAIN_ID}")
    delay = data.get("maxReportingDelay", DEFAULT_MAX_REPORTING_DELAY)
    problem = reporting_delay_problem(delay) if _is_int(delay) else "must be a whole number of seconds"
    if problem:
        raise ConsortiumFileError(path, "maxReportingDelay", problem)
    bundle = data.get("verifierBundleHash", "0x" + "00" * 32)
    if not isinstance(bundle, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", bundle):
        raise ConsortiumFileError(path, "verifierBundleHash", "must be 0x followed by 64 hex digits (a sha-256)")
    return ConsortiumSpec(threshold_bps, tuple(members), chain_id, delay, bytes.fromhex(bundle[2:]))


# Wallets and JavaScript tooling handle chain ids only up to 2^53 - 1 exactly.
MAX_CHAIN_ID = 2**53 - 1


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
