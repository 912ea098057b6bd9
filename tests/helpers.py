"""Assertions and helpers shared by the tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from node.chain.errors import ContractRevert
from waymark.demo.processes import port_free


@contextmanager
def reverts(error_name: str, **expected_args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Assert that the block reverts with the named custom error (and these argument values)."""
    with pytest.raises(ContractRevert) as info:
        yield info
    assert info.value.error_name == error_name, f"expected {error_name}, got {info.value}"
    for name, value in expected_args.items():
        assert name in info.value.error_args, f"{error_name} has no argument {name!r}: {info.value}"
        assert info.value.error_args[name] == value, f"{error_name}.{name}: {info.value}"


def free_port_range(count: int) -> int:
    """The first of `count` consecutive free ports for a demo's oracles. Taken below the kernel's
    ephemeral range (32768-60999 by default), where no client connection's local port can land
    while the demo starts, and at random, so that two test workers do not pick the same range."""
    rng = random.SystemRandom()
    for _ in range(500):
        base = rng.randrange(20_000, 32_768 - count)
        if all(port_free(base + i) for i in range(count)):
            return base
    raise AssertionError(f"no {count} consecutive free ports found")
