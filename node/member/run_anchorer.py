"""`python -m node.member.run_anchorer`: the anchorer as a process of its own, from the
environment's settings (WAYMARK_*), until the process is ended (the crash test SIGKILLs it).

An entry point apart from node.member.anchorer: the runtime that assembles an anchorer from
settings imports the anchorer, so the anchorer does not import the runtime."""

from __future__ import annotations

import logging
import os
import threading

from node.member.runtime import build_anchorer, load_runtime


def main() -> None:  # pragma: no cover - exercised as a subprocess by the crash test
    logging.basicConfig(level=os.environ.get("WAYMARK_LOG_LEVEL", "INFO"))
    runtime = load_runtime()
    anchorer = build_anchorer(runtime)
    stop = threading.Event()
    anchorer.run(stop, runtime.node.anchorer_poll)


if __name__ == "__main__":  # pragma: no cover
    main()
