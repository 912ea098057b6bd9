"""EPCIS 2.0 / CBV 2.0 vocabulary and Waymark's own: namespaces, the ``@context`` Waymark
writes, CBV terms and the IRIs they expand to, the customs vocabulary, and the prefixes a
JSON-LD ``@context`` declares.

Waymark's own vocabulary lives in two namespaces, declared by :data:`WAYMARK_CONTEXT`:

* ``wmc:`` = ``https://ns.waymark.example/customs/`` - customs steps CBV lacks, as bizStep
  values (``.../customs/declared``, ``cleared``, ``detained``, ``returned``,
  ``duty_assessed``), customs dispositions (``.../customs/held``, ``released``, ``refused``)
  and extension fields (``wmc:declarationId``, ``wmc:customsOffice``, ``wmc:duty`` =
  ``{wmc:amount, wmc:currency}``, ``wmc:reason``). Builders write vocabulary *values* as
  full IRIs: the CBV hash (like its reference implementation) expands CURIEs in values only
  into GS1's own vocabularies, so ``wmc:declared`` is accepted but hashes differently from
  its IRI - pick one spelling per deployment (the IRI).
* ``wm:`` = ``https://ns.waymark.example/epcis/`` - document references
  ``wm:documents`` = ``[{wm:documentType, wm:digest: "sha256:<hex>"}]``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

# --- namespaces and contexts --------------------------------------------------------------

EPCIS_CONTEXT_URL = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
CBV_NS = "https://ref.gs1.org/cbv/"
GS1_VOC_NS = "https://ref.gs1.org/voc/"
EPCIS_NS = "https://ref.gs1.org/epcis/"

WAYMARK_PREFIX = "wm"
WAYMARK_NS = "https://ns.waymark.example/epcis/"
CUSTOMS_PREFIX = "wmc"
CUSTOMS_NS = "https://ns.waymark.example/customs/"

WAYMARK_CONTEXT: list[Any] = [EPCIS_CONTEXT_URL, {WAYMARK_PREFIX: WAYMARK_NS, CUSTOMS_PREFIX: CUSTOMS_NS}]
"""The ``@context`` of every event Waymark builds."""

# --- CBV 2.0 vocabulary (terms of the EPCIS 2.0 JSON-LD context) --------------------------

BIZ_STEPS = frozenset(
    "accepting arriving assembling collecting commissioning consigning creating_class_instance "
    "cycle_counting decommissioning departing destroying disassembling dispensing encoding "
    "entering_exiting holding inspecting installing killing loading other packing picking "
    "receiving removing repackaging repairing replacing reserving retail_selling sampling "
    "sensor_reporting shipping staging_outbound stock_taking stocking storing transporting "
    "unloading unpacking void_shipping".split()
)
DISPOSITIONS = frozenset(
    "active available completeness_inferred completeness_verified conformant container_closed "
    "container_open damaged destroyed dispensed disposed encoded expired in_progress in_transit "
    "inactive mismatch_class mismatch_instance mismatch_quantity needs_replacement "
    "no_pedigree_match non_conformant non_sellable_other partially_dispensed recalled reserved "
    "retail_sold returned sellable_accessible sellable_not_accessible stolen unavailable unknown".split()
)
BIZ_TRANSACTION_TYPES = frozenset(
    "bol cert desadv inv pedigree po poc prodorder recadv rma testprd testres upevt".split()
)
SOURCE_DESTINATION_TYPES = frozenset("location owning_party possessing_party".split())
ERROR_REASONS = frozenset("did_not_occur incorrect_data".split())
MEASUREMENT_TYPES = frozenset(
    "AbsoluteHumidity AbsorbedDose AbsorbedDoseRate Acceleration Altitude AmountOfSubstance "
    "AmountOfSubstancePerUnitVolume Angle AngularAcceleration AngularMomentum AngularVelocity "
    "Area Capacitance Conductance Conductivity Count Density Dimensionless DoseEquivalent "
    "DoseEquivalentRate DynamicViscosity ElectricCharge ElectricCurrent ElectricCurrentDensity "
    "ElectricFieldStrength Energy Exposure Force Frequency Illuminance Inductance Irradiance "
    "KinematicViscosity Length LinearMomentum Luminance LuminousFlux LuminousIntensity "
    "MagneticFlux MagneticFluxDensity MagneticVectorPotential Mass MassConcentration "
    "MassFlowRate MassPerAreaTime MemoryCapacity MolalityOfSolute MolarEnergy MolarMass "
    "MolarVolume Power Pressure RadiantFlux RadiantIntensity Radioactivity RelativeHumidity "
    "Resistance Resistivity SolidAngle SpecificVolume Speed SurfaceDensity SurfaceTension "
    "Temperature Time Torque Voltage Volume VolumeFlowRate VolumeFraction VolumetricFlux "
    "Wavenumber".split()
)
SENSOR_EXCEPTIONS = frozenset(("ALARM_CONDITION", "ERROR_CONDITION"))
SENSOR_COMPONENTS = frozenset(
    "x y z axial_distance azimuth height spherical_radius polar_angle elevation_angle easting "
    "northing latitude longitude altitude".split()
)

# Bare term -> full IRI, per field kind (what JSON-LD expansion with the EPCIS context gives).
BIZ_STEP_IRIS = {term: f"{CBV_NS}BizStep-{term}" for term in BIZ_STEPS}
DISPOSITION_IRIS = {term: f"{CBV_NS}Disp-{term}" for term in DISPOSITIONS}
BIZ_TRANSACTION_TYPE_IRIS = {term: f"{CBV_NS}BTT-{term}" for term in BIZ_TRANSACTION_TYPES}
SOURCE_DESTINATION_TYPE_IRIS = {term: f"{CBV_NS}SDT-{term}" for term in SOURCE_DESTINATION_TYPES}
ERROR_REASON_IRIS = {term: f"{CBV_NS}ER-{term}" for term in ERROR_REASONS}
MEASUREMENT_TYPE_IRIS = {term: f"{GS1_VOC_NS}{term}" for term in MEASUREMENT_TYPES}
SENSOR_EXCEPTION_IRIS = {term: f"{GS1_VOC_NS}{term}" for term in SENSOR_EXCEPTIONS}
SENSOR_COMPONENT_IRIS = {term: f"{CBV_NS}Comp-{term}" for term in SENSOR_COMPONENTS}

STANDARD_PREFIXES = {"cbv": CBV_NS, "gs1": GS1_VOC_NS, "epcis": EPCIS_NS}
"""Prefixes the EPCIS 2.0 context itself defines (used for CURIEs in vocabulary fields)."""

# --- Waymark customs vocabulary -----------------------------------------------------------

CUSTOMS_STEPS = ("declared", "cleared", "detained", "returned", "duty_assessed")
CUSTOMS_DISPOSITIONS = ("held", "released", "refused")
CUSTOMS_STEP_IRIS = {step: f"{CUSTOMS_NS}{step}" for step in CUSTOMS_STEPS}
CUSTOMS_DISPOSITION_IRIS = {disp: f"{CUSTOMS_NS}{disp}" for disp in CUSTOMS_DISPOSITIONS}


def customs_step(step: str) -> str:
    """The bizStep IRI of a customs step: ``declared`` -> ``https://ns.waymark.example/customs/declared``."""
    if step not in CUSTOMS_STEPS:
        raise ValueError(f"unknown customs step {step!r}; one of {', '.join(CUSTOMS_STEPS)}")
    return CUSTOMS_STEP_IRIS[step]


def customs_disposition(disposition: str) -> str:
    """The disposition IRI of a customs state: ``held`` -> ``https://ns.waymark.example/customs/held``."""
    if disposition not in CUSTOMS_DISPOSITIONS:
        raise ValueError(
            f"unknown customs disposition {disposition!r}; one of {', '.join(CUSTOMS_DISPOSITIONS)}"
        )
    return CUSTOMS_DISPOSITION_IRIS[disposition]

DOCUMENT_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
"""The form of a ``wm:digest``: ``sha256:`` and 64 lowercase hex digits (never read as a number)."""

EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent")


def context_prefixes(context: Any) -> dict[str, str]:
    """Prefix -> IRI declared by a JSON-LD ``@context`` (remote context URLs declare none here)."""
    found: dict[str, str] = {}
    items = context if isinstance(context, list) else [context]
    for item in items:
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key.startswith("@"):
                    continue
                if isinstance(value, str):
                    found[key] = value
                elif isinstance(value, Mapping) and isinstance(value.get("@id"), str):
                    found[key] = value["@id"]
    return found
