"""Customs declarations and decisions (`customs`), JSON, told apart by `kind`.

Declaration:

    {"kind": "declaration", "declarationId": "25NL000396I0042", "containers": ["195212340000000038"],
     "office": "NL000396", "port": {"unlocode": "NLRTM"}, "lodgedAt": "2025-07-28T09:00:00+02:00",
     "hsCode": "691390", "declaredValue": {"amount": "18400.00", "currency": "EUR"}, "originCountry": "VN",
     "readers": [1],
     "originCertificate": {"documentType": "certificate_of_origin", "contentBase64": "..."}}

becomes an ObjectEvent OBSERVE of the containers, bizStep `wmc:declared`, disposition
`wmc:held`, at the port (`port`: business location and read point), with `wmc:declarationId`
and `wmc:customsOffice` only. What is commercial (the HS classification, the declared value,
the declared origin) goes into a sealed `customs_declaration` document (JSON, salted so its
public hash gives nothing away) named in `wm:documents`, beside the certificate of origin and an
optional commercial `invoice`. Documents are sealed for this customs organisation, the
organisations in `readers` (the parties to the order) and the auditors' tier
(node.documents.policy).

Decision:

    {"kind": "decision", "declarationId": "25NL000396I0042", "decision": "cleared",
     "decidedAt": "2025-07-29T15:10:00+02:00", "duty": {"amount": "736.00", "currency": "EUR"}}

| decision | events (objects: the declaration's containers, at its port) | escrow |
|---|---|---|
| cleared | with a duty: `wmc:duty_assessed` (disposition `wmc:held`); then `wmc:cleared` (disposition `wmc:released`); both name the sealed `customs_duty_assessment` document holding the duty | CustomsCleared, with the duty paid to the customs payee |
| detained | `wmc:detained`, disposition `wmc:held`; a `reason` goes into a sealed `customs_decision` document | none (the goods wait) |
| returned | `wmc:returned`, disposition `wmc:refused`; the reason as for detained | customs return: the buyer is refunded |

A buyer's passport thus reads "cleared by customs at Rotterdam on ..." and nothing more.
A decision must name a declaration this oracle lodged: one for an unknown shipment is
refused. A cleared or returned declaration is final; the same decision sent again is the
same events (accepted, not duplicated), a different one is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from node.protocol import epcis
from node.protocol import vocabulary
from oracle.adapters.base import (
    Adapter, Amount, Context, Country, Currency, DocumentInput, DocumentUpload, FieldError, Ident, Location, Output, Record, Sscc,
    Timestamp, offset_of, rejection,
)
from oracle.errors import InputRejected
from oracle.state import Declaration as DeclarationState


class Money(Record):
    amount: Amount
    currency: Currency


class CustomsDeclaration(Record):
    kind: Literal["declaration"]
    declaration_id: Ident
    containers: list[Sscc] = Field(min_length=1, max_length=500)
    office: str = Field(pattern=r"^[A-Z]{2}[A-Z0-9]{6}$", description="Customs office code, e.g. NL000396")
    port: Location | None = Field(None, description="Where the goods are declared (a UN/LOCODE or GLN): the place the passport shows")
    lodged_at: Timestamp
    hs_code: str = Field(pattern=r"^[0-9]{6}([0-9]{2}){0,2}$", description="Harmonized System code, 6, 8 or 10 ASCII digits")
    declared_value: Money
    origin_country: Country
    readers: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list, max_length=50, description="Organisation ids the declaration's documents are sealed for (the parties to the order)"
    )
    origin_certificate: DocumentInput | None = None
    invoice: DocumentInput | None = None


class CustomsDecision(Record):
    kind: Literal["decision"]
    declaration_id: Ident
    decision: Literal["cleared", "detained", "returned"]
    decided_at: Timestamp
    duty: Money | None = None
    reason: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _consistent(self) -> "CustomsDecision":
        if self.duty is not None and self.decision != "cleared":
            raise ValueError(f"duty is assessed on clearance, not on a {self.decision} decision")
        return self


CustomsMessage = Annotated[Union[CustomsDeclaration, CustomsDecision], Field(discriminator="kind")]
_MESSAGE = TypeAdapter(CustomsMessage)


class CustomsAdapter(Adapter):
    name = "customs"
    model = CustomsDeclaration  # for the schema of one branch; parse() takes the union
    description = "Customs declarations (HS code, declared value, origin certificate) and decisions (cleared, detained, returned; duty)"

    def parse(self, data: Any) -> BaseModel:
        if isinstance(data, dict) and data.get("kind") not in ("declaration", "decision"):
            raise InputRejected(self.name, "kind", f"expected 'declaration' or 'decision', got {data.get('kind')!r}")
        try:
            return _MESSAGE.validate_python(data)
        except ValidationError as exc:
            problem = rejection(self.name, exc)
            # Drop the union tag ("decision.duty" -> "duty") from the path.
            for tag in ("declaration.", "decision."):
                if problem.field.startswith(tag):
                    raise InputRejected(self.name, problem.field[len(tag):], problem.problem) from None
            raise problem from None

    def schema(self) -> dict[str, Any]:
        return _MESSAGE.json_schema(by_alias=True)

    def build(self, record: Any, ctx: Context) -> Output:
        if isinstance(record, CustomsDeclaration):
            return self._declaration(record, ctx)
        return self._decision(record, ctx)

    def _declaration(self, record: CustomsDeclaration, ctx: Context) -> Output:
        known = ctx.state.declaration(record.declaration_id)
        containers = list(dict.fromkeys(record.containers))
        if known is not None and set(known.containers) != set(containers):
            raise FieldError("containers", f"declaration {record.declaration_id!r} was lodged for other containers")
        readers = tuple(sorted(set(record.readers)))
        documents: list[DocumentUpload] = [ctx.record_document("customs_declaration", {
            "declarationId": record.declaration_id, "office": record.office, "lodgedAt": record.lodged_at, "containers": containers,
            "hsCode": record.hs_code, "declaredValue": record.declared_value.model_dump(by_alias=True), "originCountry": record.origin_country,
        }, readers)]
        for field, item, default in (("originCertificate", record.origin_certificate, "certificate_of_origin"), ("invoice", record.invoice, "commercial_invoice")):
            if item is None:
                continue
            try:
                documents.append(DocumentUpload(item.content(), item.document_type or default, item.media_type, tuple(sorted({*readers, *item.readers}))))
            except ValueError as exc:
                raise FieldError(f"{field}.contentBase64", str(exc).removeprefix("contentBase64: ")) from None
        place = _place(record.port)
        event = epcis.object_event(
            epcs=containers,
            action="OBSERVE",
            event_time=record.lodged_at,
            event_time_zone_offset=offset_of(record.lodged_at),
            biz_step=vocabulary.customs_step("declared"),
            disposition=vocabulary.customs_disposition("held"),
            documents=[d.ref() for d in documents],
            extensions=epcis.customs_fields(declaration_id=record.declaration_id, customs_office=record.office),
            read_point=place.get("read_point"),
            biz_location=place.get("biz_location"),
        )
        detail = {"office": record.office, "hsCode": record.hs_code, "originCountry": record.origin_country, "place": place, "readers": list(readers)}
        state = DeclarationState(record.declaration_id, tuple(containers), detail, known.decision if known else None)
        return Output(
            events=[event], documents=documents, remember=[lambda s: s.save_declaration(state)],
            notes={"declaration": record.declaration_id},
        )

    def _decision(self, record: CustomsDecision, ctx: Context) -> Output:
        declaration = ctx.state.declaration(record.declaration_id)
        if declaration is None:
            raise FieldError(
                "declarationId",
                f"unknown shipment: no declaration {record.declaration_id!r} was lodged with this oracle, so there is nothing to decide",
            )
        if declaration.decision in ("cleared", "returned") and declaration.decision != record.decision:
            raise FieldError("decision", f"declaration {record.declaration_id!r} was already {declaration.decision}; that decision is final")
        office = declaration.detail.get("office")
        readers = [int(r) for r in declaration.detail.get("readers", [])]
        common: dict[str, Any] = {
            "epcs": list(declaration.containers),
            "action": "OBSERVE",
            "event_time": record.decided_at,
            "event_time_zone_offset": offset_of(record.decided_at),
            "extensions": epcis.customs_fields(declaration_id=record.declaration_id, customs_office=office),
            **{k: v for k, v in dict(declaration.detail.get("place") or {}).items() if v is not None},
        }
        events = []
        documents: list[DocumentUpload] = []
        escrow_duty: dict[int, dict[str, str]] = {}
        if record.decision == "cleared":
            refs = None
            if record.duty is not None:
                assessment = ctx.record_document("customs_duty_assessment", {
                    "declarationId": record.declaration_id, "decidedAt": record.decided_at, "duty": record.duty.model_dump(by_alias=True),
                }, readers)
                documents.append(assessment)
                refs = [assessment.ref()]
                events.append(epcis.object_event(
                    biz_step=vocabulary.customs_step("duty_assessed"), disposition=vocabulary.customs_disposition("held"), documents=refs, **common,
                ))
                # The escrow pays the duty on the cleared event's fact (the event appended next).
                escrow_duty[len(events)] = {"amount": record.duty.amount, "currency": record.duty.currency}
            events.append(epcis.object_event(
                biz_step=vocabulary.customs_step("cleared"), disposition=vocabulary.customs_disposition("released"), documents=refs, **common,
            ))
        else:
            refs = None
            if record.reason:
                grounds = ctx.record_document("customs_decision", {
                    "declarationId": record.declaration_id, "decision": record.decision, "decidedAt": record.decided_at, "reason": record.reason,
                }, readers)
                documents.append(grounds)
                refs = [grounds.ref()]
            events.append(epcis.object_event(
                biz_step=vocabulary.customs_step(record.decision),
                disposition=vocabulary.customs_disposition("held" if record.decision == "detained" else "refused"),
                documents=refs, **common,
            ))
        decision = record.decision
        return Output(
            events=events, documents=documents, escrow_duty=escrow_duty, remember=[lambda s: s.decide(record.declaration_id, decision)],
            notes={"declaration": record.declaration_id, "decision": decision},
        )


def _place(port: Location | None) -> dict[str, str]:
    """The event's business location and read point from the declaration's port, if given."""
    if port is None:
        return {}
    return {k: v for k, v in (("read_point", port.read_point()), ("biz_location", port.business_location())) if v is not None}
