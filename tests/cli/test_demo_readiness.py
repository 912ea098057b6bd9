"""A demo service is ready when its health URL answers: a slow first answer (a loaded machine)
is waited for, not asked again and again; a failure says what the last attempt met; an answer
from another process that holds the port does not count."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from waymark.ports import free_port
from waymark.demo.processes import Child, ChildFailed

# Answers every request after 1.5 s: longer than a connect attempt may take, as a node's first
# answer can be on a loaded machine.
SLOW_SERVER = """
import http.server, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(1.5)
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()
"""


def test_a_service_whose_answers_take_seconds_is_ready_once_it_answers(tmp_path: Path) -> None:
    port = free_port()
    child = Child("slow", [sys.executable, "-c", SLOW_SERVER, str(port)], tmp_path / "slow.log",
                  health_url=f"http://127.0.0.1:{port}/").start()
    try:
        child.wait_ready(30)
    finally:
        child.stop()


def test_a_service_that_never_listens_fails_naming_the_last_attempt(tmp_path: Path) -> None:
    port = free_port()
    child = Child("silent", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "silent.log",
                  health_url=f"http://127.0.0.1:{port}/health").start()
    try:
        with pytest.raises(ChildFailed) as failed:
            child.wait_ready(1.5)
    finally:
        child.stop()
    assert f"silent did not answer: no answer from http://127.0.0.1:{port}/health within 2s" in str(failed.value)
    assert "last attempt: ConnectError" in str(failed.value)


def test_a_service_that_exits_before_answering_fails_with_its_exit_code(tmp_path: Path) -> None:
    child = Child("quitter", [sys.executable, "-c", "raise SystemExit(4)"], tmp_path / "quitter.log",
                  health_url=f"http://127.0.0.1:{free_port()}/health").start()
    with pytest.raises(ChildFailed, match="quitter exited with code 4"):
        child.wait_ready(30)


QUICK_SERVER = """
import http.server, sys
class Quick(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Quick).serve_forever()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="who listens on a port is read from /proc")
def test_an_answer_from_another_process_on_the_port_does_not_make_a_service_ready(tmp_path: Path) -> None:
    port = free_port()
    other = Child("other", [sys.executable, "-c", QUICK_SERVER, str(port)], tmp_path / "other.log",
                  health_url=f"http://127.0.0.1:{port}/").start()
    child = Child("late", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "late.log",
                  health_url=f"http://127.0.0.1:{port}/health").start()
    try:
        other.wait_ready(30)  # the server that holds the port is ready: it is its own
        with pytest.raises(ChildFailed, match=f"late is not what answers on port {port}: another process listens there"):
            child.wait_ready(30)
    finally:
        child.stop()
        other.stop()
