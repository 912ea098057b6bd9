"""What the EPCIS 2.0 query interface returns: EPCISQueryDocuments and collections."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from node.member.epcis_rest.query import StoredEvent
from node.protocol.timestamps import iso_ms
from node.protocol.vocabulary import EPCIS_CONTEXT_URL


def collection(members: Sequence[str]) -> dict[str, Any]:
    return {"@context": EPCIS_CONTEXT_URL, "type": "Collection", "member": list(dict.fromkeys(members))}


def output_event(stored: StoredEvent) -> dict[str, Any]:
    """The event as captured, with the fields a repository adds: `recordTime` (when this node
    stored it) and `eventID` (its CBV 2.0 hash, when the capturer gave none; an error
    declaration carries its original's). Neither is part of the event hash."""
    event = dict(stored.event)
    event.setdefault("eventID", stored.event_id)
    event.setdefault("recordTime", iso_ms(stored.received_at_ms))
    return event


def query_document(
    events: Sequence[StoredEvent], *, query_name: str | None = None, subscription_id: str | None = None
) -> dict[str, Any]:
    """An EPCISQueryDocument holding the events. Each event is stored with the full `@context`
    it was captured under; the document takes the first event's, and every event whose context
    differs keeps its own (merging them could change what another event's prefixes mean, and
    with it that event's hash)."""
    document_context: Any = None
    body_events = []
    for stored in events:
        event = output_event(stored)
        context = event.pop("@context", None)
        if document_context is None and context is not None:
            document_context = context
        if context is not None and context != document_context:
            event = {"@context": context, **event}
        body_events.append(event)
    if document_context is None:
        document_context = [EPCIS_CONTEXT_URL]
    results: dict[str, Any] = {"queryName": query_name or "SimpleEventQuery"}
    if subscription_id is not None:
        results["subscriptionID"] = subscription_id
    results["resultsBody"] = {"eventList": body_events}
    return {
        "@context": document_context,
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": iso_ms(int(datetime.now(timezone.utc).timestamp() * 1000)),
        "epcisBody": {"queryResults": results},
    }
