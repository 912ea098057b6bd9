"""The member node process: capture, anchoring, indexing, replication, the EPCIS REST interface,
sealed documents routes, proofs and unit histories, and the HTTP app that serves them."""
