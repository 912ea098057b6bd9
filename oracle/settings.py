"""Settings of one organisation's oracle, from the environment (prefix WAYMARK_ORACLE_) or a .env file.

The chain to read (domain of the signatures, escrow orders) comes from `node.settings.ChainSettings`
(WAYMARK_CHAIN_*). Library code takes an `OracleSettings`; only entry points build one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from node.chain.keystore import resolve_password
from node.paths import PROJECT_ROOT

ALL_ADAPTERS = ("production", "packing", "epcis", "carrier", "iot", "inspection", "customs", "fx")


class OracleSettings(BaseSettings):
    """Where the oracle listens, whom it delivers to, whose key it signs with, and how it retries."""

    model_config = SettingsConfigDict(env_prefix="WAYMARK_ORACLE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    """Address the oracle's HTTP adapters (webhooks, EPCIS capture) listen on."""

    port: int = Field(8710, ge=1, le=65535)
    """Port of the oracle's HTTP adapters (the node is on 8600, the scan API on 8700, the relayer on 8720)."""

    node_url: str = "http://127.0.0.1:8600"
    """Base URL of the node: events go to `<node_url>/capture`, documents to `<node_url>/documents`."""

    node_audience: str | None = None
    """The node's public URL as it names itself (its WAYMARK_NODE_PUBLIC_URL), which signed document
    requests name as their audience; default `node_url`. Set it when the oracle reaches the node at another address."""

    relayer_url: str | None = None
    """Base URL of the escrow relayer; without it escrow facts are signed and kept, not sent."""

    data_dir: Path = PROJECT_ROOT / "var" / "oracle"
    """Folder of the oracle's own state: its queue (`oracle.sqlite3`) and the CSV drop folders."""

    keystore: Path | None = None
    """Encrypted keystore of the organisation's account the oracle signs with."""

    password: SecretStr | None = None
    """Password of the keystore. Prefer `password_file`."""

    password_file: Path | None = None
    """File whose first line is the keystore password."""

    devnet_account: int | None = Field(None, ge=0)
    """Devnet only: index of the dev account (devnet mnemonic) to sign with instead of a keystore."""

    adapters: list[str] = Field(default_factory=lambda: list(ALL_ADAPTERS))
    """Adapters this oracle runs (JSON list in the environment), from: production, packing, epcis,
    carrier, iot, inspection, customs, fx."""

    products_file: Path | None = None
    """JSON product catalogue: allowed temperature and humidity per GTIN (see oracle.adapters.iot)."""

    csv_poll: float = Field(2.0, gt=0)
    """Seconds between scans of the CSV drop folder."""

    csv_min_age: float = Field(1.0, ge=0)
    """Seconds a dropped file must be left unchanged before it is read (drop files by rename to skip the wait)."""

    deliver_batch: int = Field(200, ge=1, le=20_000)
    """Most events sent to the node in one capture request."""

    retry_base: float = Field(0.5, gt=0)
    """Seconds before the first retry of a failed delivery; doubled on each further failure."""

    retry_max: float = Field(60.0, gt=0)
    """Longest wait between two delivery attempts."""

    request_timeout: float = Field(15.0, gt=0)
    """Seconds to wait for the node or the relayer to answer one request."""

    escrow_signature_ttl: int = Field(7 * 24 * 3600, ge=60)
    """Seconds an escrow signature (milestone, customs return, FX rate) stays usable (its deadline)."""

    duty_payee: str | None = None
    """Account that receives customs duty out of escrow (customs oracles; default: the signing account)."""

    max_future_skew: int = Field(300, ge=0)
    """Seconds an event time may be ahead of this clock while the node's own figure is unknown (the
    oracle reads the node's `maxFutureSkew` from its GET /health and checks that: a record the node
    would refuse for its time is refused here instead of acknowledged)."""

    max_poison_tries: int = Field(3, ge=1)
    """Tries of a CSV file that fails every time before it is moved to `quarantine/` with a report."""

    document_readers: list[int] = Field(default_factory=list)
    """Further organisation ids allowed to read every document this oracle uploads."""

    def queue_path(self) -> Path:
        return self.data_dir / "oracle.sqlite3"

    def csv_dir(self) -> Path:
        return self.data_dir / "csv"

    def resolved_password(self) -> str:
        return resolve_password(self.password, self.password_file)
