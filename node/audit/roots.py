"""The root checks of the audit (node.audit.verify's docstring, "Roots"), in the parent, from
the groups the event checks return: stored roots not on chain, anchored roots with data
missing, and the stored leaves rebuilding each anchored root."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from node.audit.chain import ChainHistory
from node.audit.event_checks import RootGroup
from node.audit.model import Discrepancy, DiscrepancyKind
from node.protocol.merkle import build_tree_from_hashes

K = DiscrepancyKind


def check_roots(history: ChainHistory, batches: Iterable[Any], groups: Mapping[bytes, RootGroup],
                 in_flight: frozenset[bytes], *, partial: bool) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    for batch in batches:
        if batch.root in history.anchors or batch.root in in_flight:
            continue
        root = "0x" + batch.root.hex()
        objects = {"root": root, "event_count": str(batch.event_count), "status": batch.status}
        if batch.tx_hash is not None:
            objects["tx"] = "0x" + batch.tx_hash.hex()
        if batch.block_number is not None:
            objects["block"] = str(batch.block_number)
        found.append(Discrepancy(K.ROOT_NOT_ON_CHAIN, root,
                                 f"the stored batch of {batch.event_count} events names root {root}, which was never "
                                 f"anchored on chain {history.chain_id}", objects))
    if partial:
        return found  # some leaves of some roots: each event's proof was checked, no tree can be rebuilt
    for root, first in history.anchors.items():
        name = "0x" + root.hex()
        # Of several organisations' anchors of one root, the one that matches the evidence counts:
        # anchoring someone else's root first (with any count) must not make their data look missing.
        group = groups.get(root)
        present_count = len(group.leaves) if group is not None else 0
        candidates = [first, *history.later_anchors.get(root, ())]
        anchor = next((a for a in candidates if a.event_count == present_count), first)
        objects = {"root": name, "leaf_count": str(anchor.event_count), "tx": "0x" + anchor.tx_hash.hex(),
                   "block": str(anchor.block), "submitter": anchor.submitter, "org": str(anchor.org_id)}
        group = groups.get(root)
        if group is None:
            found.append(Discrepancy(K.EVENT_DATA_MISSING, name,
                                     f"anchored with {anchor.event_count} events in block {anchor.block}, and the "
                                     "evidence holds none of them", {**objects, "stored": "0"}))
            continue
        present = len(group.leaves)
        if present < anchor.event_count:
            missing = sorted(set(range(anchor.event_count)) - set(group.leaf_indices))
            shown = ",".join(str(i) for i in missing[:100]) + (",..." if len(missing) > 100 else "")
            found.append(Discrepancy(K.EVENT_DATA_MISSING, name,
                                     f"anchored with {anchor.event_count} events; the evidence holds {present}"
                                     + (f" (missing leaf indices {shown})" if missing else ""),
                                     {**objects, "stored": str(present), "missing_leaves": shown}))
            continue
        if group.failed or not all(group.leaves):
            continue  # a leaf is wrong because an event under it already failed; reported there
        rebuilt = group.rebuilt or build_tree_from_hashes(group.leaves).root
        if rebuilt != root or present != anchor.event_count:
            found.append(Discrepancy(K.HASH_MISMATCH, name,
                                     f"the {present} stored leaves rebuild root 0x{rebuilt.hex()}, not the anchored "
                                     f"root ({anchor.event_count} events)",
                                     {**objects, "stored": str(present), "rebuilt": "0x" + rebuilt.hex()}))
    return found
