"""EPCIS exceptions as RFC 7807 problems (the types GS1's description names), and the capture
and JSON refusals of the node translated into them."""

from __future__ import annotations

import re
from typing import Any

from node import strict_json
from node.errors import WaymarkError
from node.member.ingest.capture import CaptureError


class EpcisProblem(WaymarkError):
    """An EPCIS exception answered as application/problem+json."""

    code = "epcis_problem"

    def __init__(self, status: int, kind: str, title: str, detail: str | None = None, instance: str | None = None) -> None:
        self.status, self.kind, self.title, self.detail, self.instance = status, kind, title, detail, instance
        super().__init__(f"{title}: {detail}" if detail else title)


def problem_body(status: int | None, kind: str, title: str, detail: str | None = None, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"epcisException:{kind}", "title": title}
    if status is not None:
        body["status"] = status
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    return body


def capture_problem(exc: CaptureError) -> tuple[int, dict[str, Any]]:
    """A capture refusal as (status, problem). The offending value travels in two extension
    members (RFC 7807 3.2): `field`, its path as the node writes it everywhere
    (`epcisBody.eventList[3].epcList[0]`), and `pointer`, the same as a JSON pointer; the rule
    broken is in `detail`."""
    status = {"bad_signature": 401, "missing_role": 403, "wrong_node": 403, "too_large": 413}.get(exc.code, 400)
    kind = {401: "SecurityException", 403: "SecurityException", 413: "CaptureLimitExceededException"}.get(status, "ValidationException")
    body = problem_body(status, kind, type(exc).__name__, str(exc))
    field = getattr(exc, "field", None)
    if field:
        body["field"] = field
        body["pointer"] = pointer(field)
    return status, body


def moved(problem: dict[str, Any], old: str, new: str) -> None:
    """Re-root a problem's location from the `old` path prefix to `new`."""
    field = problem.get("field")
    if isinstance(field, str) and field.startswith(old):
        rest = field[len(old):].lstrip(".")
        problem["field"] = (new + ("." if rest and not rest.startswith("[") and new else "") + rest) or "(event)"
        problem["pointer"] = pointer(problem["field"]) if problem["field"] != "(event)" else ""


def pointer(path: str) -> str:
    """`epcisBody.eventList[3].epcList[0]` as a JSON pointer (`/epcisBody/eventList/3/epcList/0`)."""
    parts = [p for p in re.split(r"\.|\[(\d+)\]", path) if p]
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def json_problem(exc: strict_json.JsonInputError) -> EpcisProblem:
    if exc.status == 415:
        return EpcisProblem(415, "UnsupportedMediaTypeException", "Unsupported Media Type", f"{exc.field}: {exc.message}")
    if exc.status == 413:
        return EpcisProblem(413, "CaptureLimitExceededException", "Capture Payload too large", exc.message)
    return EpcisProblem(400, "ValidationException", "Not acceptable JSON", f"{exc.field}: {exc.message}")
