"""EPCIS 2.0 validation: GS1's official JSON schema, then Waymark's own checks.

Validation is GS1's official EPCIS 2.0 JSON schema (``data/EPCIS-JSON-Schema.json``, checked
by jsonschema_rs: every event type, field, vocabulary term, timestamp and extension the
standard allows), then what the schema cannot say: GS1 keys that hash canonically (check
digits, qualifier order), extension values that hash without loss, extension prefixes
declared in ``@context``, and the structure of Waymark's ``wm:``/``wmc:`` fields. It raises
:class:`EpcisValidationError` whose ``field`` is the path of the offending value
(``epcisBody.eventList[3].epcList[0]``) and whose problem names the rule broken.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

import jsonschema_rs

from node.errors import WaymarkError
from node.protocol.cbv_values import NUMERIC_TEXT_RE
from node.protocol.digital_link import parse_digital_link, parse_identifier
from node.protocol.gs1 import InvalidIdentifier
from node.protocol.vocabulary import (
    CUSTOMS_PREFIX,
    DOCUMENT_DIGEST_RE,
    STANDARD_PREFIXES,
    WAYMARK_PREFIX,
    context_prefixes,
)


class EpcisValidationError(WaymarkError):
    """An EPCIS document or event is malformed; ``field`` is the path of the bad value."""

    code = "invalid_epcis"

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


_ABSOLUTE_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
_CURIE_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*):([^\s/][^\s]*)$")
_GS1_KEY_PATH_RE = re.compile(r"/(01|00|gtin|sscc)/\d")

_STANDARD_KEYS = {
    "@context", "type", "eventTime", "eventTimeZoneOffset", "recordTime", "eventID",
    "certificationInfo", "errorDeclaration", "parentID", "epcList", "inputEPCList", "childEPCs",
    "quantityList", "childQuantityList", "inputQuantityList", "outputEPCList",
    "outputQuantityList", "action", "transformationID", "bizStep", "disposition",
    "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList",
    "destinationList", "sensorElementList", "ilmd",
}


class _Validator:
    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self.prefixes = prefixes

    # helpers
    def fail(self, path: str, problem: str) -> NoReturn:
        raise EpcisValidationError(path, problem)

    def string(self, path: str, value: Any) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {type(value).__name__}")
        if not value.strip():
            self.fail(path, "empty string")
        return value

    def uri(self, path: str, value: Any) -> str:
        text = self.string(path, value)
        if not _ABSOLUTE_URI_RE.match(text):
            self.fail(path, f"expected an absolute URI, got {text!r}")
        return text

    def object_id(self, path: str, value: Any, *, instance: bool) -> None:
        text = self.uri(path, value)
        lowered = text.lower()
        gs1_like = lowered.startswith(("urn:epc:id:sgtin:", "urn:epc:id:sscc:")) or (
            lowered.startswith(("https://", "http://"))
            and _GS1_KEY_PATH_RE.search(text) is not None
        )
        if not gs1_like:
            return
        try:
            if instance:
                parse_identifier(text)
            elif not lowered.startswith("urn:"):
                # a class id (GTIN, GTIN+lot) is fine; a malformed key is not
                if "/21/" in text or "/ser/" in text or "/00/" in text or "/sscc/" in text:
                    parse_digital_link(text)
        except InvalidIdentifier as error:
            self.fail(path, error.problem)

    def nonempty_list(self, path: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {type(value).__name__}")
        if not value:
            self.fail(path, "empty list")
        return value

    def mapping(self, path: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected an object, got {type(value).__name__}")
        return value

    def event(self, path: str, event: Any) -> None:
        """Waymark's own checks on an event the official schema has accepted: GS1 keys that
        hash canonically (check digits, qualifier order), extension values that hash without
        loss, and the structure of Waymark's extension fields."""
        event = self.mapping(path, event)
        if "@context" in event:
            merged = dict(self.prefixes)
            merged.update(context_prefixes(event["@context"]))
            self.prefixes = merged
        for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
            items = event.get(key)
            if isinstance(items, list):
                for i, item in enumerate(items):
                    # class-level ids (a GTIN alone) are allowed in EPC lists: EPCIS 2.0 8.3.3
                    self.object_id(f"{path}.{key}[{i}]", item, instance=False)
        if "parentID" in event:
            self.object_id(f"{path}.parentID", event["parentID"], instance=True)
        for key in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
            for i, element in enumerate(event.get(key) or ()):
                if isinstance(element, Mapping) and "epcClass" in element:
                    self.object_id(f"{path}.{key}[{i}].epcClass", element["epcClass"], instance=False)
        for key, value in event.items():
            if key not in _STANDARD_KEYS:
                self.extension_key(f"{path}.{key}", key)
                self.extension_value(f"{path}.{key}", key, value)
        ilmd = event.get("ilmd")
        if isinstance(ilmd, Mapping):
            for key, value in ilmd.items():
                self.extension_value(f"{path}.ilmd.{key}", key, value)

    # extensions
    def extension_key(self, path: str, key: str) -> None:
        match = _CURIE_KEY_RE.match(key)
        if match is None:
            self.fail(path, f"unknown field {key!r} (extension fields are prefix:name with the prefix declared in @context)")
        prefix = match.group(1)
        if prefix not in self.prefixes and prefix not in STANDARD_PREFIXES and prefix != "cbvmda":
            self.fail(path, f"prefix {prefix!r} of extension field {key!r} is not declared in @context")

    def extension_value(self, path: str, key: str, value: Any, *, item: bool = False) -> None:
        if value is None:
            self.fail(path, "null is not allowed")
        if not item:
            if key == f"{WAYMARK_PREFIX}:documents":
                self.documents(path, value)
            elif key == f"{CUSTOMS_PREFIX}:duty":
                self.duty(path, value)
        if isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                # inside an extension field, keys need no prefix (they are the extension's own)
                self.extension_value(f"{path}.{sub_key}", sub_key, sub_value)
        elif isinstance(value, list):
            for i, element in enumerate(value):
                self.extension_value(f"{path}[{i}]", key, element, item=True)
        elif isinstance(value, str):
            # The CBV hash reads numeric-looking strings as numbers; past 15 significant
            # digits a float loses digits, so two different values could hash alike.
            if NUMERIC_TEXT_RE.match(value.strip()):
                significant = re.sub(r"[^0-9]", "", value.split("e")[0].split("E")[0]).lstrip("0")
                if len(significant) > 15:
                    self.fail(path, "numeric string with more than 15 significant digits loses "
                                    "precision in the CBV event hash; prefix it with a non-digit")
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                self.fail(path, "not a finite number")

    def documents(self, path: str, value: Any) -> None:
        for i, entry in enumerate(self.nonempty_list(path, value)):
            entry = self.mapping(f"{path}[{i}]", entry)
            type_key, digest_key = f"{WAYMARK_PREFIX}:documentType", f"{WAYMARK_PREFIX}:digest"
            if type_key not in entry:
                self.fail(f"{path}[{i}].{type_key}", "required")
            self.string(f"{path}[{i}].{type_key}", entry[type_key])
            if digest_key not in entry:
                self.fail(f"{path}[{i}].{digest_key}", "required")
            digest = self.string(f"{path}[{i}].{digest_key}", entry[digest_key])
            if not DOCUMENT_DIGEST_RE.match(digest):
                self.fail(f"{path}[{i}].{digest_key}", f"expected sha256:<64 lowercase hex>, got {digest!r}")

    def duty(self, path: str, value: Any) -> None:
        duty = self.mapping(path, value)
        amount_key, currency_key = f"{CUSTOMS_PREFIX}:amount", f"{CUSTOMS_PREFIX}:currency"
        amount = self.string(f"{path}.{amount_key}", duty.get(amount_key))
        if not re.match(r"^\d+(\.\d+)?$", amount):
            self.fail(f"{path}.{amount_key}", f"expected a decimal string like 125.50, got {amount!r}")
        currency = self.string(f"{path}.{currency_key}", duty.get(currency_key))
        if not re.match(r"^[A-Z]{3}$", currency):
            self.fail(f"{path}.{currency_key}", f"expected an ISO 4217 code like EUR, got {currency!r}")


