"""Who may attest what: the consortium's roles and the role each business step needs.

The signer of an event must hold, at the event's time, one of the roles listed for its
`bizStep` (a CBV 2.0 term, written bare, as a `cbv:BizStep-` CURIE, as its
`https://ref.gs1.org/cbv/BizStep-` IRI or as an old `urn:epcglobal:cbv:bizstep:` URN):

| bizStep | roles accepted |
|---|---|
| commissioning, encoding, creating_class_instance, assembling, disassembling, decommissioning, destroying, killing, repairing, replacing, installing, removing | MANUFACTURER |
| packing, unpacking, repackaging | MANUFACTURER, CARRIER |
| inspecting, sampling | INSPECTOR |
| shipping, departing, arriving, receiving, loading, unloading, transporting, accepting, collecting, consigning, staging_outbound, void_shipping, picking, storing, stocking, holding, entering_exiting | CARRIER |
| sensor_reporting | CARRIER, ORACLE |
| the Waymark customs steps `wmc:declared`, `wmc:cleared`, `wmc:detained`, `wmc:returned`, `wmc:duty_assessed` (`wmc:` = https://ns.waymark.example/customs/) | CUSTOMS |
| other, cycle_counting, stock_taking, retail_selling, dispensing, reserving; an event with no bizStep | any attesting role (MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS, ORACLE) |

ANCHORER (the role a node's anchor account holds) attests nothing: it is in no row.

A step not in the table (any CBV step missing above, or another vocabulary's IRI) may be
attested by any attesting role (`attesting_roles`); such events are shown as attested outside
the role table (`in_role_table`).
"""

from __future__ import annotations

from typing import Any

from node.protocol.vocabulary import CBV_NS, CUSTOMS_NS, CUSTOMS_PREFIX, CUSTOMS_STEPS, STANDARD_PREFIXES, context_prefixes

ROLES = ("MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE", "ARBITRATOR", "AUDITOR", "OPERATOR", "ANCHORER")
"""Every role the ConsortiumRegistry knows."""

ATTESTING_ROLES = ("MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE")
"""Roles whose holders attest provenance events. ANCHORER only anchors batches: it attests nothing."""


_BY_ROLES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("MANUFACTURER",): (
        "commissioning", "encoding", "creating_class_instance", "assembling", "disassembling",
        "decommissioning", "destroying", "killing", "repairing", "replacing", "installing", "removing",
    ),
    ("MANUFACTURER", "CARRIER"): ("packing", "unpacking", "repackaging"),
    ("INSPECTOR",): ("inspecting", "sampling"),
    ("CARRIER",): (
        "shipping", "departing", "arriving", "receiving", "loading", "unloading", "transporting",
        "accepting", "collecting", "consigning", "staging_outbound", "void_shipping", "picking",
        "storing", "stocking", "holding", "entering_exiting",
    ),
    ("CARRIER", "ORACLE"): ("sensor_reporting",),
    ATTESTING_ROLES: ("other", "cycle_counting", "stock_taking", "retail_selling", "dispensing", "reserving"),
}
BIZSTEP_ROLES: dict[str, tuple[str, ...]] = {step: roles for roles, steps in _BY_ROLES.items() for step in steps}

_CBV_STEP_PREFIXES = (f"{CBV_NS}BizStep-", "urn:epcglobal:cbv:bizstep:")


def _expand(text: str, context: Any) -> str:
    prefix, sep, rest = text.partition(":")
    if not sep or rest.startswith("//"):
        return text
    declared = context_prefixes(context) if context is not None else {}
    iri = declared.get(prefix) or STANDARD_PREFIXES.get(prefix) or {CUSTOMS_PREFIX: CUSTOMS_NS}.get(prefix)
    return iri + rest if iri else text


def _table_roles(biz_step: str | None, context: Any) -> tuple[str, ...] | None:
    if not biz_step:
        return ATTESTING_ROLES
    if biz_step in BIZSTEP_ROLES:
        return BIZSTEP_ROLES[biz_step]
    expanded = _expand(biz_step, context)
    for prefix in _CBV_STEP_PREFIXES:
        if expanded.startswith(prefix):
            return BIZSTEP_ROLES.get(expanded[len(prefix):])
    if expanded.startswith(CUSTOMS_NS) and expanded[len(CUSTOMS_NS):] in CUSTOMS_STEPS:
        return ("CUSTOMS",)
    return None


def roles_for_bizstep(biz_step: str | None, context: Any = None) -> tuple[str, ...]:
    """The roles that may attest an event with this bizStep: the table's entry, or any
    attesting role for a step outside the table (EPCIS allows any step; such events are shown
    as attested outside the table, see `in_role_table`).

    `context` is the event's (or its document's) JSON-LD `@context`, for CURIEs.
    """
    return _table_roles(biz_step, context) or ATTESTING_ROLES


def in_role_table(biz_step: str | None, context: Any = None) -> bool:
    """Whether the role table names this bizStep (an event without one counts as listed)."""
    return _table_roles(biz_step, context) is not None
