"""Signed EPCIS reads: who may read, checked per request."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from node.documents import ChainMembership, Unauthenticated, request_target, request_target_digest, verify_document_request
from node.member.epcis_rest.problems import EpcisProblem


class Readers:
    """Who may read: signed requests (node.documents' EIP-712 DocumentRequest, action "read",
    over `request_target_digest`) by an account of an active member organisation."""

    def __init__(self, runtime: Any, *, max_age: int = 300, required: bool = True) -> None:
        self.required = required
        self.max_age = max_age
        if required:
            self.chain_id = runtime.client.chain_id
            self.registry = runtime.deployment.address("ConsortiumRegistry")
            self.members = ChainMembership(runtime.client, self.registry)
            self.audience: str = runtime.node.public_url

    def check(self, request: Request) -> str | None:
        if not self.required:
            return None
        digest = request_target_digest(request.method, request_target(request.scope))
        try:
            account = verify_document_request(
                self.chain_id, self.registry, "read", digest, request.headers, audience=self.audience, max_age=self.max_age
            )
        except Unauthenticated as exc:
            raise EpcisProblem(401, "SecurityException", "Unauthorised request", str(exc)) from None
        member = self.members.membership(account)
        if member is None or not member.active:
            raise EpcisProblem(403, "SecurityException", "Client unauthorised", f"{account} is not an account of an active member organisation")
        return account
