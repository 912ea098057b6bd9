"""Reading an evidence bundle back: the zip checked against its manifest, and the bundle as the
audit engine's `Evidence` (node.audit.evidence)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from node.audit.bundle.format import BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, FILES, MANIFEST, MalformedEvidenceBundle, sha256_hex
from node.audit.evidence import StoredBatch, StoredEscrowAttestation, StoredEvent
from node.chain.deploy import DeployedContract, Deployment


@dataclass(frozen=True)
class ManifestProblem:
    """A file of the bundle that does not match its manifest entry (edited, damaged, added, missing)."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


class Bundle:
    """An evidence bundle read back from its zip. Opening checks the manifest (`problems`) but
    refuses only what cannot be read at all: an edited file is still handed to the engine, which
    then reports what the edit broke."""

    def __init__(self, path: Path | str | bytes) -> None:
        self.path = "(bytes)" if isinstance(path, bytes) else str(path)
        try:
            with zipfile.ZipFile(io.BytesIO(path) if isinstance(path, bytes) else path) as archive:
                contents = {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
        except (OSError, zipfile.BadZipFile) as exc:
            raise MalformedEvidenceBundle(self.path, f"not a readable zip ({exc})") from None
        if MANIFEST not in contents:
            raise MalformedEvidenceBundle(self.path, f"no {MANIFEST}")
        self.manifest = self._json(MANIFEST, contents[MANIFEST])
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != BUNDLE_FORMAT:
            raise MalformedEvidenceBundle(self.path, f"{MANIFEST} does not name the format {BUNDLE_FORMAT}")
        if self.manifest.get("version") != BUNDLE_FORMAT_VERSION:
            raise MalformedEvidenceBundle(self.path, f"format version {self.manifest.get('version')!r}; this auditor reads {BUNDLE_FORMAT_VERSION}")
        self.problems = self._check(contents)
        for name in FILES:
            if name not in contents:
                raise MalformedEvidenceBundle(self.path, f"no {name}")
        chain = self._json("chain.json", contents["chain.json"])
        self.events: list[dict[str, Any]] = self._json("events.json", contents["events.json"])
        self.roots: list[dict[str, Any]] = self._json("roots.json", contents["roots.json"])
        self.escrow: dict[str, Any] = self._json("escrow.json", contents["escrow.json"])
        try:
            self.chain_id = int(chain["chainId"])
            self.deployment = Deployment(
                chain_id=self.chain_id,
                deployer=str(chain.get("deployer", "")),
                start_block=int(chain["startBlock"]),
                contracts={str(n): DeployedContract(**c) for n, c in chain["contracts"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedEvidenceBundle(self.path, f"chain.json: {type(exc).__name__}: {exc}") from None
        if not isinstance(self.events, list) or not isinstance(self.roots, list) or not isinstance(self.escrow, dict):
            raise MalformedEvidenceBundle(self.path, "events.json and roots.json must be lists, escrow.json an object")

    def _json(self, name: str, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise MalformedEvidenceBundle(self.path, f"{name} is not JSON ({exc})") from None

    def _check(self, contents: Mapping[str, bytes]) -> list[ManifestProblem]:
        listed = self.manifest.get("files")
        if not isinstance(listed, dict):
            raise MalformedEvidenceBundle(self.path, f"{MANIFEST} lists no files")
        problems = []
        for name, entry in sorted(listed.items()):
            expected = entry.get("sha256") if isinstance(entry, dict) else None
            if name not in contents:
                problems.append(ManifestProblem(name, "listed in the manifest but missing"))
            elif sha256_hex(contents[name]) != expected:
                problems.append(ManifestProblem(name, f"sha-256 {sha256_hex(contents[name])} does not match the manifest's {expected}"))
        for name in sorted(set(contents) - set(listed) - {MANIFEST}):
            problems.append(ManifestProblem(name, "not listed in the manifest"))
        return problems

    @property
    def selection(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in (self.manifest.get("selection") or {}).items())


def _bytes(text: Any) -> bytes:
    return bytes.fromhex(str(text).removeprefix("0x"))


class BundleEvidence:
    """An evidence bundle as the audit engine's `Evidence` (node.audit.evidence).

    Partial: it holds some leaves of its roots and none of other roots, so the engine checks
    each event's proof against its anchored root instead of rebuilding trees, reports no root
    outside the bundle, and checks the escrow transitions of the bundle's orders only. A value
    the bundle gets wrong (an edited field) is handed over as it is, for the engine to report."""

    partial = True

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._bundle: Bundle | None = None

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (BundleEvidence, (str(self.path),))  # a worker re-reads the zip

    @property
    def bundle(self) -> Bundle:
        if self._bundle is None:
            self._bundle = Bundle(self.path)
        return self._bundle

    @property
    def manifest_problems(self) -> list[ManifestProblem]:
        return self.bundle.problems

    def describe(self) -> str:
        return f"bundle {self.path} ({self.bundle.selection})"

    def batches(self) -> list[StoredBatch]:
        return [
            StoredBatch(_bytes(r["root"]), int(r["eventCount"]), "anchored",
                        _bytes(r["txHash"]) if r.get("txHash") else None,
                        int(r["blockNumber"]) if r.get("blockNumber") is not None else None)
            for r in self.bundle.roots
        ]

    def event_parts(self, target_size: int) -> list[tuple[str, int, int]]:
        """("roots", first, last) ranges of roots.json, whole roots per part."""
        roots = [str(r["root"]).lower() for r in self.bundle.roots]
        counts: dict[str, int] = {}
        for event in self.bundle.events:
            key = str((event.get("merkle") or {}).get("root", "")).lower()
            counts[key] = counts.get(key, 0) + 1
        parts: list[tuple[str, int, int]] = []
        start, total = 0, 0
        for index, root in enumerate(roots):
            total += counts.get(root, 0)
            if total >= target_size:
                parts.append(("roots", start, index))
                start, total = index + 1, 0
        if start < len(roots) or not parts:
            parts.append(("roots", start, len(roots) - 1))
        orphans = sum(n for root, n in counts.items() if root not in set(roots))
        if orphans:
            parts.append(("unrooted", 0, 0))
        return parts

    def events(self, part: Hashable) -> list[StoredEvent]:
        kind, first, last = part if isinstance(part, tuple) else ("", 0, -1)
        roots = {str(r["root"]).lower() for r in self.bundle.roots}
        wanted = {str(r["root"]).lower() for r in self.bundle.roots[first : last + 1]} if kind == "roots" else None
        found = []
        for record in self.bundle.events:
            merkle = record.get("merkle") or {}
            root = str(merkle.get("root", "")).lower()
            if (wanted is not None and root in wanted) or (wanted is None and root not in roots):
                found.append(_stored_event(record))
        return found

    def orders(self) -> frozenset[int]:
        return frozenset(int(str(o["orderId"]), 16) for o in self.bundle.escrow.get("orders", []))

    def escrow_attestations(self) -> Iterator[StoredEscrowAttestation]:
        escrow = str(self.bundle.escrow.get("escrow") or "")
        for order in self.bundle.escrow.get("orders", []):
            for a in order.get("attestations", []):
                yield StoredEscrowAttestation(
                    self.bundle.chain_id, escrow, str(a["kind"]), int(str(order["orderId"]), 16), int(a["milestone"]),
                    str(a["signer"]), _bytes(a["signature"]), int(a["deadline"]), int(a["duty"]), str(a["dutyPayee"]),
                )


def _stored_event(record: Mapping[str, Any]) -> StoredEvent:
    attestation = record.get("attestation") or {}
    merkle = record.get("merkle") or {}
    proof = b"".join(_bytes(p) for p in merkle.get("proof") or [])
    return StoredEvent(
        digest=_bytes(str(record["eventId"]).split(";", 1)[-1][:64]),
        # events.json holds the stored body parsed; orjson writes it back byte for byte as stored.
        body=orjson.dumps(record["event"]).decode(),
        signer=str(attestation.get("signer", "")),
        signature=_bytes(attestation.get("signature", "")),
        role=str(attestation.get("role", "")),
        event_time=int(attestation.get("eventTime", 0)),
        subject=_bytes(attestation.get("subject", "")),
        batch_root=_bytes(merkle["root"]) if merkle.get("root") else None,
        leaf_index=int(merkle["leafIndex"]) if merkle.get("leafIndex") is not None else None,
        proof=proof if merkle else None,
    )
