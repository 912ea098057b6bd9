"""Settings of a node's document store (prefix WAYMARK_DOCUMENTS_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from node.paths import PROJECT_ROOT


class DocumentSettings(BaseSettings):
    """Where the node keeps ciphertext, whose keystore it holds, how it replicates."""

    model_config = SettingsConfigDict(env_prefix="WAYMARK_DOCUMENTS_", env_file=".env", extra="ignore")

    blob_dir: Path = PROJECT_ROOT / "var" / "documents"
    """Folder of the encrypted blobs (no key of any kind is kept here)."""

    max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    """Largest document accepted."""

    max_age: int = Field(300, ge=1)
    """Seconds a signed document request stays valid (either side of the server's clock)."""

    membership_ttl: float = Field(5.0, ge=0)
    """Seconds an account's organisation and roles, read from the chain, are reused."""

    org_keystore: Path | None = None
    """The node's own organisation's document keystore (node.documents.keys.OrgKeystore): with it,
    the node opens documents for its organisation's accounts. Keep it out of the database and
    the blob folder. Without it the node stores and serves sealed documents only."""

    key_ttl: float = Field(30.0, ge=0)
    """Seconds encryption keys and role holders read from the registry are reused."""

    replicate_interval: float = Field(0.0, ge=0)
    """Seconds between polls of the peers' sealed feeds (0: this node does not replicate documents)."""

    peers: list[str] = Field(default_factory=list)
    """Base URLs of peer nodes to replicate from, besides those in the registry's node directory
    (each organisation's NodeRecord.url)."""

    feed_limit: int = Field(200, ge=1, le=5000)
    """Most feed entries served or read per request."""
