"""Hyperledger Besu QBFT network configuration for a Waymark consortium.

From a consortium file (the same file `waymark deploy --consortium` reads) this generates a
genesis with QBFT, zero base fee and every fork through Cancun at genesis; one secp256k1 node
key, `config.toml` and enode URL per validator (one validator per member); and the
`permissions_config.toml` whose account allowlist holds the accounts of the consortium's
active organisations, read from a deployed ConsortiumRegistry or, before deployment, from the
file. Besu cannot be installed where Waymark is developed, so every file follows Besu's
documented formats and is checked by tests/devnet/test_besu_config.py rather than by a node.

Key ceremony: each member runs `waymark devnet besu-key` on its own machine, which makes its
node key there and writes an identity file holding only public material (public key, address,
enode URL). The coordinator runs `besu-config --public-keys DIR` on those files: the network
is built from public material alone, and no secret key leaves its member.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, cast

import rlp
import rlp.exceptions
from coincurve import PrivateKey, PublicKey
from eth_utils.address import is_address, to_canonical_address, to_checksum_address
from eth_utils.crypto import keccak
from rlp.sedes import big_endian_int

from node.chain.consortium import ConsortiumFileError, ConsortiumSpec, load_consortium
from node.errors import WaymarkError
from node.paths import DEVNET_DIR
from node.chain.registry import OrgStatus, RegistryClient

BESU_DIR = DEVNET_DIR / "besu"
DEFAULT_NETWORK_DIR = BESU_DIR / "network"  # git-ignored: it holds the validators' node keys

GENERATOR = "waymark devnet besu-config"
RPC_APIS = ("ETH", "NET", "QBFT", "WEB3", "TXPOOL")
# What browsers (the scanner page) may call: reads of the chain, nothing that administers a node.
BROWSER_RPC_APIS = ("ETH", "NET", "WEB3")
BROWSER_RPC_FOLDER = "browser-rpc"
DEFAULT_BROWSER_RPC_PORT = 8645
DEFAULT_CORS_ORIGINS = ("http://localhost:8700", "http://127.0.0.1:8700")  # the scan API's default address
IDENTITY_FILE = "identity.json"
# QBFT tolerates f faulty validators out of 3f + 1; fewer than 4 tolerates none.
MIN_VALIDATORS = 4
# The mixHash every IBFT 2.0 / QBFT block carries ("ctical byzantine fault tolerance" in ASCII).
BFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
BLOCK_FORKS = (
    "homesteadBlock",
    "eip150Block",
    "eip155Block",
    "eip158Block",
    "byzantiumBlock",
    "constantinopleBlock",
    "petersburgBlock",
    "istanbulBlock",
    "muirGlacierBlock",
    "berlinBlock",
    "londonBlock",
    "arrowGlacierBlock",
    "grayGlacierBlock",
)
TIME_FORKS = ("shanghaiTime", "cancunTime")
# Chain ids a consortium must not reuse: public networks, and the Anvil devnet whose keys are public
# (signing refuses devnet keys everywhere except on chain 31337, so the consortium must not be 31337).
RESERVED_CHAIN_IDS = {
    1: "Ethereum mainnet",
    17000: "Holesky",
    560048: "Hoodi",
    11155111: "Sepolia",
    31337: "the Anvil devnet, whose keys are public",
}
DEFAULT_P2P_PORT = 30303
DEFAULT_RPC_PORT = 8555  # off 8545 so a Besu node and the Anvil devnet can run side by side
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class BesuConfigError(WaymarkError):
    code = "besu_config_error"


class NodeKeyError(BesuConfigError):
    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"node key {path}: {problem}")


class GenesisWouldChange(BesuConfigError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} exists and the new genesis differs from it; a running network cannot change its genesis. "
            "Use --keep-genesis to refresh the allowlists and node configurations only, "
            "or --force to start a new network (its chain data must then be deleted)"
        )


class GenesisMissing(BesuConfigError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"--keep-genesis needs the network's existing genesis, but {path} does not exist")


class ExtraDataInvalid(BesuConfigError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"QBFT extraData: {problem}")


# --- the network description -------------------------------------------------------------


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


# --- node keys and enode URLs --------------------------------------------------------------


@dataclass(frozen=True)
class NodeKey:
    """A node's public identity. The private key stays in its key file and is never held here."""

    public_key: bytes  # 64 bytes: the uncompressed secp256k1 point without its 0x04 prefix

    @property
    def address(self) -> str:
        return to_checksum_address(keccak(self.public_key)[-20:])

    def enode(self, host: str, port: int) -> str:
        return enode_url(self.public_key, host, port)


