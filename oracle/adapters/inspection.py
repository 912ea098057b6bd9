"""Inspection results (`inspection`), JSON:

    {"inspectionId": "MIS-2025-0713", "objects": ["https://id.gs1.org/01/09521234543213/21/...", "195212340000000014"],
     "result": "conformant", "inspectedAt": "2025-07-02T09:30:00+07:00", "site": {"unlocode": "VNSGN"},
     "standard": "ISO 2859-1 AQL 2.5",
     "report": {"mediaType": "application/pdf", "contentBase64": "JVBERi0xLjcK..."}}

becomes an ObjectEvent OBSERVE of the inspected units or cartons, bizStep inspecting,
disposition conformant or non_conformant, naming the report by its SHA-256 in `wm:documents`
(type inspection_report unless the report says otherwise). The report itself is uploaded,
encrypted, to the node's document store; readers are decided by the store's policy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from node.protocol import epcis
from oracle.adapters.base import Adapter, Context, DocumentInput, DocumentUpload, FieldError, Ident, Location, ObjectRef, Output, Record, Timestamp, offset_of


class InspectionResult(Record):
    inspection_id: Ident
    objects: list[ObjectRef] = Field(min_length=1, max_length=20_000)
    result: Literal["conformant", "non_conformant"]
    inspected_at: Timestamp
    site: Location | None = None
    standard: str | None = Field(None, max_length=120, description="Sampling / acceptance standard applied")
    report: DocumentInput


class InspectionAdapter(Adapter):
    name = "inspection"
    model = InspectionResult
    description = "Inspection results with the report document (conformant / non-conformant)"

    def build(self, record: InspectionResult, ctx: Context) -> Output:
        try:
            content = record.report.content()
        except ValueError as exc:
            raise FieldError("report.contentBase64", str(exc).removeprefix("contentBase64: ")) from None
        document = DocumentUpload(
            content, record.report.document_type or "inspection_report", record.report.media_type, tuple(sorted(set(record.report.readers)))
        )
        extensions = {"wm:inspectionId": record.inspection_id}
        if record.standard:
            extensions["wm:standard"] = record.standard
        event = epcis.object_event(
            epcs=list(dict.fromkeys(record.objects)),
            action="OBSERVE",
            event_time=record.inspected_at,
            event_time_zone_offset=offset_of(record.inspected_at),
            biz_step="inspecting",
            disposition=record.result,
            read_point=record.site.read_point() if record.site else None,
            biz_location=record.site.business_location() if record.site else None,
            documents=[document.ref()],
            extensions=extensions,
        )
        return Output(events=[event], documents=[document], notes={"report": "sha256:" + document.sha256_hex})
