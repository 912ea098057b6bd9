"""The demo's layout: which members run a node, which node resolves the QR codes and runs the
relayer, how many oracles, and on which ports. Kept apart from the network's start-up
(waymark.demo.network) so that the CLI can show the demo's options without loading it."""

from __future__ import annotations

from dataclasses import dataclass

from waymark.demo.processes import PortTaken
from waymark.ports import free_port, free_port_range, port_free
from waymark.devnet.consortium import DEMO_MEMBERS

# The member nodes (the demo members that run one: waymark/devnet/consortium.py), in the order their
# ports are given out, with the organisations whose oracles post to each: its own and those the
# registry records as hosted by it.
MEMBER_NODES: dict[str, tuple[str, ...]] = {
    m.key: (m.key, *(h.key for h in DEMO_MEMBERS if h.hosted_by == m.key)) for m in DEMO_MEMBERS if m.runs_node
}
RESOLVER_NODE = "manufacturer"  # the brand's scan API resolves the codes it prints (the QR codes' URL)
RELAYER_NODE = "operator"  # the marketplace operator runs the escrow relayer, on its own node's database
# The relayer pays with an account of no organisation (it sends nothing else, so nonces never race).
RELAYER_ACCOUNT = 16
#: The header a reverse proxy in front of the scan APIs would set to the country it saw a scan come from.
REGION_HEADER = "X-Country"
ORACLE_COUNT = 8  # demo members whose oracles the story uses (see simulation.build_plan)


@dataclass(frozen=True)
class Ports:
    """The demo's ports. `node` and `api` are the first of one port per member node each (in
    MEMBER_NODES order: the manufacturer's node on `node`, the carrier's on `node + 1`, ...); 0
    gives every node and scan API a free port of its own, as `oracles` = 0 does for the oracles."""

    rpc: int = 8545
    node: int = 8600  # the first of len(MEMBER_NODES) consecutive ports
    api: int = 8700  # the first of len(MEMBER_NODES) consecutive ports
    oracles: int = 8710  # the first of ORACLE_COUNT consecutive ports
    relayer: int = 8720

    @classmethod
    def free(cls) -> "Ports":
        """Ports nobody listens on (tests, benchmarks), all from one free range: ranges looked up
        one by one could overlap (a node's port inside the scan APIs' range), none is bound yet."""
        members = len(MEMBER_NODES)
        base = free_port_range(2 + 2 * members + ORACLE_COUNT)
        return cls(rpc=base, node=base + 1, api=base + 1 + members, oracles=base + 1 + 2 * members,
                   relayer=base + 1 + 2 * members + ORACLE_COUNT)

    def member_ports(self) -> dict[str, tuple[int, int]]:
        """Each member node's (node port, scan API port)."""
        return {member: (self.node + i if self.node else free_port(), self.api + i if self.api else free_port())
                for i, member in enumerate(MEMBER_NODES)}

    def check_free(self) -> None:
        for what, port, option in (("chain RPC", self.rpc, "--rpc-port"), ("relayer", self.relayer, "--relayer-port")):
            if not port_free(port):
                raise PortTaken(what, port, option)
        for what, base, count, option in (("member nodes", self.node, len(MEMBER_NODES), "--node-port"),
                                          ("scan APIs", self.api, len(MEMBER_NODES), "--api-port"),
                                          ("oracles", self.oracles, ORACLE_COUNT, "--oracle-port")):
            for offset in range(count if base else 0):
                if not port_free(base + offset):
                    raise PortTaken(what, base + offset, option)
