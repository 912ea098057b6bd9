"""Settings of the relayer process."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RelayerSettings(BaseSettings):
    """The relayer service (prefix WAYMARK_RELAYER_); chain, database and signer come from
    WAYMARK_CHAIN_, WAYMARK_DB_ and WAYMARK_SIGNER_ (node/settings.py)."""

    model_config = SettingsConfigDict(env_prefix="WAYMARK_RELAYER_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    """Address the relayer's HTTP API listens on."""

    port: int = Field(default=8720, ge=1, le=65535)
    """Port of the relayer's HTTP API."""

    min_lifetime: int = Field(default=60, ge=0)
    """Seconds a signature must still be valid (chain time) to be accepted, and to be submitted."""

    sweep_interval: float = Field(default=5.0, gt=0)
    """Seconds between passes over milestones that wait (not next yet, order not funded, a failed send)."""

    in_flight_wait: float = Field(default=60.0, gt=0)
    """Seconds to wait on restart for this relayer's own transactions still in flight."""

    terms_store: Path | None = None
    """JSON file caching order terms by id (the chain's OrderCreated logs are the source);
    default `<chainId>.terms.json` next to the deployment record."""

    devnet_account: int | None = Field(default=None, ge=0)
    """Devnet only: index of the dev account (devnet mnemonic) that pays for submissions, instead of a keystore."""
