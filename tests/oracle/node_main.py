"""A real node for the oracle tests, in its own process: capture API, anchorer, indexer and the
document store, on the test chain and a database file of the test.

    python -m tests.oracle.node_main --port P --rpc-url URL --chain-id ID --deployment FILE --db URL --blobs DIR
        [--keystore FILE] [--anchor-account N] [--replicate SECONDS --peer URL ...]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from node.member.app import create_app
from node.documents import DocumentSettings
from node.member.runtime import load_runtime
from node.member.settings import NodeSettings
from node.settings import ChainSettings, DatabaseSettings

# The node's anchorer signs as the inspector's account (an attester that sends no other
# transactions in these tests, so nonces never race the test's own).
ANCHOR_ACCOUNT = 2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--chain-id", type=int, required=True)
    parser.add_argument("--deployment", type=Path, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--blobs", type=Path, required=True)
    parser.add_argument("--keystore", type=Path, help="the document keystore of the node's own organisation")
    parser.add_argument("--anchor-account", type=int, default=ANCHOR_ACCOUNT, help="devnet account the node anchors (and signs feed requests) with")
    parser.add_argument("--replicate", type=float, default=0.0, help="seconds between polls of the peers' sealed document feeds")
    parser.add_argument("--peer", action="append", default=[], help="base URL of a peer node to replicate documents from")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = NodeSettings(
        port=args.port, public_url=f"http://127.0.0.1:{args.port}", max_future_skew=10**9, role_refresh_interval=0.1,
        batch_size=500, max_batch_delay=0.2, anchor_interval=0, indexer_poll=0.2, anchor_devnet_account=args.anchor_account,
    )
    runtime = load_runtime(settings, ChainSettings(rpc_url=args.rpc_url, chain_id=args.chain_id), DatabaseSettings(url=args.db), deployment_file=args.deployment)
    app = create_app(runtime, run_indexer=True, run_anchorer=True, documents=DocumentSettings(
        blob_dir=args.blobs, org_keystore=args.keystore, membership_ttl=0,
        replicate_interval=args.replicate, peers=args.peer,
    ))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
