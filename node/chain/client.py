"""The chain client: connect by RPC URL, check the chain id, sign locally, manage nonces.

Works against any EVM JSON-RPC node (Anvil for the devnet, Besu for a consortium);
nothing here is Anvil-specific.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace as copy_with
from typing import Any, TypeVar, cast

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from eth_typing import ABIFunction, ChecksumAddress
from eth_utils.abi import collapse_if_tuple, function_abi_to_4byte_selector
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import BlockIdentifier, Nonce, RPCEndpoint, TxParams, TxReceipt, Wei

from node.chain.build import all_artifacts, load_artifact
from node.chain.logs import BESU_MAX_LOGS_RANGE, LogPager
from node.chain.errors import (
    ContractRevert,
    ErrorDecoder,
    RpcUnreachable,
    TransactionDropped,
    TransactionFailed,
    UnknownRevert,
    WrongChainId,
)

T = TypeVar("T")


@dataclass(frozen=True)
class SentTransaction:
    """A signed transaction the node accepted, not yet known to be mined."""

    tx_hash: HexBytes
    raw: HexBytes
    tx: TxParams
    sender: LocalAccount
    nonce: int
    sent_at: float
    """time.monotonic() when it was (last) sent."""


#: Gas added to every estimate for one storage slot written afresh (20,000 + a cold access, rounded
#: up). The estimate runs at the head block's timestamp, the transaction in a later block: a history
#: checkpoint (role, account, hosting, delay) written earlier in the head block's second is updated
#: in place in the estimate but appended as a new slot once mined a second later.
TIMESTAMP_HEADROOM = 25_000


class ChainClient:
    """One connection to one chain, with per-sender nonce tracking.

    `transact` estimates gas first (so a revert is reported before anything is sent,
    decoded into its named custom error), signs locally, sends, and waits for the
    receipt with a bound; a transaction the node forgot is submitted again with the
    same nonce.
    """

    def __init__(
        self,
        rpc_url: str,
        expected_chain_id: int | None = None,
        *,
        request_timeout: float = 10.0,
        receipt_timeout: float = 60.0,
        resubmissions: int = 3,
        max_log_range: int = BESU_MAX_LOGS_RANGE,
    ) -> None:
        self.rpc_url = rpc_url
        # eth_chainId answered once per thread, not asked again before every eth_call and
        # eth_estimateGas by web3's validation middleware (three requests per call became one;
        # the chain id is checked against `expected_chain_id` here, once).
        provider = HTTPProvider(rpc_url, request_kwargs={"timeout": request_timeout},
                                cache_allowed_requests=True, cacheable_requests={RPCEndpoint("eth_chainId")})
        self.w3 = Web3(provider)
        self.receipt_timeout = receipt_timeout
        self.resubmissions = resubmissions
        try:
            self.chain_id = int(self.w3.eth.chain_id)
        except (requests.RequestException, OSError, ValueError) as exc:
            raise RpcUnreachable(rpc_url, type(exc).__name__) from None
        if expected_chain_id is not None and self.chain_id != expected_chain_id:
            raise WrongChainId(rpc_url, expected_chain_id, self.chain_id)
        self.decoder = ErrorDecoder([a.abi for a in all_artifacts()])
        self.logs = LogPager(self.w3, max_log_range)
        """Every log read of this client goes through this pager (bounded, refusal-halving ranges)."""
        self._nonces: dict[ChecksumAddress, int] = {}
        self._nonce_lock = threading.Lock()

    # ---- contracts -------------------------------------------------------------

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name).abi)

    def deploy(self, name: str, *args: Any, sender: LocalAccount) -> Contract:
        receipt = self.deploy_receipt(name, *args, sender=sender)
        address = receipt["contractAddress"]
        assert address is not None
        return self.contract(name, address)

    def deploy_receipt(self, name: str, *args: Any, sender: LocalAccount) -> TxReceipt:
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        return self.transact(factory.constructor(*args), sender=sender)

    # ---- calls and transactions ----------------------------------------------------

    def call(self, fn: ContractFunction, block: BlockIdentifier = "latest") -> Any:
        return self._decoding_reverts(lambda: fn.call(block_identifier=block))

    def view(self, contract: Contract, name: str) -> ViewFunction:
        """The view function `name` of `contract`, called lean (ViewFunction)."""
        return ViewFunction(self, contract, name)

    def eth_call(self, to: str, data: bytes) -> bytes:
        """One eth_call at the latest block, sent by the provider itself (web3's middleware and
        formatting left out); a revert is raised decoded, as by `call`."""
        try:
            response = self.w3.provider.make_request(RPCEndpoint("eth_call"), [{"to": to, "data": "0x" + data.hex()}, "latest"])
        except requests.RequestException as exc:
            raise RpcUnreachable(self.rpc_url, type(exc).__name__) from None
        error = response.get("error")
        if error is not None:
            message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            revert = error.get("data") if isinstance(error, dict) else None
            if isinstance(revert, str) or "revert" in message.lower():
                raise self.decoder.decode(revert if isinstance(revert, str) else None)
            raise Web3RPCError(message)
        return bytes(HexBytes(response["result"]))

    def transact(
        self,
        fn: ContractFunction | ContractConstructor,
        *,
        sender: LocalAccount,
        gas: int | None = None,
        value: int = 0,
    ) -> TxReceipt:
        return self.send(self.prepare(fn, sender=sender, gas=gas, value=value), sender)

    def prepare(
        self,
        fn: ContractFunction | ContractConstructor,
        *,
        sender: LocalAccount,
        gas: int | None = None,
        value: int = 0,
    ) -> TxParams:
        """The transaction calling `fn`, gas estimated (a revert is raised here, decoded, before anything is sent)."""
        base: TxParams = {"from": sender.address, "value": Wei(value), "chainId": self.chain_id}
        tx: TxParams = self._decoding_reverts(lambda: fn.build_transaction({**base, "gas": gas or 1}))
        if gas is None:
            estimate = self._decoding_reverts(lambda: self.w3.eth.estimate_gas(_without_gas(tx)))
            tx["gas"] = estimate + estimate // 5 + 10_000 + TIMESTAMP_HEADROOM
        return tx

    def send(self, tx: TxParams, sender: LocalAccount) -> TxReceipt:
        """Sign and send a prepared transaction, then wait for it; fee fields are filled in here."""
        sent = self.send_nowait(tx, sender)
        receipt = self._await_receipt(sent.tx_hash, sent.raw)
        if receipt["status"] != 1:
            raise self.failure(sent, receipt)
        return receipt

    def send_nowait(self, tx: TxParams, sender: LocalAccount) -> SentTransaction:
        """Sign and send with the sender's next nonce; return at once (several may be in flight).

        Nonces are counted here per sender, so transactions sent one after the other without
        waiting get consecutive nonces; a refused send makes the next one re-read the node's count.
        """
        tx = {**tx, **self._fees()}
        with self._nonce_lock:
            nonce = self._next_nonce(sender.address)
            tx["nonce"] = Nonce(nonce)
            sent = self._sign_and_send(tx, sender)
            self._nonces[sender.address] = nonce + 1
        return sent

    def receipt_of(self, sent: SentTransaction) -> TxReceipt | None:
        """The receipt of `sent`, or None while it is not mined."""
        try:
            return self.w3.eth.get_transaction_receipt(sent.tx_hash)
        except TransactionNotFound:
            return None

    def replace(self, sent: SentTransaction) -> SentTransaction:
        """Unstick `sent`: the same nonce again. If the node forgot the transaction it is sent again
        as it was; if the node still holds it, a copy with fees raised by an eighth (at least 1 wei)
        replaces it. A copy the node refuses (e.g. already mined) leaves `sent` as it was."""
        try:
            self.w3.eth.get_transaction(sent.tx_hash)
        except TransactionNotFound:
            try:
                self.w3.eth.send_raw_transaction(sent.raw)
            except Web3RPCError:
                pass  # mined meanwhile, or known again: the receipt will tell
            return copy_with(sent, sent_at=time.monotonic())
        tx: TxParams = dict(sent.tx)  # type: ignore[assignment]
        priority = int(tx.get("maxPriorityFeePerGas", 0))
        max_fee = int(tx.get("maxFeePerGas", 0))
        new_priority = priority + priority // 8 + 1
        tx["maxPriorityFeePerGas"] = Wei(new_priority)
        tx["maxFeePerGas"] = Wei(max(max_fee + max_fee // 8 + 1, new_priority))
        try:
            return self._sign_and_send(tx, sent.sender)
        except TransactionFailed:
            return copy_with(sent, sent_at=time.monotonic())

    def forget_nonces(self) -> None:
        """Re-read every sender's nonce from the node next time (after a reorg or a restart of the node)."""
        with self._nonce_lock:
            self._nonces.clear()

    def _sign_and_send(self, tx: TxParams, sender: LocalAccount) -> SentTransaction:
        # TxParams is a dict at run time; mypy won't match a TypedDict to eth_account's dict[str, ...].
        raw = sender.sign_transaction(cast(TransactionDictType, tx)).raw_transaction
        try:
            tx_hash = self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError as exc:
            self._nonces.pop(sender.address, None)  # re-read the nonce next time
            raise TransactionFailed("(not sent)", str(exc)) from None
        return SentTransaction(HexBytes(tx_hash), HexBytes(raw), tx, sender, int(tx["nonce"]), time.monotonic())

    # ---- internals --------------------------------------------------------------------

    def _fees(self) -> TxParams:
        block = self.w3.eth.get_block("latest")
        base_fee = int(block.get("baseFeePerGas", 0) or 0)
        priority = 0 if base_fee == 0 else int(self.w3.eth.max_priority_fee)
        return {"maxFeePerGas": Wei(2 * base_fee + priority), "maxPriorityFeePerGas": Wei(priority)}

    def _next_nonce(self, address: ChecksumAddress) -> int:
        if address not in self._nonces:
            self._nonces[address] = int(self.w3.eth.get_transaction_count(address, "pending"))
        return self._nonces[address]

    def _await_receipt(self, tx_hash: HexBytes, raw: HexBytes) -> TxReceipt:
        for _attempt in range(self.resubmissions + 1):
            deadline = time.monotonic() + self.receipt_timeout
            delay = 0.005
            while time.monotonic() < deadline:
                try:
                    return self.w3.eth.get_transaction_receipt(tx_hash)
                except TransactionNotFound:
                    pass
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            # Not mined in time: if the node no longer knows it, submit it again.
            try:
                self.w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                try:
                    self.w3.eth.send_raw_transaction(raw)
                except Web3RPCError:
                    pass  # already known or nonce used: keep waiting for the receipt
        raise TransactionDropped("0x" + tx_hash.hex(), self.resubmissions + 1)

    def failure(self, sent: SentTransaction, receipt: TxReceipt) -> Exception:
        """A mined transaction failed: replay it as a call at its block to learn why."""
        tx = sent.tx
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        call: TxParams = {k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")}  # type: ignore[assignment]
        try:
            self.w3.eth.call(call, receipt["blockNumber"] - 1)
        except ContractLogicError as exc:
            return self.decode_revert(exc)
        except Web3RPCError as exc:
            return TransactionFailed(tx_hash, str(exc))
        return TransactionFailed(tx_hash, "reverted (out of gas or no reason given)")

    def decode_revert(self, exc: ContractLogicError) -> ContractRevert:
        data = exc.data
        if isinstance(data, dict):
            data = data.get("data")
        return self.decoder.decode(data if isinstance(data, str) else None)

    def _decoding_reverts(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except ContractLogicError as exc:
            raise self.decode_revert(exc) from None
        except Web3RPCError as exc:
            message = str(exc)
            if "revert" in message.lower():
                raise UnknownRevert(message) from None
            raise
        except requests.RequestException as exc:
            raise RpcUnreachable(self.rpc_url, type(exc).__name__) from None


class ViewFunction:
    """A contract's view function called with one eth_call, its arguments and answer coded by
    eth_abi from the contract's ABI. web3's contract call (validation, middleware, formatting)
    costs a few ms of Python per call; read paths that call one function many times (a
    passport's anchor lookups) use this instead. Answers as `ChainClient.call` does: the one
    returned value, or the tuple of several."""

    def __init__(self, client: ChainClient, contract: Contract, name: str) -> None:
        abi = cast(ABIFunction, next(e for e in contract.abi if e.get("type") == "function" and e.get("name") == name))
        self.client = client
        self.address = contract.address
        self.selector = function_abi_to_4byte_selector(abi)
        self.inputs = [collapse_if_tuple(dict(i)) for i in abi.get("inputs", [])]
        self.outputs = [collapse_if_tuple(dict(o)) for o in abi.get("outputs", [])]

    def __call__(self, *args: Any) -> Any:
        answer = self.client.eth_call(self.address, self.selector + abi_encode(self.inputs, args))
        values = abi_decode(self.outputs, answer)
        return values[0] if len(values) == 1 else values


def _without_gas(tx: TxParams) -> TxParams:
    return {k: v for k, v in tx.items() if k != "gas"}  # type: ignore[return-value]
