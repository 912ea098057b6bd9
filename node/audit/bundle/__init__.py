"""Evidence bundles: a self-contained zip of what an auditor needs to check part of the history
against the chain alone, and the evidence source that reads one back.

A bundle covers a product (GTIN), a lot (GTIN + lot), an escrow order, or a time range of
event times. For the events of a unit it holds the events of every case, pallet and container
the unit was in at the time (node.member.history). Files, all JSON:

| file | content |
|---|---|
| manifest.json | format, version, what was selected, when, and the sha-256 of every other file |
| chain.json | chain id, the deployment's contracts (address, block, ...) and start block |
| events.json | one proof bundle per event (node.member.proofs: the event as stored, its attestation, its Merkle proof and leaf index, its root and anchor transaction) |
| roots.json | every root those events are under: event count, anchor transaction, block number and hash, block time and anchoring organisation (as the chain reported them at export) |
| escrow.json | for an order: its terms (from its `OrderCreated` log), the relayed milestone attestations and the relayer's submissions |

A bundle holds a subset of every root's leaves: its roots are verified by each event's proof
against the anchored root, never by rebuilding the tree (see /work/team/audit-interface.md).
Nothing in the bundle is trusted: the manifest only tells a damaged or edited file apart from
a consistent one; every claim is checked against the chain by the audit engine.
"""

from node.audit.bundle.events import select_events
from node.audit.bundle.export import NothingToExport, export_bundle
from node.audit.bundle.format import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    FILES,
    MANIFEST,
    BundleError,
    MalformedEvidenceBundle,
    sha256_hex,
)
from node.audit.bundle.read import Bundle, BundleEvidence, ManifestProblem
from node.audit.bundle.selection import InvalidSelection, Lot, OrderSel, Product, Selector, TimeRange, make_selector, parse_time_ms

__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION", "FILES", "MANIFEST", "Bundle", "BundleError", "BundleEvidence",
    "InvalidSelection", "Lot", "MalformedEvidenceBundle", "ManifestProblem", "NothingToExport", "OrderSel", "Product",
    "Selector", "TimeRange", "export_bundle", "make_selector", "parse_time_ms", "select_events", "sha256_hex",
]
