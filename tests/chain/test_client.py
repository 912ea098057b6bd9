"""The chain client against a real Anvil: chain checks, reverts decoded by name, nonces, resubmission."""

from __future__ import annotations

import threading

import pytest
from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.chain.errors import ContractRevert, RpcUnreachable, WrongChainId, revert_class
from waymark.devnet.anvil import AnvilControl, AnvilProcess, rpc
from waymark.ports import free_port
from node.chain.registry import ProposalKind, RegistryClient, org_data
from tests.helpers import reverts


def test_connect_refuses_a_chain_with_another_chain_id(anvil: AnvilProcess) -> None:
    with pytest.raises(WrongChainId) as info:
        ChainClient(anvil.rpc_url, expected_chain_id=1)
    assert "chain id 31337, expected 1" in str(info.value)


def test_connect_reports_an_unreachable_rpc_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RpcUnreachable) as info:
        ChainClient(url, request_timeout=2)
    assert url in str(info.value)


def test_revert_is_decoded_into_a_class_named_after_the_custom_error(
    chain: ChainClient, deployment: Deployment, accounts: list[LocalAccount]
) -> None:
    registry = RegistryClient(chain, deployment)
    outsider = accounts[15]
    with pytest.raises(revert_class("RegistryNotActiveMember")) as info:
        registry.propose(ProposalKind.SUSPEND, org_data(1), outsider)
    assert isinstance(info.value, ContractRevert)
    assert info.value.error_args == {"account": outsider.address}
    assert str(info.value) == f"RegistryNotActiveMember(account={outsider.address})"


def test_consecutive_transactions_from_one_sender_use_consecutive_nonces(
    chain: ChainClient, deployment: Deployment, accounts: list[LocalAccount]
) -> None:
    registry = RegistryClient(chain, deployment)
    manufacturer = accounts[1]
    start = chain.w3.eth.get_transaction_count(manufacturer.address)
    ids = [registry.propose(ProposalKind.SUSPEND, org_data(org), manufacturer) for org in (5, 6, 7)]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    assert chain.w3.eth.get_transaction_count(manufacturer.address) == start + 3


def test_a_failed_send_does_not_leave_a_gap_in_the_nonces(
    chain: ChainClient, deployment: Deployment, accounts: list[LocalAccount]
) -> None:
    registry = RegistryClient(chain, deployment)
    manufacturer = accounts[1]
    with reverts("RegistryUnknownOrganisation"):
        registry.propose(ProposalKind.SUSPEND, org_data(99), manufacturer)
    assert registry.propose(ProposalKind.SUSPEND, org_data(5), manufacturer) >= 1


def test_a_dropped_transaction_is_submitted_again(
    anvil: AnvilProcess, devnet: AnvilControl, deployment: Deployment, accounts: list[LocalAccount]
) -> None:
    client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id, receipt_timeout=0.5)
    registry = RegistryClient(client, deployment)
    manufacturer = accounts[1]
    devnet.set_automine(False)
    result: dict[str, object] = {}

    def propose() -> None:
        try:
            result["id"] = registry.propose(ProposalKind.SUSPEND, org_data(5), manufacturer)
        except Exception as exc:  # surfaced by the assertion below
            result["error"] = exc

    worker = threading.Thread(target=propose)
    worker.start()
    try:
        # Wait (bounded) until the transaction sits in the pool, then make the node forget it.
        for _ in range(2000):
            if int(rpc(anvil.rpc_url, "txpool_status")["pending"], 16) == 1:
                break
            threading.Event().wait(0.005)
        else:
            pytest.fail("the transaction never reached the pool")
        devnet.drop_all_transactions()
        devnet.set_automine(True)
        worker.join(timeout=30)
    finally:
        devnet.set_automine(True)
    assert not worker.is_alive()
    assert "error" not in result, result.get("error")
    assert isinstance(result["id"], int)


def test_a_transaction_mined_a_second_after_its_estimate_has_gas_for_a_new_history_checkpoint(
    chain: ChainClient, deployment: Deployment, devnet: AnvilControl, accounts: list[LocalAccount]
) -> None:
    # The estimate runs at the head block's timestamp. A history checkpoint written in that second
    # (here: the account's organisation, set when it was linked) is updated in place in the
    # estimate, but appended as a new storage slot when the transaction is mined a second later:
    # without headroom for that slot it ran out of gas (a CI flake of
    # test_removed_account_may_join_another_organisation).
    registry = RegistryClient(chain, deployment)
    member, spare = accounts[1], accounts[17]
    linked_at = int(chain.w3.eth.get_block("latest")["timestamp"]) + 1000
    registry.offer_account(spare.address, member)
    devnet.set_next_block_timestamp(linked_at)
    registry.accept_account(1, spare)
    pending = rpc(chain.rpc_url, "eth_getBlockByNumber", ["pending", False])
    assert int(pending["timestamp"], 16) == linked_at  # the estimate below runs in the linking second
    devnet.set_next_block_timestamp(linked_at + 1)
    receipt = chain.transact(registry.contract.functions.removeAccount(spare.address), sender=member)
    assert receipt["status"] == 1
    assert int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]) == linked_at + 1
    at = registry.contract.functions.organisationOfAt
    assert chain.call(at(spare.address, linked_at)) == 1 and chain.call(at(spare.address, linked_at + 1)) == 0


def test_a_lean_view_call_answers_as_the_contract_call_does(chain: ChainClient, deployment: Deployment) -> None:
    consortium = chain.contract("ConsortiumRegistry", deployment.address("ConsortiumRegistry"))
    provenance = chain.contract("ProvenanceRegistry", deployment.address("ProvenanceRegistry"))
    calls = (
        (consortium, "organisationCount", ()),  # one number
        (consortium, "organisation", (1,)),  # one struct, with strings and bytes
        (consortium, "isOffered", ("0x" + "11" * 20, 1)),  # a bool
        (provenance, "anchorOfOrganisation", (b"\x01" * 32, 1)),  # the struct of a root nobody anchored
    )
    for contract, name, args in calls:
        assert chain.view(contract, name)(*args) == chain.call(getattr(contract.functions, name)(*args)), name
    with pytest.raises(ContractRevert) as lean:
        chain.view(consortium, "organisation")(999)
    with pytest.raises(ContractRevert) as full:
        chain.call(consortium.functions.organisation(999))
    assert type(lean.value) is type(full.value) and str(lean.value) == str(full.value)
