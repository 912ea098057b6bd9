"""Signed audit checkpoints: what a clean audit verified, so the next audit verifies only what
was anchored since.

A checkpoint says: "on chain C, up to block N (whose hash was H), every root anchored by the
ProvenanceRegistry at R (K roots, digest D over them in chain order) and every stored event
under them passed every check of the audit" — and it is signed (EIP-191 personal message over
its canonical JSON) by the auditor's own key. It is written only for an audit without any
discrepancy and over complete evidence (the node's database, not a partial bundle).

Before use (`verify_checkpoint`) the signature must recover to the auditor the caller trusts,
the chain id and registry must be this audit's, and the chain must still hold block N with hash
H (a block commits to every block before it, so the anchors the checkpoint covers are still
those it covered); the re-audit then also recomputes K and D from its own replay of the chain.
Anything else refuses the checkpoint; a full audit (no checkpoint) is always available.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from node.audit.chain import AuditError, ChainHistory
from node.audit.model import AuditReport
from node.chain.client import ChainClient

VERSION = 1


class CheckpointRefused(AuditError):
    code = "audit_checkpoint_refused"

    def __init__(self, why: str) -> None:
        super().__init__(f"audit checkpoint refused: {why}; run a full audit (without --since)")


@dataclass(frozen=True)
class AuditCheckpoint:
    chain_id: int
    registry: str
    """ProvenanceRegistry address, checksummed."""
    to_block: int
    to_block_hash: str
    anchored_roots: int
    """Roots anchored in blocks up to `to_block`, all verified."""
    roots_digest: str
    """keccak256 of those roots concatenated in chain order."""
    events: int
    """Stored events verified under them."""
    evidence: str
    audited_at: str
    auditor: str
    """The signing auditor's address, checksummed."""

    def payload(self) -> bytes:
        """The canonical bytes that are signed."""
        return json.dumps({"version": VERSION, **asdict(self)}, sort_keys=True, separators=(",", ":")).encode()


def roots_digest(roots: Iterable[bytes]) -> str:
    return "0x" + keccak(b"".join(roots)).hex()


def covered_roots(history: ChainHistory, to_block: int) -> list[bytes]:
    """Roots anchored in blocks up to `to_block`, in chain order."""
    return [root for root, anchor in history.anchors.items() if anchor.block <= to_block]


def make_checkpoint(client: ChainClient, history: ChainHistory, report: AuditReport, registry: str,
                    auditor: LocalAccount) -> tuple[AuditCheckpoint, bytes]:
    """A signed checkpoint for a clean audit over complete evidence. Returns (checkpoint, signature)."""
    if report.discrepancies:
        raise CheckpointRefused(f"the audit found {len(report.discrepancies)} discrepancies; only a clean audit is checkpointed")
    roots = covered_roots(history, history.to_block)
    checkpoint = AuditCheckpoint(
        chain_id=history.chain_id,
        registry=to_checksum_address(registry),
        to_block=history.to_block,
        to_block_hash="0x" + bytes(client.w3.eth.get_block(history.to_block)["hash"]).hex(),
        anchored_roots=len(roots),
        roots_digest=roots_digest(roots),
        events=report.checked.events,
        evidence=report.evidence,
        audited_at=report.started_at,
        auditor=auditor.address,
    )
    signature = bytes(auditor.sign_message(encode_defunct(checkpoint.payload())).signature)
    return checkpoint, signature


def save_checkpoint(path: Path, checkpoint: AuditCheckpoint, signature: bytes) -> None:
    data = {"version": VERSION, **asdict(checkpoint), "signature": "0x" + signature.hex()}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[AuditCheckpoint, bytes]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        if data.pop("version") != VERSION:
            raise CheckpointRefused(f"{path} is of another version")
        signature = bytes.fromhex(str(data.pop("signature")).removeprefix("0x"))
        return AuditCheckpoint(**data), signature
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointRefused(f"{path} is not an audit checkpoint ({type(exc).__name__}: {exc})") from None


def verify_checkpoint(client: ChainClient, checkpoint: AuditCheckpoint, signature: bytes, *, auditor: str,
                      registry: str) -> None:
    """Refuse (CheckpointRefused) unless `auditor` signed it, it is of this chain and registry, and
    the chain still holds its block with the same hash."""
    try:
        signer = Account.recover_message(encode_defunct(checkpoint.payload()), signature=signature)
    except Exception as exc:  # noqa: BLE001 - any malformed signature is a refusal
        raise CheckpointRefused(f"its signature does not recover ({type(exc).__name__})") from None
    if signer != to_checksum_address(auditor) or checkpoint.auditor != signer:
        raise CheckpointRefused(f"it is signed by {signer}, not by the auditor {to_checksum_address(auditor)}")
    if checkpoint.chain_id != client.chain_id or checkpoint.registry != to_checksum_address(registry):
        raise CheckpointRefused(f"it is of chain {checkpoint.chain_id} registry {checkpoint.registry}, "
                                f"not of chain {client.chain_id} registry {to_checksum_address(registry)}")
    try:
        block_hash = "0x" + bytes(client.w3.eth.get_block(checkpoint.to_block)["hash"]).hex()
    except Exception:  # noqa: BLE001 - no such block
        block_hash = "(none)"
    if block_hash != checkpoint.to_block_hash:
        raise CheckpointRefused(f"block {checkpoint.to_block} is now {block_hash}, not {checkpoint.to_block_hash} (the chain changed)")


def check_covered(history: ChainHistory, checkpoint: AuditCheckpoint) -> frozenset[bytes]:
    """The roots the checkpoint covers, after checking this replay agrees with it."""
    roots = covered_roots(history, checkpoint.to_block)
    if len(roots) != checkpoint.anchored_roots or roots_digest(roots) != checkpoint.roots_digest:
        raise CheckpointRefused(f"the chain's anchors up to block {checkpoint.to_block} are not those it covers")
    return frozenset(roots)
