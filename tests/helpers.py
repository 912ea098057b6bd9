"""Assertions and helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from node.chain.errors import ContractRevert


@contextmanager
def reverts(error_name: str, **expected_args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Assert that the block reverts with the named custom error (and these argument values)."""
    with pytest.raises(ContractRevert) as info:
        yield info
    assert info.value.error_name == error_name, f"expected {error_name}, got {info.value}"
    for name, value in expected_args.items():
        assert name in info.value.error_args, f"{error_name} has no argument {name!r}: {info.value}"
        assert info.value.error_args[name] == value, f"{error_name}.{name}: {info.value}"


