"""Devnet governance: the demo members' own accounts vote and publish what a real consortium's
members would each do from their own systems (devnet and tests only)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.chain.devnet_keys import devnet_account
from node.chain.registry import ProposalKind, RegistryClient, verifier_bundle_data
from node.documents.keys import OrgKeystore
from waymark.devnet.consortium import DEMO_MEMBERS, demo_org_id


def demo_voters(*, without: Collection[str] = ()) -> list[LocalAccount]:
    """The demo members' first accounts in founding order, but those of the members `without` (keys)."""
    return [devnet_account(m.account_index) for m in DEMO_MEMBERS if m.key not in without]


def pass_proposal(registry: RegistryClient, kind: ProposalKind, data: bytes, voters: Iterable[LocalAccount]) -> int:
    """Propose with the first of `voters` and vote with the next ones until the proposal executes
    (the registry needs more than half of the Active members); its id. RuntimeError if they run out first."""
    accounts = iter(voters)
    proposal = registry.propose(kind, data, next(accounts))
    if registry.proposal_executed(proposal):
        return proposal
    for voter in accounts:
        if registry.vote(proposal, voter):
            return proposal
    raise RuntimeError(f"proposal {proposal} ({kind.name}) did not reach the threshold with the votes given")


def approve_verifier_bundle(client: ChainClient, deployment: Deployment, digest: bytes) -> bool:
    """Vote `digest` into ConsortiumRegistry.verifierBundleHash (SetVerifierBundle) with the demo
    members' accounts, until it passes; False when it was already the approved bundle."""
    registry = RegistryClient(client, deployment)
    if registry.verifier_bundle_hash() == digest:
        return False
    pass_proposal(registry, ProposalKind.SET_VERIFIER_BUNDLE, verifier_bundle_data(digest), demo_voters())
    return True


def publish_document_keys(client: ChainClient, deployment: Deployment, folder: Path) -> dict[str, Path]:
    """Each demo member's document keystore in `folder` (made once, kept), its public key published
    in the member's node record (the URL there is kept); member key -> keystore path."""
    registry = RegistryClient(client, deployment)
    paths = {}
    for member in DEMO_MEMBERS:
        path = folder / f"{member.key}.documents.json"
        org_id = demo_org_id(member.key)
        keystore = OrgKeystore.load(path) if path.exists() else OrgKeystore.create(path, org_id)
        record = registry.node_record(org_id)
        if record.encryption_key != keystore.public_key:
            registry.set_node_record(record.url, keystore.public_key, devnet_account(member.account_index))
        paths[member.key] = path
    return paths
