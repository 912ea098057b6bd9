"""TradeEscrow with real and adversarial tokens: fee on transfer (balance-delta accounting),
tokens that return false, reentrant transfer hooks, EIP-2612 permits (also front-run), and
orders priced in one currency and paid in another at an attested FX rate."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from web3.contract import Contract

from node.chain.client import ChainClient
from tests.contracts.escrow_world import (
    DAY,
    ORACLE,
    UNIT6,
    UNIT18,
    EscrowWorld,
    State,
    deploy_world,
    empty_fx,
)
from tests.helpers import reverts

REENTRANCY_SELECTOR = function_signature_to_4byte_selector("ReentrancyGuardReentrantCall()")


@pytest.fixture
def w(chain: ChainClient, accounts: list[LocalAccount]) -> EscrowWorld:
    return deploy_world(chain, accounts)


def listed(w: EscrowWorld, name: str, *args: Any, currency: bytes = b"USD") -> Contract:
    token = w.chain.deploy(name, *args, sender=w.deployer)
    w.chain.transact(w.escrow.functions.allowToken(token.address, currency), sender=w.operator)
    return token


def fund_with(w: EscrowWorld, token: Contract, terms: Any) -> Any:
    w.chain.transact(token.functions.mint(w.buyer.address, terms.amount), sender=w.deployer)
    w.chain.transact(token.functions.approve(w.escrow.address, terms.amount), sender=w.buyer)
    return w.send("fund", terms.as_tuple(), empty_fx(), sender=w.buyer)


# ---- fee on transfer ----------------------------------------------------------------------------------


def test_fee_on_transfer_token_order_holds_what_arrived_and_pays_it_out_exactly(w: EscrowWorld) -> None:
    token = listed(w, "MockFeeOnTransferToken", 100)  # 1% burnt per transfer
    t = w.terms(token=token.address)
    w.create(t)
    receipt = fund_with(w, token, t)
    (funded,) = w.events(receipt, "OrderFunded")
    arrived = t.amount * 99 // 100
    assert (funded.args.due, funded.args.deposited) == (t.amount, arrived)
    assert w.order(t)[3:] == (arrived, arrived)

    w.deliver(t)
    w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    parties = (w.seller, w.platform, w.carrier_payee)
    owed = {p.address: w.credit(token, p.address) for p in parties}
    assert sum(owed.values()) == arrived
    for party in parties:
        w.send("withdraw", token.address, party.address, sender=party)
        assert w.balance(token, party.address) == owed[party.address] * 99 // 100
    assert w.balance(token, w.escrow.address) == 0


def test_token_that_delivers_nothing_cannot_fund(w: EscrowWorld) -> None:
    token = listed(w, "MockFeeOnTransferToken", 10_000)  # everything burnt
    t = w.terms(token=token.address)
    w.create(t)
    with reverts("EscrowNothingReceived", orderId=t.order_id):
        fund_with(w, token, t)


# ---- returns false ------------------------------------------------------------------------------------


def test_token_returning_false_on_funding_is_rejected(w: EscrowWorld) -> None:
    token = listed(w, "MockReturnsFalseToken")
    w.chain.transact(token.functions.setFailing(True), sender=w.deployer)
    t = w.terms(token=token.address)
    w.create(t)
    with reverts("SafeERC20FailedOperation", token=token.address):
        fund_with(w, token, t)
    assert w.state(t) == State.CREATED


def test_token_returning_false_on_withdrawal_keeps_the_credit(w: EscrowWorld) -> None:
    token = listed(w, "MockReturnsFalseToken")
    t = w.terms(token=token.address)
    w.create(t)
    fund_with(w, token, t)
    w.send("cancelOrder", t.as_tuple(), sender=w.seller)
    w.chain.transact(token.functions.setFailing(True), sender=w.deployer)
    with reverts("SafeERC20FailedOperation", token=token.address):
        w.send("withdraw", token.address, w.buyer.address, sender=w.buyer)
    assert w.credit(token, w.buyer.address) == t.amount
    w.chain.transact(token.functions.setFailing(False), sender=w.deployer)
    w.send("withdraw", token.address, w.buyer.address, sender=w.buyer)
    assert w.balance(token, w.buyer.address) == t.amount


# ---- reentrancy -------------------------------------------------------------------------------------------


def test_reentrant_token_cannot_reenter_during_funding(w: EscrowWorld) -> None:
    token = listed(w, "MockReentrantToken")
    t = w.terms(token=token.address)
    w.create(t)
    reenter = w.escrow.functions.cancelOrder(t.as_tuple())._encode_transaction_data()
    w.chain.transact(token.functions.arm(w.escrow.address, reenter), sender=w.deployer)
    fund_with(w, token, t)
    assert w.chain.call(token.functions.callbacks()) == 1
    assert w.chain.call(token.functions.lastCallSucceeded()) is False
    assert bytes(w.chain.call(token.functions.lastCallResult()))[:4] == REENTRANCY_SELECTOR
    assert w.order(t)[0] == State.FUNDED and w.order(t)[3] == t.amount


def test_reentrant_token_cannot_withdraw_twice(w: EscrowWorld) -> None:
    token = listed(w, "MockReentrantToken")
    t = w.terms(token=token.address)
    w.create(t)
    fund_with(w, token, t)
    w.send("cancelOrder", t.as_tuple(), sender=w.seller)
    again = w.escrow.functions.withdraw(token.address, w.buyer.address)._encode_transaction_data()
    w.chain.transact(token.functions.arm(w.escrow.address, again), sender=w.deployer)
    w.send("withdraw", token.address, w.buyer.address, sender=w.buyer)
    assert w.chain.call(token.functions.lastCallSucceeded()) is False
    assert bytes(w.chain.call(token.functions.lastCallResult()))[:4] == REENTRANCY_SELECTOR
    assert w.balance(token, w.buyer.address) == t.amount
    assert w.balance(token, w.escrow.address) == 0


# ---- permit -------------------------------------------------------------------------------------------------


def permit_for(w: EscrowWorld, token: Contract, owner: LocalAccount, value: int, deadline: int) -> tuple[Any, ...]:
    nonce = w.chain.call(token.functions.nonces(owner.address))
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": w.chain.call(token.functions.name()),
            "version": "1",
            "chainId": w.chain.chain_id,
            "verifyingContract": token.address,
        },
        "message": {
            "owner": owner.address,
            "spender": w.escrow.address,
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
    signed = owner.sign_message(encode_typed_data(full_message=copy.deepcopy(typed)))
    return (value, deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def test_fund_with_permit_needs_no_prior_approval(w: EscrowWorld) -> None:
    t = w.terms()
    w.create(t)
    w.mint(w.usd, w.buyer.address, t.amount)
    permit = permit_for(w, w.usd, w.buyer, t.amount, w.now() + DAY)
    w.send("fundWithPermit", t.as_tuple(), empty_fx(), permit, sender=w.buyer)
    assert w.order(t)[0] == State.FUNDED and w.order(t)[3] == t.amount


def test_front_run_permit_does_not_block_funding(w: EscrowWorld) -> None:
    t = w.terms()
    w.create(t)
    w.mint(w.usd, w.buyer.address, t.amount)
    value, deadline, v, r, s = permit = permit_for(w, w.usd, w.buyer, t.amount, w.now() + DAY)
    # Someone watching the mempool submits the permit first; the nonce is now used.
    w.chain.transact(
        w.usd.functions.permit(w.buyer.address, w.escrow.address, value, deadline, v, r, s), sender=w.outsider
    )
    w.send("fundWithPermit", t.as_tuple(), empty_fx(), permit, sender=w.buyer)
    assert w.order(t)[0] == State.FUNDED


def test_failed_permit_without_allowance_reverts_in_the_token(w: EscrowWorld) -> None:
    t = w.terms()
    w.create(t)
    w.mint(w.usd, w.buyer.address, t.amount)
    permit = permit_for(w, w.usd, w.buyer, t.amount, w.now() - 1)  # expired: the token rejects it
    with reverts("ERC20InsufficientAllowance", spender=w.escrow.address, allowance=0, needed=t.amount):
        w.send("fundWithPermit", t.as_tuple(), empty_fx(), permit, sender=w.buyer)


# ---- FX ---------------------------------------------------------------------------------------------------------


def test_order_priced_in_eur_paid_in_usd_locks_the_attested_rate(w: EscrowWorld) -> None:
    t = w.terms(amount=1_000 * UNIT18, price_currency=b"EUR")  # 1,000.00 EUR
    w.create(t)
    rate = 1_085_000_000_000_000_000  # 1.085 USD per EUR
    fx = w.fx_quote(t, b"EUR", b"USD", rate)
    receipt = w.fund(t, fx)
    (funded,) = w.events(receipt, "OrderFunded")
    assert funded.args.due == funded.args.deposited == 1_085 * UNIT6
    (locked,) = w.events(receipt, "RateLocked")
    assert (locked.args.base, locked.args.quote, locked.args.rate, locked.args.timestamp) == (
        b"EUR", b"USD", rate, fx[3]
    )
    assert list(w.view("lockedRate", t.order_id)) == [rate, fx[3]]
    w.deliver(t)
    w.send("confirmDelivery", t.as_tuple(), sender=w.buyer)
    total = sum(w.credit(w.usd, a) for a in (t.seller, t.platform, t.carrier))
    assert total == 1_085 * UNIT6


def test_usd_priced_order_paid_in_an_18_decimal_token_rounds_up(w: EscrowWorld) -> None:
    t = w.terms(token=w.eur.address, amount=100 * UNIT18 + 1, price_currency=b"USD")
    w.create(t)
    rate = 920_000_000_000_000_000  # 0.92 EUR per USD
    receipt = w.fund(t, w.fx_quote(t, b"USD", b"EUR", rate))
    (funded,) = w.events(receipt, "OrderFunded")
    assert funded.args.due == 92 * UNIT18 + 1  # ceil(0.92 wei) = 1 wei


def test_fx_quote_for_another_pair_reverts(w: EscrowWorld) -> None:
    t = w.terms(amount=1_000 * UNIT18, price_currency=b"EUR")
    w.create(t)
    with reverts("EscrowRateMismatch", base=b"GBP", quote=b"USD"):
        w.fund(t, w.fx_quote(t, b"GBP", b"USD", 10**18))


def test_fx_quote_needs_the_oracle_quorum(w: EscrowWorld) -> None:
    t = w.terms(amount=1_000 * UNIT18, price_currency=b"EUR")
    w.create(t)
    with reverts("EscrowQuorumNotMet", provided=1, required=2):
        w.fund(t, w.fx_quote(t, b"EUR", b"USD", 10**18, signers=w.oracles[:1]))


def test_fx_quote_signed_without_oracle_role_reverts(w: EscrowWorld) -> None:
    t = w.terms(amount=1_000 * UNIT18, price_currency=b"EUR")
    w.create(t)
    with reverts("EscrowMissingRole", account=w.carriers[0].address, role=ORACLE):
        w.fund(t, w.fx_quote(t, b"EUR", b"USD", 10**18, signers=[w.oracles[0], w.carriers[0]]))


def test_expired_fx_quote_reverts(w: EscrowWorld) -> None:
    t = w.terms(amount=1_000 * UNIT18, price_currency=b"EUR")
    w.create(t)
    with reverts("EscrowSignatureExpired"):
        w.fund(t, w.fx_quote(t, b"EUR", b"USD", 10**18, deadline=w.now() - 1))


def test_zero_fx_rate_reverts(w: EscrowWorld) -> None:
    t = w.terms(amount=1_000 * UNIT18, price_currency=b"EUR")
    w.create(t)
    with reverts("EscrowInvalidAmount", amount=0):
        w.fund(t, w.fx_quote(t, b"EUR", b"USD", 0))


def test_fx_amount_beyond_96_bits_reverts(w: EscrowWorld) -> None:
    t = w.terms(token=w.eur.address, amount=2**96 - 1, price_currency=b"USD")
    w.create(t)
    with reverts("EscrowInvalidAmount"):
        w.fund(t, w.fx_quote(t, b"USD", b"EUR", 2 * 10**18))


def test_fx_quote_is_ignored_for_an_order_priced_in_its_token(w: EscrowWorld) -> None:
    t = w.terms()
    w.create(t)
    receipt = w.fund(t, w.fx_quote(t, b"EUR", b"USD", 5 * 10**18))
    assert w.events(receipt, "RateLocked") == []
    assert w.order(t)[3] == t.amount
    assert list(w.view("lockedRate", t.order_id)) == [0, 0]


def test_price_currency_equal_to_the_tokens_reverts(w: EscrowWorld) -> None:
    with reverts("EscrowInvalidPriceCurrency", currency=b"USD"):
        w.create(w.terms(price_currency=b"USD"))


# ---- the devnet stablecoins ----------------------------------------------------------------------------------------


def test_devnet_stablecoins_have_6_and_18_decimals_and_one_minter(w: EscrowWorld) -> None:
    assert w.chain.call(w.usd.functions.decimals()) == 6
    assert w.chain.call(w.eur.functions.decimals()) == 18
    assert w.chain.call(w.usd.functions.minter()) == w.deployer.address
    with reverts("DevStablecoinNotMinter", caller=w.buyer.address):
        w.chain.transact(w.usd.functions.mint(w.buyer.address, 1), sender=w.buyer)


def test_devnet_stablecoin_permit_domain_is_its_name_version_1(w: EscrowWorld) -> None:
    _, name, version, chain_id, contract, _, _ = w.chain.call(w.eur.functions.eip712Domain())
    assert (name, version, chain_id, contract) == ("Waymark Dev EUR", "1", w.chain.chain_id, w.eur.address)

