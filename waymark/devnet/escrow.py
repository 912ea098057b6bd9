"""Devnet only: two test stablecoins for the escrow, allowlisted and in the demo buyers' hands.

`devnet_token_steps` adds two DevStablecoin entries to a deployment (6 decimals standing for
USD, like USDC; 18 decimals standing for EUR); `setup_devnet_escrow` then allowlists them in
the TradeEscrow as the OPERATOR demo member and mints to the demo buyers (dev accounts 10 and
11). Both refuse any chain but the devnet, so a consortium deployment never gets test tokens.
Both are idempotent: running them again changes nothing that is already in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from node.chain.deploy import Deployment, Step
from node.chain.devnet_keys import DEVNET_ACCOUNTS, DEVNET_CHAIN_ID, devnet_account
from waymark.devnet.anvil import DevnetError
from waymark.devnet.consortium import DEMO_BUYER_INDICES, DEMO_MEMBERS, DEPLOYER_INDEX


@dataclass(frozen=True)
class DevToken:
    entry: str  # name of the deployment entry
    name: str
    symbol: str
    decimals: int
    currency: str  # ISO 4217 code it stands for in the escrow


DEV_TOKENS: tuple[DevToken, ...] = (
    DevToken("DevStablecoin:wUSD", "Waymark Dev USD", "wUSD", 6, "USD"),
    DevToken("DevStablecoin:wEUR", "Waymark Dev EUR", "wEUR", 18, "EUR"),
)
# What each demo buyer holds after set-up, in whole tokens (topped up, never reduced).
BUYER_BALANCE = 1_000_000


class NotDevnet(DevnetError):
    def __init__(self, chain_id: int, what: str) -> None:
        super().__init__(f"{what} exist only on the devnet (chain {DEVNET_CHAIN_ID}), not on chain {chain_id}")


def devnet_token_steps(chain_id: int, minter: str | None = None) -> list[Step]:
    """Deployment steps of the test stablecoins; `minter` defaults to the devnet deployer."""
    if chain_id != DEVNET_CHAIN_ID:
        raise NotDevnet(chain_id, "test stablecoins")
    mint_by = minter or devnet_account(DEPLOYER_INDEX).address
    return [(t.entry, lambda _, t=t: [t.name, t.symbol, t.decimals, mint_by]) for t in DEV_TOKENS]  # type: ignore[misc]


def operator_account() -> LocalAccount:
    index = next(m.account_index for m in DEMO_MEMBERS if m.key == "operator")
    return devnet_account(index)


def _minter_of(client: ChainClient, token: str, given: LocalAccount | None) -> LocalAccount:
    """The token's minter: `given` if it is the one, else the dev account that is (devnet keys are public)."""
    minter = str(client.call(client.contract("DevStablecoin", token).functions.minter()))
    if given is not None and given.address == minter:
        return given
    for index in range(DEVNET_ACCOUNTS):
        account = devnet_account(index)
        if account.address == minter:
            return account
    raise DevnetError(f"the minter {minter} of the test token {token} is no devnet account; mint with its key")


def setup_devnet_escrow(
    client: ChainClient,
    deployment: Deployment,
    *,
    minter: LocalAccount | None = None,
    operator: LocalAccount | None = None,
    buyers: tuple[str, ...] | None = None,
) -> list[str]:
    """Allowlist the test tokens in the escrow and top up the demo buyers. Returns what it did.

    `minter` signs the mints if it is the tokens' minter; otherwise the dev account that is."""
    if client.chain_id != DEVNET_CHAIN_ID:
        raise NotDevnet(client.chain_id, "test stablecoins")
    operator = operator or operator_account()
    holders = buyers if buyers is not None else tuple(devnet_account(i).address for i in DEMO_BUYER_INDICES)
    escrow = client.contract("TradeEscrow", deployment.address("TradeEscrow"))
    done: list[str] = []
    for token in DEV_TOKENS:
        contract = client.contract("DevStablecoin", deployment.address(token.entry))
        allowed, currency, _decimals = client.call(escrow.functions.tokenInfo(contract.address))
        if not allowed or bytes(currency) != token.currency.encode():
            client.transact(escrow.functions.allowToken(contract.address, token.currency.encode()), sender=operator)
            done.append(f"allowed {token.symbol} as {token.currency}")
        target = BUYER_BALANCE * 10**token.decimals
        for holder in holders:
            balance = int(client.call(contract.functions.balanceOf(holder)))
            if balance < target:
                sender = _minter_of(client, contract.address, minter)
                client.transact(contract.functions.mint(holder, target - balance), sender=sender)
                done.append(f"minted {(target - balance) // 10**token.decimals} {token.symbol} to {holder}")
    return done
