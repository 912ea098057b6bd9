"""Provenance protocol: GS1 identifiers, EPCIS events, CBV event hashes, attestations, Merkle batches.

Pure Python; nothing here talks to a chain or a database.
"""
