"""The key ceremony from public material: each member makes its node key on its own machine and
hands over an identity file (public key, address, enode URL); the coordinator checks them and
builds the network from them alone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coincurve import PublicKey

from waymark.devnet.besu.errors import BesuConfigError, IdentityInvalid
from waymark.devnet.besu.node_keys import NodeKey, load_or_create_node_key
from waymark.devnet.besu.spec import BROWSER_RPC_FOLDER, BesuNetworkSpec

IDENTITY_FILE = "identity.json"


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
