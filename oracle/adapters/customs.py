"""Customs declarations and decisions (`customs`), JSON, told apart by `kind`.

Declaration:

    {"kind": "declaration", "declarationId": "25NL000396I0042", "containers": ["195212340000000038"],
     "office": "NL000396", "lodgedAt": "2025-07-28T09:00:00+02:00",
     "hsCode": "691390", "declaredValue": {"amount": "18400.00", "currency": "EUR"}, "originCountry": "VN",
     "originCertificate": {"documentType": "certificate_of_origin", "contentBase64": "..."}}

becomes an ObjectEvent OBSERVE of the containers, bizStep `wmc:declared`, disposition
`wmc:held`, with `wmc:declarationId`, `wmc:customsOffice`, `wmc:hsCode`, `wmc:declaredValue`
{`wmc:amount`, `wmc:currency`} and `wmc:originCountry`; the certificate of origin (and an
optional commercial `invoice`) go to the node's document store and are named in `wm:documents`.

Decision:

    {"kind": "decision", "declarationId": "25NL000396I0042", "decision": "cleared",
     "decidedAt": "2025-07-29T15:10:00+02:00", "duty": {"amount": "736.00", "currency": "EUR"}}

| decision | events (objects: the declaration's containers) | escrow |
|---|---|---|
| cleared | with a duty: `wmc:duty_assessed` (disposition `wmc:held`, `wmc:duty`); then `wmc:cleared` (disposition `wmc:released`, `wmc:duty` repeated) | CustomsCleared, with the duty paid to the customs payee |
| detained | `wmc:detained`, disposition `wmc:held`, `wmc:reason` | none (the goods wait) |
| returned | `wmc:returned`, disposition `wmc:refused`, `wmc:reason` | customs return: the buyer is refunded |

A decision must name a declaration this oracle lodged: one for an unknown shipment is
refused. A cleared or returned declaration is final; the same decision sent again is the
same events (accepted, not duplicated), a different one is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from node.provenance import epcis
from oracle.adapters.base import (
    Adapter, Amount, Context, Country, Currency, DocumentInput, DocumentUpload, FieldError, Ident, Output, Record, Sscc, Timestamp,
    offset_of, rejection,
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
    lodged_at: Timestamp
    hs_code: str = Field(pattern=r"^[0-9]{6}([0-9]{2}){0,2}$", description="Harmonized System code, 6, 8 or 10 ASCII digits")
    declared_value: Money
    origin_country: Country
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


def _duty_fields(money: "Money") -> dict[str, Any]:
    return epcis.customs_fields(duty_amount=money.amount, duty_currency=money.currency)


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
        documents: list[DocumentUpload] = []
        for field, item, default in (("originCertificate", record.origin_certificate, "certificate_of_origin"), ("invoice", record.invoice, "commercial_invoice")):
            if item is None:
                continue
            try:
                documents.append(DocumentUpload(item.content(), item.document_type or default, item.media_type))
            except ValueError as exc:
                raise FieldError(f"{field}.contentBase64", str(exc).removeprefix("contentBase64: ")) from None
        extensions = {
            **epcis.customs_fields(declaration_id=record.declaration_id, customs_office=record.office),
            "wmc:hsCode": record.hs_code,
            "wmc:declaredValue": {"wmc:amount": record.declared_value.amount, "wmc:currency": record.declared_value.currency},
            "wmc:originCountry": record.origin_country,
        }
        event = epcis.object_event(
            epcs=containers,
            action="OBSERVE",
            event_time=record.lodged_at,
            event_time_zone_offset=offset_of(record.lodged_at),
            biz_step=epcis.customs_step("declared"),
            disposition=epcis.customs_disposition("held"),
            documents=[d.ref() for d in documents] or None,
            extensions=extensions,
        )
        detail = {"office": record.office, "hsCode": record.hs_code, "originCountry": record.origin_country}
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
        common: dict[str, Any] = {
            "epcs": list(declaration.containers),
            "action": "OBSERVE",
            "event_time": record.decided_at,
            "event_time_zone_offset": offset_of(record.decided_at),
        }
        base = epcis.customs_fields(declaration_id=record.declaration_id, customs_office=office)
        events = []
        if record.decision == "cleared":
            duty = _duty_fields(record.duty) if record.duty is not None else {}
            if duty:
                events.append(epcis.object_event(
                    biz_step=epcis.customs_step("duty_assessed"), disposition=epcis.customs_disposition("held"),
                    extensions={**base, **duty}, **common,
                ))
            events.append(epcis.object_event(
                biz_step=epcis.customs_step("cleared"), disposition=epcis.customs_disposition("released"),
                extensions={**base, **duty}, **common,
            ))
        else:
            reason = {"wmc:reason": record.reason} if record.reason else {}
            events.append(epcis.object_event(
                biz_step=epcis.customs_step(record.decision),
                disposition=epcis.customs_disposition("held" if record.decision == "detained" else "refused"),
                extensions={**base, **reason}, **common,
            ))
        decision = record.decision
        return Output(
            events=events, remember=[lambda s: s.decide(record.declaration_id, decision)],
            notes={"declaration": record.declaration_id, "decision": decision},
        )