def _public_of(secret: bytes) -> NodeKey:
    return NodeKey(PrivateKey(secret).public_key.format(compressed=False)[1:])


def load_or_create_node_key(path: Path) -> tuple[NodeKey, bool]:
    """The node key in `path` (Besu's format: 0x and 64 hex digits), created with mode 0600 if absent.
    Returns (key, created). Existing keys are never replaced: the validator's identity is in the genesis."""
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise NodeKeyError(path, "other users can read it; run `chmod 600` on it (it is the validator's secret)")
        text = path.read_text().strip()
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", text):
            raise NodeKeyError(path, "is not 64 hex digits")
        secret = bytes.fromhex(text.removeprefix("0x"))
        if not 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
            raise NodeKeyError(path, "is not a valid secp256k1 private key")
        return _public_of(secret), False
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        secret = secrets.token_bytes(32)
        if 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
            break
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("0x" + secret.hex())
    return _public_of(secret), True


def enode_url(public_key: bytes, host: str, port: int) -> str:
    return f"enode://{public_key.hex()}@{host}:{port}"


def parse_enode(url: str) -> tuple[bytes, str, int]:
    """(public key, host, port) of an enode URL; the public key is checked to be on the curve."""
    match = re.fullmatch(r"enode://([0-9a-f]{128})@([^:@]+|\[[0-9a-fA-F:]+\]):(\d+)", url)
    if not match:
        raise BesuConfigError(f"not an enode URL: {url!r}")
    public_key = bytes.fromhex(match.group(1))
    PublicKey(b"\x04" + public_key)  # raises if the point is not on secp256k1
    return public_key, match.group(2), int(match.group(3))


# --- QBFT extraData ------------------------------------------------------------------------


@dataclass(frozen=True)
class QbftExtraData:
    vanity: bytes
    validators: tuple[str, ...]
    vote: tuple[bytes, ...]
    round: int
    seals: tuple[bytes, ...]


def qbft_extra_data(validators: Sequence[str], vanity: bytes = bytes(32)) -> bytes:
    """RLP([32-byte vanity, [validator addresses], [] (no vote), round 0, [] (no seals)]), the
    genesis form of QBFT's extraData, validators in the order given."""
    if len(vanity) != 32:
        raise ExtraDataInvalid(f"vanity must be 32 bytes, got {len(vanity)}")
    addresses = [to_canonical_address(v) for v in validators]
    if len(set(addresses)) != len(addresses):
        raise ExtraDataInvalid("a validator is listed twice")
    # rlp ships no type hints, so its encode is Any to mypy.
    return cast(bytes, rlp.encode([vanity, addresses, [], big_endian_int.serialize(0), []]))


def decode_qbft_extra_data(data: bytes) -> QbftExtraData:
    try:
        items = rlp.decode(data)
    except rlp.exceptions.DecodingError as exc:
        raise ExtraDataInvalid(f"not RLP ({exc})") from None
    if not isinstance(items, list) or len(items) != 5:
        raise ExtraDataInvalid("must be a list of 5 items: vanity, validators, vote, round, seals")
    vanity, validators, vote, round_, seals = items
    if not isinstance(vanity, bytes) or len(vanity) != 32:
        raise ExtraDataInvalid("vanity must be 32 bytes")
    if not isinstance(validators, list) or not all(isinstance(v, bytes) and len(v) == 20 for v in validators):
        raise ExtraDataInvalid("validators must be a list of 20-byte addresses")
    if not isinstance(vote, list) or not isinstance(round_, bytes) or not isinstance(seals, list):
        raise ExtraDataInvalid("vote must be a list, round a scalar, seals a list")
    try:
        round_number = big_endian_int.deserialize(round_)
    except rlp.exceptions.DeserializationError:
        raise ExtraDataInvalid("round must be a scalar without leading zeros") from None
    return QbftExtraData(vanity, tuple(to_checksum_address(v) for v in validators), tuple(vote), round_number, tuple(seals))


