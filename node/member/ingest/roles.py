"""Who may attest what, and a fast local answer to `ConsortiumRegistry.hasRoleAt`.

Role per business step
----------------------
The table (which roles may attest each `bizStep`) is protocol: `node.protocol.roles`.

The mirror
----------
`RoleMirror` replays the registry's own history (OrganisationAdmitted, OrganisationStatusChanged,
RoleGranted, RoleRevoked, AccountAdded, AccountRemoved, each at its block timestamp) and answers
`has_role_at` with the same rule as the contract: an account holds a role at T when, at T, it
was linked to an organisation that was Active and held the role; a change at T applies from T.
It reads the registry's logs with `eth_getLogs` (from the indexer's database when there,
then the chain's newest blocks) and refreshes at most every `refresh_interval` seconds, so a
role change on chain is seen by ingest within that interval. The same history answers who
hosted whom (HostingChanged) and the maximum reporting delay (MaxReportingDelayChanged) at a
time: `RoleState` and `RoleMirror` are a `node.protocol.verification.Registry`. Verification of a proof
bundle asks the chain itself.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from eth_utils.crypto import keccak
from web3 import Web3

from node.chain.logs import LogPager
from node.db import ChainCursor, ChainLog, Database
from node.member.indexer import CURSOR_NAME, LogDecoder
from node.protocol.roles import ROLES


# Every role the registry knows, ANCHORER included (it anchors batches but attests nothing, so it
# is in no entry of the table above).
ROLE_NAMES: dict[str, str] = {"0x" + keccak(text=r).hex(): r for r in ROLES}


@dataclass
class _History:
    """Checkpoints (timestamp, value); a later change at the same timestamp replaces the earlier."""

    times: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def push(self, at: int, value: Any) -> None:
        if self.times and self.times[-1] == at:
            self.values[-1] = value
        else:
            self.times.append(at)
            self.values.append(value)

    def at(self, moment: int, default: Any) -> Any:
        i = bisect_right(self.times, moment)
        return self.values[i - 1] if i else default


@dataclass
class RoleState:
    """The registry's history, rebuilt from its events in chain order."""

    org_of: dict[str, _History] = field(default_factory=dict)
    active: dict[int, _History] = field(default_factory=dict)
    roles: dict[tuple[int, str], _History] = field(default_factory=dict)
    hosts: dict[int, _History] = field(default_factory=dict)
    """Hosted organisation -> its host over time (0: none)."""
    delay: _History = field(default_factory=_History)
    """The maximum reporting delay over time (seconds)."""

    def apply(self, event: str, args: Mapping[str, Any], at: int) -> None:
        if event == "OrganisationAdmitted":
            self.active.setdefault(int(args["orgId"]), _History()).push(at, True)
        elif event == "OrganisationStatusChanged":
            self.active.setdefault(int(args["orgId"]), _History()).push(at, int(args["status"]) == 1)
        elif event in ("RoleGranted", "RoleRevoked"):
            role = ROLE_NAMES.get(str(args["role"]).lower())
            if role is not None:
                self.roles.setdefault((int(args["orgId"]), role), _History()).push(at, event == "RoleGranted")
        elif event == "AccountAdded":
            self.org_of.setdefault(Web3.to_checksum_address(args["account"]), _History()).push(at, int(args["orgId"]))
        elif event == "AccountRemoved":
            self.org_of.setdefault(Web3.to_checksum_address(args["account"]), _History()).push(at, 0)
        elif event == "HostingChanged":
            self.hosts.setdefault(int(args["hostedOrgId"]), _History()).push(at, int(args["hostOrgId"]))
        elif event == "MaxReportingDelayChanged":
            self.delay.push(at, int(args["newDelay"]))

    def has_role_at(self, account: str, role: str, at: int) -> bool:
        history = self.org_of.get(account)
        org = history.at(at, 0) if history else 0
        if org == 0:
            return False
        status = self.active.get(org)
        held = self.roles.get((org, role))
        return bool(status and status.at(at, False) and held and held.at(at, False))

    # The rest of node.protocol.verification.Registry (hasRoleAt is `has_role_at`).

    def organisation_at(self, account: str, at: int) -> int:
        # Keys are checksummed; ingest asks with checksummed (recovered) accounts, so convert
        # only on a miss (EIP-55 costs a keccak and a string rebuild per call).
        history = self.org_of.get(account) or self.org_of.get(Web3.to_checksum_address(account))
        return int(history.at(at, 0)) if history else 0

    def host_of_at(self, org_id: int, at: int) -> int:
        history = self.hosts.get(org_id)
        return int(history.at(at, 0)) if history else 0

    def max_reporting_delay_at(self, at: int) -> int | None:
        # As the contract: before the first setting (the deployment's), that setting applies.
        if not self.delay.times:
            return None
        return int(self.delay.at(at, self.delay.values[0]))


# Registry logs deeper than this under the head are no longer re-read (far beyond any reorg
# on QBFT, which has immediate finality, or on Anvil).
SETTLED_DEPTH = 64

