"""The devnet's public keys are refused on every other chain, and only there."""

from __future__ import annotations

import pytest
from eth_account import Account

from node.chain.devnet_keys import DEVNET_ACCOUNTS, DEVNET_CHAIN_ID, devnet_account
from node.chain.keystore import DevnetKeyRefused, refuse_devnet_key


@pytest.mark.parametrize("index", range(DEVNET_ACCOUNTS))
def test_every_account_anvil_starts_with_is_refused_outside_the_devnet(index: int) -> None:
    account = devnet_account(index)  # 20..23 included: the demo nodes anchor from them
    with pytest.raises(DevnetKeyRefused, match=f"{account.address} is a publicly known devnet key; it is refused on chain 4242"):
        refuse_devnet_key(account, 4242)
    assert refuse_devnet_key(account, DEVNET_CHAIN_ID) is account


def test_an_account_of_ones_own_is_taken_on_any_chain() -> None:
    account = Account.create()
    assert refuse_devnet_key(account, 4242) is account
    assert refuse_devnet_key(account, DEVNET_CHAIN_ID) is account
