"""The indexer follows the contracts into the database, waits for confirmations, resumes from its
cursor, and rolls back and re-indexes when blocks it indexed are replaced (a reorg on Anvil)."""

from __future__ import annotations

import orjson
import pytest
import requests
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select
from web3 import HTTPProvider, Web3

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import ChainLog, Database
from waymark.devnet.anvil import AnvilControl, AnvilProcess
from waymark.devnet.consortium import DEMO_MEMBERS
from node.member.indexer import Indexer, followed_contracts, stored_logs
from tests.chain.besu_limits import logs_limited


def _indexer(db: Database, chain: ChainClient, deployment: Deployment, confirmations: int = 0) -> Indexer:
    return Indexer(
        db,
        chain.w3,
        followed_contracts({n: c.address for n, c in deployment.contracts.items()}),
        chain_id=chain.chain_id,
        start_block=deployment.start_block,
        confirmations=confirmations,
    )


def _anchor(chain: ChainClient, deployment: Deployment, sender: LocalAccount, root: bytes) -> None:
    registry = chain.contract("ProvenanceRegistry", deployment.address("ProvenanceRegistry"))
    chain.transact(registry.functions.anchorBatch(root, 3, "test"), sender=sender)


def _roots(db: Database, chain_id: int) -> list[str]:
    return [row.key or "" for row in stored_logs(db, chain_id, event="BatchAnchored")]


def test_indexes_registry_history_and_anchors_once_each(
    db: Database, chain: ChainClient, deployment: Deployment, accounts: list[LocalAccount]
) -> None:
    indexer = _indexer(db, chain, deployment)
    indexer.step()
    admitted = stored_logs(db, chain.chain_id, event="OrganisationAdmitted")
    assert len(admitted) == len(DEMO_MEMBERS)
    assert orjson.loads(admitted[0].args)["name"] == "Lumen Ceramics Co."
    assert len(stored_logs(db, chain.chain_id, event="RoleGranted")) == sum(len(m.roles) for m in DEMO_MEMBERS)

    _anchor(chain, deployment, accounts[1], b"\xaa" * 32)
    indexer.step()
    indexer.step()  # nothing new: nothing stored twice
    assert _roots(db, chain.chain_id) == ["0x" + "aa" * 32]
    anchored = stored_logs(db, chain.chain_id, event="BatchAnchored")[0]
    assert anchored.contract == "ProvenanceRegistry"
    assert orjson.loads(anchored.args)["eventCount"] == 3


def test_waits_for_confirmations(
    db: Database, chain: ChainClient, deployment: Deployment, accounts: list[LocalAccount], devnet: AnvilControl
) -> None:
    indexer = _indexer(db, chain, deployment, confirmations=2)
    _anchor(chain, deployment, accounts[1], b"\xbb" * 32)
    indexer.step()
    assert _roots(db, chain.chain_id) == []
    devnet.mine(1)
    indexer.step()
    assert _roots(db, chain.chain_id) == []
    devnet.mine(1)
    indexer.step()
    assert _roots(db, chain.chain_id) == ["0x" + "bb" * 32]


def test_resumes_from_its_cursor_without_duplicates(
    db: Database, chain: ChainClient, deployment: Deployment, accounts: list[LocalAccount]
) -> None:
    first = _indexer(db, chain, deployment)
    first.step()
    _anchor(chain, deployment, accounts[1], b"\xcc" * 32)
    second = _indexer(db, chain, deployment)  # a restarted process
    assert second.cursor() == first.cursor()
    result = second.step()
    assert result.logs == 1
    with db.session() as s:
        total = s.scalar(select(func.count()).select_from(ChainLog))
    assert total == len(stored_logs(db, chain.chain_id))
    assert _roots(db, chain.chain_id) == ["0x" + "cc" * 32]


def test_rolls_back_reverted_blocks_and_reindexes_the_new_chain(
    db: Database,
    chain: ChainClient,
    deployment: Deployment,
    accounts: list[LocalAccount],
    devnet: AnvilControl,
    anvil: AnvilProcess,
) -> None:
    indexer = _indexer(db, chain, deployment)
    indexer.step()
    fork_point = chain.w3.eth.block_number
    snapshot = devnet.snapshot()
    _anchor(chain, deployment, accounts[1], b"\x01" * 32)
    _anchor(chain, deployment, accounts[2], b"\x02" * 32)
    indexer.step()
    assert _roots(db, chain.chain_id) == ["0x" + "01" * 32, "0x" + "02" * 32]

    devnet.revert(snapshot)  # blocks fork_point+1.. are gone
    fresh = ChainClient(anvil.rpc_url)  # the old client's nonces belong to the lost blocks
    _anchor(fresh, deployment, accounts[3], b"\x03" * 32)
    devnet.mine(3)  # the new chain is longer than the old one
    result = indexer.step()

    assert result.rolled_back_to is not None and result.rolled_back_to <= fork_point
    assert _roots(db, chain.chain_id) == ["0x" + "03" * 32]
    new_hash = bytes(fresh.w3.eth.get_block(fork_point + 1)["hash"])
    (row,) = stored_logs(db, chain.chain_id, event="BatchAnchored")
    assert row.block_number == fork_point + 1 and row.block_hash == new_hash
    assert indexer.cursor() == (fresh.w3.eth.block_number, bytes(fresh.w3.eth.get_block("latest")["hash"]))


def test_behind_a_besu_range_limit_the_indexer_pages_halves_and_resumes_from_its_cursor(
    db: Database, anvil: AnvilProcess, chain: ChainClient, deployment: Deployment, devnet: AnvilControl
) -> None:
    devnet.mine(100)
    expected = chain.w3.eth.get_logs({"address": list(followed_contracts({n: c.address for n, c in deployment.contracts.items()}).values()),  # type: ignore[typeddict-item]
                                      "fromBlock": deployment.start_block, "toBlock": "latest"})
    with logs_limited(anvil.rpc_url, max_logs_range=9) as node:
        indexer = Indexer(db, Web3(HTTPProvider(node.url)), followed_contracts({n: c.address for n, c in deployment.contracts.items()}),
                          chain_id=chain.chain_id, start_block=deployment.start_block, max_range=2_000)
        node.fail_after = 3  # the node goes away after three pages
        with pytest.raises(requests.HTTPError):
            indexer.step()
        cursor = indexer.cursor()
        learned = indexer.pager.max_range
        assert learned <= 10 and indexer.pager.refusals > 0  # halved until Besu's limit let it through
        assert cursor is not None and cursor[0] == deployment.start_block + 3 * learned - 1  # three pages stored
        node.fail_after = None
        asked_before = len(node.asked)
        indexer.step()
        resumed = node.asked[asked_before:]
    assert resumed[0] == (cursor[0] + 1, cursor[0] + learned, False)  # from the cursor, with the learned range
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ChainLog)) == len(expected)
    assert indexer.cursor() is not None and indexer.cursor()[0] == int(chain.w3.eth.block_number)  # type: ignore[index]
