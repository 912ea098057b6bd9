"""The Besu network a consortium file describes: one QBFT validator per member (where its peers
and its own services reach it), the browsers' read-only RPC node, and the QBFT options; every
field checked with the file's path and the field named."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from node.chain.consortium import ConsortiumFileError, ConsortiumSpec, load_consortium
from node.chain.devnet_keys import DEVNET_CHAIN_ID

GENERATOR = "waymark devnet besu-config"
BROWSER_RPC_FOLDER = "browser-rpc"
DEFAULT_BROWSER_RPC_PORT = 8645
DEFAULT_CORS_ORIGINS = ("http://localhost:8700", "http://127.0.0.1:8700")  # the scan API's default address
# QBFT tolerates f faulty validators out of 3f + 1; fewer than 4 tolerates none.
MIN_VALIDATORS = 4
# Chain ids a consortium must not reuse: public networks, and the Anvil devnet whose keys are public
# (signing refuses devnet keys everywhere except on the devnet's chain, so the consortium must not use it).
RESERVED_CHAIN_IDS = {
    1: "Ethereum mainnet",
    17000: "Holesky",
    560048: "Hoodi",
    11155111: "Sepolia",
    DEVNET_CHAIN_ID: "the Anvil devnet, whose keys are public",
}
DEFAULT_P2P_PORT = 30303
DEFAULT_RPC_PORT = 8555  # off 8545 so a Besu node and the Anvil devnet can run side by side


@dataclass(frozen=True)
class ValidatorNode:
    """One member's validator: where its peers reach it, and where its own services reach its RPC."""

    member: str
    host: str  # IP address advertised in the enode URL (Besu's p2p-host)
    p2p_port: int
    rpc_host: str
    rpc_port: int
    host_allowlist: tuple[str, ...]

    @property
    def slug(self) -> str:
        """The folder name of this validator's files."""
        return _slug(self.member)


@dataclass(frozen=True)
class BrowserRpcNode:
    """The non-validating node whose JSON-RPC browsers read (run by `member`)."""

    member: str
    host: str
    p2p_port: int
    rpc_host: str
    rpc_port: int
    cors_origins: tuple[str, ...]
    host_allowlist: tuple[str, ...]

    @property
    def slug(self) -> str:
        return BROWSER_RPC_FOLDER


@dataclass(frozen=True)
class QbftOptions:
    block_period_seconds: int = 2
    # Besu's guidance: a round times out after about twice the block period.
    request_timeout_seconds: int = 4
    epoch_length: int = 30_000
    # Gas is free, so the limit only bounds block building time; 100M is ample for Waymark.
    gas_limit: int = 100_000_000


@dataclass(frozen=True)
class BesuNetworkSpec:
    consortium: ConsortiumSpec
    chain_id: int
    validators: tuple[ValidatorNode, ...]
    qbft: QbftOptions = field(default_factory=QbftOptions)
    # The account that deploys Waymark: allowlisted before deployment, funded only if asked.
    deployer: str | None = None
    fund_deployer_wei: int = 0
    # Accounts allowed to transact although no organisation holds them (e.g. a relayer).
    extra_accounts: tuple[str, ...] = ()
    source: str = "consortium file"
    browser_rpc: BrowserRpcNode | None = None


