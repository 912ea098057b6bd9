"""What can be wrong with a Besu network's description, keys, identities or files."""

from __future__ import annotations

from pathlib import Path

from node.errors import WaymarkError


class BesuConfigError(WaymarkError):
    code = "besu_config_error"


class NodeKeyError(BesuConfigError):
    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"node key {path}: {problem}")


class GenesisWouldChange(BesuConfigError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} exists and the new genesis differs from it; a running network cannot change its genesis. "
            "Use --keep-genesis to refresh the allowlists and node configurations only, "
            "or --force to start a new network (its chain data must then be deleted)"
        )


class GenesisMissing(BesuConfigError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"--keep-genesis needs the network's existing genesis, but {path} does not exist")


class ExtraDataInvalid(BesuConfigError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"QBFT extraData: {problem}")


class IdentityInvalid(BesuConfigError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
