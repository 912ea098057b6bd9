"""The escrow client against a real Anvil: its EIP-712 digests equal the contract's views, order ids
equal `orderIdOf`, terms are found by id alone, and every action of buyer, seller, arbitrator
and relayer does what the contract says."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_utils.crypto import keccak

from node.chain.client import ChainClient
from node.chain.deploy import deploy, is_current, waymark_steps
from waymark.devnet.anvil import AnvilControl
from waymark.devnet.consortium import demo_consortium, devnet_account
from waymark.devnet.escrow import NotDevnet, devnet_token_steps, setup_devnet_escrow
from node.escrow import (
    EscrowClient,
    FxQuote,
    InvalidAmount,
    InvalidTerms,
    Milestone,
    MilestoneKind,
    OrderTerms,
    State,
    TermsStore,
    UnknownOrder,
    schedule,
)
from node.escrow import signing
from node.escrow.store import TermsStoreError
from node.escrow.terms import due_amount
from tests.helpers import reverts
from tests.node.escrow_env import DAY, USD, EscrowEnv, escrow_env, member


@pytest.fixture
def env(chain: ChainClient, tmp_path: Path) -> EscrowEnv:
    return escrow_env(chain, tmp_path)


# ---- digests and ids -----------------------------------------------------------------------------

BIG = 2**256 - 1


@pytest.mark.parametrize(("order_id", "milestone", "duty", "payee", "deadline"), [
    (1, 0, 0, "0x" + "00" * 20, 1_800_000_000),
    (BIG, 4, BIG, "0x90F79bf6EB2c4f870365E785982E1f101E93b906", BIG),
    (12345678901234567890, 2, 10**24, "0x000000000000000000000000000000000000dEaD", 0),
])
def test_signing_digests_equal_the_contracts_digest(env: EscrowEnv, order_id: int, milestone: int, duty: int,
                                                    payee: str, deadline: int) -> None:
    fns, domain = env.escrow.fns, env.escrow.domain
    rate, issued = duty % 2**192, deadline % 2**64
    documents = [
        (signing.milestone_document(domain, order_id, milestone, duty, payee, deadline),
         signing.milestone_digest(domain, order_id, milestone, duty, payee, deadline)),
        (signing.customs_return_document(domain, order_id, milestone, deadline),
         signing.customs_return_digest(domain, order_id, milestone, deadline)),
        (signing.confirmation_document(domain, order_id, deadline),
         signing.confirmation_digest(domain, order_id, deadline)),
        (signing.fx_rate_document(domain, order_id, "EUR", "USD", rate, issued, issued, deadline),
         signing.fx_rate_digest(domain, order_id, "EUR", "USD", rate, issued, issued, deadline)),
    ]
    for document, digest in documents:
        assert bytes(env.chain.call(fns.typedDataDigest(signing.struct_hash(document)))) == digest


def test_a_signature_recovers_to_its_signer_and_names_its_domain(env: EscrowEnv) -> None:
    carrier = env.carriers[0]
    sig = signing.sign_milestone(carrier, env.escrow.domain, 7, 0, 1_900_000_000)
    document = signing.milestone_document(env.escrow.domain, 7, 0, 0, "0x" + "00" * 20, 1_900_000_000)
    assert signing.recover_signer(document, sig.signature) == carrier.address
    elsewhere = signing.EscrowDomain(env.chain.chain_id, env.usd)
    assert signing.recover_signer({**document, "domain": elsewhere.as_dict()}, sig.signature) != carrier.address
    with pytest.raises(signing.BadSignature, match="65 bytes expected"):
        signing.recover_signer(document, b"\x01" * 64)


def test_order_ids_equal_the_contracts_order_id_of(env: EscrowEnv) -> None:
    cases = [
        env.terms(),
        env.terms(milestones=schedule(1000, 1000, 1000, 1000, 6000, quorum=3, customs_quorum=1), salt=2**64 - 1,
                  amount=2**96 - 1, price_currency=b"EUR", review_window=2**32 - 1, ship_by=2**40 - 2,
                  deliver_by=2**40 - 1),
        env.terms(milestones=schedule(0, 10_000, quorum=1), shipment_ref=keccak(text="lot 42")),
    ]
    for terms in cases:
        assert int(env.chain.call(env.escrow.fns.orderIdOf(terms.as_abi()))) == terms.order_id


def test_terms_survive_json_and_refuse_what_the_abi_cannot_hold(env: EscrowEnv) -> None:
    terms = env.terms(price_currency=b"EUR", salt=7)
    assert OrderTerms.from_json(terms.to_json()) == terms
    assert terms.to_json()["priceCurrency"] == "EUR" and terms.currency == "EUR"
    with pytest.raises(InvalidTerms, match="amount: must be an integer from 0 to 2\\^96-1"):
        terms.but(amount=2**96)
    with pytest.raises(InvalidTerms, match="buyer: must be an account address"):
        terms.but(buyer="0x1234")
    with pytest.raises(InvalidTerms, match="priceCurrency: must be an ISO 4217 code"):
        terms.but(price_currency="euro")
    with pytest.raises(InvalidTerms, match="shipBy: missing"):
        OrderTerms.from_json({k: v for k, v in terms.to_json().items() if k != "shipBy"})
    assert Milestone(MilestoneKind.CUSTOMS_CLEARED, 3000, 2).role == "CUSTOMS"


# ---- terms by id ------------------------------------------------------------------------------------


def test_terms_are_found_by_order_id_in_the_store_or_in_the_creation_log(env: EscrowEnv, tmp_path: Path) -> None:
    terms = env.terms(shipment_ref=keccak(text="SSCC 00 123"))
    env.escrow.create(terms, env.seller)
    assert env.escrow.store is not None and env.escrow.store.get(env.escrow.address, terms.order_id) == terms

    elsewhere = EscrowClient.from_deployment(env.chain, env.deployment, TermsStore(tmp_path / "other.json"))
    assert elsewhere.terms(terms.order_id) == terms  # from the OrderCreated log
    assert elsewhere.store is not None and elsewhere.store.get(elsewhere.address, terms.order_id) == terms
    tiny_chunks = EscrowClient(env.chain, env.escrow.address, from_block=0, log_chunk=3)
    assert tiny_chunks.terms(terms.order_id) == terms

    assert env.escrow.find_orders(buyer=env.buyer.address) == [terms]
    assert env.escrow.find_orders(shipment_ref=keccak(text="SSCC 00 123")) == [terms]
    assert env.escrow.find_orders(seller=env.buyer.address) == []
    with pytest.raises(UnknownOrder, match=f"no order 0x{env.terms(salt=5).order_id:064x} in the OrderCreated logs"):
        elsewhere.terms(env.terms(salt=5).order_id)


def test_the_terms_store_refuses_an_entry_that_does_not_hash_to_its_id(env: EscrowEnv, tmp_path: Path) -> None:
    store = TermsStore(tmp_path / "terms.json")
    terms = env.terms()
    store.put(env.escrow.address, terms)
    text = (tmp_path / "terms.json").read_text()
    assert text.startswith('{\n  "generated"')
    (tmp_path / "terms.json").write_text(text.replace(str(terms.amount), str(terms.amount + 1)))
    with pytest.raises(TermsStoreError, match="hash to another id"):
        store.get(env.escrow.address, terms.order_id)


# ---- the life of an order --------------------------------------------------------------------------


def test_happy_path_create_fund_three_milestones_confirm_withdraw(env: EscrowEnv) -> None:
    escrow, terms = env.escrow, env.terms()
    assert escrow.create(terms, env.seller) == terms.order_id
    assert escrow.order(terms.order_id).state == State.CREATED
    escrow.fund(terms, env.buyer)
    assert escrow.order(terms.order_id).deposited == 1_000 * USD

    # Bundles in any order: the client sorts them by organisation, as the contract requires.
    escrow.attest_milestone(terms, 0, [env.sign(env.carriers[2], terms, 0), env.sign(env.carriers[0], terms, 0)],
                            env.relayer)
    escrow.attest_milestone(terms, 1, [env.sign(env.customs[1], terms, 1), env.sign(env.customs[2], terms, 1)],
                            env.relayer)
    env.reach(terms, 2)
    view = escrow.show(terms.order_id)
    assert view.order.state == State.DELIVERED and view.next_milestone is None
    assert view.credits == {"seller": 297 * USD, "buyer": 0, "platform": 3 * USD}

    escrow.confirm(terms, env.buyer)
    assert escrow.order(terms.order_id).state == State.RELEASED
    assert escrow.withdraw(env.usd, env.seller) == 990 * USD
    with reverts("EscrowNothingToWithdraw", account=env.seller.address):
        escrow.withdraw(env.usd, env.seller)
    assert escrow.show(terms.order_id).to_json()["credits"] == {"seller": "0", "buyer": "0", "platform": str(10 * USD)}


def test_funding_with_a_permit_takes_one_transaction_and_no_approval(env: EscrowEnv) -> None:
    terms = env.terms()
    env.escrow.create(terms, env.seller)
    token = env.chain.contract("DevStablecoin", env.usd)
    before = env.chain.w3.eth.get_transaction_count(env.buyer.address)
    env.escrow.fund(terms, env.buyer, use_permit=True)
    assert env.chain.w3.eth.get_transaction_count(env.buyer.address) == before + 1
    assert env.escrow.order(terms.order_id).state == State.FUNDED
    assert int(env.chain.call(token.functions.allowance(env.buyer.address, env.escrow.address))) == 0
    assert int(env.chain.call(token.functions.nonces(env.buyer.address))) == 1


def test_the_buyer_places_an_order_at_listed_terms_in_one_transaction(env: EscrowEnv) -> None:
    terms = env.terms(salt=3)
    assert env.escrow.place(terms, env.buyer, use_permit=True) == terms.order_id
    assert env.escrow.order(terms.order_id).state == State.FUNDED
    assert env.escrow.terms(terms.order_id) == terms


def test_a_signed_confirmation_is_relayed_by_someone_else(env: EscrowEnv) -> None:
    terms = env.open(env.terms())
    for i in range(3):
        env.reach(terms, i)
    deadline = env.now() + DAY
    signature = env.escrow.sign_confirmation(env.buyer, terms.order_id, deadline)
    with reverts("EscrowInvalidSignature", signer=env.buyer.address):
        env.escrow.confirm_by_signature(terms, deadline + 1, signature, env.relayer)
    receipt = env.escrow.confirm_by_signature(terms, deadline, signature, env.relayer)
    assert env.escrow.events(receipt, "OrderReleased")[0]["args"]["confirmedByBuyer"] is True


def test_a_dispute_ruled_by_the_arbitrator_splits_what_remains(env: EscrowEnv) -> None:
    terms = env.open(env.terms())
    env.escrow.dispute(terms, b"\x01" * 32, env.buyer)
    with reverts("EscrowMissingRole", account=env.outsider.address):
        env.escrow.rule(terms, 5000, b"\x02" * 32, env.outsider)
    env.escrow.rule(terms, 2500, b"\x02" * 32, env.arbitrator)
    view = env.escrow.show(terms.order_id)
    assert view.order.state == State.RESOLVED
    assert view.credits["buyer"] == 250 * USD and view.credits["seller"] == 742_500_000


def test_a_dispute_nobody_rules_on_resolves_by_the_timeout_rule(env: EscrowEnv, devnet: AnvilControl) -> None:
    terms = env.open(env.terms())
    env.escrow.dispute(terms, b"\x01" * 32, env.seller)
    with reverts("EscrowDisputeNotExpired"):
        env.escrow.resolve_expired(terms, env.outsider)
    devnet.increase_time(env.escrow.dispute_timeout() + 1)
    devnet.mine()
    env.escrow.resolve_expired(terms, env.outsider)
    assert env.escrow.credit(env.usd, env.buyer.address) == terms.amount  # not shipped by ship-by: refunded


def test_refund_after_ship_by_and_release_after_the_review_window(env: EscrowEnv, devnet: AnvilControl) -> None:
    late = env.open(env.terms(salt=1))
    delivered = env.open(env.terms(salt=2))
    for i in range(3):
        env.reach(delivered, i)
    with reverts("EscrowDeadlineNotPassed"):
        env.escrow.refund(late, env.outsider)
    with reverts("EscrowReviewWindowOpen"):
        env.escrow.release(delivered, env.outsider)
    devnet.increase_time(7 * DAY + 1)
    devnet.mine()
    env.escrow.refund(late, env.outsider)
    env.escrow.release(delivered, env.outsider)
    assert env.escrow.order(late.order_id).state == State.REFUNDED
    assert env.escrow.order(delivered.order_id).state == State.RELEASED


def test_the_seller_cancels_before_shipping(env: EscrowEnv) -> None:
    terms = env.open(env.terms())
    with reverts("EscrowNotSeller", caller=env.buyer.address):
        env.escrow.cancel(terms, env.buyer)
    env.escrow.cancel(terms, env.seller)
    assert env.escrow.order(terms.order_id).state == State.CANCELLED
    assert env.escrow.credit(env.usd, env.buyer.address) == terms.amount


def test_an_order_priced_in_euro_is_paid_in_usd_at_an_attested_rate(env: EscrowEnv) -> None:
    terms = env.terms(price_currency=b"EUR", amount=1_000 * 10**18)  # 1,000.00 EUR
    env.escrow.create(terms, env.seller)
    rate, stamp, expires = 1_084_250_000_000_000_000, env.now(), env.now() + 600
    sigs = [signing.sign_fx_rate(o, env.escrow.domain, terms.order_id, "EUR", "USD", rate, stamp, expires)
            for o in env.oracles[:2]]
    quote = FxQuote(b"EUR", b"USD", rate, stamp, expires, tuple(env.escrow.sorted_bundle(sigs)))
    assert env.escrow.due(terms, quote) == 1_084_250_000 == due_amount(terms, rate, 6)
    env.escrow.fund(terms, env.buyer, fx=quote)
    assert env.escrow.order(terms.order_id).deposited == 1_084_250_000
    assert env.escrow.locked_rate(terms.order_id) == (rate, stamp)
    with pytest.raises(InvalidTerms, match="priced in EUR: an FX rate is needed"):
        env.escrow.due(terms.but(salt=1))


def test_token_amounts_are_read_and_shown_in_the_tokens_decimals(env: EscrowEnv) -> None:
    usd, eur = env.escrow.token_info(env.usd), env.escrow.token_info(env.eur)
    assert (usd.symbol, usd.decimals, usd.currency, usd.allowed) == ("wUSD", 6, "USD", True)
    assert usd.units("1250.5") == 1_250_500_000 and eur.units("0.000000000000000001") == 1
    assert usd.show(1_250_500_000) == "1250.5 wUSD" and usd.show(7 * USD) == "7 wUSD"
    for bad, problem in (("1.0000001", "more than the 6 decimals"), ("abc", "not a decimal"), ("-1", "positive")):
        with pytest.raises(InvalidAmount, match=problem):
            usd.units(bad)


# ---- devnet set-up ----------------------------------------------------------------------------------


def test_devnet_set_up_is_idempotent_and_test_tokens_stay_off_other_chains(env: EscrowEnv) -> None:
    assert setup_devnet_escrow(env.chain, env.deployment) == []
    token = env.chain.contract("DevStablecoin", env.usd)
    assert int(env.chain.call(token.functions.balanceOf(member(11).address))) == 1_000_000 * USD
    steps = waymark_steps(demo_consortium()) + devnet_token_steps(env.chain.chain_id)
    again, fresh = deploy(env.chain, devnet_account(0), steps, env.record)
    assert not fresh and again.contracts == env.deployment.contracts
    assert is_current(env.chain, again, list(again.contracts))
    with pytest.raises(NotDevnet, match="exist only on the devnet"):
        devnet_token_steps(2024)
