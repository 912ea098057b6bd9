"""A child process that ends with its parent, however the parent ends (SIGKILL included)."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child before exec (Linux): the kernel sends it `sig` when its parent ends. The parent is
    the thread that started the child: start children this way only from a thread that lives as
    long as the parent process."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """In a child started by a pool that may start it from any thread (concurrent.futures): a
    daemon thread ends the child once `parent` (the process that started the pool, its pid passed
    down) is gone. The pid is passed, not read here: a parent that died while the child was still
    starting has already left it to another parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
