"""The demo's member-node topology and ports, without starting anything: which node each
organisation's oracles post to, where each node's database lives, which URL the registry's node
directory gets with and without a public URL; the port ranges tests and benchmarks reserve."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from waymark.devnet.consortium import DEMO_MEMBERS
from waymark.demo.layout import MEMBER_NODES, RELAYER_NODE, Ports
from waymark.demo.network import MemberNode, member_home
from node.paths import PROJECT_ROOT
from waymark.demo.processes import PortTaken
from waymark.ports import EPHEMERAL_START, FIRST_PORT, free_port, free_port_range, port_free
from waymark.demo.simulation import CARRIERS_DELIVERED, CARRIERS_SHIPPED, CUSTOMS_PARTIES, FX_ORACLES

def test_four_members_run_nodes_and_every_oracle_of_the_story_posts_to_its_own_or_its_hosts_node() -> None:
    assert list(MEMBER_NODES) == ["manufacturer", "carrier", "customs", "operator"]
    assert MEMBER_NODES["manufacturer"] == ("manufacturer", "inspector")
    assert sorted(MEMBER_NODES["carrier"]) == ["carrier", "courier", "forwarder"]
    assert sorted(MEMBER_NODES["customs"]) == ["broker", "customs", "port"]
    hosted = [org for orgs in MEMBER_NODES.values() for org in orgs]
    assert len(hosted) == len(set(hosted)), "an organisation posts to one node only"
    story = {"manufacturer", "inspector", *CARRIERS_SHIPPED, *CARRIERS_DELIVERED, *CUSTOMS_PARTIES, *FX_ORACLES}
    assert story <= set(hosted)
    # Members that hold no attesting role (arbitrator, auditor) post no events and need no node.
    assert {m.key for m in DEMO_MEMBERS} - set(hosted) == {"arbitrator", "auditor"}

def test_each_node_has_its_own_database_and_the_relayers_is_the_one_at_the_root(tmp_path: Path) -> None:
    homes = {member: member_home(tmp_path, member) for member in MEMBER_NODES}
    assert len(set(homes.values())) == len(MEMBER_NODES)
    assert homes[RELAYER_NODE] == tmp_path  # <root>/waymark.sqlite3, the CLI's export line

def test_the_directory_names_a_node_at_loopback_or_at_the_public_host_with_its_own_port(tmp_path: Path) -> None:
    local = MemberNode("carrier", ("carrier",), tmp_path, 8601, 8701)
    assert local.published_node_url == "http://127.0.0.1:8601"
    public = MemberNode("carrier", ("carrier",), tmp_path, 8601, 8701, None, "http://192.168.1.20")
    assert public.published_node_url == "http://192.168.1.20:8601"
    assert public.node_url == "http://127.0.0.1:8601"  # the demo itself talks to it on loopback

def test_the_nodes_get_consecutive_ports_and_a_taken_one_is_named_with_its_option() -> None:
    ports = Ports(rpc=1, node=8600, api=8700, oracles=8710, relayer=8720)
    assert list(ports.member_ports().values()) == [(8600, 8700), (8601, 8701), (8602, 8702), (8603, 8703)]
    free = Ports.free().member_ports()
    assert len({port for pair in free.values() for port in pair}) == 2 * len(MEMBER_NODES)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_free(port)
        with pytest.raises(PortTaken, match=f"port {port} for the scan APIs .*--api-port"):
            Ports(rpc=0, node=0, api=port, oracles=0, relayer=0).check_free()


def test_a_port_range_one_process_reserved_is_handed_to_no_other_until_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from waymark.ports import free_port_range; "
                               "print(free_port_range(5), flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, cwd=PROJECT_ROOT, text=True,
    )
    try:
        assert holder.stdout is not None
        base = int(holder.stdout.readline())
        # Drawn first, a range overlapping the held one is passed over (its ports are not bound yet:
        # free to a bind); then the draws are random again (a fixed second draw once met ports a
        # server of the other test worker held).
        real = random.SystemRandom.randrange
        draws = iter([base - 2])
        monkeypatch.setattr(random.SystemRandom, "randrange", lambda rng, start, stop: next(draws, None) or real(rng, start, stop))
        other = free_port_range(5)
        assert next(draws, None) is None and port_free(base)
        assert other + 5 <= base or other >= base + 5
    finally:
        holder.kill()
        holder.wait(10)
    draws = iter([base])
    assert free_port_range(5) == base  # the holder is gone: its lock went with it


def test_a_single_free_port_is_below_the_ephemeral_range_and_reserved_until_this_process_ends() -> None:
    """Below 32768 no outgoing connection's local port can take it before its server binds it."""
    port = free_port()
    assert FIRST_PORT <= port < EPHEMERAL_START and port_free(port)
    other = subprocess.run(
        [sys.executable, "-c", f"from waymark.ports import _reserve; print(_reserve({port}))"],
        capture_output=True, cwd=PROJECT_ROOT, text=True, check=True,
    )
    assert other.stdout.strip() == "None"  # another process cannot reserve it
