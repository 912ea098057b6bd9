"""Every file of a Besu network from public material (`render_network`), and writing them with
the node keys made where they do not exist yet (`generate`), never changing a running network's
genesis unless asked."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.paths import DEVNET_DIR
from waymark.devnet.besu.configs import BROWSER_RPC_APIS, browser_rpc_config, node_config, normalise_accounts, permissions_config
from waymark.devnet.besu.errors import BesuConfigError, GenesisMissing, GenesisWouldChange
from waymark.devnet.besu.genesis import genesis
from waymark.devnet.besu.node_keys import NodeKey, load_or_create_node_key
from waymark.devnet.besu.spec import BROWSER_RPC_FOLDER, GENERATOR, BesuNetworkSpec, BrowserRpcNode, ValidatorNode

BESU_DIR = DEVNET_DIR / "besu"
DEFAULT_NETWORK_DIR = BESU_DIR / "network"  # git-ignored: it holds the validators' node keys


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