# --- the files -----------------------------------------------------------------------------


def genesis(network: BesuNetworkSpec, validator_addresses: Iterable[str]) -> dict[str, Any]:
    config: dict[str, Any] = {"chainId": network.chain_id}
    config.update({fork: 0 for fork in BLOCK_FORKS})
    config.update({fork: 0 for fork in TIME_FORKS})
    config["zeroBaseFee"] = True
    config["qbft"] = {
        "blockperiodseconds": network.qbft.block_period_seconds,
        "epochlength": network.qbft.epoch_length,
        "requesttimeoutseconds": network.qbft.request_timeout_seconds,
    }
    alloc: dict[str, Any] = {}
    if network.fund_deployer_wei and network.deployer:
        alloc[network.deployer.lower().removeprefix("0x")] = {"balance": hex(network.fund_deployer_wei)}
    return {
        # Besu and geth read only the genesis keys they know, so this note is safe here.
        "comment": f"Generated by `{GENERATOR}` from {network.source}; do not edit, regenerate.",
        "config": config,
        "nonce": "0x0",
        "timestamp": "0x0",
        # Ascending address order: canonical, and independent of the members' order in the file.
        "extraData": "0x" + qbft_extra_data(sorted(validator_addresses, key=lambda a: a.lower())).hex(),
        "gasLimit": hex(network.qbft.gas_limit),
        "baseFeePerGas": "0x0",
        "difficulty": "0x1",
        "mixHash": BFT_MIX_HASH,
        "coinbase": "0x" + "00" * 20,
        "alloc": alloc,
    }


TomlValue = Union[str, int, bool, Sequence[str]]


def _toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string with ASCII escapes is a TOML basic string
    inline = "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if len(inline) <= 80:
        return inline
    return "[\n" + ",\n".join("  " + json.dumps(v) for v in value) + "\n]"


def _toml(header: Sequence[str], entries: Sequence[tuple[str, TomlValue] | str]) -> str:
    lines = [f"# {line}" if line else "#" for line in header]
    for entry in entries:
        lines.append(entry if isinstance(entry, str) else f"{entry[0]} = {_toml_value(entry[1])}")
    return "\n".join(lines) + "\n"


def _generated_header(network: BesuNetworkSpec, what: str) -> list[str]:
    return [f"Generated by `{GENERATOR}` from {network.source}; do not edit, regenerate.", what]


def node_config(network: BesuNetworkSpec, index: int, enodes: Sequence[str]) -> str:
    """The `config.toml` of validator `index`; paths are relative to the validator's folder,
    which is where Besu is started (`cd <folder> && besu --config-file=config.toml`)."""
    node = network.validators[index]
    # Every node boots from the first validator; the first boots from the second, so that it
    # finds the network again after a restart.
    bootnode = enodes[1] if index == 0 else enodes[0]
    return _toml(
        _generated_header(network, f"Besu node of {node.member} (QBFT validator {index + 1} of {len(network.validators)})."),
        [
            ("data-path", "data"),
            ("genesis-file", "../genesis.json"),
            ("node-private-key-file", "key"),
            ("sync-mode", "FULL"),
            ("logging", "INFO"),
            "",
            "# peer-to-peer",
            ("p2p-host", node.host),
            ("p2p-port", node.p2p_port),
            ("bootnodes", [bootnode]),
            "",
            "# JSON-RPC for this member's Waymark services",
            ("rpc-http-enabled", True),
            ("rpc-http-host", node.rpc_host),
            ("rpc-http-port", node.rpc_port),
            ("rpc-http-api", list(RPC_APIS)),
            ("host-allowlist", list(node.host_allowlist)),
            ("revert-reason-enabled", True),
            "",
            "# free gas: every node must accept a zero gas price",
            ("min-gas-price", 0),
            "",
            "# local permissioning: only allowlisted nodes connect, only allowlisted accounts transact",
            ("permissions-nodes-config-file-enabled", True),
            ("permissions-nodes-config-file", "../permissions_config.toml"),
            ("permissions-accounts-config-file-enabled", True),
            ("permissions-accounts-config-file", "../permissions_config.toml"),
        ],
    )


