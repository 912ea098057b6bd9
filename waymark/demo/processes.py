"""Child processes of the demo: each in a process group of its own, stopped as a group.

A child is started in a new session (so a Ctrl-C in the terminal reaches only the demo, which
then stops the children in order), with its output in a log file, and (on Linux) is sent
SIGTERM by the kernel if the demo dies without stopping it. Stopping sends SIGTERM to
the child's whole group, waits a bounded time, then SIGKILLs what is left of the group, and
waits until the group is empty: helpers a child forked (the node's indexer/anchorer process)
go with it, and nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from node.errors import WaymarkError
from node.lifetime import die_with_parent as die_with_parent  # re-exported: the demo and benchmarks start children with it


class ChildFailed(WaymarkError):
    def __init__(self, name: str, detail: str, log: Path) -> None:
        tail = log.read_text(errors="replace")[-1500:].strip() if log.exists() else ""
        super().__init__(f"{name} {detail} (log {log})" + (f":\n{tail}" if tail else ""))


class NoAnswer(WaymarkError):
    def __init__(self, url: str, timeout: float, last_error: str) -> None:
        super().__init__(f"no answer from {url} within {timeout:.0f}s (last attempt: {last_error})")


def await_answer(
    url: str, timeout: float, running: Callable[[], bool], ready: Callable[[httpx.Response], bool] = lambda _: True,
) -> httpx.Response | None:
    """GET `url` until an answer is `ready` (returned), or None once `running()` is false; raises
    NoAnswer after `timeout` seconds. Only connecting is retried quickly: once connected, an answer
    may take the rest of the time (a first answer on a loaded machine can take seconds; giving up
    after one second and asking again could go on for ever)."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while (remaining := deadline - time.monotonic()) > 0:
        if not running():
            return None
        try:
            response = httpx.get(url, timeout=httpx.Timeout(max(remaining, 1.0), connect=1.0))
            if ready(response):
                return response
            last_error = f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise NoAnswer(url, timeout, last_error)


class PortTaken(WaymarkError):
    def __init__(self, what: str, port: int, option: str) -> None:
        super().__init__(f"port {port} for the {what} is taken (another devnet or demo running?); choose another with {option}")


def process_stats() -> Iterator[tuple[int, list[str]]]:
    """Every process this user may read (Linux /proc), as its pid and the fields of its
    /proc/PID/stat after the command name: [1] parent, [2] process group, [3] session, [11] and
    [12] user and system CPU ticks, [21] resident pages. Processes that end meanwhile are passed over."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        yield int(entry.name), stat[stat.rindex(")") + 2 :].split()  # the name may hold ")" and spaces


def listening_sessions(port: int) -> set[int] | None:
    """The session ids of the processes listening on TCP `port` that this user may look at (Linux
    /proc); None where /proc does not tell."""
    if not Path("/proc/net/tcp").exists():
        return None
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN on the port
                inodes.add(f"socket:[{fields[9]}]")
    sessions: set[int] = set()
    for pid, fields in process_stats() if inodes else ():
        try:
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                sessions.add(int(fields[3]))
        except OSError:
            continue  # ended meanwhile, or another user's
    return sessions


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(process: subprocess.Popen[bytes], grace: float = 15.0, kill_wait: float = 5.0) -> None:
    """SIGTERM the process's group, SIGKILL it after `grace` seconds, and wait until it is empty."""
    pgid = process.pid  # a session leader's group id is its pid
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (process.poll() is None or group_alive(pgid)):
        time.sleep(0.05)
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    process.wait(timeout=kill_wait)
    deadline = time.monotonic() + kill_wait
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


# glibc gives threads that allocate at once arenas of their own (up to 8 per core), and memory
# freed in one stays held apart from the others: a scan API answering 50 scans/s grew about 1 MB
# a minute for half an hour with its caches full; with two arenas it levels off within minutes
# (scripts/bench/soak.py). Python allocates under its GIL anyway, so more arenas buy little.
CHILD_ENV = {"MALLOC_ARENA_MAX": "2"}


@dataclass
class Child:
    """One service of the demo, run as `argv` until stopped."""

    name: str
    argv: Sequence[str]
    log: Path
    health_url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Child":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                list(self.argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **CHILD_ENV, **self.env}, cwd=self.cwd, start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        return self

    def wait_ready(self, timeout: float) -> None:
        """Wait until the health URL answers (any HTTP answer counts: the server is up), at most
        `timeout` s, and check the answer came from this child: a process of its session listens
        on the port (where /proc tells), not some other server that took the port first."""
        process = self.process
        assert process is not None
        try:
            if self.health_url is not None:
                await_answer(self.health_url, timeout, running=lambda: process.poll() is None)
        except NoAnswer as exc:
            raise ChildFailed(self.name, f"did not answer: {exc}", self.log) from None
        if process.poll() is not None:
            raise ChildFailed(self.name, f"exited with code {process.returncode}", self.log)
        port = urlsplit(self.health_url).port if self.health_url is not None else None
        sessions = listening_sessions(port) if port is not None else None
        if sessions is not None and process.pid not in sessions:
            raise ChildFailed(self.name, f"is not what answers on port {port}: another process listens there", self.log)

    def stop(self, grace: float = 15.0) -> None:
        if self.process is not None:
            stop_group(self.process, grace)


