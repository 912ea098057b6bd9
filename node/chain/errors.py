"""Chain-side errors, and the one place where a revert is decoded into a named exception.

Every custom error of every compiled contract becomes a subclass of `ContractRevert`
named after it (`revert_class("RegistryNotMember")`), carrying the error's arguments
by name. Callers catch those classes; only the API maps them to HTTP statuses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from node.chain.consortium import ROLES
from node.chain.contract_enums import BY_SOLIDITY_NAME
from node.errors import WaymarkError


class ChainError(WaymarkError):
    code = "chain_error"


class RpcUnreachable(ChainError):
    code = "rpc_unreachable"

    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        super().__init__(f"cannot reach the chain at {url}" + (f": {detail}" if detail else ""))


class WrongChainId(ChainError):
    code = "wrong_chain_id"

    def __init__(self, url: str, expected: int, actual: int) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(f"the chain at {url} has chain id {actual}, expected {expected}")


class TransactionDropped(ChainError):
    code = "transaction_dropped"

    def __init__(self, tx_hash: str, attempts: int) -> None:
        super().__init__(f"transaction {tx_hash} was not mined after {attempts} submissions")


class TransactionFailed(ChainError):
    code = "transaction_failed"

    def __init__(self, tx_hash: str, detail: str) -> None:
        super().__init__(f"transaction {tx_hash} failed: {detail}")


class DeploymentMissing(ChainError):
    code = "deployment_missing"

    def __init__(self, detail: str) -> None:
        super().__init__(f"Waymark is not deployed: {detail}; run `waymark deploy`")


Namer = Callable[[str, Any], "str | None"]
"""Names an account ("account", address) or an organisation ("org", id) for a message, or None."""


class ContractRevert(ChainError):
    """A contract call reverted. Subclasses are named after the custom error.

    `error_args` keep the raw decoded values (tests and callers compare them); the message
    names what it can: states and other enums by their names, roles by name, order ids in the
    0x form the CLI prints, and, with a `namer`, accounts and organisation ids by organisation.
    """

    code = "contract_revert"
    error_name: str = "Revert"

    def __init__(
        self, error_args: dict[str, Any] | None = None, raw: str = "", inputs: list[dict[str, Any]] | None = None
    ) -> None:
        self.error_args = error_args or {}
        self.raw = raw
        self.inputs = inputs or []
        super().__init__(self.describe())

    def describe(self, namer: Namer | None = None) -> str:
        types = {str(i.get("name")): i for i in self.inputs}
        args = ", ".join(f"{k}={_show(v, k, types.get(k, {}), namer)}" for k, v in self.error_args.items())
        return f"{self.error_name}({args})"


class UnknownRevert(ContractRevert):
    """A revert whose data matches no known custom error (or carries no data)."""

    error_name = "UnknownRevert"

    def __init__(self, raw: str = "") -> None:
        super().__init__({"data": raw or "0x"}, raw)


_ROLE_NAMES = {keccak(text=role): role for role in ROLES}
"""Role ids (keccak of the name, as the contracts define them) -> role names."""


def _show(value: Any, name: str = "", param: dict[str, Any] | None = None, namer: Namer | None = None) -> str:
    internal = str((param or {}).get("internalType", ""))
    if internal.startswith("enum ") and isinstance(value, int):
        enum = BY_SOLIDITY_NAME.get(internal.rsplit(".", 1)[-1].split()[-1])
        if enum is not None and value in enum._value2member_map_:
            return enum(value).name
    if isinstance(value, bytes):
        if name.lower().endswith("role") and len(value) == 32:
            role = _ROLE_NAMES.get(value)
            if role is not None:
                return role
        return "0x" + value.hex()
    if name == "orderId" and isinstance(value, int):
        return f"0x{value:064x}"
    if namer is not None:
        kind = "account" if isinstance(value, str) and value.startswith("0x") else "org" if name.endswith("rgId") else None
        label = _named(namer, kind, value) if kind else None
        if label:
            return f"{value} ({label})"
    return str(value)


def _named(namer: Namer, kind: str, value: Any) -> str | None:
    try:
        return namer(kind, value)
    except Exception:  # naming is a courtesy: a failed look-up leaves the raw value
        return None


@cache
def revert_class(error_name: str) -> type[ContractRevert]:
    """The exception class for a custom error name; the same class on every call."""
    return type(error_name, (ContractRevert,), {"error_name": error_name, "__module__": __name__})


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


class ErrorDecoder:
    """Maps 4-byte selectors of custom errors (from ABIs) to their names and argument types."""

    BUILTIN = {
        bytes.fromhex("08c379a0"): ("Error", [{"name": "message", "type": "string"}]),
        bytes.fromhex("4e487b71"): ("Panic", [{"name": "code", "type": "uint256"}]),
    }

    def __init__(self, abis: list[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[dict[str, Any]]]] = dict(self.BUILTIN)
        for abi in abis:
            for item in abi:
                if item.get("type") == "error":
                    signature = f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
                    self._errors[function_signature_to_4byte_selector(signature)] = (
                        item["name"],
                        item["inputs"],
                    )

    def decode(self, revert_data: str | bytes | None) -> ContractRevert:
        if isinstance(revert_data, str):
            data = bytes.fromhex(revert_data.removeprefix("0x"))
        else:
            data = revert_data or b""
        known = self._errors.get(data[:4])
        if known is None:
            return UnknownRevert("0x" + data.hex())
        name, inputs = known
        try:
            values = abi_decode([_abi_type(i) for i in inputs], data[4:])
        except Exception:  # malformed revert data: report it raw rather than guess
            return UnknownRevert("0x" + data.hex())
        args = {
            (i["name"] or f"arg{n}"): (
                to_checksum_address(v) if i["type"] == "address" else v
            )
            for n, (i, v) in enumerate(zip(inputs, values))
        }
        return revert_class(name)(args, "0x" + data.hex(), inputs)
