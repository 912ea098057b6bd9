"""The relayer process: collects escrow milestone signatures and submits them once a quorum is reached."""
