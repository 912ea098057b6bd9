"""A child process that ends with its parent, however the parent ends (SIGKILL included)."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child before exec (Linux): the kernel sends it `sig` when its parent ends. The parent is
    the thread that started the child: start children this way only from a thread that lives as
    long as the parent process."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)

