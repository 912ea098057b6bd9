"""HTTP API of the escrow relayer (node/relayer/service.py), started by `waymark escrow relayer run`.

    POST /milestones/{orderId}/{milestone}        an oracle's MilestoneAttestation signature
         {"signer": "0x..", "signature": "0x..", "deadline": 1767225600,
          "duty": "0", "dutyPayee": "0x0000000000000000000000000000000000000000"}
    POST /customs-returns/{orderId}/{milestone}   a customs CustomsReturn signature
         {"signer": "0x..", "signature": "0x..", "deadline": 1767225600}
    GET  /orders/{orderId}                        what the relayer holds per milestone, and the chain's view
    GET  /health                                  chain, escrow and the submitting account

`orderId` is the order id in hex (0x + 64 digits) or decimal. A new signature is answered 202
with `{status, recorded, collected, quorum, txHash}`: `status` is `collecting`, or `reached`
when this signature completed the quorum and the bundle was submitted (`txHash`). The same
signature sent again is answered 200 with `recorded: false` (an oracle may resend after a lost
answer). Errors are JSON `{code, message, field?}`: 404 unknown order; 409 milestone already
reached, order closed, the signer already signed differently, or an order created from
non-canonical calldata (its published terms do not hash to its id); 403 the signer lacks the role,
belongs to a party's organisation, or is not one of the order's customs authorities; 422 a
malformed request, a signature that is not the signer's, a deadline too close, a milestone that
does not exist or does not take a duty, a duty payee that is not an account of the order's
customs authorities, a duty above the order's cap;
502/503 the chain failed or cannot be reached.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from node.chain.client import ChainClient
from node.chain.deploy import load_deployment
from node.chain.errors import ChainError, RpcUnreachable
from node.db import Database
from node.errors import WaymarkError
from node.escrow.client import EscrowClient
from node.escrow.store import TermsStore, order_key
from node.escrow.terms import ZERO_ADDRESS
from node.relayer.errors import (
    DuplicateSigner,
    DutyWithoutPayee,
    MilestoneAlreadyReached,
    NoSuchMilestone,
    NotCustomsAuthority,
    OrderClosed,
    RelayError,
    RelayUnknownOrder,
    SignatureMismatch,
    SignatureTooShortLived,
    SignerConflict,
    SignerLacksRole,
    UnusableOrder,
    WrongMilestoneKind,
)
from node.relayer.model import Kind, Outcome, SignatureIn
from node.relayer.service import Relayer
from node.relayer.settings import RelayerSettings
from node.settings import ChainSettings, DatabaseSettings

log = logging.getLogger("waymark.relayer")

STATUS: dict[type[RelayError], int] = {
    RelayUnknownOrder: 404,
    UnusableOrder: 409,
    MilestoneAlreadyReached: 409,
    OrderClosed: 409,
    DuplicateSigner: 409,
    SignerLacksRole: 403,
    SignerConflict: 403,
    NotCustomsAuthority: 403,
    NoSuchMilestone: 422,
    WrongMilestoneKind: 422,
    DutyWithoutPayee: 422,
    SignatureTooShortLived: 422,
    SignatureMismatch: 422,
}


def _hex_bytes(value: str, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"{name} must be 0x-prefixed hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError(f"{name} is not valid hex") from None


def _uint(value: Any, name: str) -> int:
    number = int(value, 0) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**256:
        raise ValueError(f"{name} must be an unsigned 256-bit integer")
    return number


class CustomsReturnBody(BaseModel):
    """A CustomsReturn signature of one customs organisation."""

    model_config = ConfigDict(extra="forbid")

    signer: str = Field(description="The signing account", examples=["0x90F79bf6EB2c4f870365E785982E1f101E93b906"])
    signature: str = Field(description="65-byte ECDSA signature (or what the signer contract accepts), 0x hex")
    deadline: int = Field(ge=0, lt=2**64, description="Last unix time the signature may be used (signed)")

    @field_validator("signer")
    @classmethod
    def _signer(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError("must be an account address")
        return to_checksum_address(value)

    @field_validator("signature")
    @classmethod
    def _signature(cls, value: str) -> str:
        if not _hex_bytes(value, "signature"):
            raise ValueError("must not be empty")
        return value


class MilestoneBody(CustomsReturnBody):
    """A MilestoneAttestation signature of one organisation holding the milestone's role."""

    duty: str | int = Field("0", description="Customs duty in token units (CustomsCleared only), decimal or 0x hex")
    dutyPayee: str = Field(ZERO_ADDRESS, description="Account the duty is paid to (required with a duty)")

    @field_validator("duty")
    @classmethod
    def _duty(cls, value: str | int) -> str:
        try:
            return str(_uint(value, "duty"))
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None

    @field_validator("dutyPayee")
    @classmethod
    def _payee(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError("must be an account address")
        return to_checksum_address(value)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(code: str, message: str, status: int, field: str | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return _json(body, status)


class BadOrderId(RelayError):
    code = "invalid_order_id"
    field = "orderId"

    def __init__(self, text: str) -> None:
        super().__init__(f"{text!r} is not an order id (0x + 64 hex digits, or a decimal number)")


def parse_order_id(text: str) -> int:
    try:
        value = int(text, 16) if text.startswith("0x") else int(text, 10)
    except ValueError:
        raise BadOrderId(text) from None
    if not 0 <= value < 2**256:
        raise BadOrderId(text)
    return value


def _answer(outcome: Outcome) -> Response:
    return _json(outcome.to_json(), 202 if outcome.recorded else 200)


def create_relayer_app(relayer: Relayer, *, sweep_interval: float | None = 5.0) -> FastAPI:
    """The relayer's app; with `sweep_interval` it also runs the recovery and the sweep loop."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        worker = None
        if sweep_interval is not None:
            worker = threading.Thread(target=relayer.run, args=(stop, sweep_interval), name="relayer-sweep", daemon=True)
            worker.start()
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                worker.join(10)

    app = FastAPI(title="Waymark escrow relayer", lifespan=lifespan)

    @app.exception_handler(RelayError)
    async def _relay_error(_request: Request, exc: RelayError) -> Response:
        return _error(exc.code, str(exc), STATUS.get(type(exc), 422), exc.field)

    @app.exception_handler(RpcUnreachable)
    async def _unreachable(_request: Request, exc: RpcUnreachable) -> Response:
        return _error(exc.code, str(exc), 503)

    @app.exception_handler(ChainError)
    async def _chain_error(_request: Request, exc: ChainError) -> Response:
        log.warning("chain error: %s", exc)
        return _error(exc.code, str(exc), 502)

    @app.exception_handler(WaymarkError)
    async def _other(_request: Request, exc: WaymarkError) -> Response:
        log.error("relayer: %s", exc)
        return _error(exc.code, str(exc), 500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "path")]
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        field = ".".join(loc) or None
        return _error("invalid_request", f"{field}: {message}" if field else message, 422, field)

    @app.post("/milestones/{order_id}/{milestone}", status_code=202)
    def post_milestone(order_id: str, milestone: int, body: MilestoneBody) -> Response:
        """Record an oracle's MilestoneAttestation signature; submits once the quorum is reached."""
        sig = SignatureIn(
            order_id=parse_order_id(order_id), milestone=milestone, signer=body.signer,
            signature=_hex_bytes(body.signature, "signature"), deadline=body.deadline, duty=int(body.duty),
            duty_payee=body.dutyPayee, kind=Kind.MILESTONE,
        )
        return _answer(relayer.receive(sig))

    @app.post("/customs-returns/{order_id}/{milestone}", status_code=202)
    def post_customs_return(order_id: str, milestone: int, body: CustomsReturnBody) -> Response:
        """Record a CustomsReturn signature; refunds the order once the milestone's quorum is reached."""
        sig = SignatureIn(
            order_id=parse_order_id(order_id), milestone=milestone, signer=body.signer,
            signature=_hex_bytes(body.signature, "signature"), deadline=body.deadline, kind=Kind.CUSTOMS_RETURN,
        )
        return _answer(relayer.receive(sig))

    @app.get("/orders/{order_id}")
    def get_order(order_id: str) -> Response:
        """The signatures held per milestone, their submission, and the order's state on chain."""
        return _json(relayer.status(parse_order_id(order_id)))

    @app.get("/health")
    def health() -> Response:
        return _json({
            "status": "ok", "chainId": relayer.chain_id, "escrow": relayer.address,
            "account": relayer.account.address, "block": int(relayer.escrow.client.w3.eth.block_number),
        })

    return app


def load_relayer(
    settings: RelayerSettings,
    chain: ChainSettings,
    database: DatabaseSettings,
    account: LocalAccount,
    *,
    client: ChainClient | None = None,
) -> Relayer:
    """A relayer on the deployment of `chain`, its database migrated."""
    client = client or ChainClient(chain.rpc_url, expected_chain_id=chain.chain_id)
    deployment = load_deployment(chain.deployment_file)
    store = settings.terms_store or chain.deployments_dir / f"{client.chain_id}.terms.json"
    escrow = EscrowClient.from_deployment(client, deployment, TermsStore(store))
    db = Database(database.url)
    db.migrate()
    return Relayer(db, escrow, account, min_lifetime=settings.min_lifetime, in_flight_wait=settings.in_flight_wait)


__all__ = ["create_relayer_app", "load_relayer", "order_key", "parse_order_id"]
