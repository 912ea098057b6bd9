"""Settings of the node services, read from the environment (prefix WAYMARK_NODE_) or a .env file.

Library code takes settings objects as arguments; only entry points build them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from node.chain.devnet_keys import DEVNET_CHAIN_ID, DEVNET_PORT
from node.chain.keystore import resolve_password
from node.paths import DEPLOYMENTS_DIR, PROJECT_ROOT


class ChainSettings(BaseSettings):
    """Which chain to talk to and how much to trust its latest blocks."""

    model_config = SettingsConfigDict(env_prefix="WAYMARK_CHAIN_", env_file=".env", extra="ignore")

    rpc_url: str = Field(f"http://127.0.0.1:{DEVNET_PORT}")
    """JSON-RPC endpoint of a node of the consortium chain (Anvil devnet by default)."""

    chain_id: int = DEVNET_CHAIN_ID
    """Chain id the endpoint must report; a different one is refused."""

    confirmations: int = Field(0, ge=0)
    """Blocks on top of a block before its events count (0 on QBFT's immediate finality)."""

    max_log_range: int = Field(5_000, ge=1)
    """Most blocks one eth_getLogs asks for (Besu's default --rpc-max-logs-range is 5,000); halved
    automatically while the node refuses a range."""

    deployments_dir: Path = DEPLOYMENTS_DIR
    """Folder holding `<chainId>.json` with the contract addresses."""

    @property
    def deployment_file(self) -> Path:
        return self.deployments_dir / f"{self.chain_id}.json"


class SignerSettings(BaseSettings):
    """The account this service signs with: an encrypted keystore file and its password."""

    model_config = SettingsConfigDict(env_prefix="WAYMARK_SIGNER_", env_file=".env", extra="ignore")

    keystore: Path | None = None
    """Path of the encrypted keystore (Web3 Secret Storage JSON)."""

    password: SecretStr | None = None
    """Password of the keystore. Prefer `password_file`."""

    password_file: Path | None = None
    """File whose first line is the keystore password."""

    def resolved_password(self) -> str:
        return resolve_password(self.password, self.password_file)


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WAYMARK_DB_", env_file=".env", extra="ignore")

    url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'waymark.sqlite3'}"
    """SQLAlchemy URL: SQLite by default, e.g. postgresql+psycopg://user@host/db for PostgreSQL."""
