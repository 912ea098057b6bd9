"""Assertions and helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from node.chain.errors import ContractRevert
from node.member.settings import NodeSettings


@contextmanager
def reverts(error_name: str, **expected_args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Assert that the block reverts with the named custom error (and these argument values)."""
    with pytest.raises(ContractRevert) as info:
        yield info
    assert info.value.error_name == error_name, f"expected {error_name}, got {info.value}"
    for name, value in expected_args.items():
        assert name in info.value.error_args, f"{error_name} has no argument {name!r}: {info.value}"
        assert info.value.error_args[name] == value, f"{error_name}.{name}: {info.value}"




def fast_node_settings(**overrides: Any) -> NodeSettings:
    """A test node's settings: any event time accepted (tests follow the chain's clock), roles
    re-read at once, and small batches anchored without the production pacing."""
    settings: dict[str, Any] = dict(max_future_skew=10**9, role_refresh_interval=0.05, batch_size=500,
                                    max_batch_delay=0.2, anchor_interval=0)
    return NodeSettings(**{**settings, **overrides})