def browser_rpc_config(network: BesuNetworkSpec, enodes: Sequence[str]) -> str:
    """The `config.toml` of the browsers' RPC node: a full node that validates nothing, serves
    ETH, NET and WEB3 only (no QBFT, TXPOOL, ADMIN, PERM or DEBUG), to the CORS origins listed."""
    node = network.browser_rpc
    assert node is not None
    return _toml(
        _generated_header(network, f"Read-only JSON-RPC for browsers, run by {node.member}; not a validator."),
        [
            ("data-path", "data"),
            ("genesis-file", "../genesis.json"),
            ("node-private-key-file", "key"),
            ("sync-mode", "FULL"),
            ("logging", "INFO"),
            "",
            "# peer-to-peer: follows the validators",
            ("p2p-host", node.host),
            ("p2p-port", node.p2p_port),
            ("bootnodes", list(enodes[: len(network.validators)][:2])),
            "",
            "# JSON-RPC for browsers: chain reads only, from these origins; no admin API",
            ("rpc-http-enabled", True),
            ("rpc-http-host", node.rpc_host),
            ("rpc-http-port", node.rpc_port),
            ("rpc-http-api", list(BROWSER_RPC_APIS)),
            ("rpc-http-cors-origins", list(node.cors_origins)),
            ("host-allowlist", list(node.host_allowlist)),
            ("rpc-ws-enabled", False),
            ("graphql-http-enabled", False),
            ("rpc-max-logs-range", 5000),
            "",
            "# free gas, and the same permissioning as every node",
            ("min-gas-price", 0),
            ("permissions-nodes-config-file-enabled", True),
            ("permissions-nodes-config-file", "../permissions_config.toml"),
            ("permissions-accounts-config-file-enabled", True),
            ("permissions-accounts-config-file", "../permissions_config.toml"),
        ],
    )


def permissions_config(network: BesuNetworkSpec, accounts: Sequence[str], enodes: Sequence[str], accounts_source: str) -> str:
    return _toml(
        _generated_header(network, f"Accounts: {accounts_source}. Nodes: the consortium's validators."),
        [("accounts-allowlist", list(accounts)), ("nodes-allowlist", list(enodes))],
    )


def normalise_accounts(accounts: Iterable[str]) -> list[str]:
    """Lower-case, deduplicated, in first-seen order: Besu empties an accounts allowlist that
    holds a duplicate, and compares addresses in lower case."""
    seen: dict[str, None] = {}
    for account in accounts:
        if not is_address(account):
            raise BesuConfigError(f"not an account address: {account!r}")
        seen.setdefault(account.lower(), None)
    return list(seen)


def accounts_from_registry(registry: RegistryClient, extra: Iterable[str] = ()) -> list[str]:
    """Every account of every ACTIVE organisation in the registry (then `extra`)."""
    active = [a for org in registry.organisations() if org.status == OrgStatus.ACTIVE for a in org.accounts]
    return normalise_accounts([*active, *extra])


