"""Who may upload, open and erase a document.

Tiers (in the spirit of the EU Digital Product Passport):

* **public**: event bodies (no commercial or personal content: see node.documents.confidential)
  and each document's digest, type and status (available / erased). Anyone, unsigned.
* **members and trading partners with a legitimate interest**: the organisations a document's
  policy names (the parties to the order, the forwarder who needs the packing list, ...).
* **authorities**: the destination's customs (named by the policy) and the holders of the roles
  the document type admits (`ROLE_READERS`: auditors and arbitrators by default).

A policy resolves, when the document is sealed, to the organisations whose key it is wrapped
for: the uploading organisation, the named ones, the active holders of its roles. Opening is
then one rule: an account of an active organisation for which a wrapped key exists. A named
organisation that has published no encryption key cannot be sealed for; the upload answer
lists it (`unsealed`) rather than pretending it can read.

| action | allowed to |
|---|---|
| upload | an account of an Active organisation holding an attesting role (MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS, ORACLE) |
| open (read, sealed) | an account of an Active organisation the document is sealed for |
| erase | an account of the uploading organisation; an OPERATOR (the consortium's handling of erasure requests) |
| status | anyone |
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from node.chain.consortium import ATTESTING_ROLES
from node.chain.registry import ROLE_IDS
from node.documents.errors import AccessDenied
from node.protocol.crypto import to_checksum_address

DEFAULT_ROLE_READERS = ("AUDITOR", "ARBITRATOR")
ROLE_READERS: dict[str, tuple[str, ...]] = {
    # Personal data (a consignee's contact details): the named parties only, no role-wide tier.
    "contact_details": (),
}
"""Roles whose holders a document type admits besides the uploader and the named organisations."""


def role_readers(document_type: str) -> tuple[str, ...]:
    return ROLE_READERS.get(document_type, DEFAULT_ROLE_READERS)


@dataclass(frozen=True)
class Membership:
    org_id: int
    active: bool
    roles: frozenset[str]


class MembershipView(Protocol):
    def membership(self, account: str) -> Membership | None: ...


class ChainMembership:
    """An account's organisation, its status and roles, read from the ConsortiumRegistry
    (cached for `ttl` seconds, so a revocation is seen within that time)."""

    def __init__(self, client: Any, registry_address: str, *, ttl: float = 5.0) -> None:
        self.client = client
        self.contract = client.contract("ConsortiumRegistry", registry_address)
        self.ttl = ttl
        self._roles = ROLE_IDS
        self._cache: dict[str, tuple[float, Membership | None]] = {}
        self._lock = threading.Lock()

    def membership(self, account: str) -> Membership | None:
        account = to_checksum_address(account)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(account)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        fns = self.contract.functions
        org_id = int(self.client.call(fns.organisationOf(account)))
        found: Membership | None = None
        if org_id:
            organisation = self.client.call(fns.organisation(org_id))
            roles = frozenset(self._roles.get(bytes(r), "") for r in self.client.call(fns.rolesOf(org_id))) - {""}
            found = Membership(org_id, int(organisation[4]) == 1, roles)
        with self._lock:
            self._cache[account] = (now, found)
        return found


class AccessPolicy:
    """Decides upload / open / erase for an account (module docstring)."""

    def __init__(self, members: MembershipView) -> None:
        self.members = members

    def member(self, account: str, action: str) -> Membership:
        member = self.members.membership(account)
        if member is None:
            raise AccessDenied(account, action, "the account belongs to no member organisation")
        if not member.active:
            raise AccessDenied(account, action, f"organisation {member.org_id} is not active")
        return member

    def check_upload(self, account: str) -> Membership:
        member = self.member(account, "upload")
        if not member.roles & set(ATTESTING_ROLES):
            raise AccessDenied(account, "upload", f"organisation {member.org_id} holds none of {', '.join(ATTESTING_ROLES)}")
        return member

    def check_open(self, account: str, document_type: str, sealed_for: Iterable[int]) -> Membership:
        member = self.member(account, "read")
        if member.org_id in set(sealed_for):
            return member
        raise AccessDenied(
            account, "read",
            f"this {document_type} is sealed for its uploader, the organisations its policy names and the "
            f"{', '.join(role_readers(document_type)) or 'no role'} tier; organisation {member.org_id} is none of them",
        )

    def check_erase(self, account: str, owner_org: int) -> Membership:
        member = self.member(account, "erase")
        if member.org_id == owner_org or "OPERATOR" in member.roles:
            return member
        raise AccessDenied(account, "erase", "only the uploading organisation or an OPERATOR may erase a document")
