"""Settings of the node's services (ingest, anchorer, indexer), prefix WAYMARK_NODE_.

Chain, database and signer come from `node.settings` (WAYMARK_CHAIN_, WAYMARK_DB_,
WAYMARK_SIGNER_); this class holds what the node services add.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NodeSettings(BaseSettings):
    """How the node ingests, batches, anchors and indexes."""

    model_config = SettingsConfigDict(env_prefix="WAYMARK_NODE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    """Address the node's HTTP API listens on."""

    port: int = Field(default=8600, ge=1, le=65535)
    """Port of the node's HTTP API."""

    public_url: str = "http://127.0.0.1:8600"
    """Base URL others reach this node at; batch anchors point to `<public_url>/batches/<root>`."""

    batch_size: int = Field(default=2000, ge=1, le=1_000_000)
    """Most events in one anchored batch (one transaction). Larger batches cost less gas per event."""

    max_batch_delay: float = Field(default=1.0, gt=0)
    """Seconds the oldest pending event may wait before a batch smaller than `batch_size` is anchored."""

    anchor_interval: float = Field(default=5.0, ge=0)
    """Seconds at least between two batches smaller than `batch_size` (a full one goes at once).
    Every anchor is a transaction each validator keeps for good: under a steady stream of events
    this bounds the node to one anchor per interval (12 a minute; the embedded Anvil holds about
    28 KB per transaction in memory), while an event after a quiet spell still waits only
    `max_batch_delay`. 0: no bound."""

    confirmations: int = Field(default=0, ge=0)
    """Blocks on top of a block before the indexer stores its logs and an anchor counts as confirmed."""

    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest capture request body accepted; larger ones are answered 413."""

    max_events_per_document: int = Field(default=20_000, ge=1)
    """Most events in one capture document; more is answered 413."""

    max_future_skew: int = Field(default=300, ge=0)
    """Seconds an event's time may lie in the future of this node's clock (422 beyond)."""

    check_processes: int = Field(default=0, ge=0, le=256)
    """Worker processes that validate, hash and verify capture documents (0: in the HTTP process).
    Set it to the number of cores to use them all for ingest."""

    role_refresh_interval: float = Field(default=0.5, gt=0)
    """Seconds between re-reads of the registry's newest events by ingest's role check."""

    epcis_webhooks_to_private_addresses: bool = False
    """Let EPCIS subscriptions deliver to loopback and private addresses (a test bench, or a
    member's own closed network). Off: a subscriber cannot make the node post to its own admin
    endpoints or anything else on its internal network."""

    max_in_flight: int = Field(default=8, ge=1, le=1024)
    """Anchor transactions sent and not yet mined at once (consecutive nonces); on a chain with
    1-5 s blocks this is how many batches one block can take from this node."""

    stuck_after: float = Field(default=30.0, gt=0)
    """Seconds an anchor transaction may wait unmined before it is replaced (same nonce)."""

    anchorer_poll: float = Field(default=0.05, gt=0)
    """Seconds the anchorer sleeps when it has nothing to do (doubled after each further idle round, up to 4 times this)."""

    indexer_poll: float = Field(default=0.5, gt=0)
    """Seconds between indexer polls of the chain."""

    anchor_devnet_account: int | None = Field(default=None, ge=0)
    """Devnet only: index of the dev account (devnet mnemonic) that sends anchors, instead of a keystore."""

    # ---- the member-node network (node/network) ----

    organisation: int | None = Field(default=None, ge=1)
    """The node's organisation. Derived from the anchor account's organisation on chain when the node
    has one (a different value here is refused); set it for a process that serves the API without
    the anchor account. Capture takes only events of this organisation and of those it hosts."""

    publish_node_record: bool = True
    """At start, make the organisation's entry in the registry's node directory name `public_url`
    (a transaction from the anchor account when it differs); peers find this node there."""

    replication_concurrency: int = Field(default=4, ge=1, le=64)
    """Batches of other organisations fetched and verified at once."""

    replication_processes: int = Field(default=0, ge=0, le=256)
    """Worker processes that hash and check the signatures of fetched bundles (0: in the replicator's process)."""

    replication_poll: float = Field(default=0.2, gt=0)
    """Seconds the replicator sleeps when it has nothing to do."""

    replication_retry_base: float = Field(default=1.0, gt=0)
    """Seconds before a batch no source served is tried again; doubled at each failure."""

    replication_retry_max: float = Field(default=60.0, gt=0)
    """Longest wait between two attempts at one batch."""

    replication_fetch_timeout: float = Field(default=30.0, gt=0)
    """Seconds one bundle download may take."""

    max_bundle_bytes: int = Field(default=1 << 30, ge=1024)
    """Largest bundle (compressed, and again once decompressed) the replicator reads."""

    withheld_after: float = Field(default=300.0, gt=0)
    """Seconds after this node first saw another organisation's anchor, with no member node serving
    its bundle, before the batch is recorded `withheld` (shown in health, the audit and passports)."""

    holders_poll: float = Field(default=1.0, gt=0)
    """Seconds between reads of the peers' held-batches feeds."""

    directory_ttl: float = Field(default=5.0, gt=0)
    """Seconds the registry's node directory (peer URLs, hosting) is cached."""
