"""Deploy Waymark's contracts and record them in `deployments/<chainId>.json`.

Deploying again against a chain that already runs the recorded contracts, built from the
same artifacts, changes nothing. If the chain lost them (a devnet reset) or the
contracts changed, the whole set is deployed afresh, since they reference each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from node.chain.build import load_artifact
from node.chain.client import ChainClient
from node.chain.errors import DeploymentMissing
from node.chain.consortium import ConsortiumSpec

@dataclass(frozen=True)
class DeployedContract:
    address: str
    block: int
    tx_hash: str
    code_hash: str  # sha256 of the runtime code on chain (immutables included)
    artifact_hash: str  # sha256 of the creation bytecode it was deployed from


@dataclass
class Deployment:
    chain_id: int
    deployer: str
    start_block: int
    contracts: dict[str, DeployedContract] = field(default_factory=dict)

    def address(self, name: str) -> str:
        if name not in self.contracts:
            raise DeploymentMissing(f"no {name} in the deployment of chain {self.chain_id}")
        return self.contracts[name].address

    def to_json(self) -> str:
        return json.dumps(
            {"generated": "by `waymark deploy`; do not edit", **asdict(self)}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> "Deployment":
        data = json.loads(text)
        return cls(
            chain_id=data["chain_id"],
            deployer=data["deployer"],
            start_block=data["start_block"],
            contracts={k: DeployedContract(**v) for k, v in data["contracts"].items()},
        )


def load_deployment(path: Path) -> Deployment:
    if not path.exists():
        raise DeploymentMissing(f"{path} does not exist")
    try:
        return Deployment.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise DeploymentMissing(f"{path} is not a deployment record ({exc})") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_of(name: str) -> str:
    """The artifact a deployment entry is built from: "DevStablecoin:wUSD" is a DevStablecoin."""
    return name.split(":", 1)[0]


def _artifact_hash(name: str) -> str:
    return _sha256(bytes.fromhex(load_artifact(artifact_of(name)).bytecode))


def is_current(client: ChainClient, deployment: Deployment, names: Sequence[str]) -> bool:
    """True if every named contract is recorded, built from today's artifacts and still on chain."""
    for name in names:
        recorded = deployment.contracts.get(name)
        if recorded is None or recorded.artifact_hash != _artifact_hash(name):
            return False
        code = bytes(client.w3.eth.get_code(recorded.address))  # type: ignore[arg-type]
        if not code or _sha256(code) != recorded.code_hash:
            return False
    return True


# Each step: the entry's name (its contract's name, or "<Contract>:<label>" for a second
# instance) and a function giving its constructor arguments from what is deployed.
Step = tuple[str, Callable[[dict[str, str]], list[Any]]]

ESCROW_DISPUTE_TIMEOUT = 14 * 24 * 3600  # seconds an arbitrator has to rule
ESCROW_FX_QUORUM = 2  # ORACLE organisations that must sign an FX quote


def waymark_steps(
    consortium: ConsortiumSpec, *, dispute_timeout: int = ESCROW_DISPUTE_TIMEOUT, fx_quorum: int = ESCROW_FX_QUORUM
) -> list[Step]:
    return [
        ("ConsortiumRegistry", lambda _: consortium.constructor_args()),
        ("ProvenanceRegistry", lambda done: [done["ConsortiumRegistry"]]),
        ("TradeEscrow", lambda done: [done["ConsortiumRegistry"], dispute_timeout, fx_quorum]),
    ]


def deploy(
    client: ChainClient,
    deployer: LocalAccount,
    steps: list[Step],
    record: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[Deployment, bool]:
    """Deploy unless the recorded deployment is current. Returns (deployment, deployed_now)."""
    names = [name for name, _ in steps]
    if record.exists():
        existing = load_deployment(record)
        if existing.chain_id == client.chain_id and is_current(client, existing, names):
            return existing, False
    deployment = Deployment(
        chain_id=client.chain_id, deployer=deployer.address, start_block=client.w3.eth.block_number
    )
    addresses: dict[str, str] = {}
    for name, arguments in steps:
        progress(name)
        receipt = client.deploy_receipt(artifact_of(name), *arguments(addresses), sender=deployer)
        address = str(receipt["contractAddress"])
        code = bytes(client.w3.eth.get_code(address))  # type: ignore[arg-type]
        addresses[name] = address
        deployment.contracts[name] = DeployedContract(
            address=address,
            block=int(receipt["blockNumber"]),
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            code_hash=_sha256(code),
            artifact_hash=_artifact_hash(name),
        )
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(deployment.to_json() + "\n")
    return deployment, True