_SCHEMA_FILE = Path(__file__).with_name("data") / "EPCIS-JSON-Schema.json"


@lru_cache(maxsize=1)
def official_schema() -> dict[str, Any]:
    """GS1's published EPCIS 2.0 JSON schema (inlined), as shipped in node/protocol/data."""
    loaded: dict[str, Any] = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


@lru_cache(maxsize=1)
def _schema_validator() -> Any:
    return jsonschema_rs.validator_for(official_schema())


def json_path(parts: Iterable[str | int], root: str = "") -> str:
    """``epcisBody.eventList[3].epcList[0]`` from the parts of a JSON pointer."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(document)"


_QUOTED = re.compile(r'^"((?:[^"\\]|\\.)*)"')


def schema_problems(instance: Any, root: str = "") -> list[EpcisValidationError]:
    """Every violation of the official EPCIS 2.0 JSON schema, deepest first; each names the
    JSON path of the value and the schema rule it breaks."""
    found = []
    for error in _schema_validator().iter_errors(instance):
        parts: list[str | int] = list(error.instance_path)
        kind = type(error.kind).__name__
        if kind in ("Required", "PropertyNames", "AdditionalProperties"):
            named = _QUOTED.match(error.message)
            if named is not None:
                parts.append(named.group(1))
        rule = "/".join(str(p) for p in error.schema_path)
        message = error.message
        if message.startswith(("{", "[")):  # the whole value quoted back: say what failed instead
            message = f"matches none of the alternatives ({kind})"
        found.append((len(parts), EpcisValidationError(json_path(parts, root), f"{message} (schema rule {rule})")))
    found.sort(key=lambda item: -item[0])
    return [problem for _depth, problem in found]


def _check_schema(instance: Any, root: str = "") -> None:
    problems = schema_problems(instance, root)
    if problems:
        raise problems[0]


def validate_event(event: Mapping[str, Any], *, path: str = "event", context: Any = None) -> None:
    """Validate one event against the official schema, then Waymark's own checks; raise
    :class:`EpcisValidationError` naming the field path and the rule broken.

    ``context`` is the enclosing document's ``@context`` when the event has none itself.
    """
    if "@context" not in event and context is not None:
        event = {"@context": context, **event}
    _check_schema(event, path)
    _Validator(context_prefixes(context) if context is not None else {}).event(path, event)


def validate_document(document: Mapping[str, Any]) -> None:
    """Validate an EPCISDocument or EPCISQueryDocument (official schema, then Waymark's checks
    on every event)."""
    if not isinstance(document, Mapping):
        raise EpcisValidationError("(document)", f"expected an object, got {type(document).__name__}")
    if document.get("type") not in ("EPCISDocument", "EPCISQueryDocument"):
        raise EpcisValidationError("type", f"expected EPCISDocument or EPCISQueryDocument, got {document.get('type')!r}")
    _check_schema(document)
    if not str(document.get("schemaVersion")).startswith("2."):
        raise EpcisValidationError("schemaVersion", f"this node speaks EPCIS 2.x, got {document.get('schemaVersion')!r}")
    context = document.get("@context")
    urls = [c for c in (context if isinstance(context, list) else [context]) if isinstance(c, str)]
    if not any("epcis-context" in url for url in urls):
        raise EpcisValidationError("@context", "must include the EPCIS 2.0 JSON-LD context (terms are read with it)")
    prefixes = context_prefixes(context)
    for path, event in _located_events(document):
        _Validator(dict(prefixes)).event(path, event)


def _located_events(document: Mapping[str, Any]) -> list[tuple[str, Any]]:
    body = document.get("epcisBody") or {}
    if document.get("type") == "EPCISQueryDocument":
        results = (body.get("queryResults") or {}).get("resultsBody") or {}
        return [(f"epcisBody.queryResults.resultsBody.eventList[{i}]", e) for i, e in enumerate(results.get("eventList") or [])]
    return [(f"epcisBody.eventList[{i}]", e) for i, e in enumerate(body.get("eventList") or [])]
