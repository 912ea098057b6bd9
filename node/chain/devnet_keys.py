"""The well-known devnet: its chain id, default RPC port and Anvil's public development accounts.

Production code needs these facts to refuse the public keys anywhere but the devnet and to offer
a dev account as a signer on the devnet; the devnet tooling (waymark.devnet) starts Anvil with
them. One definition here, low in the layers, so production never imports the tooling.
"""

from __future__ import annotations

from functools import cache
from typing import cast

from eth_account import Account
from eth_account.signers.local import LocalAccount

DEVNET_CHAIN_ID = 31337
DEVNET_PORT = 8545
# Anvil's well-known development mnemonic: its keys are public and are refused outside the devnet.
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
DEVNET_ACCOUNTS = 24  # accounts Anvil is started with; 20..23: the node-running demo members' anchor accounts


def devnet_account(index: int) -> LocalAccount:
    """The dev account at `index` of the public devnet mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    # from_mnemonic is an eth_utils combomethod, whose descriptor erases the return type to Any.
    return cast(LocalAccount, Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"))


@cache
def devnet_addresses(count: int = DEVNET_ACCOUNTS) -> frozenset[str]:
    """Addresses of the public devnet mnemonic's first `count` accounts: by default every account
    the devnet holds, the demo nodes' anchor accounts included."""
    return frozenset(devnet_account(i).address for i in range(count))
