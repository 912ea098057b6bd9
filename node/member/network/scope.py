"""Which events a node takes in: those signed by accounts of its own organisation, or of an
organisation the registry records as hosted by it (`hostOf`). Anything else belongs on
another member's node; capture refuses it, naming the organisation and the node that serves it.

Capture is the only way an event becomes pending (imported events arrive anchored), so the
anchorer, which anchors pending events only, anchors only what this gate let in.
"""

from __future__ import annotations

from typing import Any

from node.member.ingest.capture import ATTESTATION_KEY, CaptureError, CaptureService, CheckedEvent
from node.member.network.directory import Directory


class NotServedHere(CaptureError):
    code = "wrong_node"
    status = 403

    def __init__(self, field: str, signer: str, org: int, own_org: int, serving: str | None) -> None:
        self._init_args = (field, signer, org, own_org, serving)
        where = f"its node is {serving}" if serving else "the registry names no node serving it"
        super().__init__(
            f"{field}: {signer} belongs to organisation {org}, which this node (organisation {own_org}) "
            f"neither is nor hosts; {where}",
            field,
        )


class ScopedCapture(CaptureService):
    """Capture that refuses events of organisations this node does not serve."""

    def __init__(self, *args: Any, own_org: int, directory: Directory, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.own_org = own_org
        self.directory = directory

    def check_roles(self, events: list[CheckedEvent]) -> list[CheckedEvent]:
        checked = super().check_roles(events)
        for event in checked:
            # Hosting as it stands now, from the registry history this node mirrors (no chain call
            # on the capture path); the directory is asked only to name the right node in a refusal.
            if event.org != self.own_org and self.roles.host_of_at(event.org, LATEST) != self.own_org:
                raise NotServedHere(f"{event.path}.{ATTESTATION_KEY}", event.signer, event.org, self.own_org,
                                    self.directory.url_of(event.org))
        return checked


LATEST = 2**63 - 1
"""A time after every change the mirror holds: `host_of_at(org, LATEST)` is the hosting now."""
