"""The test story: a lot of ceramic units from commissioning to delivery, as signed EPCIS events.

Members are the demo consortium's (waymark/devnet/consortium.py): manufacturer = dev account 1,
inspector = 2, carrier = 3, customs = 4. Times are offsets (seconds) from `start`, which the
tests take from the chain so that every signer already held its role.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from eth_account.signers.local import LocalAccount

from waymark.devnet.consortium import devnet_account
from node.protocol import epcis
from node.protocol import vocabulary
from node.protocol.attestation import AttestationDomain, sign_attestation
from node.protocol.gs1 import ContainerId, UnitId, make_sscc
from node.member.runtime import NodeRuntime, build_anchorer, build_capture

GTIN = "09521234543213"
LOT = "L2025-07"
MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS = (devnet_account(i) for i in (1, 2, 3, 4))


def iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sscc(n: int) -> ContainerId:
    return ContainerId(make_sscc("9521234", n))


@dataclass
class Story:
    start: int
    units: list[UnitId]
    case: ContainerId
    pallet: ContainerId
    container: ContainerId
    stray: UnitId  # never packed


def lot_story(start: int, size: int = 4) -> Story:
    units = [UnitId(GTIN, f"S{start}X{i:04d}", LOT) for i in range(size)]
    # Each kind of container numbered in its own range: stories that start 1,000 s apart must not
    # share a case with another's pallet (the scan benchmark's lots start 100 s apart).
    case, pallet, container = (sscc(kind * 10**8 + start % 10**8) for kind in (1, 2, 3))
    return Story(start, units, case, pallet, container, UnitId(GTIN, f"S{start}STRAY", LOT))


def story_events(s: Story) -> list[tuple[dict[str, Any], LocalAccount]]:
    """The lot's life, in time order, each event with the account that attests it."""
    t = s.start
    obj = epcis.object_event
    agg = epcis.aggregation_event
    return [
        (obj(epcs=[*s.units, s.stray], action="ADD", event_time=iso(t + 1), biz_step="commissioning", disposition="active"), MANUFACTURER),
        (obj(epcs=s.units, action="OBSERVE", event_time=iso(t + 2), biz_step="inspecting",
             documents=[epcis.document_ref("inspection_report", "ab" * 32)]), INSPECTOR),
        (agg(parent_id=s.case, child_epcs=s.units, action="ADD", event_time=iso(t + 3), biz_step="packing"), MANUFACTURER),
        (agg(parent_id=s.pallet, child_epcs=[s.case], action="ADD", event_time=iso(t + 4), biz_step="packing"), CARRIER),
        (agg(parent_id=s.container, child_epcs=[s.pallet], action="ADD", event_time=iso(t + 5), biz_step="loading"), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 6), biz_step="shipping", disposition="in_transit"), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 7), biz_step=vocabulary.customs_step("declared"),
             extensions=epcis.customs_fields(declaration_id="NL-2025-0001", customs_office="NL000396")), CUSTOMS),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 8), biz_step="wmc:cleared"), CUSTOMS),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 9), biz_step="arriving"), CARRIER),
        (agg(parent_id=s.container, child_epcs=[s.pallet], action="DELETE", event_time=iso(t + 10), biz_step="unloading"), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 11), biz_step="departing"), CARRIER),  # empty now
        (obj(epcs=[s.pallet], action="OBSERVE", event_time=iso(t + 12), biz_step="receiving", disposition="in_progress"), CARRIER),
    ]


def anchored_by() -> dict[str, LocalAccount]:
    """Whose node anchors each signer's events in the demo consortium (the manufacturer's node hosts
    the inspector): node.protocol.verification counts only the attester's organisation's anchor, or its host's."""
    return {MANUFACTURER.address: MANUFACTURER, INSPECTOR.address: MANUFACTURER, CARRIER.address: CARRIER,
            CUSTOMS.address: CUSTOMS}


def by_anchoring_node(events: list[tuple[dict[str, Any], LocalAccount]]
                      ) -> list[tuple[LocalAccount, list[tuple[dict[str, Any], LocalAccount]]]]:
    """The events grouped by the account whose node anchors them (`anchored_by`), first seen first."""
    groups: dict[str, list[tuple[dict[str, Any], LocalAccount]]] = {}
    for event, signer in events:
        groups.setdefault(anchored_by()[signer.address].address, []).append((event, signer))
    return [(anchored_by()[group[0][1].address], group) for group in groups.values()]


def capture_and_anchor(runtime: NodeRuntime, events: list[tuple[dict[str, Any], LocalAccount]]) -> None:
    """The events captured by the runtime's node, each group anchored by the node that anchors it
    (`by_anchoring_node`: the inspector's by the manufacturer's, which hosts it)."""
    for anchorer, group in by_anchoring_node(events):
        build_capture(runtime).capture(orjson.dumps(capture_document(group, runtime.domain)))
        build_anchorer(runtime, anchorer).drain()


def attested(event: dict[str, Any], signer: LocalAccount, domain: AttestationDomain) -> dict[str, Any]:
    """The event as it travels in a capture document: with its `wm:attestation`."""
    signed = sign_attestation(signer.key, domain, event)
    body = {k: v for k, v in event.items() if k != "@context"}
    body["wm:attestation"] = {"signer": signer.address, "signature": signed.signature_hex}
    return body


def capture_document(events: list[tuple[dict[str, Any], LocalAccount]], domain: AttestationDomain) -> dict[str, Any]:
    document = epcis.epcis_document([e for e, _ in events])
    document["epcisBody"]["eventList"] = [attested(e, signer, domain) for e, signer in events]
    return document