def load_besu_network(path: Path, deployer: str | None = None) -> BesuNetworkSpec:
    """Read a consortium file with its Besu parts (additive to the format `load_consortium` reads):
    top-level `chainId` (required here) and `deployer`; per member `validator` (true, false, or an
    object with host, p2pPort, rpcHost, rpcPort, hostAllowlist; when no member says, every member runs
    one); and an optional `besu` object (blockPeriodSeconds, requestTimeoutSeconds, epochLength,
    gasLimit, fundDeployerWei, extraAccounts)."""
    consortium = load_consortium(path)
    data = json.loads(path.read_text())  # load_consortium has checked it is a JSON object
    raw_members: list[Any] = data["members"]
    declared = any("validator" in m for m in raw_members)
    validators: list[ValidatorNode] = []
    for i, (raw, member) in enumerate(zip(raw_members, consortium.members)):
        where = f"members[{i}].validator"
        value = raw.get("validator", not declared)
        if value is False:
            continue
        if value is True:
            value = {}
        if not isinstance(value, dict):
            raise ConsortiumFileError(path, where, "must be true, false, or an object with host, p2pPort, rpcHost, rpcPort")
        validators.append(_validator_node(path, where, member.name, len(validators), value))
    besu = data.get("besu", {})
    if not isinstance(besu, dict):
        raise ConsortiumFileError(path, "besu", "must be an object")
    known = {"blockPeriodSeconds", "requestTimeoutSeconds", "epochLength", "gasLimit", "fundDeployerWei", "extraAccounts"}
    for key in besu:
        if key not in known:
            raise ConsortiumFileError(path, f"besu.{key}", f"unknown setting; known: {', '.join(sorted(known))}")
    defaults = QbftOptions()
    qbft = QbftOptions(
        block_period_seconds=_int_field(path, "besu.blockPeriodSeconds", besu, "blockPeriodSeconds", defaults.block_period_seconds, 1, 3600),
        request_timeout_seconds=_int_field(path, "besu.requestTimeoutSeconds", besu, "requestTimeoutSeconds", defaults.request_timeout_seconds, 1, 86400),
        epoch_length=_int_field(path, "besu.epochLength", besu, "epochLength", defaults.epoch_length, 1, 2**63 - 1),
        gas_limit=_int_field(path, "besu.gasLimit", besu, "gasLimit", defaults.gas_limit, 5_000_000, 2**63 - 1),
    )
    fund = _int_field(path, "besu.fundDeployerWei", besu, "fundDeployerWei", 0, 0, 2**256 - 1)
    extra_raw = besu.get("extraAccounts", [])
    if not isinstance(extra_raw, list) or not all(isinstance(a, str) and is_address(a) for a in extra_raw):
        raise ConsortiumFileError(path, "besu.extraAccounts", "must be a list of 0x-prefixed account addresses")
    if deployer is None:
        deployer = data.get("deployer")
        if deployer is not None and not (isinstance(deployer, str) and is_address(deployer)):
            raise ConsortiumFileError(path, "deployer", "must be a 0x-prefixed account address")
    if consortium.chain_id is None:
        raise ConsortiumFileError(path, "chainId", "a Besu consortium needs its own chain id: add a top-level chainId")
    browser_raw = data.get("browserRpc", {})
    if not isinstance(browser_raw, dict):
        raise ConsortiumFileError(path, "browserRpc", "must be an object with member, host, p2pPort, rpcHost, rpcPort, corsOrigins, hostAllowlist")
    browser = _browser_rpc_node(path, browser_raw, validators, [m.name for m in consortium.members]) if validators else None
    return besu_network(
        consortium,
        consortium.chain_id,
        validators=validators,
        qbft=qbft,
        deployer=deployer,
        fund_deployer_wei=fund,
        extra_accounts=extra_raw,
        source=path.name,
        where=path,
        browser_rpc=browser,
    )


def besu_network(
    consortium: ConsortiumSpec,
    chain_id: int,
    *,
    validators: Sequence[ValidatorNode] | None = None,
    qbft: QbftOptions | None = None,
    deployer: str | None = None,
    fund_deployer_wei: int = 0,
    extra_accounts: Iterable[str] = (),
    source: str = "consortium",
    where: Path | None = None,
    browser_rpc: BrowserRpcNode | None = None,
) -> BesuNetworkSpec:
    """A network for a consortium spec; by default every member runs a validator on this host,
    and the first validator's member runs the browsers' RPC node beside it."""
    where = where or Path(f"<{source}>")
    if validators is None:
        validators = [_validator_node(where, "validators", m.name, i, {}) for i, m in enumerate(consortium.members)]
    if browser_rpc is None and validators:
        browser_rpc = _browser_rpc_node(where, {}, validators, [m.name for m in consortium.members])
    qbft = qbft or QbftOptions()
    if chain_id in RESERVED_CHAIN_IDS:
        raise ConsortiumFileError(where, "chainId", f"{chain_id} is {RESERVED_CHAIN_IDS[chain_id]}; choose the consortium's own id")
    if len(validators) < MIN_VALIDATORS:
        raise ConsortiumFileError(
            where, "members[].validator",
            f"QBFT needs at least {MIN_VALIDATORS} validators (one per member) to survive one faulty node; "
            f"{len(validators)} given",
        )
    _unique(where, "members[].validator", "folder name", [v.slug for v in validators])
    _unique(where, "members[].validator", "p2p endpoint", [f"{v.host}:{v.p2p_port}" for v in validators])
    _unique(where, "members[].validator", "RPC endpoint", [f"{v.rpc_host}:{v.rpc_port}" for v in validators])
    if browser_rpc is not None:
        b = browser_rpc
        if any(v.host == b.host and v.p2p_port == b.p2p_port for v in validators):
            raise ConsortiumFileError(where, "browserRpc.p2pPort", f"{b.host}:{b.p2p_port} is a validator's p2p endpoint")
        if any(v.host == b.host and b.rpc_port in (v.rpc_port, v.p2p_port) for v in validators):
            raise ConsortiumFileError(where, "browserRpc.rpcPort", f"port {b.rpc_port} is taken by a validator on {b.host}")
    if qbft.request_timeout_seconds <= qbft.block_period_seconds:
        raise ConsortiumFileError(
            where, "besu.requestTimeoutSeconds",
            f"must be longer than blockPeriodSeconds ({qbft.block_period_seconds}); about twice it is usual",
        )
    if fund_deployer_wei and deployer is None:
        raise ConsortiumFileError(where, "besu.fundDeployerWei", "there is no deployer to fund: add a top-level deployer")
    return BesuNetworkSpec(
        consortium=consortium,
        chain_id=chain_id,
        validators=tuple(validators),
        qbft=qbft,
        deployer=to_checksum_address(deployer) if deployer else None,
        fund_deployer_wei=fund_deployer_wei,
        extra_accounts=tuple(to_checksum_address(a) for a in extra_accounts),
        source=source,
        browser_rpc=browser_rpc,
    )


