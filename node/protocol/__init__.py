"""Provenance protocol: GS1 identifiers, EPCIS events, CBV event hashes, attestations, Merkle batches.

Pure Python; nothing here talks to a chain or a database, and nothing here imports another
first-party package but node.errors. Bottom up (each module imports only those above it):

- crypto: keccak256, secp256k1 signatures, EIP-55 addresses, the EIP-712 domain
- gs1: check digits, keys, serials, the identifier types; digital_link: reading them from text
- issuance: manufacturers' signatures over the codes they print; labels: QR codes and labels
- vocabulary: namespaces, CBV terms, customs steps; timestamps: EPCIS event times
- canonical_ids: GS1 keys in canonical form, the keys an event names; cbv_values: canonical values
- epcis: event builders; epcis_validation: GS1's JSON schema, then Waymark's own checks
- event_hash: the CBV 2.0 event hash; attestation: EIP-712 attestations over events
- merkle: batches; roles: who may attest which bizStep; verification: the one rule of "verified"
"""
