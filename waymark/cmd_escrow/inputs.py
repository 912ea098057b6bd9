"""What the escrow commands read from the command line: order ids, times and spans, addresses,
shipments (the key the events use), evidence hashes, schedules, amounts, FX quotes."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import typer
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from node.errors import WaymarkError
from node.escrow import EscrowError, FxQuote, InvalidTerms, schedule
from node.escrow.client import TokenInfo
from node.escrow.terms import ZERO_ADDRESS, Attestation, currency_bytes
from node.protocol.digital_link import canonical_id
from node.protocol.gs1 import CANONICAL_RESOLVER, ContainerId, InvalidIdentifier, encode_component, normalize_gtin, validate_sscc

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CliInputError(WaymarkError):
    code = "invalid_input"

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")


def parse_order_id(text: str) -> int:
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an order id (0x + 64 hex digits, or decimal)", param_hint="ORDER_ID") from None
    if not 0 <= value < 2**256:
        raise typer.BadParameter(f"{text!r} does not fit in 256 bits", param_hint="ORDER_ID")
    return value


def parse_time(text: str, now: int, option: str) -> int:
    """Unix seconds, ISO 8601, or a span from now (chain time): 90s, 45m, 12h, 7d."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match:
        return now + int(match.group(1)) * UNITS[match.group(2)]
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a span (7d, 12h), unix seconds nor ISO 8601", param_hint=option) from None


def parse_span(text: str, option: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 3d, 12h, 3600)", param_hint=option)
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def parse_address(text: str, option: str) -> str:
    if not is_address(text):
        raise typer.BadParameter(f"{text!r} is not an account address", param_hint=option)
    return to_checksum_address(text)


def parse_bytes32(text: str, option: str) -> bytes:
    """0x + 64 hex digits as is; any other text is hashed (keccak256) into 32 bytes."""
    if re.fullmatch(r"0x[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text[2:])
    return keccak(text=text)


def parse_shipment(text: str) -> tuple[bytes, str | None]:
    """An order's shipmentRef and the canonical id it names: the key the events and the passport use
    (keccak256 of https://id.gs1.org/00/<SSCC>, /01/<GTIN>/21/<serial> or /01/<GTIN>/10/<lot>), from
    a bare SSCC, a Digital Link (any resolver) or an EPC URN. 0x + 64 hex is taken as the key itself;
    other text is hashed as a free reference (and names no events)."""
    text = text.strip()
    if re.fullmatch(r"0x[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text[2:]), None
    try:
        if text.isdigit():
            uri = ContainerId(validate_sscc(text)).canonical_uri
        elif text.startswith(("http://", "https://", "urn:epc:id:")):
            lot = re.fullmatch(r"https?://[^/?#]+(?:/[^?#]*)?/01/(\d{8,14})/10/([^/?#]+)/?", text)
            if lot is not None:  # a lot's class id (the Digital Link helpers parse unit and container ids)
                uri = f"https://{CANONICAL_RESOLVER}/01/{normalize_gtin(lot.group(1))}/10/{encode_component(unquote(lot.group(2)))}"
            else:
                uri = canonical_id(text)
        else:
            return keccak(text=text), None
    except InvalidIdentifier as exc:
        raise CliInputError("--shipment", str(exc)) from None
    return keccak(text=uri), uri


def evidence_hash(file: Path | None, text: str | None, option: str) -> bytes:
    if file is not None:
        if not file.is_file():
            raise typer.BadParameter(f"{file} is not a readable file", param_hint=option)
        return hashlib.sha256(file.read_bytes()).digest()
    if text is not None:
        return parse_bytes32(text, option)
    raise typer.BadParameter("give a file (its SHA-256 is recorded) or a hash", param_hint=option)


def parse_schedule(text: str, quorum: int, customs_quorum: int | None) -> tuple[Any, ...]:
    try:
        shares = [int(part) for part in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a list of basis points like 0,3000,7000", param_hint="--schedule") from None
    if not 2 <= len(shares) <= 5:
        raise typer.BadParameter("a schedule has 2 to 5 steps: Shipped, up to 3 customs clearances, Delivered", param_hint="--schedule")
    if sum(shares) != 10_000:
        raise typer.BadParameter(f"shares must sum to 10000 basis points, not {sum(shares)}", param_hint="--schedule")
    return schedule(*shares, quorum=quorum, customs_quorum=customs_quorum)


def decimal_units(text: str, decimals: int, option: str) -> int:
    """An amount in a token's smallest units, `decimals` places (or 18 for a price in a currency)."""
    try:
        return TokenInfo(ZERO_ADDRESS, True, None, decimals, "units").units(text)
    except EscrowError as exc:
        raise CliInputError(option, str(exc)) from None


def load_quote(path: Path) -> FxQuote:
    try:
        data = json.loads(path.read_text())
        return FxQuote(
            base=currency_bytes(data["base"]), quote=currency_bytes(data["quote"]), rate=int(data["rate"]),
            issued_at=int(data["issuedAt"]), expires_at=int(data["expiresAt"]),
            signatures=tuple(Attestation(s["signer"], int(s["deadline"]), bytes.fromhex(s["signature"].removeprefix("0x")))
                             for s in data["signatures"]),
        )
    except OSError as exc:
        raise CliInputError("--fx-quote", f"{path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, InvalidTerms) as exc:
        raise CliInputError("--fx-quote", f"{path} is not an FX quote ({exc})") from None


def parse_hex(text: str, option: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not hex", param_hint=option) from None
