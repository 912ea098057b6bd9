"""Errors of the oracle. All are `WaymarkError`s whose message is built from their arguments."""

from __future__ import annotations

from node.errors import WaymarkError


class OracleError(WaymarkError):
    """Root of the oracle's errors."""

    code = "oracle_error"


class InputRejected(OracleError):
    """Source data an adapter will not turn into events. `field` is the path of the bad value
    inside the input (`readings[2].unit`), `problem` says what is wrong with it."""

    code = "rejected"

    def __init__(self, adapter: str, field: str, problem: str) -> None:
        self.adapter = adapter
        self.field = field
        self.problem = problem
        super().__init__(f"{adapter}: {field}: {problem}")

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "adapter": self.adapter, "field": self.field, "message": str(self)}


class UnknownAdapter(OracleError):
    code = "unknown_adapter"

    def __init__(self, name: str, known: list[str]) -> None:
        self.field = "adapter"
        super().__init__(f"no adapter named {name!r}; this oracle runs: {', '.join(known)}")


class OracleMisconfigured(OracleError):
    code = "misconfigured"

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
