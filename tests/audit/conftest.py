"""An honest little world for the auditor: two lots' journeys captured and anchored, each organisation's events in a batch of its own,
one event attested by an account without the role (stored past the role check, for the
SIGNER_LACKED_ROLE case, only when asked), an order carried to release through the relayer
(stored attestations), and an order reached directly by a submitter and settled by an arbitrator
(calldata only). Real Anvil, real SQLite. Built once per module; each test gets its own copy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_account.signers.local import LocalAccount

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Database
from waymark.devnet.anvil import AnvilControl, AnvilProcess
from node.escrow import OrderTerms
from node.relayer.model import SignatureIn
from node.relayer.service import Relayer
from node.member.runtime import NodeRuntime, build_anchorer, build_capture
from tests.helpers import fast_node_settings
from node.settings import ChainSettings
from tests.node.escrow_env import DAY, EscrowEnv, attach_escrow_env, escrow_env, member
from tests.node.story import capture_document, lot_story, story_events

DB_FILE = "node.sqlite3"


@dataclass
class World:
    db: Database
    chain: ChainClient
    deployment: Deployment
    runtime: NodeRuntime
    env: EscrowEnv
    relayed: OrderTerms  # milestones through the relayer, released on the buyer's confirmation
    direct: OrderTerms  # shipped by a direct submission, disputed, ruled by the arbitrator


def capture_and_anchor(runtime: NodeRuntime, events: list[tuple[dict[str, Any], LocalAccount]], *,
                       check_roles: bool = True) -> None:
    """Capture the events and anchor them as the network does: each organisation's events in
    batches its own account anchors (node.protocol.verification counts only the attester's organisation's
    anchor, or its host's)."""
    capture = build_capture(runtime)
    by_signer: dict[str, list[tuple[dict[str, Any], LocalAccount]]] = {}
    for event, signer in events:
        by_signer.setdefault(signer.address, []).append((event, signer))
    for group in by_signer.values():
        body = orjson.dumps(capture_document(group, runtime.domain))
        capture.store(capture.check(body) if check_roles else capture.precheck(body))
        build_anchorer(runtime, group[0][1]).drain()


def node_runtime(db: Database, chain: ChainClient, deployment: Deployment) -> NodeRuntime:
    settings = fast_node_settings()
    return NodeRuntime(settings, ChainSettings(rpc_url=chain.rpc_url, chain_id=chain.chain_id, confirmations=0), db, chain, deployment)


@dataclass(frozen=True)
class BuiltWorld:
    """The world as built, once per module: its chain state and its files (database, deployment
    record, escrow terms) in folder."""
    folder: Path
    deployment: Deployment
    relayed: OrderTerms
    direct: OrderTerms


@pytest.fixture(scope="module")
def built_world(anvil: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltWorld]:
    """Built once per module (deploying, capturing, anchoring and settling take seconds); every
    test gets a world of its own from it (`world`). The module's chain changes are undone at its end."""
    control = AnvilControl(anvil.rpc_url)
    before = control.snapshot()
    try:
        folder = tmp_path_factory.mktemp("audit-world")
        chain = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
        db = Database(f"sqlite:///{folder / DB_FILE}")
        db.migrate()
        try:
            built = build_world(db, chain, folder)
        finally:
            db.dispose()  # closed: its files are copied whole
        yield BuiltWorld(folder, built.deployment, built.relayed, built.direct)
    finally:
        control.revert(before)


@pytest.fixture
def world(built_world: BuiltWorld, chain: ChainClient, tmp_path: Path) -> Iterator[World]:
    """The module's world, the test's own: the chain at the state it was built in (`chain` reverts
    to it after the test; `built_world`, of a wider scope, is set up before `chain` takes its
    snapshot), fresh clients, and a copy of its files in tmp_path."""
    shutil.copytree(built_world.folder, tmp_path, dirs_exist_ok=True)
    db = Database(f"sqlite:///{tmp_path / DB_FILE}")
    try:
        env = attach_escrow_env(chain, built_world.deployment, tmp_path)
        yield World(db, chain, env.deployment, node_runtime(db, chain, env.deployment), env, built_world.relayed,
                    built_world.direct)
    finally:
        db.dispose()


def build_world(db: Database, chain: ChainClient, folder: Path) -> World:
    env = escrow_env(chain, folder)
    runtime = node_runtime(db, chain, env.deployment)
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    for start in (now, now + 100):  # two lots, each in four batches (one per organisation)
        capture_and_anchor(runtime, story_events(lot_story(start)))

    relayer = Relayer(db, env.escrow, member(15), min_lifetime=60)
    relayed = env.open(env.terms(salt=1))
    for milestone in range(len(relayed.milestones)):
        pool = env.customs if relayed.milestones[milestone].role == "CUSTOMS" else env.carriers
        for signer in pool[:2]:
            sig = env.sign(signer, relayed, milestone)
            relayer.receive(SignatureIn(relayed.order_id, milestone, sig.signer, sig.signature, sig.deadline))
    deadline = env.now() + DAY
    env.escrow.confirm_by_signature(relayed, deadline, env.escrow.sign_confirmation(env.buyer, relayed.order_id, deadline),
                                    env.outsider)

    direct = env.open(env.terms(salt=2))
    env.reach(direct, 0)
    env.escrow.dispute(direct, b"\x01" * 32, env.buyer)
    env.escrow.rule(direct, 5000, b"\x02" * 32, env.arbitrator)
    return World(db, chain, env.deployment, runtime, env, relayed, direct)
