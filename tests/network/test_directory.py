"""The node directory is re-read when the chain moved, not on every expiry: an idle network does
not ask the registry for every organisation's record again and again, and a change is seen at
the first read after its block."""

from __future__ import annotations

from typing import Any

import pytest

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.member.network.directory import Directory, Peer, publish_node_record
from tests.node.story import CARRIER, MANUFACTURER


def test_the_directory_is_read_again_only_after_a_new_block(chain: ChainClient, deployment: Deployment,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    registry = deployment.address("ConsortiumRegistry")
    publish_node_record(chain, registry, 1, "http://manufacturer.example", MANUFACTURER)
    directory = Directory(chain, registry, ttl=0)  # expired at every read: only the chain's head decides
    contract_calls: list[Any] = []
    real_call = chain.call

    def counted_call(*args: Any, **kwargs: Any) -> Any:
        contract_calls.append(args)
        return real_call(*args, **kwargs)

    monkeypatch.setattr(chain, "call", counted_call)

    assert Peer(1, "http://manufacturer.example") in directory.peers(None)
    assert contract_calls, "the first read asks the registry"
    contract_calls.clear()
    assert directory.url_of(1) == "http://manufacturer.example"
    assert directory.peers(1) == [p for p in directory.peers(None) if p.org_id != 1]
    assert contract_calls == [], "no block since the last read: nothing is asked again"

    publish_node_record(chain, registry, 3, "http://carrier.example/", CARRIER)
    assert directory.url_of(3) == "http://carrier.example"
    assert contract_calls, "a new block: the directory is read again"
