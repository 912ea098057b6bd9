"""The log pager against a node that limits `eth_getLogs` as Besu does (tests/chain/besu_limits.py,
in front of a real Anvil): a refused range is halved, the read resumes at the refused page's
first block, and what comes back is exactly what one unlimited `eth_getLogs` returns."""

from __future__ import annotations

import pytest
from web3 import HTTPProvider, Web3
from web3.exceptions import Web3RPCError

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.chain.logs import BESU_RANGE_REFUSAL, LogPager, LogRangeRefused, is_range_refusal
from waymark.devnet.anvil import AnvilControl, AnvilProcess
from tests.chain.besu_limits import logs_limited


def _key(entry: object) -> tuple[int, int]:
    e = dict(entry)  # type: ignore[call-overload]
    return int(e["blockNumber"]), int(e["logIndex"])


def _spread_history(deployment: Deployment, devnet: AnvilControl) -> None:
    """Empty blocks after the deployment's logs, so the history spans many pages."""
    devnet.mine(200)


def test_a_refused_range_is_halved_and_the_read_resumes_where_the_refused_page_began(
    anvil: AnvilProcess, chain: ChainClient, deployment: Deployment, devnet: AnvilControl
) -> None:
    _spread_history(deployment, devnet)
    head = int(chain.w3.eth.block_number)
    address = deployment.address("ConsortiumRegistry")
    everything = chain.w3.eth.get_logs({"address": address, "fromBlock": 0, "toBlock": head})  # type: ignore[typeddict-item]
    assert len(everything) > 10

    with logs_limited(anvil.rpc_url, max_logs_range=7) as node:
        pager = LogPager(Web3(HTTPProvider(node.url)), max_range=100)
        got = pager.get_logs({"address": address}, 0, head)

    assert sorted(map(_key, got)) == sorted(map(_key, everything))  # nothing lost, nothing twice
    refused = [(a, b) for a, b, r in node.asked if r]
    answered = [(a, b) for a, b, r in node.asked if not r]
    # 100 blocks refused, then 50, 25 and 12; 6 accepted (Besu allows toBlock - fromBlock <= 7).
    assert refused[:4] == [(0, 99), (0, 49), (0, 24), (0, 11)]
    assert pager.max_range == 6 and pager.refusals == 4
    assert answered[0] == (0, 5)
    # Resumed: the accepted pages tile 0..head in order, without gap or overlap, and the smaller
    # range is kept (no page is refused after the first accepted one).
    assert [a for a, _ in answered] == [0] + [b + 1 for _, b in answered[:-1]]
    assert answered[-1][1] == head
    assert all(b - a <= 7 for a, b in answered)
    assert len(refused) == 4


def test_a_node_refusing_even_one_block_is_reported_not_looped_on(
    anvil: AnvilProcess, chain: ChainClient, deployment: Deployment
) -> None:
    with logs_limited(anvil.rpc_url, max_logs_range=-1) as node:  # refuses every range
        pager = LogPager(Web3(HTTPProvider(node.url)), max_range=8)
        with pytest.raises(LogRangeRefused, match="blocks 0-0"):
            pager.get_logs({"address": deployment.address("ConsortiumRegistry")}, 0, 20)
    assert [(a, b) for a, b, _ in node.asked] == [(0, 7), (0, 3), (0, 1), (0, 0)]


def test_besus_refusal_is_recognised_and_other_errors_are_not() -> None:
    besu = Web3RPCError(str({"code": -32005, "message": BESU_RANGE_REFUSAL}))
    assert is_range_refusal(besu)
    assert not is_range_refusal(Web3RPCError(str({"code": -32000, "message": "header not found"})))
    assert not is_range_refusal(ValueError("Requested range exceeds maximum RPC range limit"))  # not from a node


def test_the_chain_clients_readers_share_one_pager_that_keeps_what_it_learned(
    anvil: AnvilProcess, deployment: Deployment, devnet: AnvilControl
) -> None:
    _spread_history(deployment, devnet)
    with logs_limited(anvil.rpc_url, max_logs_range=9) as node:
        client = ChainClient(node.url, max_log_range=5_000)
        head = int(client.w3.eth.block_number)
        client.logs.get_logs({"address": deployment.address("ProvenanceRegistry")}, 0, head)
        learned = client.logs.max_range
        asked_before = len(node.asked)
        client.logs.get_logs({"address": deployment.address("ConsortiumRegistry")}, 0, head)
    assert learned <= 10
    assert not any(r for _a, _b, r in node.asked[asked_before:])  # the second read was never refused


def test_a_contract_call_is_one_request_to_the_node(anvil: AnvilProcess, deployment: Deployment) -> None:
    """web3's validation middleware asks eth_chainId before every eth_call; the client answers
    that from its first reply, so a call costs the node (and the scan waiting on it) one request."""
    with logs_limited(anvil.rpc_url, max_logs_range=5_000) as node:
        client = ChainClient(node.url, expected_chain_id=anvil.chain_id)
        registry = client.contract("ProvenanceRegistry", deployment.address("ProvenanceRegistry"))
        client.call(registry.functions.productOf(1))
        node.methods.clear()
        for _ in range(3):
            client.call(registry.functions.productOf(1))
    assert node.methods == ["eth_call"] * 3