def accounts_before_deployment(network: BesuNetworkSpec) -> list[str]:
    """Before the registry exists: the founding members' accounts and the deployer (then the extras)."""
    if network.deployer is None:
        raise BesuConfigError(
            f"{network.source}: deployer: the account that will deploy Waymark must be allowlisted before the registry exists; "
            "add a top-level deployer to the consortium file or pass --deployer"
        )
    founding = [a for m in network.consortium.members for a in (m.account, *m.other_accounts)]  # anchor accounts too
    return normalise_accounts([*founding, network.deployer, *network.extra_accounts])


def render_network(
    network: BesuNetworkSpec, keys: Sequence[NodeKey], accounts: Sequence[str], accounts_source: str,
    browser_key: NodeKey | None = None,
) -> dict[str, str]:
    """Every generated file (relative path -> text) from public material alone: the network, its
    validators' public keys and the browsers' RPC node's public key (needed when the network has one)."""
    if len(keys) != len(network.validators):
        raise BesuConfigError(f"{len(network.validators)} validators but {len(keys)} node keys")
    if network.browser_rpc is not None and browser_key is None:
        raise BesuConfigError("the network has a browsers' RPC node but no public key was given for it")
    enodes = [key.enode(v.host, v.p2p_port) for key, v in zip(keys, network.validators)]
    if network.browser_rpc is not None and browser_key is not None:
        enodes.append(browser_key.enode(network.browser_rpc.host, network.browser_rpc.p2p_port))
    accounts = normalise_accounts(accounts)
    files = {
        "genesis.json": json.dumps(genesis(network, [k.address for k in keys]), indent=2) + "\n",
        "permissions_config.toml": permissions_config(network, accounts, enodes, accounts_source),
    }
    for i, node in enumerate(network.validators):
        files[f"{node.slug}/config.toml"] = node_config(network, i, enodes)
    browser: dict[str, Any] | None = None
    if network.browser_rpc is not None and browser_key is not None:
        files[f"{BROWSER_RPC_FOLDER}/config.toml"] = browser_rpc_config(network, enodes)
        b = network.browser_rpc
        browser = {
            "member": b.member,
            "folder": BROWSER_RPC_FOLDER,
            "publicKey": "0x" + browser_key.public_key.hex(),
            "enode": enodes[-1],
            "rpcUrl": f"http://{b.host if b.rpc_host == '0.0.0.0' else b.rpc_host}:{b.rpc_port}",
            "apis": list(BROWSER_RPC_APIS),
            "corsOrigins": list(b.cors_origins),
        }
    summary: dict[str, Any] = {
        "generated": f"by `{GENERATOR}` from {network.source}; do not edit",
        "chainId": network.chain_id,
        "accountsSource": accounts_source,
        "validators": [
            {
                "member": node.member,
                "folder": node.slug,
                "address": key.address,
                "publicKey": "0x" + key.public_key.hex(),
                "enode": enode,
                "rpcUrl": f"http://{node.rpc_host if node.rpc_host != '0.0.0.0' else '127.0.0.1'}:{node.rpc_port}",
            }
            for node, key, enode in zip(network.validators, keys, enodes)
        ],
    }
    if browser is not None:
        summary["browserRpc"] = browser
    summary["memberNodes"] = member_nodes(network)
    files["network.json"] = json.dumps(summary, indent=2) + "\n"
    return files


def member_nodes(network: BesuNetworkSpec) -> list[dict[str, Any]]:
    """Each member's Waymark node as the consortium file founds it: its public base URL (the
    registry's node directory; null for none) or the member whose node hosts it."""
    members = network.consortium.members
    return [
        {
            "member": m.name,
            "nodeUrl": m.node_url or None,
            "hostedBy": members[m.host - 1].name if m.host else None,
        }
        for m in members
    ]


def public_keys_of(network_json: Mapping[str, Any]) -> dict[str, NodeKey]:
    """Member name -> validator node key, and BROWSER_RPC_FOLDER -> the browsers' node's key, from a
    generated network.json (to re-render without the secrets)."""
    keys = {v["member"]: NodeKey(bytes.fromhex(v["publicKey"][2:])) for v in network_json["validators"]}
    if "browserRpc" in network_json:
        keys[BROWSER_RPC_FOLDER] = NodeKey(bytes.fromhex(network_json["browserRpc"]["publicKey"][2:]))
    return keys