def _browser_rpc_node(path: Path, raw: Mapping[str, Any], validators: Sequence[ValidatorNode], members: Sequence[str]) -> BrowserRpcNode:
    known = {"member", "host", "p2pPort", "rpcHost", "rpcPort", "corsOrigins", "hostAllowlist"}
    for key in raw:
        if key not in known:
            raise ConsortiumFileError(path, f"browserRpc.{key}", f"unknown setting; known: {', '.join(sorted(known))}")
    member = raw.get("member", validators[0].member)
    if member not in members:
        raise ConsortiumFileError(path, "browserRpc.member", f"{member!r} is not a member of the consortium")
    beside = next((v for v in validators if v.member == member), validators[0])
    host = _ip_field(path, "browserRpc.host", raw.get("host", beside.host))
    rpc_host = _ip_field(path, "browserRpc.rpcHost", raw.get("rpcHost", "0.0.0.0"))
    p2p_port = _int_field(path, "browserRpc.p2pPort", raw, "p2pPort", max(v.p2p_port for v in validators) + 1, 1, 65535)
    rpc_port = _int_field(path, "browserRpc.rpcPort", raw, "rpcPort", DEFAULT_BROWSER_RPC_PORT, 1, 65535)
    origins = raw.get("corsOrigins", list(DEFAULT_CORS_ORIGINS))
    if not isinstance(origins, list) or not origins or not all(
            isinstance(o, str) and (o == "*" or re.fullmatch(r"https?://[^/\s]+", o)) for o in origins):
        raise ConsortiumFileError(path, "browserRpc.corsOrigins",
                                  "must be a non-empty list of origins such as \"https://scan.example.org\" (scheme and host, no path)")
    allowlist = raw.get("hostAllowlist", ["*"])
    if not isinstance(allowlist, list) or not allowlist or not all(isinstance(h, str) and h for h in allowlist):
        raise ConsortiumFileError(path, "browserRpc.hostAllowlist", "must be a non-empty list of host names")
    return BrowserRpcNode(member, host, p2p_port, rpc_host, rpc_port, tuple(origins), tuple(allowlist))


def _validator_node(path: Path, where: str, member: str, index: int, raw: Mapping[str, Any]) -> ValidatorNode:
    known = {"host", "p2pPort", "rpcHost", "rpcPort", "hostAllowlist"}
    for key in raw:
        if key not in known:
            raise ConsortiumFileError(path, f"{where}.{key}", f"unknown setting; known: {', '.join(sorted(known))}")
    host = _ip_field(path, f"{where}.host", raw.get("host", "127.0.0.1"))
    rpc_host = _ip_field(path, f"{where}.rpcHost", raw.get("rpcHost", "127.0.0.1"))
    p2p_port = _int_field(path, f"{where}.p2pPort", raw, "p2pPort", DEFAULT_P2P_PORT + index, 1, 65535)
    rpc_port = _int_field(path, f"{where}.rpcPort", raw, "rpcPort", DEFAULT_RPC_PORT + index, 1, 65535)
    default_allowlist = ["localhost", "127.0.0.1"] + ([rpc_host] if rpc_host not in ("127.0.0.1", "0.0.0.0") else [])
    allowlist = raw.get("hostAllowlist", default_allowlist)
    if not isinstance(allowlist, list) or not allowlist or not all(isinstance(h, str) and h for h in allowlist):
        raise ConsortiumFileError(path, f"{where}.hostAllowlist", "must be a non-empty list of host names")
    if not _slug(member):
        raise ConsortiumFileError(path, where, f"member name {member!r} gives no usable folder name")
    return ValidatorNode(member, host, p2p_port, rpc_host, rpc_port, tuple(allowlist))


def _int_field(path: Path, where: str, raw: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, str) and re.fullmatch(r"0x[0-9a-fA-F]+|[0-9]+", value):
        value = int(value, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConsortiumFileError(path, where, f"must be a whole number from {low} to {high}")
    return value


def _ip_field(path: Path, where: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConsortiumFileError(
            path, where, f"{value!r} is not an IP address (Besu's enode URLs and bind addresses take IP addresses)"
        ) from None


def _unique(path: Path, where: str, what: str, values: Sequence[str]) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise ConsortiumFileError(path, where, f"two validators share the {what} {value!r}")
        seen.add(value)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