class Supervisor:
    """The demo's children, stopped in the reverse order of their start: those started together
    (one `start` call) are stopped together, after the ones started later.

    With `watch()`, a thread restarts a child that exits while the demo runs and says so
    (`<name> exited with code N: restarting`, then `<name> restarted`): what is left of its
    process group is stopped first (so its port is free), restarts back off from 1 s to
    `max_backoff`, and a child that dies `max_restarts` times within `window` seconds is left
    down with a line saying so. `on_restart(name, pid)` is called after each restart (the demo
    rewrites its pids.json).
    """

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        max_restarts: int = 5,
        window: float = 300.0,
        max_backoff: float = 30.0,
        ready_timeout: float = 300.0,
    ) -> None:
        self.children: list[Child] = []
        self.waves: list[list[Child]] = []  # the children of each `start` call
        self.say = say
        self.max_restarts, self.window, self.max_backoff, self.ready_timeout = max_restarts, window, max_backoff, ready_timeout
        self.restarts: dict[str, list[float]] = {}
        self.on_restart: Callable[[str, int], None] | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._given_up: set[str] = set()

    def start(self, *children: Child, timeout: float = 300.0) -> None:
        """Start these children together and wait until each is ready. A child that ends fails the
        start at once; one still running gets `timeout` seconds: a member node's start (imports,
        migrations, publishing itself on the chain) took over 90 s on a 2-vCPU VM running about
        three times slower than usual, with three demo networks starting at once."""
        self.waves.append(list(children))
        for child in children:
            self.children.append(child.start())
        for child in children:
            child.wait_ready(timeout)

    def pids(self) -> dict[str, int]:
        return {c.name: c.process.pid for c in self.children if c.process is not None}

    def watch(self, interval: float = 1.0) -> None:
        """Restart children that die, from now until `stop_all`."""
        if self._watcher is not None:
            return
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, args=(interval,), name="demo-supervisor", daemon=True)
        self._watcher.start()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for child in list(self.children):
                if self._stop.is_set():
                    return
                process = child.process
                if process is None or process.poll() is None or child.name in self._given_up:
                    continue
                try:
                    self._restart(child, process.returncode)
                except Exception as exc:  # noqa: BLE001 - the watcher outlives one failed restart
                    self.say(f"{child.name} could not be restarted: {exc}")

    def _restart(self, child: Child, code: int) -> None:
        now = time.monotonic()
        recent = [t for t in self.restarts.get(child.name, []) if now - t < self.window]
        if len(recent) >= self.max_restarts:
            self._given_up.add(child.name)
            self.say(f"{child.name} exited with code {code} {len(recent) + 1} times within {self.window:.0f}s: "
                     f"not restarting it again (see {child.log})")
            return
        delay = min(self.max_backoff, 2.0 ** len(recent))
        self.say(f"{child.name} exited with code {code}: restarting in {delay:.0f}s (log {child.log})")
        if self._stop.wait(delay):
            return
        with self._lock:
            if self._stop.is_set():
                return
            assert child.process is not None
            stop_group(child.process, grace=5.0)  # helpers it left behind, and its port
            child.start()
        recent.append(time.monotonic())
        self.restarts[child.name] = recent
        started = time.monotonic()
        try:
            child.wait_ready(self.ready_timeout)
        except ChildFailed as exc:
            self.say(f"{child.name} did not come back: {str(exc).splitlines()[0]}")
            return
        assert child.process is not None
        self.say(f"{child.name} restarted (pid {child.process.pid}, answering after {time.monotonic() - started:.1f}s)")
        if self.on_restart is not None:
            self.on_restart(child.name, child.process.pid)

    def stop_all(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)  # a restart in progress notices the stop, or its child is stopped below
            self._watcher = None
        with self._lock:
            for wave in reversed(self.waves):
                for child in wave:
                    if child.process is not None and child.process.poll() is None:
                        self.say(f"stopping {child.name}")
                failures: list[BaseException] = []

                def stop(child: Child) -> None:
                    try:
                        child.stop()
                    except BaseException as exc:  # noqa: BLE001 - raised below, once the whole wave is stopped
                        failures.append(exc)

                stoppers = [threading.Thread(target=stop, args=(child,), name=f"stop-{child.name}") for child in wave]
                for stopper in stoppers:
                    stopper.start()
                for stopper in stoppers:
                    stopper.join()
                if failures:
                    raise failures[0]
            self.children.clear()
            self.waves.clear()
