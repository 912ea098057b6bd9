"""What an event body may not carry: commercial and personal content.

An event is public: anyone who scans the product sees it, and its hash (anchored on chain)
covers every field, so a field cannot be hidden later without breaking the proof. Declared
values, prices, invoices and their references, duty amounts, the HS classification and origin
of a customs declaration, reasons customs gives, contact data: these go into sealed documents
(node.documents) named by hash in `wm:documents`. `confidential_fields` finds such content in an
event body (by field name, whatever its namespace prefix, and by business transaction type);
the oracle refuses events that have any, and the tests check every passport against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONFIDENTIAL_FIELDS: dict[str, str] = {
    "hscode": "the HS classification of a declaration",
    "declaredvalue": "a declared value",
    "origincountry": "the origin declared to customs",
    "duty": "a duty amount",
    "dutyamount": "a duty amount",
    "reason": "the reasons customs gives",
    "price": "a price",
    "unitprice": "a price",
    "amount": "an amount of money",
    "invoice": "an invoice",
    "invoicenumber": "an invoice reference",
    "contact": "contact data",
    "email": "contact data",
    "telephone": "contact data",
    "phone": "contact data",
    "address": "contact data",
    "consignee": "contact data",
    "buyer": "contact data",
}
"""Field local names (lower case, namespace prefix dropped) that never belong in an event body."""

CONFIDENTIAL_TRANSACTION_TYPES = frozenset(("inv", "po", "poc"))
"""CBV business transaction types naming invoices and purchase orders (their numbers are commercial references)."""


def _local(key: str) -> str:
    return key.rsplit(":", 1)[-1].rsplit("/", 1)[-1].lower()


def confidential_fields(event: Any, path: str = "") -> list[tuple[str, str]]:
    """(field path, what it is) of each piece of commercial or personal content in an event body."""
    found: list[tuple[str, str]] = []
    if isinstance(event, Mapping):
        for key, value in event.items():
            where = f"{path}.{key}" if path else str(key)
            what = CONFIDENTIAL_FIELDS.get(_local(str(key)))
            if what is not None:
                found.append((where, what))
                continue
            if key == "bizTransactionList" and isinstance(value, list):
                for i, item in enumerate(value):
                    kind = _local(str(item.get("type", ""))) if isinstance(item, Mapping) else ""
                    if kind in CONFIDENTIAL_TRANSACTION_TYPES:
                        found.append((f"{where}[{i}]", f"a business transaction reference of type {kind}"))
            found.extend(confidential_fields(value, where))
    elif isinstance(event, list):
        for i, item in enumerate(event):
            found.extend(confidential_fields(item, f"{path}[{i}]"))
    return found
