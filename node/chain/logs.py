"""The one way Waymark reads logs: `eth_getLogs` in pages of bounded block ranges.

Nodes limit how many blocks one `eth_getLogs` may span: Besu refuses more than
`--rpc-max-logs-range` blocks (5,000 by default) with JSON-RPC error -32005
"Requested range exceeds maximum RPC range limit"; other clients refuse too many results or
time out. The pager asks for at most `max_range` blocks at a time; when a node refuses a
range it halves the range and asks again from the same block, keeps the smaller range for
the rest of its life (the node's limit does not grow back), and resumes where the refused
page began, so no block is skipped and none is read twice.

Only standard JSON-RPC is used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import FilterParams, LogReceipt

from node.chain.errors import ChainError

log = logging.getLogger(__name__)

BESU_MAX_LOGS_RANGE = 5_000
"""Besu's default `--rpc-max-logs-range`: the default page size."""

BESU_RANGE_REFUSAL = "Requested range exceeds maximum RPC range limit"
"""Besu's error message (code -32005) for an `eth_getLogs` wider than its limit."""

# How nodes word a refused `eth_getLogs` range (lower case, matched as substrings): Besu's
# message first, then the wordings of other EVM clients and gateways.
RANGE_REFUSALS: tuple[str, ...] = (
    BESU_RANGE_REFUSAL.lower(),
    "exceeds maximum range limit",
    "exceeds max block range",
    "block range is too wide",
    "block range too large",
    "block range is larger than",
    "block range is bigger than",
    "range too large",
    "exceeds limit of",
    "query returned more than",
    "exceeds max results",
    "limit exceeded",
    "too many results",
)


class LogRangeRefused(ChainError):
    code = "log_range_refused"

    def __init__(self, first: int, last: int, detail: str) -> None:
        super().__init__(f"the node refused eth_getLogs even for blocks {first}-{last}: {detail}")


def is_range_refusal(exc: BaseException) -> bool:
    """True if `exc` is a node saying an `eth_getLogs` asked for too many blocks or results."""
    if isinstance(exc, requests.Timeout):
        return True  # a range too heavy to answer in time: a smaller one may be
    if not isinstance(exc, Web3RPCError):
        return False
    text = str(exc).lower()
    return any(phrase in text for phrase in RANGE_REFUSALS)


@dataclass(frozen=True)
class LogPage:
    first: int
    last: int
    logs: Sequence[LogReceipt]


class LogPager:
    """Pages `eth_getLogs` over a block range; shared by every reader of one node."""

    def __init__(self, w3: Web3, max_range: int = BESU_MAX_LOGS_RANGE) -> None:
        if max_range < 1:
            raise ValueError("max_range must be at least 1 block")
        self.w3 = w3
        self.max_range = max_range
        """Blocks asked for in one request now (halved when a node refuses a range)."""
        self.refusals = 0

    def pages(self, criteria: dict[str, Any], first: int, last: int) -> Iterator[LogPage]:
        """The logs matching `criteria` (address, topics) in blocks `first`..`last`, page by page,
        in block order. A consumer may stop early; nothing past the page it holds was read."""
        start = first
        while start <= last:
            end = min(last, start + self.max_range - 1)
            params: FilterParams = {**criteria, "fromBlock": start, "toBlock": end}  # type: ignore[typeddict-item]
            try:
                logs = self.w3.eth.get_logs(params)
            except (Web3RPCError, requests.Timeout) as exc:
                if not is_range_refusal(exc):
                    raise
                if end == start:
                    raise LogRangeRefused(start, end, str(exc)) from None
                self.refusals += 1
                self.max_range = max(1, (end - start + 1) // 2)
                log.warning("node refused eth_getLogs over %d blocks (%s); asking for %d at a time",
                            end - start + 1, exc, self.max_range)
                continue  # the same start again, with half the range
            yield LogPage(start, end, logs)
            start = end + 1

    def get_logs(self, criteria: dict[str, Any], first: int, last: int) -> list[LogReceipt]:
        """Every log matching `criteria` in blocks `first`..`last`, in block order."""
        return [entry for page in self.pages(criteria, first, last) for entry in page.logs]
