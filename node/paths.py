"""Where things live in a checkout of the project."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
NODE_MODULES = PROJECT_ROOT / "node_modules"
BUILD_DIR = PROJECT_ROOT / "build"
ARTIFACTS_DIR = BUILD_DIR / "contracts"
DEVNET_DIR = PROJECT_ROOT / "hardhat-free-devnet"
DEPLOYMENTS_DIR = DEVNET_DIR / "deployments"
SOLC_JS = PROJECT_ROOT / "scripts" / "solc-js"