# --- key ceremony: public material only ---------------------------------------------------


class IdentityInvalid(BesuConfigError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def node_endpoint(network: BesuNetworkSpec, member: str, browser_rpc: bool = False) -> tuple[str, int, str]:
    """(p2p host, p2p port, folder) of `member`'s validator, or of the browsers' RPC node it runs."""
    if browser_rpc:
        node = network.browser_rpc
        if node is None or node.member != member:
            raise BesuConfigError(f"{member!r} does not run the browsers' RPC node of this network")
        return node.host, node.p2p_port, node.slug
    for v in network.validators:
        if v.member == member:
            return v.host, v.p2p_port, v.slug
    raise BesuConfigError(f"{member!r} runs no validator in this network (members[].validator)")


def member_identity(network: BesuNetworkSpec, member: str, folder: Path, browser_rpc: bool = False) -> dict[str, Any]:
    """On the member's own machine: create its node key in `folder/key` (0600; kept if there) and
    write `folder/identity.json` with only public material: member, role, public key, address, enode."""
    host, port, _slug_ = node_endpoint(network, member, browser_rpc)
    key, _created = load_or_create_node_key(folder / "key")
    identity = {
        "comment": f"Public identity of a Besu node, made by `waymark devnet besu-key`; hand this file over, keep {folder / 'key'}",
        "chainId": network.chain_id,
        "member": member,
        "role": BROWSER_RPC_FOLDER if browser_rpc else "validator",
        "publicKey": "0x" + key.public_key.hex(),
        "address": key.address,
        "enode": key.enode(host, port),
    }
    (folder / IDENTITY_FILE).write_text(json.dumps(identity, indent=2) + "\n")
    return identity


def read_identity(path: Path, network: BesuNetworkSpec) -> tuple[str, str, NodeKey]:
    """(member, role, key) of an identity file, checked: public key on the curve, address and enode
    derived from it, enode host and port those of the consortium file, and no secret in the file."""
    where = str(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IdentityInvalid(where, f"not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise IdentityInvalid(where, "must be a JSON object")
    allowed = {"comment", "chainId", "member", "role", "publicKey", "address", "enode"}
    if set(data) - allowed:
        raise IdentityInvalid(where, f"unexpected fields {sorted(set(data) - allowed)}; an identity holds public material only")
    member, role = data.get("member"), data.get("role", "validator")
    if data.get("chainId") != network.chain_id:
        raise IdentityInvalid(where, f"is for chain {data.get('chainId')}, the consortium runs chain {network.chain_id}")
    if role not in ("validator", BROWSER_RPC_FOLDER) or not isinstance(member, str):
        raise IdentityInvalid(where, "needs a member and a role (validator or browser-rpc)")
    text = data.get("publicKey")
    if not isinstance(text, str) or not re.fullmatch(r"0x[0-9a-fA-F]{128}", text):
        raise IdentityInvalid(where, "publicKey must be 0x and 128 hex digits")
    try:
        PublicKey(b"\x04" + bytes.fromhex(text[2:]))
    except ValueError:
        raise IdentityInvalid(where, "publicKey is not a point of secp256k1") from None
    key = NodeKey(bytes.fromhex(text[2:]))
    host, port, _folder = node_endpoint(network, member, role == BROWSER_RPC_FOLDER)
    if data.get("address") != key.address:
        raise IdentityInvalid(where, f"address {data.get('address')} is not that of its public key ({key.address})")
    if data.get("enode") != key.enode(host, port):
        raise IdentityInvalid(where, f"enode is not {key.enode(host, port)} (its public key at the consortium file's host and port)")
    return member, role, key


def identities_from(paths: Iterable[Path], network: BesuNetworkSpec) -> tuple[list[NodeKey], NodeKey | None]:
    """The validators' keys in the network's order, and the browsers' node's key, from identity
    files (public material only). Every validator must have exactly one."""
    found: dict[tuple[str, str], NodeKey] = {}
    for path in paths:
        member, role, key = read_identity(path, network)
        if (member, role) in found and found[(member, role)] != key:
            raise IdentityInvalid(str(path), f"a second, different {role} identity of {member}")
        found[(member, role)] = key
    missing = [v.member for v in network.validators if (v.member, "validator") not in found]
    if missing:
        raise BesuConfigError(f"no validator identity from {', '.join(missing)}: each runs `waymark devnet besu-key` and hands over its identity.json")
    browser = None
    if network.browser_rpc is not None:
        browser = found.get((network.browser_rpc.member, BROWSER_RPC_FOLDER))
        if browser is None:
            raise BesuConfigError(f"no browser-rpc identity from {network.browser_rpc.member}, which runs the browsers' RPC node")
    return [found[(v.member, "validator")] for v in network.validators], browser


def _genesis_differs(path: Path, new_text: str) -> bool:
    """True if the genesis in `path` defines another chain than `new_text` (the comment aside)."""
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return True
    new = json.loads(new_text)
    if not isinstance(old, dict):
        return True
    old.pop("comment", None)
    new.pop("comment", None)
    return bool(old != new)


@dataclass(frozen=True)
class GeneratedValidator:
    member: str
    folder: Path
    address: str
    enode: str


@dataclass(frozen=True)
class GeneratedNetwork:
    out_dir: Path
    validators: tuple[GeneratedValidator, ...]
    accounts: tuple[str, ...]
    written: tuple[Path, ...]
    new_keys: tuple[Path, ...]
    genesis_kept: bool


def generate(
    network: BesuNetworkSpec,
    out_dir: Path,
    accounts: Sequence[str],
    accounts_source: str,
    *,
    keep_genesis: bool = False,
    force: bool = False,
    public: tuple[Sequence[NodeKey], NodeKey | None] | None = None,
) -> GeneratedNetwork:
    """Write the network's files into `out_dir`, creating node keys that do not exist yet.

    With `keep_genesis` the existing genesis.json is left alone (the network runs already):
    the allowlists and node configurations are rewritten, and validators new to the file get
    keys and configurations (they join through the existing validators' QBFT votes).
    Without it, a genesis.json that would change is refused unless `force`.

    With `public` (the validators' keys and the browsers' node's key from `identities_from`), the
    network is built from public material alone: no key file is read or created.
    """
    genesis_path = out_dir / "genesis.json"
    if keep_genesis and not genesis_path.exists():
        raise GenesisMissing(genesis_path)
    keys: list[NodeKey] = []
    new_keys: list[Path] = []
    browser_key: NodeKey | None = None
    if public is not None:
        keys, browser_key = list(public[0]), public[1]
    else:
        nodes: list[ValidatorNode | BrowserRpcNode] = [*network.validators, *([network.browser_rpc] if network.browser_rpc else [])]
        for node in nodes:
            key, created = load_or_create_node_key(out_dir / node.slug / "key")
            if isinstance(node, BrowserRpcNode):
                browser_key = key
            else:
                keys.append(key)
            if created:
                new_keys.append(out_dir / node.slug / "key")
    files = render_network(network, keys, accounts, accounts_source, browser_key)
    if keep_genesis:
        del files["genesis.json"]
    elif genesis_path.exists() and not force and _genesis_differs(genesis_path, files["genesis.json"]):
        raise GenesisWouldChange(genesis_path)
    written = []
    for relative, text in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return GeneratedNetwork(
        out_dir=out_dir,
        validators=tuple(
            GeneratedValidator(node.member, out_dir / node.slug, key.address, key.enode(node.host, node.p2p_port))
            for node, key in zip(network.validators, keys)
        ),
        accounts=tuple(normalise_accounts(accounts)),
        written=tuple(written),
        new_keys=tuple(new_keys),
        genesis_kept=keep_genesis,
    )
