"""EPCIS 2.0 capture (`epcis`): whole EPCISDocuments (JSON-LD binding) from the organisation's
own EPCIS repository or middleware, posted to the oracle's `POST /capture`.

The document is validated as EPCIS 2.0 (`node.protocol.epcis.validate_document`; a failure
names the field path, e.g. `epcisBody.eventList[3].epcList[0]`); each event is then signed
with the organisation's key like any other adapter's, queued and delivered to the node.
Events must come unsigned: one that already carries a `wm:attestation` is refused (send
attested documents to the node itself).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from node.protocol import epcis
from node.protocol import epcis_validation
from oracle.adapters.base import Adapter, Context, Output
from oracle.errors import InputRejected

ATTESTATION_KEY = "wm:attestation"


class EpcisDocument(BaseModel):
    """An EPCIS 2.0 EPCISDocument; see https://ref.gs1.org/standards/epcis/ (validated by node.protocol.epcis)."""

    model_config = {"extra": "allow"}


class _Checked(BaseModel):
    document: dict[str, Any]


class EpcisAdapter(Adapter):
    name = "epcis"
    model = EpcisDocument
    description = "EPCIS 2.0 capture: whole EPCIS documents, each event signed and delivered"

    def parse(self, data: Any) -> BaseModel:
        if not isinstance(data, dict):
            raise InputRejected(self.name, "(body)", "expected an EPCISDocument object")
        events = (data.get("epcisBody") or {}).get("eventList") if isinstance(data.get("epcisBody"), dict) else None
        for i, event in enumerate(events or ()):
            if isinstance(event, dict) and ATTESTATION_KEY in event:
                raise InputRejected(
                    self.name, f"epcisBody.eventList[{i}].{ATTESTATION_KEY}",
                    "already attested: the oracle signs events itself; send attested documents to the node",
                )
        try:
            epcis_validation.validate_document(data)
        except epcis_validation.EpcisValidationError as exc:
            raise InputRejected(self.name, exc.field, exc.problem) from None
        return _Checked(document=data)

    def build(self, record: _Checked, ctx: Context) -> Output:
        return Output(events=epcis.document_events(record.document), notes={"events": len(record.document["epcisBody"]["eventList"])})
