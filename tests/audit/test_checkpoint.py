"""Incremental audit: a clean audit is checkpointed, signed by the auditor's key; a re-audit from
that checkpoint verifies only what was anchored since, and refuses a checkpoint that another key
signed, that was edited, or whose block the chain no longer has."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import select, update
from typer.testing import CliRunner

from node.audit import (
    CheckpointRefused,
    DatabaseEvidence,
    DiscrepancyKind,
    SignedCheckpoint,
    audit,
    audit_and_checkpoint,
    audit_database,
    load_checkpoint,
    save_checkpoint,
)
from node.audit.checkpoint import AuditCheckpoint
from node.chain.keystore import write_keystore
from node.db import Event
from waymark.cmd_audit import app as audit_app
from waymark.devnet.anvil import AnvilControl
from tests.audit.conftest import World, capture_and_anchor
from tests.node.story import lot_story, story_events


def _checkpoint(world: World, auditor: LocalAccount, tmp_path: Path) -> SignedCheckpoint:
    report, made = audit_and_checkpoint(world.chain, world.deployment, DatabaseEvidence(world.db), auditor, workers=1)
    assert report.ok and made is not None
    save_checkpoint(tmp_path / "checkpoint.json", *made)
    checkpoint, signature = load_checkpoint(tmp_path / "checkpoint.json")
    assert (checkpoint, signature) == made
    return SignedCheckpoint(checkpoint, signature, auditor.address)


def _more_events(world: World) -> list[int]:
    """A third capture document (12 events) anchored after the checkpoint; returns their ids."""
    with world.db.session() as s:
        before = set(s.scalars(select(Event.id)))
    now = int(world.chain.w3.eth.get_block("latest")["timestamp"])
    capture_and_anchor(world.runtime, story_events(lot_story(now + 200)))
    with world.db.session() as s:
        return sorted(set(s.scalars(select(Event.id))) - before)


def _tamper(world: World, event_id: int) -> None:
    with world.db.write() as s:
        body = orjson.loads(s.execute(select(Event.body).where(Event.id == event_id)).scalar_one())
        body["readPoint"] = {"id": "urn:epc:id:sgln:9521234.54321.9"}
        s.execute(update(Event).where(Event.id == event_id).values(body=orjson.dumps(body).decode()))


def test_a_reaudit_from_a_signed_checkpoint_verifies_only_what_was_anchored_since(
    world: World, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    since = _checkpoint(world, accounts[19], tmp_path)
    assert since.checkpoint.events == 24 and since.checkpoint.anchored_roots == 8  # 2 lots x 4 organisations
    new = _more_events(world)
    report = audit(world.chain, world.deployment, DatabaseEvidence(world.db), workers=1, since=since)
    assert report.ok, [d.to_json() for d in report.discrepancies]
    assert (report.checked.events, report.checked.anchored_roots, report.checked.batches) == (len(new), 4, 4) == (12, 4, 4)
    assert report.from_block == since.checkpoint.to_block + 1
    assert f"checkpoint of block {since.checkpoint.to_block}" in report.evidence

    # A fault among the new events is found by the re-audit.
    _tamper(world, new[3])
    report = audit(world.chain, world.deployment, DatabaseEvidence(world.db), workers=2, since=since)
    assert [d.kind for d in report.discrepancies] == [DiscrepancyKind.HASH_MISMATCH]


def test_checkpoints_chain_and_an_old_fault_is_left_to_the_full_replay(
    world: World, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    first = _checkpoint(world, accounts[19], tmp_path)
    _more_events(world)
    report, made = audit_and_checkpoint(world.chain, world.deployment, DatabaseEvidence(world.db), accounts[19], workers=1, since=first)
    assert report.ok and made is not None
    assert (made[0].events, made[0].anchored_roots) == (36, 12)  # cumulative
    # What a checkpoint covers is not verified again; the full replay still checks everything.
    with world.db.session() as s:
        oldest = s.scalar(select(Event.id).order_by(Event.id))
    assert oldest is not None
    _tamper(world, oldest)
    second = SignedCheckpoint(made[0], made[1], accounts[19].address)
    assert audit(world.chain, world.deployment, DatabaseEvidence(world.db), workers=1, since=second).ok
    assert [d.kind for d in audit_database(world.chain, world.deployment, world.db, workers=1).discrepancies] == [
        DiscrepancyKind.HASH_MISMATCH]


def test_an_audit_with_discrepancies_is_not_checkpointed(world: World, accounts: list[LocalAccount]) -> None:
    with world.db.session() as s:
        oldest = s.scalar(select(Event.id).order_by(Event.id))
    assert oldest is not None
    _tamper(world, oldest)
    report, made = audit_and_checkpoint(world.chain, world.deployment, DatabaseEvidence(world.db), accounts[19], workers=1)
    assert not report.ok and made is None


@pytest.mark.parametrize("forgery", ["signed by another key", "edited after signing", "trusting another auditor"])
def test_a_checkpoint_not_signed_by_the_trusted_auditor_as_it_stands_is_refused(
    world: World, accounts: list[LocalAccount], tmp_path: Path, forgery: str
) -> None:
    since = _checkpoint(world, accounts[19], tmp_path)
    if forgery == "signed by another key":
        _report, made = audit_and_checkpoint(world.chain, world.deployment, DatabaseEvidence(world.db), accounts[18], workers=1)
        assert made is not None
        since = SignedCheckpoint(made[0], made[1], accounts[19].address)
    elif forgery == "edited after signing":
        edited: AuditCheckpoint = replace(since.checkpoint, to_block=since.checkpoint.to_block + 5)
        since = replace(since, checkpoint=edited)
    else:
        since = replace(since, auditor=accounts[18].address)
    with pytest.raises(CheckpointRefused, match="signed by"):
        audit(world.chain, world.deployment, DatabaseEvidence(world.db), workers=1, since=since)


def test_a_checkpoint_whose_block_the_chain_no_longer_has_is_refused(
    world: World, accounts: list[LocalAccount], tmp_path: Path, devnet: AnvilControl
) -> None:
    snapshot = devnet.snapshot()
    devnet.mine()
    since = _checkpoint(world, accounts[19], tmp_path)
    devnet.revert(snapshot)  # the chain went back: the checkpoint's block is another one now
    devnet.increase_time(7)  # (a block of another time: not the same block again)
    devnet.mine()
    with pytest.raises(CheckpointRefused, match="the chain changed"):
        audit(world.chain, world.deployment, DatabaseEvidence(world.db), workers=1, since=since)


def test_the_cli_writes_a_signed_checkpoint_and_reaudits_from_it(
    world: World, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    keystore = write_keystore(accounts[19], "pw", tmp_path / "auditor.json", light=True)
    (tmp_path / "pw").write_text("pw\n")
    chain = ["--rpc-url", world.chain.rpc_url, "--chain-id", str(world.chain.chain_id),
             "--deployment", str(tmp_path / "deployments" / f"{world.chain.chain_id}.json"),
             "--db", world.db.url.render_as_string(hide_password=False), "--workers", "1"]
    runner = CliRunner()
    first = runner.invoke(audit_app, ["verify", *chain, "--checkpoint", str(tmp_path / "cp.json"),
                                "--auditor-keystore", str(keystore), "--auditor-password-file", str(tmp_path / "pw")])
    assert first.exit_code == 0, first.output
    assert f"signed by {accounts[19].address}" in first.output
    _more_events(world)
    again = runner.invoke(audit_app, ["verify", *chain, "--since", str(tmp_path / "cp.json"), "--auditor", accounts[19].address])
    assert again.exit_code == 0, again.output
    refused = runner.invoke(audit_app, ["verify", *chain, "--since", str(tmp_path / "cp.json"), "--auditor", accounts[18].address])
    assert refused.exit_code != 0 and isinstance(refused.exception, CheckpointRefused)
