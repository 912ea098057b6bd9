"""The EPCIS 2.0 REST interface of a member node (GS1's OpenAPI description of EPCIS 2.0,
`REST Bindings/openapi.yaml` of github.com/gs1/EPCIS), under `/epcis`:

    OPTIONS /epcis/...                                  Allow and the GS1-* headers, every resource
    GET  /epcis/                                        the top-level resources
    POST /epcis/capture                                 capture job: 202 + Location (GS1-Capture-Error-Behaviour
                                                        rollback | proceed); EPCISDocument or EPCISQueryDocument
    GET  /epcis/capture, /epcis/capture/{id}            jobs: running, success, per-event errors (RFC 7807,
                                                        `instance` = JSON pointer of the offending value)
    POST /epcis/events                                  one event, synchronously: 201 + Location, 409 if stored
    GET  /epcis/events                                  EPCISQueryDocument; SimpleEventQuery parameters
                                                        (node.member.epcis_rest.query), perPage / nextPageToken + Link
    GET  /epcis/events/{eventID}                        the event and its error declarations (same event hash)
    GET  /epcis/{eventTypes|epcs|bizSteps|bizLocations|readPoints|dispositions}[/{id}[/events]]
    GET/POST /epcis/queries, GET/DELETE /epcis/queries/{name}, GET /epcis/queries/{name}/events
    GET/POST /epcis/queries/{name}/subscriptions, GET/DELETE .../subscriptions/{id}
                                                        stream subscriptions delivered by webhook
                                                        (node.member.epcis_rest.subscriptions: GS1-Signature, retries)
    DELETE /epcis/nextPageToken/{token}                 204 (tokens are stateless)

Writers need no credentials beyond their events' attestations (`wm:attestation`, see
node.member.ingest.capture): the signature is the writer's credential. Readers sign each request as
node.documents signs document reads (EIP-712 DocumentRequest, action "read", headers
Waymark-Account / Waymark-Timestamp / Waymark-Signature) over `request_target_digest`
(SHA-256 of "<METHOD> <path?query as sent>") and must be accounts of active member
organisations; each request names the node it is signed for (`audience`, the node's public URL,
header Waymark-Audience), so it cannot be replayed at another node. Event bodies are the public
tier: the oracles refuse commercial or personal content in events (node.documents.confidential),
which lives in sealed documents that the document routes serve per tier (node.documents.policy).

Left out: WebSocket subscriptions and scheduled (`schedule`) subscriptions (501), XML
(application/xml) bodies and answers, `GS1-EPC-Format` / `GS1-CBV-XML-Format` conversions
(events are returned as captured), the dynamic query parameter families (see
node.member.epcis_rest.query), `WD_` location hierarchies (no location master data), errorFile.
"""

from node.member.epcis_rest.corrections import Correction, corrections_for, corrections_of, passport_corrections
from node.documents.signing import request_target_digest
from node.member.epcis_rest.negotiation import read_body
from node.member.epcis_rest.problems import EpcisProblem
from node.member.epcis_rest.routes import install_epcis

__all__ = [
    "Correction", "EpcisProblem", "corrections_for", "corrections_of", "passport_corrections", "install_epcis", "read_body",
    "request_target_digest",
]