RawLog = tuple[int, int, int, str, Mapping[str, Any]]  # block, log index, block time, event, args


class RoleMirror:
    """`hasRoleAt` answered locally from the registry's event history (see the module docstring)."""

    def __init__(
        self,
        w3: Web3,
        registry_address: str,
        *,
        start_block: int,
        refresh_interval: float = 0.5,
        base_logs: Sequence[RawLog] = (),
        base_block: int | None = None,
        pager: LogPager | None = None,
    ) -> None:
        self.w3 = w3
        self.pager = pager or LogPager(w3)
        self.address = Web3.to_checksum_address(registry_address)
        self.decoder = LogDecoder(w3, {"ConsortiumRegistry": self.address})
        self.start_block = start_block
        self.refresh_interval = refresh_interval
        self._base = list(base_logs)  # confirmed history taken from the indexer's database
        self._base_block = base_block if base_block is not None else start_block - 1
        self._state = RoleState()
        self._history: list[RawLog] | None = None  # what `_state` was built from
        self._synced_at = -1e9
        self._lock = threading.Lock()
        self._timestamps: dict[str, int] = {}
        self._unsettled: dict[tuple[bytes, int], RawLog | None] = {}  # decoded logs of the blocks read again

    def has_role_at(self, account: str, role: str, at: int) -> bool:
        self.refresh()
        return self._state.has_role_at(account, role, at)

    def any_role_at(self, account: str, roles: Iterable[str], at: int) -> str | None:
        """The first of `roles` the account held at `at`, or None."""
        self.refresh()
        state = self._state
        for role in roles:
            if state.has_role_at(account, role, at):
                return role
        return None

    def organisation_at(self, account: str, at: int) -> int:
        """The organisation `account` belonged to at `at` (0: none), by the same history."""
        self.refresh()
        return self._state.organisation_at(account, at)

    def host_of_at(self, org_id: int, at: int) -> int:
        self.refresh()
        return self._state.host_of_at(org_id, at)

    def snapshot(self) -> RoleState:
        """The history as now read (a picklable Registry, for checks run in worker processes)."""
        self.refresh()
        return self._state

    def max_reporting_delay_at(self, at: int) -> int | None:
        self.refresh()
        return self._state.max_reporting_delay_at(at)

    def refresh(self, force: bool = False) -> None:
        """Re-read the chain's registry events past the confirmed base, if the interval has passed."""
        if not force and time.monotonic() - self._synced_at < self.refresh_interval:
            return
        with self._lock:
            if not force and time.monotonic() - self._synced_at < self.refresh_interval:
                return
            head = int(self.w3.eth.block_number)
            tail: list[RawLog] = []
            seen: dict[tuple[bytes, int], RawLog | None] = {}
            if head > self._base_block:
                raw = self.pager.get_logs({"address": self.address}, self._base_block + 1, head)
                for item in raw:
                    # The unsettled blocks are read again at every refresh: a log (block hash, index)
                    # already decoded is taken as it was; one a reorg removed is no longer listed.
                    key = (bytes(item["blockHash"]), int(item["logIndex"]))
                    entry = self._unsettled[key] if key in self._unsettled else self._decode(item)
                    seen[key] = entry
                    if entry is not None:
                        tail.append(entry)
            self._unsettled = seen
            history = sorted([*self._base, *tail], key=lambda x: (x[0], x[1]))
            # Logs this deep under the head are kept instead of fetched again at every refresh.
            settled = head - SETTLED_DEPTH
            if settled > self._base_block:
                self._base = [x for x in history if x[0] <= settled]
                self._base_block = settled
            if history != self._history:  # most refreshes find nothing new
                state = RoleState()
                for _block, _index, when, event, args in history:
                    state.apply(event, args, when)
                self._state = state  # swapped whole: readers never see a half-built state
                self._history = history
            self._synced_at = time.monotonic()

    def _decode(self, item: Any) -> RawLog | None:
        decoded = self.decoder.decode(item)
        if decoded is None:
            return None
        when = self._block_time(decoded.block_number, decoded.block_hash)
        return (decoded.block_number, decoded.log_index, when, decoded.event, decoded.args)

    def _block_time(self, number: int, block_hash: bytes) -> int:
        key = block_hash.hex()
        if key not in self._timestamps:
            self._timestamps[key] = int(self.w3.eth.get_block(number)["timestamp"])
        return self._timestamps[key]


def base_from_database(db: Database, chain_id: int, registry_address: str) -> tuple[list[RawLog], int | None]:
    """The registry history the indexer has stored, and the block it is complete up to."""
    address = Web3.to_checksum_address(registry_address)
    with db.session() as s:
        cursor = s.get(ChainCursor, (chain_id, CURSOR_NAME))
        if cursor is None:
            return [], None
        rows = s.query(ChainLog).filter(
            ChainLog.chain_id == chain_id, ChainLog.address == address, ChainLog.block_number <= cursor.block_number
        ).all()
        return [(r.block_number, r.log_index, r.block_time, r.event, orjson.loads(r.args)) for r in rows], cursor.block_number
