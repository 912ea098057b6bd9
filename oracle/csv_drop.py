"""The CSV drop folder: ERP and data-logger exports dropped as files.

Layout under `<data_dir>/csv/`: `inbox/` (drop files here: write them elsewhere and rename
them in, or leave them unchanged for `csv_min_age` seconds), `processed/` and `rejected/`.
The file name's prefix says what it holds (UTF-8, comma separated, a header row):

| prefix | columns (* required) | one record per |
|---|---|---|
| `production` | run_id*, gtin*, lot*, serial*, produced_at*, site_gln, site_unlocode, expiry, production_order | run_id: the run's units in one commissioning event |
| `packing` | packing_id*, parent*, child*, packed_at*, site_gln, site_unlocode, action | packing_id: one aggregation event |
| `readings` | device_id*, object*, time*, type*, value*, unit*, gtin | device_id + object: as one IoT message |

Every row is checked on its own (the same checks as the JSON adapters, naming the column);
the rows of a record must agree on the record's fields (a run's gtin, lot, time and site).
Good rows are accepted even when others are not. Then the file moves aside: to `processed/`
when every row was accepted, else to `rejected/`, next to `<file>.rejected.csv` listing each
rejected row (line, column, problem, and the row as it was). Every file also gets
`<file>.report.json` (rows, accepted, rejected, event ids). A file dropped twice queues nothing
twice: its events have the same hashes.

"accepted" in a report means acknowledged by this oracle. What the node finally did is added
to the report once every submission of the file is settled: `"node": "stored"`, or
`"node": "refused"` with `refusedByNode` (the lines and the node's message), and such a file
moves from `processed/` to `rejected/`. A row the csv module cannot read (e.g. a field over
131,072 characters) is a rejected row. A file whose processing fails for another reason is
tried again at each scan and after `max_tries` failures moved to `quarantine/` with a
`<file>.report.json` of the errors; it never stops the files after it.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from node.strict_json import LARGE_BODY, release_memory
from oracle.errors import InputRejected, UnknownAdapter
from oracle.service import Oracle, submission_report

log = logging.getLogger(__name__)

_COLUMN_OF = {
    # record field (as the JSON adapters name it) -> CSV column
    "runId": "run_id", "gtin": "gtin", "lot": "lot", "serials": "serial", "serials[0]": "serial", "producedAt": "produced_at",
    "site": "site_gln", "site.gln": "site_gln", "site.unlocode": "site_unlocode", "expiry": "expiry",
    "productionOrder": "production_order", "packingId": "packing_id", "parent": "parent", "children": "child",
    "children[0]": "child", "packedAt": "packed_at", "action": "action", "deviceId": "device_id", "object": "object",
    "readings[0].time": "time", "readings[0].type": "type", "readings[0].value": "value", "readings[0].unit": "unit",
    "readings": "value",
}


def _site(row: Mapping[str, str]) -> dict[str, str] | None:
    site = {k: row[c] for k, c in (("gln", "site_gln"), ("unlocode", "site_unlocode")) if row.get(c)}
    return site or None


def _production(row: Mapping[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "runId": row.get("run_id"), "gtin": row.get("gtin"), "lot": row.get("lot"), "serials": [row.get("serial")],
        "producedAt": row.get("produced_at"), "site": _site(row),
    }
    for key, column in (("expiry", "expiry"), ("productionOrder", "production_order")):
        if row.get(column):
            record[key] = row[column]
    return record


def _packing(row: Mapping[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "packingId": row.get("packing_id"), "parent": row.get("parent"), "children": [row.get("child")], "packedAt": row.get("packed_at"),
    }
    if _site(row):
        record["site"] = _site(row)
    if row.get("action"):
        record["action"] = row["action"].upper()
    return record


def _reading(row: Mapping[str, str]) -> dict[str, Any]:
    value: Any = row.get("value")
    try:
        value = float(value) if value not in (None, "") else value
    except ValueError:
        pass
    record: dict[str, Any] = {
        "deviceId": row.get("device_id"), "object": row.get("object"),
        "readings": [{"time": row.get("time"), "type": row.get("type"), "value": value, "unit": row.get("unit")}],
    }
    if row.get("gtin"):
        record["gtin"] = row["gtin"]
    return record


@dataclass(frozen=True)
class CsvKind:
    adapter: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    to_record: Callable[[Mapping[str, str]], dict[str, Any]]
    group_key: Callable[[dict[str, Any]], tuple[Any, ...]]
    list_field: str  # the per-row list merged into the record (serials, children, readings)


KINDS: dict[str, CsvKind] = {
    "production": CsvKind(
        "production", ("run_id", "gtin", "lot", "serial", "produced_at"), ("site_gln", "site_unlocode", "expiry", "production_order"),
        _production, lambda r: (r["runId"],), "serials",
    ),
    "packing": CsvKind(
        "packing", ("packing_id", "parent", "child", "packed_at"), ("site_gln", "site_unlocode", "action"),
        _packing, lambda r: (r["packingId"],), "children",
    ),
    "readings": CsvKind(
        "iot", ("device_id", "object", "time", "type", "value", "unit"), ("gtin",),
        _reading, lambda r: (r["deviceId"], r["object"]), "readings",
    ),
}


@dataclass
class FileReport:
    file: str
    kind: str | None
    rows: int = 0
    accepted_rows: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    # submission id -> the file's lines it holds (what the node finally did is followed per submission)
    submissions: dict[str, list[int]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file, "kind": self.kind, "rows": self.rows, "accepted": self.accepted_rows,
            "rejected": len(self.rejected), "eventIds": self.event_ids,
            "submissions": self.submissions,
            # "accepted" above means acknowledged by this oracle; "node" says what the node did:
            # pending until every submission is settled, then stored or refused (refusedByNode).
            "node": "pending" if self.submissions else "nothing to deliver",
        }


MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_ROW_ERRORS = 1000  # unreadable rows reported one by one up to this many, then the rest of the file is refused


def _pending(report_path: Path) -> bool:
    try:
        return bool(orjson.loads(report_path.read_bytes()).get("node") == "pending")
    except (OSError, orjson.JSONDecodeError):
        return False


def _column(adapter_field: str, kind: CsvKind) -> str:
    if adapter_field in _COLUMN_OF:
        return _COLUMN_OF[adapter_field]
    head = adapter_field.split(".")[0].split("[")[0]
    return _COLUMN_OF.get(head, adapter_field)


def process_text(oracle: Oracle, name: str, text: str) -> FileReport:
    """Read one CSV file's text and accept its good records. Returns what happened, row by row."""
    prefix = name.split("_")[0].split(".")[0].split("-")[0].lower()
    kind = KINDS.get(prefix)
    report = FileReport(name, kind.adapter if kind else None)
    if kind is None:
        report.rejected.append({"line": 0, "column": "(file name)", "problem": f"the name must start with one of {', '.join(KINDS)}", "row": {}})
        return report
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in kind.required if c not in header]
    unknown = [c for c in header if c not in kind.required and c not in kind.optional]
    if missing or unknown:
        problem = (f"missing column(s) {', '.join(missing)}" if missing else "") + ("; " if missing and unknown else "") + (
            f"unknown column(s) {', '.join(unknown)}" if unknown else "")
        report.rejected.append({"line": 1, "column": "(header)", "problem": f"{problem}; expected {', '.join(kind.required + kind.optional)}", "row": {}})
        return report
    try:
        adapter = oracle.adapter(kind.adapter)
    except UnknownAdapter as exc:
        report.rejected.append({"line": 0, "column": "(file name)", "problem": str(exc), "row": {}})
        return report
    groups: dict[tuple[Any, ...], list[tuple[int, dict[str, Any], dict[str, str]]]] = {}
    unreadable = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field over the csv module's limit of 131,072 characters
            report.rows += 1
            unreadable += 1
            # The reader counts the lines of the rows it returned: the unreadable one is the next.
            report.rejected.append({"line": reader.line_num + 1, "column": "(row)", "problem": f"unreadable CSV: {exc}", "row": {}})
            if unreadable >= MAX_ROW_ERRORS:
                report.rejected.append({"line": reader.line_num, "column": "(file)", "problem": f"{unreadable} unreadable rows: the rest of the file was not read", "row": {}})
                break
            continue
        line = reader.line_num
        report.rows += 1
        clean = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if None in row:
            report.rejected.append({"line": line, "column": "(row)", "problem": "more values than columns", "row": clean})
            continue
        record = kind.to_record(clean)
        try:
            adapter.parse(record)
        except InputRejected as exc:
            report.rejected.append({"line": line, "column": _column(exc.field, kind), "problem": exc.problem, "row": clean})
            continue
        groups.setdefault(kind.group_key(record), []).append((line, record, clean))
    for rows in groups.values():
        first_line, merged, _ = rows[0]
        merged = dict(merged)
        merged[kind.list_field] = []
        kept: list[tuple[int, dict[str, str]]] = []
        for line, record, clean in rows:
            differs = [k for k in dict.fromkeys([*rows[0][1], *record]) if k != kind.list_field and record.get(k) != rows[0][1].get(k)]
            if differs:
                columns = ", ".join(_column(k, kind) for k in differs)
                report.rejected.append({"line": line, "column": columns, "problem": f"differs from line {first_line} of the same record", "row": clean})
                continue
            merged[kind.list_field].extend(record[kind.list_field])
            kept.append((line, clean))
        if not kept:
            continue
        try:
            accepted = oracle.accept(kind.adapter, merged)
        except InputRejected as exc:  # a check across rows (e.g. a serial twice)
            for line, clean in kept:
                report.rejected.append({"line": line, "column": _column(exc.field, kind), "problem": exc.problem, "row": clean})
            continue
        report.accepted_rows += len(kept)
        report.event_ids.extend(accepted.event_ids)
        if accepted.submission is not None:
            report.submissions.setdefault(accepted.submission, []).extend(line for line, _clean in kept)
    report.rejected.sort(key=lambda r: int(r["line"]))
    return report


