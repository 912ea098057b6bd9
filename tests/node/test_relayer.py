"""The escrow relayer against a real Anvil and both database backends: milestones reached 2-of-3
from signatures posted over HTTP, bad signatures refused with a clear answer, nothing lost in a
restart, and never a second submission for one milestone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import update

from node.chain.client import ChainClient
from node.db import Database
from waymark.devnet.anvil import AnvilControl
from node.escrow import EscrowClient, OrderTerms, State, order_key
from node.escrow.signing import EscrowDomain, sign_customs_return, sign_milestone
from node.escrow.terms import Attestation, customs_authorities, schedule
from node.chain.registry import ProposalKind, RegistryClient, contract_signer_data, org_data
from waymark.devnet.governance import demo_voters, pass_proposal
from node.db.relayer import RelaySubmission
from node.relayer.errors import MilestoneAlreadyReached
from node.relayer.model import Kind, Outcome, SignatureIn, Status
from node.relayer.service import Relayer
from node.relayer.app import create_relayer_app
from tests.node.escrow_env import DAY, EscrowEnv, escrow_env, member


@pytest.fixture
def env(chain: ChainClient, tmp_path: Path) -> EscrowEnv:
    return escrow_env(chain, tmp_path)


def make_relayer(db: Database, escrow: EscrowClient, account_index: int = 15) -> tuple[Relayer, list[Outcome]]:
    relayer = Relayer(db, escrow, member(account_index), min_lifetime=60)
    sent: list[Outcome] = []
    relayer.on_submitted = sent.append
    return relayer, sent


@pytest.fixture
def relayer(db: Database, env: EscrowEnv) -> tuple[Relayer, list[Outcome]]:
    return make_relayer(db, env.escrow)


@pytest.fixture
def http(relayer: tuple[Relayer, list[Outcome]]) -> Iterator[TestClient]:
    with TestClient(create_relayer_app(relayer[0], sweep_interval=None)) as client:
        yield client


def body(sig: Attestation, **extra: Any) -> dict[str, Any]:
    return {"signer": sig.signer, "signature": "0x" + sig.signature.hex(), "deadline": sig.deadline, **extra}


def post(http: TestClient, terms: OrderTerms, milestone: int, sig: Attestation, **extra: Any) -> Any:
    return http.post(f"/milestones/{order_key(terms.order_id)}/{milestone}", json=body(sig, **extra))


def nonce(env: EscrowEnv, index: int = 15) -> int:
    return int(env.chain.w3.eth.get_transaction_count(member(index).address))


# ---- the quorum --------------------------------------------------------------------------------


def test_relayer_reaches_shipped_once_two_of_three_carriers_signed(env: EscrowEnv, http: TestClient,
                                                                   relayer: tuple[Relayer, list[Outcome]]) -> None:
    terms = env.open(env.terms())
    first = post(http, terms, 0, env.sign(env.carriers[0], terms, 0))
    assert first.status_code == 202, first.text
    assert first.json() | {"txHash": None} == {
        "orderId": order_key(terms.order_id), "milestone": 0, "kind": "milestone", "status": "collecting",
        "recorded": True, "collected": 1, "quorum": 2, "txHash": None, "detail": None,
    }
    assert env.escrow.order(terms.order_id).milestones_reached == 0

    second = post(http, terms, 0, env.sign(env.carriers[2], terms, 0))
    assert second.status_code == 202, second.text
    assert second.json()["status"] == "reached" and second.json()["txHash"].startswith("0x")
    assert env.escrow.order(terms.order_id).milestones_reached == 1
    assert len(relayer[1]) == 1 and nonce(env) == 1

    # The third carrier is too late: the chain has it; nothing more is sent.
    third = post(http, terms, 0, env.sign(env.carriers[1], terms, 0))
    assert third.status_code == 409
    assert third.json()["code"] == "milestone_already_reached"
    assert nonce(env) == 1

    status = http.get(f"/orders/{terms.order_id}").json()
    assert status["milestonesReached"] == 1
    shipped = status["milestones"][0]
    assert shipped["reached"] and shipped["milestone"]["status"] == "reached"
    assert {s["orgId"] for s in shipped["milestone"]["signatures"]} == {3, 9}


def test_relayer_carries_an_order_to_delivery_with_a_customs_duty(env: EscrowEnv, http: TestClient) -> None:
    terms = env.open(env.terms())
    payee = env.customs[0].address
    for signer in env.carriers[:2]:
        post(http, terms, 0, env.sign(signer, terms, 0))
    # Customs signatures count together only when they name the same duty and payee.
    a = post(http, terms, 1, env.sign(env.customs[0], terms, 1, duty=25 * 10**6, payee=payee),
             duty="25000000", dutyPayee=payee)
    b = post(http, terms, 1, env.sign(env.customs[1], terms, 1, duty=30 * 10**6, payee=payee),
             duty=str(30 * 10**6), dutyPayee=payee)
    assert (a.json()["collected"], b.json()["collected"]) == (1, 1)
    assert b.json()["status"] == "collecting"
    c = post(http, terms, 1, env.sign(env.customs[2], terms, 1, duty=25 * 10**6, payee=payee),
             duty="0x17d7840", dutyPayee=payee)
    assert c.status_code == 202 and c.json()["status"] == "reached", c.text
    assert env.escrow.credit(env.usd, payee) == 25 * 10**6
    for signer in env.carriers[1:]:
        post(http, terms, 2, env.sign(signer, terms, 2))
    assert env.escrow.order(terms.order_id).state == State.DELIVERED


def test_relayer_refunds_on_a_customs_return(env: EscrowEnv, http: TestClient) -> None:
    terms = env.open(env.terms())
    env.reach(terms, 0)
    for signer in env.customs[1:]:
        sig = sign_customs_return(signer, env.escrow.domain, terms.order_id, 1, env.now() + DAY)
        answer = http.post(f"/customs-returns/{terms.order_id}/1", json=body(sig))
        assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "reached"
    assert env.escrow.order(terms.order_id).state == State.REFUNDED
    assert env.escrow.credit(env.usd, env.buyer.address) == terms.amount


def test_signatures_wait_until_the_order_is_funded_then_the_sweep_submits(
    env: EscrowEnv, http: TestClient, relayer: tuple[Relayer, list[Outcome]]
) -> None:
    terms = env.terms()
    env.escrow.create(terms, env.seller)
    for signer in env.carriers[:2]:
        answer = post(http, terms, 0, env.sign(signer, terms, 0))
    assert answer.json()["status"] == "collecting" and answer.json()["collected"] == 2
    assert "waiting: order created" in answer.json()["detail"]
    assert relayer[0].sweep()[0].status is Status.COLLECTING  # still not funded

    env.escrow.fund(terms, env.buyer)
    (outcome,) = relayer[0].sweep()
    assert outcome.status is Status.REACHED
    assert env.escrow.order(terms.order_id).milestones_reached == 1
    assert relayer[0].sweep() == []  # nothing left to do


# ---- refusals ----------------------------------------------------------------------------------


def test_the_same_signature_twice_is_recorded_once_and_another_from_the_same_signer_is_refused(
    env: EscrowEnv, http: TestClient
) -> None:
    terms = env.open(env.terms())
    sig = env.sign(env.carriers[0], terms, 0)
    assert post(http, terms, 0, sig).status_code == 202
    again = post(http, terms, 0, sig)
    assert again.status_code == 200 and again.json()["recorded"] is False and again.json()["collected"] == 1

    other = post(http, terms, 0, env.sign(env.carriers[0], terms, 0, deadline=sig.deadline + 60))
    assert other.status_code == 409
    assert other.json() == {
        "code": "duplicate_signer", "field": "signer",
        "message": f"{sig.signer} already signed milestone 0 of this order with another signature",
    }
    assert env.escrow.order(terms.order_id).milestones_reached == 0


@pytest.mark.parametrize("case", ["other_key", "other_milestone", "wrong_domain", "garbage"])
def test_a_signature_that_is_not_the_signers_is_refused(env: EscrowEnv, http: TestClient, case: str) -> None:
    terms = env.open(env.terms())
    claimed = env.carriers[0]
    if case == "other_key":
        sig = Attestation(claimed.address, *_tail(env.sign(env.carriers[1], terms, 0)))
    elif case == "other_milestone":
        sig = Attestation(claimed.address, *_tail(env.sign(claimed, terms, 1)))
    elif case == "wrong_domain":
        domain = EscrowDomain(env.chain.chain_id + 1, env.escrow.address)
        sig = sign_milestone(claimed, domain, terms.order_id, 0, env.now() + DAY)
    else:
        sig = Attestation(claimed.address, env.now() + DAY, b"\x01" * 65)
    answer = post(http, terms, 0, sig)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_signature" and answer.json()["field"] == "signature"
    assert f"is not {claimed.address}'s" in answer.json()["message"]


def _tail(sig: Attestation) -> tuple[int, bytes]:
    return sig.deadline, sig.signature


def test_signers_without_the_role_or_with_a_conflict_of_interest_are_refused(env: EscrowEnv, http: TestClient) -> None:
    terms = env.open(env.terms())
    # Customs cannot attest Shipped (CARRIER), and an account of no organisation holds no role.
    for signer in (env.customs[0], Account.create()):
        answer = post(http, terms, 0, env.sign(signer, terms, 0))
        assert answer.status_code == 403 and answer.json()["code"] == "signer_lacks_role", answer.text
        assert "does not hold CARRIER" in answer.json()["message"]
    # A carrier that sells: its own organisation may not attest its shipment.
    selling = env.open(env.terms(seller=env.carriers[0].address, salt=1), seller=env.carriers[0])
    answer = post(http, selling, 0, env.sign(env.carriers[0], selling, 0))
    assert answer.status_code == 403 and answer.json()["code"] == "conflict_of_interest"
    assert "organisation of the order's seller" in answer.json()["message"]


def test_customs_outside_the_orders_authorities_a_foreign_payee_or_a_duty_above_the_cap_are_refused(
    env: EscrowEnv, http: TestClient,
) -> None:
    named = customs_authorities([env.escrow.organisation_of(a.address) for a in env.customs[:2]])
    terms = env.open(env.terms(customs_authorities=named, max_duty_bps=500))
    for signer in env.carriers[:2]:
        post(http, terms, 0, env.sign(signer, terms, 0))
    rogue = env.customs[2]  # a CUSTOMS organisation the order does not name
    answer = post(http, terms, 1, env.sign(rogue, terms, 1))
    assert answer.status_code == 403 and answer.json()["code"] == "not_customs_authority", answer.text
    officer, cap = env.customs[0], terms.amount * 500 // 10_000
    for payee in (rogue.address, env.seller.address, env.escrow.address):
        answer = post(http, terms, 1, env.sign(officer, terms, 1, duty=cap, payee=payee), duty=str(cap), dutyPayee=payee)
        assert answer.status_code == 422 and answer.json()["code"] == "invalid_duty_payee", answer.text
    answer = post(http, terms, 1, env.sign(officer, terms, 1, duty=cap + 1, payee=officer.address),
                  duty=str(cap + 1), dutyPayee=officer.address)
    assert answer.status_code == 422 and answer.json()["code"] == "duty_above_cap", answer.text
    assert env.escrow.order(terms.order_id).milestones_reached == 1


def test_a_duty_above_what_the_orders_cap_leaves_after_an_earlier_customs_step_is_refused(env: EscrowEnv, http: TestClient) -> None:
    terms = env.open(env.terms(milestones=schedule(0, 3000, 3000, 4000, customs_quorum=1), max_duty_bps=500))
    env.reach(terms, 0)
    officer, cap = env.customs[0], terms.amount * 500 // 10_000
    env.escrow.attest_milestone(terms, 1, [env.sign(officer, terms, 1, duty=cap - 1, payee=officer.address)], env.outsider,
                                duty=cap - 1, duty_payee=officer.address)
    answer = post(http, terms, 2, env.sign(officer, terms, 2, duty=2, payee=officer.address), duty="2", dutyPayee=officer.address)
    assert answer.status_code == 422 and answer.json()["code"] == "duty_above_cap", answer.text
    assert "exceeds the 1 the order's duty cap leaves" in answer.json()["message"]
    accepted = post(http, terms, 2, env.sign(officer, terms, 2, duty=1, payee=officer.address), duty="1", dutyPayee=officer.address)
    assert accepted.status_code < 300, accepted.text


def test_expired_unknown_and_malformed_submissions_get_one_clear_error_each(env: EscrowEnv, http: TestClient) -> None:
    terms = env.open(env.terms())
    carrier = env.carriers[0]

    expired = post(http, terms, 0, env.sign(carrier, terms, 0, deadline=env.now() - 1))
    assert (expired.status_code, expired.json()["code"], expired.json()["field"]) == (422, "signature_expired", "deadline")
    too_short = post(http, terms, 0, env.sign(carrier, terms, 0, deadline=env.now() + 10))
    assert too_short.status_code == 422 and "leaves less than 60 s" in too_short.json()["message"]

    unknown = env.terms(salt=99)
    missing = post(http, unknown, 0, env.sign(carrier, unknown, 0))
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_order")

    beyond = post(http, terms, 3, env.sign(carrier, terms, 3))
    assert (beyond.status_code, beyond.json()["code"]) == (422, "no_such_milestone")
    assert "milestones 0 to 2, not 3" in beyond.json()["message"]

    duty = post(http, terms, 0, env.sign(carrier, terms, 0, duty=5, payee=carrier.address), duty="5",
                dutyPayee=carrier.address)
    assert (duty.status_code, duty.json()["code"]) == (422, "wrong_milestone_kind")

    bad_id = http.post("/milestones/0xzz/0", json=body(env.sign(carrier, terms, 0)))
    assert (bad_id.status_code, bad_id.json()["code"]) == (422, "invalid_order_id")
    bad_signer = http.post(f"/milestones/{terms.order_id}/0", json={**body(env.sign(carrier, terms, 0)), "signer": "0x12"})
    assert bad_signer.status_code == 422
    assert bad_signer.json() == {"code": "invalid_request", "message": "signer: must be an account address", "field": "signer"}
    no_deadline = http.post(f"/milestones/{terms.order_id}/0", json={"signer": carrier.address, "signature": "0x01"})
    assert no_deadline.status_code == 422 and no_deadline.json()["field"] == "deadline"
    assert env.escrow.order(terms.order_id).milestones_reached == 0


def test_a_disputed_order_still_reaches_its_milestones_and_a_customs_return(env: EscrowEnv, http: TestClient) -> None:
    terms = env.open(env.terms())
    env.escrow.dispute(terms, b"\x22" * 32, env.buyer)
    # A dispute holds what remains for the arbitrator, not the goods: the shipment is attested as usual ...
    for signer in env.carriers[:2]:
        answer = post(http, terms, 0, env.sign(signer, terms, 0))
    assert answer.json()["status"] == "reached", answer.text
    order = env.escrow.order(terms.order_id)
    assert (order.state, order.milestones_reached) == (State.DISPUTED, 1)
    # ... and so are goods customs sent back: refunded.
    for signer in env.customs[1:]:
        sig = sign_customs_return(signer, env.escrow.domain, terms.order_id, 1, env.now() + DAY)
        answer = http.post(f"/customs-returns/{terms.order_id}/1", json=body(sig))
    assert answer.status_code == 202 and answer.json()["status"] == "reached", answer.text
    assert env.escrow.order(terms.order_id).state == State.REFUNDED


def test_a_settled_order_takes_no_more_signatures(env: EscrowEnv, http: TestClient) -> None:
    terms = env.open(env.terms())
    env.escrow.dispute(terms, b"\x22" * 32, env.buyer)
    env.escrow.rule(terms, 5_000, b"\x33" * 32, env.arbitrator)
    answer = post(http, terms, 0, env.sign(env.carriers[0], terms, 0))
    assert (answer.status_code, answer.json()["code"]) == (409, "order_closed")


# ---- restarts and exactly once ---------------------------------------------------------------


def test_a_restarted_relayer_keeps_pending_signatures_and_completes_the_quorum(
    db: Database, env: EscrowEnv, tmp_path: Path
) -> None:
    terms = env.open(env.terms())
    before, _ = make_relayer(db, env.escrow)
    with TestClient(create_relayer_app(before, sweep_interval=None)) as http:
        assert post(http, terms, 0, env.sign(env.carriers[1], terms, 0)).json()["collected"] == 1

    # A new process: a new engine on the same database, a new chain client.
    fresh_db = Database(db.url.render_as_string(hide_password=False), schema=db.schema)
    try:
        chain = ChainClient(env.chain.rpc_url, expected_chain_id=env.chain.chain_id)
        after, sent = make_relayer(fresh_db, EscrowClient.from_deployment(chain, env.deployment))
        with TestClient(create_relayer_app(after, sweep_interval=None)) as http:
            pending = http.get(f"/orders/{order_key(terms.order_id)}").json()["milestones"][0]["milestone"]
            assert pending["status"] == "collecting" and [s["orgId"] for s in pending["signatures"]] == [8]
            answer = post(http, terms, 0, env.sign(env.carriers[0], terms, 0))
        assert answer.json()["status"] == "reached" and len(sent) == 1
    finally:
        fresh_db.dispose()
    assert env.escrow.order(terms.order_id).milestones_reached == 1


def test_two_relayers_sharing_a_database_submit_a_ready_milestone_once(db: Database, env: EscrowEnv) -> None:
    terms = env.terms()
    env.escrow.create(terms, env.seller)
    first, sent_first = make_relayer(db, env.escrow, 15)
    for signer in env.carriers:
        first.receive(SignatureIn(terms.order_id, 0, signer.address, *_sig_fields(env, signer, terms)))
    env.escrow.fund(terms, env.buyer)  # now the stored quorum can go

    second_db = Database(db.url.render_as_string(hide_password=False), schema=db.schema)
    try:
        chain = ChainClient(env.chain.rpc_url, expected_chain_id=env.chain.chain_id)
        second, sent_second = make_relayer(second_db, EscrowClient.from_deployment(chain, env.deployment), 17)
        barrier = threading.Barrier(2)

        def sweep(r: Relayer) -> None:
            barrier.wait()
            r.sweep()

        threads = [threading.Thread(target=sweep, args=(r,)) for r in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        second_db.dispose()
    assert len(sent_first) + len(sent_second) == 1
    assert nonce(env, 15) + nonce(env, 17) == 1
    assert env.escrow.order(terms.order_id).milestones_reached == 1


def _sig_fields(env: EscrowEnv, signer: Any, terms: OrderTerms) -> tuple[bytes, int]:
    sig = env.sign(signer, terms, 0)
    return sig.signature, sig.deadline


def test_a_milestone_someone_else_reached_is_marked_done_without_a_transaction(
    env: EscrowEnv, relayer: tuple[Relayer, list[Outcome]]
) -> None:
    terms = env.terms()
    env.escrow.create(terms, env.seller)
    r, sent = relayer
    for signer in env.carriers[:2]:
        r.receive(SignatureIn(terms.order_id, 0, signer.address, *_sig_fields(env, signer, terms)))
    env.escrow.fund(terms, env.buyer)
    env.reach(terms, 0)  # another submitter got there first

    (outcome,) = r.sweep()
    assert outcome.status is Status.REACHED and outcome.tx_hash is None
    assert sent == [] and nonce(env) == 0


def test_a_crash_while_submitting_is_settled_against_the_chain_on_restart(
    db: Database, env: EscrowEnv, relayer: tuple[Relayer, list[Outcome]]
) -> None:
    r, sent = relayer
    reached, pending = env.terms(salt=1), env.terms(salt=2)
    for terms in (reached, pending):
        env.escrow.create(terms, env.seller)
        for signer in env.carriers[:2]:
            r.receive(SignatureIn(terms.order_id, 0, signer.address, *_sig_fields(env, signer, terms)))
        env.escrow.fund(terms, env.buyer)
    env.reach(reached, 0)
    # As if a relayer died after claiming both milestones (one of them made it on chain).
    with db.write() as session:
        session.execute(update(RelaySubmission).values(status=Status.SUBMITTING.value))
    assert r.sweep() == []  # nothing is collecting: no one submits a claimed milestone

    assert r.recover() == 2
    assert r.store.submission(Kind.MILESTONE, reached.order_id, 0).status == "reached"  # type: ignore[union-attr]
    assert r.store.submission(Kind.MILESTONE, pending.order_id, 0).status == "collecting"  # type: ignore[union-attr]
    (outcome,) = r.sweep()
    assert outcome.order_id == pending.order_id and outcome.status is Status.REACHED
    assert len(sent) == 1 and nonce(env) == 1


def test_a_signature_close_to_its_deadline_is_not_put_in_a_bundle(
    env: EscrowEnv, devnet: AnvilControl, relayer: tuple[Relayer, list[Outcome]]
) -> None:
    r, sent = relayer
    terms = env.terms()
    env.escrow.create(terms, env.seller)
    short = env.sign(env.carriers[0], terms, 0, deadline=env.now() + 120)
    r.receive(SignatureIn(terms.order_id, 0, short.signer, short.signature, short.deadline))
    r.receive(SignatureIn(terms.order_id, 0, env.carriers[1].address, *_sig_fields(env, env.carriers[1], terms)))
    env.escrow.fund(terms, env.buyer)
    devnet.increase_time(100)  # 20 s of life left, less than the relayer's 60 s margin
    devnet.mine()
    assert r.try_submit(Kind.MILESTONE, terms.order_id, 0).status is Status.COLLECTING
    assert sent == [] and env.escrow.order(terms.order_id).milestones_reached == 0


def test_a_signer_whose_organisation_was_suspended_is_dropped_at_submission(
    env: EscrowEnv, relayer: tuple[Relayer, list[Outcome]]
) -> None:
    r, sent = relayer
    terms = env.terms()
    env.escrow.create(terms, env.seller)
    for signer in env.carriers[:2]:
        r.receive(SignatureIn(terms.order_id, 0, signer.address, *_sig_fields(env, signer, terms)))
    # The consortium suspends the first carrier (org 3) before the order is funded.
    registry = RegistryClient(env.chain, env.deployment)
    pass_proposal(registry, ProposalKind.SUSPEND, org_data(3), demo_voters(without=("carrier",)))
    env.escrow.fund(terms, env.buyer)

    (outcome,) = r.sweep()
    assert outcome.status is Status.COLLECTING and "EscrowMissingRole" in (outcome.detail or "")
    assert [s["orgId"] for s in r.status(terms.order_id)["milestones"][0]["milestone"]["signatures"]] == [8]
    assert sent == []
    courier = env.carriers[2]
    done = r.receive(SignatureIn(terms.order_id, 0, courier.address, *_sig_fields(env, courier, terms)))
    assert done.status is Status.REACHED and len(sent) == 1


def test_concurrent_signatures_are_all_taken_and_the_milestone_is_submitted_once(
    env: EscrowEnv, relayer: tuple[Relayer, list[Outcome]]
) -> None:
    r, sent = relayer
    terms = env.open(env.terms())
    signatures = [SignatureIn(terms.order_id, 0, c.address, *_sig_fields(env, c, terms)) for c in env.carriers]
    barrier = threading.Barrier(len(signatures))
    results: list[object] = []

    def post_one(sig: SignatureIn) -> None:
        barrier.wait()
        try:
            results.append(r.receive(sig))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=post_one, args=(s,)) for s in signatures]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3
    for result in results:
        assert isinstance(result, (Outcome, MilestoneAlreadyReached)), repr(result)
    assert len(sent) == 1 and nonce(env) == 1
    assert env.escrow.order(terms.order_id).milestones_reached == 1


def test_a_members_contract_account_counts_only_with_the_key_governance_approved(env: EscrowEnv, http: TestClient) -> None:
    terms = env.open(env.terms())
    key = env.carriers[0]  # org 3
    wallet = env.chain.deploy("MockContractSigner", key.address, sender=key)
    registry = RegistryClient(env.chain, env.deployment)
    registry.offer_account(wallet.address, key)
    accept = registry.contract.functions.acceptAccount(3)._encode_transaction_data()
    env.chain.transact(wallet.functions.execute(registry.contract.address, accept), sender=key)
    # A permissive wallet: anyone's signature would pass its ERC-1271 check.
    env.chain.transact(wallet.functions.setPermissive(True), sender=key)
    by_thief = Attestation(wallet.address, *_tail(env.sign(Account.create(), terms, 0)))
    answer = post(http, terms, 0, by_thief)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_signature", answer.text
    assert "governance approved" in answer.json()["message"]
    # Approved by vote with its key, the wallet counts with that key's signature, and still not with the thief's.
    data = contract_signer_data(3, wallet.address, key.address)
    pass_proposal(registry, ProposalKind.APPROVE_CONTRACT_SIGNER, data, demo_voters(without=("carrier",)))
    assert post(http, terms, 0, by_thief).status_code == 422
    answer = post(http, terms, 0, Attestation(wallet.address, *_tail(env.sign(key, terms, 0))))
    assert answer.status_code < 300, answer.text
