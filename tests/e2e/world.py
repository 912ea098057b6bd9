"""The e2e world: a demo network of a test's own (Anvil, the four member nodes with their scan
APIs, and the relayer as processes on free ports; each node's database and the chain state in a
temporary folder, never var/ or the devnet's ports), with the demo story (waymark/demo/story.py)
on it.

`story.network.nodes` are the member nodes (manufacturer, carrier, customs, operator), each with
its `api_url`, `node_url` and `db_url`; the story's scans go to the manufacturer's scan API (the
QR codes' resolver, `story.network.api_url`); `story.network.db_url` / `db_path` is the database
the relayer writes its milestone signatures to (the operator's node's). `replicated(story)` waits
until every node holds every batch anchored so far."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from waymark.demo.layout import Ports
from waymark.demo.network import start_network, wait_replicated
from waymark.demo.processes import Supervisor
from waymark.demo.story import Story

DAY_SECONDS = 0.25  # the 32 days of the voyage in 8 seconds
REPLICATION_WAIT = 120.0  # every node holds every anchored batch within this (seconds; a loaded 2-core machine)


def narrate(line: str) -> None:
    print(line, flush=True)


@contextmanager
def demo_world(folder: Path, block_time: float | None = None) -> Iterator[Story]:
    """A network of its own (free ports, state in `folder`; a block every `block_time` seconds, else
    one per transaction) with the demo story on it, stopped after."""
    supervisor = Supervisor(narrate)
    try:
        network = start_network(folder, Ports.free(), supervisor, narrate, block_time=block_time)
        played = Story(network, narrate, day_seconds=DAY_SECONDS, units=24)
        try:
            yield played
        finally:
            played.close()
    finally:
        supervisor.stop_all()


def deliver(story: Story) -> Story:
    """The manufacturer has registered the vase, both buyers have paid into escrow, and the lot has
    been made, inspected, packed, shipped, cleared and delivered: both orders stand at Delivered,
    and every member node holds every batch of the journey (whichever node anchored it)."""
    story.register_product()
    story.place_orders()
    story.ship()
    story.wait_delivered()
    replicated(story)
    return story


def replicated(story: Story) -> dict[str, int]:
    """Until every member node holds every batch anchored so far (raises, naming what each node
    lacks, after REPLICATION_WAIT); those batches (root -> event count)."""
    return wait_replicated(story.network, REPLICATION_WAIT)


def paid_out(story: Story, order: str) -> Counter[str]:
    """What one order paid out, from its own escrow events on the chain: duty, the seller's share,
    the platform and carrier fees, and what went back to the buyer."""
    order_id = story.terms[order].order_id
    events = story.escrow.contract.events
    paid: Counter[str] = Counter()
    for name in ("MilestoneReached", "OrderReleased", "DisputeResolved"):
        for log in getattr(events, name)().get_logs(from_block=0, argument_filters={"orderId": order_id}):
            args = log["args"]
            paid["duty"] += args.get("duty", 0)
            paid["seller"] += args["toSeller"]
            paid["platform"] += args["platformFee"]
            paid["carrier"] += args["carrierFee"]
            paid["buyer"] += args.get("toBuyer", 0)
    return paid


def withdrawn(story: Story, account: str) -> int:
    """Everything `account` ever withdrew from the escrow in the story's token."""
    logs = story.escrow.contract.events.Withdrawn().get_logs(from_block=0, argument_filters={"account": account, "token": story.token.address})
    return sum(log["args"]["amount"] for log in logs)