class CsvDropFolder:
    """Watches `<root>/inbox` and moves each file, once read, to processed/ or rejected/."""

    def __init__(self, oracle: Oracle, root: Path, *, min_age: float = 1.0, max_tries: int = 3, max_bytes: int = MAX_FILE_BYTES) -> None:
        self.oracle = oracle
        self.root = Path(root)
        self.inbox = self.root / "inbox"
        self.processed = self.root / "processed"
        self.rejected = self.root / "rejected"
        self.quarantine = self.root / "quarantine"
        for folder in (self.inbox, self.processed, self.rejected, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)
        self.min_age = min_age
        self.max_tries = max_tries
        self.max_bytes = max_bytes
        self._failures: dict[tuple[str, int, float], list[str]] = {}  # (name, size, mtime) -> errors of each try
        # Reports whose submissions the node has not settled yet (followed by `follow_up`).
        self._following: set[Path] = {
            p for folder in (self.processed, self.rejected) for p in folder.glob("*.report.json") if _pending(p)
        }

    def scan(self) -> list[FileReport]:
        """Process every file ready in the inbox (oldest first). A file whose processing fails
        (an error of the oracle, not a row's) is tried again at the next scan, and after
        `max_tries` failures moved to `quarantine/` with a report; it never stops the files after it."""
        reports = []
        now = time.time()
        ready = sorted(
            (p for p in self.inbox.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() == ".csv"),
            key=lambda p: p.stat().st_mtime,
        )
        for path in ready:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if now - stat.st_mtime < self.min_age:
                continue
            key = (path.name, stat.st_size, stat.st_mtime)
            try:
                reports.append(self.process(path))
            except Exception as exc:  # noqa: BLE001 - one poison file must not stop the folder
                errors = self._failures.setdefault(key, [])
                errors.append(f"{type(exc).__name__}: {exc}")
                log.exception("%s: try %d of %d failed", path.name, len(errors), self.max_tries)
                if len(errors) >= self.max_tries:
                    self._quarantine(path, errors)
                    self._failures.pop(key, None)
                continue
            self._failures.pop(key, None)
        self.follow_up()
        return reports

    def _quarantine(self, path: Path, errors: list[str]) -> None:
        target = self._target(self.quarantine, path.name)
        report = {"file": path.name, "node": "nothing delivered", "quarantined": True, "tries": len(errors), "errors": errors}
        target.with_name(target.name + ".report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        path.replace(target)
        log.error("%s failed %d times: moved to %s", path.name, len(errors), target)

    @staticmethod
    def _target(folder: Path, name: str) -> Path:
        """A fresh name in `folder`: stamped, and short enough for the report files beside it."""
        if len(name.encode()) > 180:
            name = name.encode()[-180:].decode("utf-8", "ignore")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = folder / f"{stamp}-{name}"
        counter = 1
        while target.exists():
            target = folder / f"{stamp}-{counter}-{name}"
            counter += 1
        return target

    def follow_up(self) -> None:
        """Write into each report what the node finally did with its rows, once it is settled:
        `node: stored` (every event stored), or `node: refused` with `refusedByNode` (lines,
        the node's message); a file with rows the node refused moves to rejected/."""
        for report_path in sorted(self._following):
            try:
                self._follow(report_path)
            except Exception:  # noqa: BLE001 - a report it cannot update is tried again later
                log.exception("%s: cannot update the report", report_path.name)

    def _follow(self, report_path: Path) -> None:
        if not report_path.exists():
            self._following.discard(report_path)
            return
        data = orjson.loads(report_path.read_bytes())
        refused: list[dict[str, Any]] = []
        for submission, lines in (data.get("submissions") or {}).items():
            status = submission_report(self.oracle.queue, submission)
            if status is None:
                continue
            if status["status"] == "pending":
                return
            if status["status"] == "refused":
                errors = [j.get("error") for j in status["jobs"] if j["status"] == "refused"]
                refused.append({"lines": lines, "submission": submission, "errors": errors})
        data["node"] = "refused" if refused else "stored"
        if refused:
            data["refusedByNode"] = refused
        self._following.discard(report_path)
        report_path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        if refused and report_path.parent == self.processed:
            data_file = report_path.with_name(report_path.name.removesuffix(".report.json"))
            target = self._target(self.rejected, data_file.name)
            report_path.replace(target.with_name(target.name + ".report.json"))
            if data_file.exists():
                data_file.replace(target)
        log.info("%s: the node %s its rows", data.get("file"), "refused some of" if refused else "stored")

    def process(self, path: Path) -> FileReport:
        size = path.stat().st_size
        if size > self.max_bytes:
            report = FileReport(path.name, None)
            report.rejected.append({"line": 0, "column": "(file)", "problem": f"{size} bytes: larger than the limit of {self.max_bytes}", "row": {}})
        else:
            try:
                text = path.read_bytes().decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                report = FileReport(path.name, None)
                report.rejected.append({"line": 0, "column": "(file)", "problem": f"not UTF-8 (byte {exc.start}): save the file as UTF-8", "row": {}})
            else:
                report = process_text(self.oracle, path.name, text)
                del text
                if size >= LARGE_BODY:
                    release_memory()
        target_dir = self.rejected if report.rejected else self.processed
        target = self._target(target_dir, path.name)
        # Reports first, then the move: a crash in between re-reads the file, which queues nothing twice.
        if report.rejected:
            with open(target.with_name(target.name + ".rejected.csv"), "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["line", "column", "problem", "row"])
                for item in report.rejected:
                    writer.writerow([item["line"], item["column"], item["problem"], orjson.dumps(item["row"]).decode()])
        report_file = target.with_name(target.name + ".report.json")
        report_file.write_bytes(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2))
        path.replace(target)
        if report.submissions:
            self._following.add(report_file)
        log.info("%s: %d rows, %d accepted, %d rejected -> %s", path.name, report.rows, report.accepted_rows, len(report.rejected), target)
        return report

    def run(self, stop: threading.Event, poll: float = 2.0) -> None:
        while not stop.is_set():
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - keep watching
                log.exception("CSV drop folder scan failed")
            stop.wait(poll)
