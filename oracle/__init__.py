"""One organisation's oracle: source adapters -> signed EPCIS events and escrow attestations,
kept in a durable on-disk queue and delivered to the node and the relayer until they have them."""
