"""demo: the whole network on this machine, the story played through it, then serving until Ctrl-C.

Anvil, four member nodes (manufacturer, carrier, customs, marketplace operator: each with its own
database and scan API), and the relayer run as child processes (each in a process group of its
own), the members' oracles in this process, each posting to its organisation's node (or its
host's). Everything is kept under `--root` (default var/demo/): chain state, deployment record,
the nodes' databases, oracle queues, logs, the story record and the QR images. Running it again
resumes that chain and those databases; a story already played is not played again, only served.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit
from typing import Annotated

import typer

from node.errors import WaymarkError
from node.paths import PROJECT_ROOT
from waymark.demo.layout import MEMBER_NODES, RESOLVER_NODE, Ports
from waymark.demo.processes import Supervisor

DEFAULT_ROOT = PROJECT_ROOT / "var" / "demo"
REPLICATION_WAIT = 60.0


class Stop(BaseException):
    """SIGINT or SIGTERM: leave whatever is going on and shut down (a BaseException, so no
    `except Exception` on the way swallows it)."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    # Further signals are ignored while children are stopped: a second Ctrl-C must not leave orphans.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


def lan_address() -> str | None:
    """This machine's own IPv4 address on its local network (not loopback), from its host name's
    addresses; None if it has none. Sends nothing."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    addresses = sorted({str(info[4][0]) for info in infos})
    private = [a for a in addresses if ipaddress.ip_address(a).is_private and not ipaddress.ip_address(a).is_loopback
               and not ipaddress.ip_address(a).is_link_local]
    return private[0] if private else None


def resolve_public_url(value: str | None, api_port: int) -> str | None:
    """The demo's public base URL: None (loopback only), an explicit URL, or `auto` (the LAN address)."""
    if value is None or not value.strip():
        return None
    if value.strip().lower() == "auto":
        address = lan_address()
        if address is None:
            raise DemoSetupError("--public-url auto: this machine has no LAN address (give the URL, e.g. http://192.168.1.20:8700)")
        return f"http://{address}:{api_port}"
    parsed = urlsplit(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DemoSetupError(f"--public-url {value!r} is not an http(s) URL (e.g. http://192.168.1.20:{api_port}) or 'auto'")
    return value.strip().rstrip("/")


class DemoSetupError(WaymarkError):
    code = "invalid_input"


def say(line: str) -> None:
    print(line, flush=True)


def demo(
    root: Annotated[Path, typer.Option(help="Folder of the demo's state (chain, the nodes' databases, logs, QR images)", envvar="WAYMARK_DEMO_ROOT")] = DEFAULT_ROOT,
    rpc_port: Annotated[int, typer.Option(help="Anvil's RPC port", envvar="WAYMARK_DEMO_RPC_PORT")] = Ports.rpc,
    node_port: Annotated[int, typer.Option(help=f"First of {len(MEMBER_NODES)} consecutive ports of the member nodes, "
                                                f"in this order: {', '.join(MEMBER_NODES)}", envvar="WAYMARK_DEMO_NODE_PORT")] = Ports.node,
    api_port: Annotated[int, typer.Option(help=f"First of {len(MEMBER_NODES)} consecutive ports of the member nodes' scan APIs "
                                               f"(scanner page and resolver), in the same order; the {RESOLVER_NODE}'s, the first, "
                                               "is the one the QR codes point at", envvar="WAYMARK_DEMO_API_PORT")] = Ports.api,
    relayer_port: Annotated[int, typer.Option(help="The escrow relayer's port", envvar="WAYMARK_DEMO_RELAYER_PORT")] = Ports.relayer,
    oracle_port: Annotated[int, typer.Option(help="First of 8 consecutive ports of the members' oracles", envvar="WAYMARK_DEMO_ORACLE_PORT")] = Ports.oracles,
    day_seconds: Annotated[float, typer.Option(help="Wall-clock seconds per simulated day of the voyage (first run)", envvar="WAYMARK_DEMO_DAY_SECONDS")] = 0.5,
    units: Annotated[int, typer.Option(help="Vases in the lot (first run)")] = 24,
    wait: Annotated[bool, typer.Option(help="Serve until Ctrl-C (--no-wait: stop everything once ready)")] = True,
    public_url: Annotated[str | None, typer.Option(
        help="Base URL phones reach the first scan API at, for the QR codes and printed links (e.g. http://192.168.1.20:8700), "
             "or 'auto' for this machine's LAN address; the nodes and scan APIs then listen on every interface, and the "
             "registry's node directory names each node at that host. "
             "Default: 127.0.0.1 only, nothing reachable from the network",
        envvar="WAYMARK_DEMO_PUBLIC_URL")] = None,
) -> None:
    """Start Anvil, deploy with the demo consortium, start the member nodes (each with its scan API),
    the relayer and the oracles, play the story (or find it played), wait until every node holds
    every anchored batch, print the scanner URL and "ready", and serve until Ctrl-C."""
    from waymark.demo.network import start_network, wait_replicated  # the demo's stack, loaded by the command (waymark.cli)
    from waymark.demo.story import Story

    started = time.monotonic()
    root = root.resolve()
    ports = Ports(rpc=rpc_port, node=node_port, api=api_port, oracles=oracle_port, relayer=relayer_port)
    supervisor = Supervisor(say)
    story: Story | None = None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    say(f"Waymark demo: state in {root}")
    public = resolve_public_url(public_url, api_port)
    try:
        network = start_network(root, ports, supervisor, say, public_url=public)
        (root / "pids.json").write_text(json.dumps({"demo": os.getpid(), **supervisor.pids()}))
        story = Story(network, say, day_seconds=day_seconds, units=units)
        story.start_oracles()
        if story.played():
            say(f"story       already played (recorded in {story.record_path}): serving it again")
        else:
            say(f"story       lot {story.shipment.lot} of {story.record.units} vases, container {story.shipment.container}, "
                f"one simulated day = {story.record.day_seconds:g}s")
            story.play()
        qr = story.write_qr(root / "qr")
        story.save()
        say(f"QR codes    {qr['demo-unit'].parent} ({', '.join(sorted(p.stem for p in qr.values()))}; PNG and SVG)")
        say(f"CLI         export WAYMARK_CHAIN_RPC_URL={network.rpc_url} WAYMARK_CHAIN_DEPLOYMENTS_DIR={network.deployment_file.parent} "
            f"WAYMARK_DB_URL={network.db_url}  (then e.g. waymark escrow show {story.record.orders['happy']})")
        batches = wait_replicated(network, REPLICATION_WAIT)
        say(f"replicated  every member node ({', '.join(network.nodes)}) holds all {len(batches)} anchored batches "
            f"({sum(batches.values())} events)")
        say(f"scanner     {story.url_of(story.record.demo_unit)}")
        say("            the same passport from any member's scan API: " + ", ".join(
            f"{node.member} {node.api_url}" for node in network.nodes.values()))
        say(f"ready       in {time.monotonic() - started:.0f}s; the passport as JSON: curl -H 'Accept: application/json' <scanner URL>")
        if wait:
            # A service that dies is restarted, and the demo says so (the oracles queue meanwhile).
            def record_pids(_name: str, _pid: int) -> None:
                (root / "pids.json").write_text(json.dumps({"demo": os.getpid(), **supervisor.pids()}))

            supervisor.on_restart = record_pids
            supervisor.watch()
            say("supervising the member nodes, scan APIs, relayer and chain: a service that dies is restarted")
            say("press Ctrl-C to stop")
            while True:
                time.sleep(3600)
    except Stop as stop:
        say(f"{stop}: stopping")
    finally:
        if story is not None:
            story.close()
        supervisor.stop_all()
        say("stopped; chain and database kept for the next run")
    sys.stdout.flush()
