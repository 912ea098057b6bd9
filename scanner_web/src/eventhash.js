// The CBV 2.0 event hash in the browser, so the page checks that an event shown is the event
// that was signed and anchored. Same rules as node/protocol/event_hash.py (its docstring
// explains them); tests/scanner_web/test_eventhash_js.py runs this file under Node against the
// published CBV 2.0 test vectors, Waymark's record vectors (tests/protocol/data/record_vectors.json:
// error declarations, sensor-only events) and the Python implementation on random events.

import { sha256 } from "@noble/hashes/sha2";

// --- vocabularies (CBV 2.0 / GS1 Web Vocabulary terms) ----------------------------------------

const CBV = "https://ref.gs1.org/cbv/";
const GS1_VOC = "https://ref.gs1.org/voc/";
const words = (text) => text.trim().split(/\s+/);

export const BIZ_STEPS = words(`accepting arriving assembling collecting commissioning consigning creating_class_instance
  cycle_counting decommissioning departing destroying disassembling dispensing encoding entering_exiting holding
  inspecting installing killing loading other packing picking receiving removing repackaging repairing replacing
  reserving retail_selling sampling sensor_reporting shipping staging_outbound stock_taking stocking storing
  transporting unloading unpacking void_shipping`);
export const DISPOSITIONS = words(`active available completeness_inferred completeness_verified conformant
  container_closed container_open damaged destroyed dispensed disposed encoded expired in_progress in_transit
  inactive mismatch_class mismatch_instance mismatch_quantity needs_replacement no_pedigree_match non_conformant
  non_sellable_other partially_dispensed recalled reserved retail_sold returned sellable_accessible
  sellable_not_accessible stolen unavailable unknown`);
export const BIZ_TRANSACTION_TYPES = words("bol cert desadv inv pedigree po poc prodorder recadv rma testprd testres upevt");
export const SOURCE_DESTINATION_TYPES = words("location owning_party possessing_party");
export const MEASUREMENT_TYPES = words(`AbsoluteHumidity AbsorbedDose AbsorbedDoseRate Acceleration Altitude
  AmountOfSubstance AmountOfSubstancePerUnitVolume Angle AngularAcceleration AngularMomentum AngularVelocity Area
  Capacitance Conductance Conductivity Count Density Dimensionless DoseEquivalent DoseEquivalentRate
  DynamicViscosity ElectricCharge ElectricCurrent ElectricCurrentDensity ElectricFieldStrength Energy Exposure
  Force Frequency Illuminance Inductance Irradiance KinematicViscosity Length LinearMomentum Luminance
  LuminousFlux LuminousIntensity MagneticFlux MagneticFluxDensity MagneticVectorPotential Mass MassConcentration
  MassFlowRate MassPerAreaTime MemoryCapacity MolalityOfSolute MolarEnergy MolarMass MolarVolume Power Pressure
  RadiantFlux RadiantIntensity Radioactivity RelativeHumidity Resistance Resistivity SolidAngle SpecificVolume
  Speed SurfaceDensity SurfaceTension Temperature Time Torque Voltage Volume VolumeFlowRate VolumeFraction
  VolumetricFlux Wavenumber`);
export const SENSOR_EXCEPTIONS = ["ALARM_CONDITION", "ERROR_CONDITION"];
export const SENSOR_COMPONENTS = words(`x y z axial_distance azimuth height spherical_radius polar_angle
  elevation_angle easting northing latitude longitude altitude`);

const table = (terms, prefix) => new Map(terms.map((t) => [t, prefix + t]));
const BIZ_STEP_IRIS = table(BIZ_STEPS, CBV + "BizStep-");
const DISPOSITION_IRIS = table(DISPOSITIONS, CBV + "Disp-");
const BTT_IRIS = table(BIZ_TRANSACTION_TYPES, CBV + "BTT-");
const SDT_IRIS = table(SOURCE_DESTINATION_TYPES, CBV + "SDT-");
const MEASUREMENT_IRIS = table(MEASUREMENT_TYPES, GS1_VOC);
const EXCEPTION_IRIS = table(SENSOR_EXCEPTIONS, GS1_VOC);
const COMPONENT_IRIS = table(SENSOR_COMPONENTS, CBV + "Comp-");

export const STANDARD_PREFIXES = { cbv: CBV, gs1: GS1_VOC, epcis: "https://ref.gs1.org/epcis/" };
const GS1_VOCABULARIES = ["https://ref.gs1.org/cbv/", "https://ref.gs1.org/voc/", "https://gs1.org/voc/"];
const OLD_CBV_URNS = [
  ["urn:epcglobal:cbv:bizstep:", CBV + "BizStep-"],
  ["urn:epcglobal:cbv:disp:", CBV + "Disp-"],
  ["urn:epcglobal:cbv:btt:", CBV + "BTT-"],
  ["urn:epcglobal:cbv:sdt:", CBV + "SDT-"],
  ["urn:epcglobal:cbv:er:", CBV + "ER-"],
];
const XML_NAMESPACES = { cbvmda: "urn:epcglobal:cbv:mda" };

// --- helpers ---------------------------------------------------------------------------------------

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isContainer = (v) => v !== null && typeof v === "object";
const has = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);
const asList = (v) => (Array.isArray(v) ? v : [v]);
const DIGITS = /^\d+$/;
// Python's str.strip() and JavaScript's trim() agree on the whitespace events contain.
const strip = (s) => s.trim();

export function checkDigit(digits) {
  let total = 0;
  let weight = 3;
  for (let i = digits.length - 1; i >= 0; i--) {
    total += (digits.charCodeAt(i) - 48) * weight;
    weight = 4 - weight;
  }
  return (10 - (total % 10)) % 10;
}

// Python's repr() of a float that is not a whole number: shortest round-trip digits,
// exponent notation below 1e-4 (whole numbers are written as integers before this is reached).
function pythonRepr(x) {
  const [mantissa, expText] = x.toExponential().split("e");
  const exp = Number(expText);
  const negative = mantissa.startsWith("-");
  const digits = mantissa.replace("-", "").replace(".", "");
  let text;
  if (exp < -4 || exp >= 16) {
    text = digits[0] + (digits.length > 1 ? "." + digits.slice(1) : "") + "e" + (exp < 0 ? "-" : "+") + String(Math.abs(exp)).padStart(2, "0");
  } else if (exp >= 0) {
    const whole = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
    const fraction = digits.slice(exp + 1);
    text = whole + "." + (fraction || "0");
  } else {
    text = "0." + "0".repeat(-exp - 1) + digits;
  }
  return (negative ? "-" : "") + text;
}

function numberText(x) {
  if (!Number.isFinite(x)) return null;
  if (Number.isInteger(x)) return BigInt(x).toString();
  return pythonRepr(x);
}

const NUMBER_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

// --- times ------------------------------------------------------------------------------------------

const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$/;
const CANONICAL_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// Milliseconds since the epoch, or null (rounding and zones as event_hash.py does).
export function parseTime(text) {
  const m = TIME_RE.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  if (year < 1 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return null;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null; // e.g. 30 February
  date.setUTCHours(hour, minute, second, 0);
  let ms = date.getTime();
  const fraction = m[7] || "";
  ms += Number((fraction + "000").slice(0, 3));
  if (fraction.length > 3 && fraction[3] >= "5") ms += 1;
  const zone = m[8];
  if (zone && zone !== "Z" && zone !== "z") {
    const sign = zone[0] === "+" ? 1 : -1;
    const digits = zone.slice(1).replace(":", "");
    ms -= sign * (Number(digits.slice(0, 2)) * 3600000 + Number(digits.slice(2)) * 60000);
  }
  return ms;
}

function formatTime(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}Z`;
}

export function canonicalTime(value) {
  if (typeof value !== "string") return value === null || value === undefined ? "" : String(value);
  const text = strip(value);
  if (CANONICAL_TIME_RE.test(text)) return text;
  const ms = parseTime(text);
  return ms === null ? text : formatTime(ms);
}

// Unix seconds (floor) of an event time: the EIP-712 `eventTime`.
export function unixSeconds(value) {
  const ms = typeof value === "string" ? parseTime(strip(value)) : null;
  if (ms === null) throw new Error(`not a timestamp: ${JSON.stringify(value)}`);
  return Math.floor(ms / 1000);
}

// --- GS1 keys: the constrained canonical Digital Link URI on id.gs1.org --------------------------

const GS1 = "https://id.gs1.org/";
const PRIMARY_KEYS = {
  "01": "01", gtin: "01", "8006": "8006", itip: "8006", "8010": "8010", cpid: "8010",
  "414": "414", gln: "414", "417": "417", party: "417", "8017": "8017", gsrnp: "8017",
  "8018": "8018", gsrn: "8018", "255": "255", gcn: "255", "00": "00", sscc: "00",
  "253": "253", gdti: "253", "401": "401", ginc: "401", "402": "402", gsin: "402",
  "8003": "8003", grai: "8003", "8004": "8004", giai: "8004",
};
const QUALIFIER_NAMES = { cpv: "22", lot: "10", ser: "21" };
const KEY_QUALIFIERS = {
  "01": [new Set(["22", "10", "21", "235"]), ["21", "235", "10"]],
  "8006": [new Set(["22", "10", "21"]), ["21", "10"]],
  "414": [new Set(["254"]), ["254"]],
  "8010": [new Set(["8011"]), ["8011"]],
};
const SEGMENT_RE = /^[!-.0-~]+$/;
const KEY_SHAPES = {
  "00": /^\d{18}$/, "01": /^\d{14}$/, "8006": /^\d{18}$/, "414": /^\d{13}$/, "417": /^\d{13}$/,
  "8017": /^\d{18}$/, "8018": /^\d{18}$/, "402": /^\d{17}$/, "253": /^\d{13}[!-.0-~]{0,17}$/,
  "255": /^\d{13}\d{0,12}$/, "8003": /^\d{14}[!-.0-~]{0,16}$/, "401": /^[!-.0-~]{1,30}$/,
  "8004": /^[!-.0-~]{1,30}$/, "8010": /^[!-.0-~]{1,30}$/,
};
const KEY_HINT_RE = /\/(?:0[01]|253|255|40[12]|41[47]|800[346]|801[078]|gtin|itip|cpid|gln|party|gsrnp?|gcn|sscc|gdti|ginc|gsin|grai|giai)\/\d{4}/;
const ALREADY_CANONICAL_RE = /^https:\/\/id\.gs1\.org\/(?:00\/\d{18}|01\/\d{14}(?:\/(?:21|10)\/[!-.0-~]+)?|414\/\d{13}(?:\/254\/[!-.0-~]+)?|417\/\d{13})$/;

function canonicalDigitalLink(uri) {
  if (!KEY_HINT_RE.test(uri)) return null;
  const schemeEnd = uri.indexOf("://");
  if (schemeEnd < 0) return null;
  let rest = uri.slice(schemeEnd + 3);
  for (const stop of ["?", "#"]) {
    const cut = rest.indexOf(stop);
    if (cut >= 0) rest = rest.slice(0, cut);
  }
  const segments = rest.split("/").slice(1);
  if (segments.length && segments[segments.length - 1] === "") segments.pop();
  let i = 0;
  let key = null;
  for (; i < segments.length; i++) {
    const k = PRIMARY_KEYS[segments[i]];
    if (k !== undefined && Object.prototype.hasOwnProperty.call(PRIMARY_KEYS, segments[i]) && i + 1 < segments.length && /^\d+$/.test(segments[i + 1].slice(0, 4))) {
      key = k;
      break;
    }
  }
  if (key === null) return null;
  let value = segments[i + 1];
  const tail = segments.slice(i + 2);
  if (tail.length % 2) return null;
  if (key === "01" && DIGITS.test(value) && [8, 12, 13].includes(value.length)) value = value.padStart(14, "0");
  if (!KEY_SHAPES[key].test(value)) return null;
  const [allowed, kept] = KEY_QUALIFIERS[key] || [new Set(), []];
  const qualifiers = {};
  for (let j = 0; j < tail.length; j += 2) {
    const name = QUALIFIER_NAMES[tail[j]] || tail[j];
    if (!allowed.has(name) || !SEGMENT_RE.test(tail[j + 1])) return null;
    qualifiers[name] = tail[j + 1];
  }
  let out = `${GS1}${key}/${value}`;
  for (const name of kept) {
    if (has(qualifiers, name)) {
      out += `/${name}/${qualifiers[name]}`;
      if (key === "01" || key === "8006") break; // only the finest level: serial (or TPX) over lot
    }
  }
  return out;
}

function gtinOf(prefix, item) {
  if (prefix.length + item.length !== 13 || !DIGITS.test(prefix + item)) return null;
  const body = item[0] + prefix + item.slice(1);
  return body + checkDigit(body);
}

function withCheck(body, length) {
  if (body.length !== length || !DIGITS.test(body)) return null;
  return body + checkDigit(body);
}

const EPC_CHARS_RE = /^(?:%[0-9A-Fa-f]{2}|[!'()*+,.0-9:;=A-Za-z_-])+$/;

function epcUrn(uri) {
  const after = uri.slice(8);
  const colon = after.indexOf(":");
  const kind = colon < 0 ? after : after.slice(0, colon);
  const body = colon < 0 ? "" : after.slice(colon + 1);
  const colon2 = body.indexOf(":");
  const name = colon2 < 0 ? body : body.slice(0, colon2);
  const rest = colon2 < 0 ? "" : body.slice(colon2 + 1);
  const parts = rest.split(".");
  if (parts.length < 2 || parts[0].length < 6 || parts[0].length > 12 || !DIGITS.test(parts[0])) return null;
  const prefix = parts[0];
  const serial = (text) => (text && EPC_CHARS_RE.test(text) ? text : null);
  const isDigits = (t) => DIGITS.test(t);
  if (kind === "id") {
    if (name === "sgtin" && parts.length >= 3) {
      const gtin = gtinOf(prefix, parts[1]);
      const ser = serial(parts.slice(2).join("."));
      return gtin && ser ? `${GS1}01/${gtin}/21/${ser}` : null;
    }
    if (name === "sscc" && parts.length === 2) {
      const ref = parts[1];
      const sscc = withCheck(ref.slice(0, 1) + prefix + ref.slice(1), 17);
      return sscc ? `${GS1}00/${sscc}` : null;
    }
    if (name === "sgln" && parts.length >= 3) {
      const gln = withCheck(prefix + parts[1], 12);
      const ext = parts.slice(2).join(".");
      if (!gln || !serial(ext)) return null;
      return ext === "0" ? `${GS1}414/${gln}` : `${GS1}414/${gln}/254/${ext}`;
    }
    if (name === "grai" && parts.length >= 3) {
      const grai = withCheck("0" + prefix + parts[1], 13);
      const ser = serial(parts.slice(2).join("."));
      return grai && ser ? `${GS1}8003/${grai}${ser}` : null;
    }
    if (name === "giai" && parts.length >= 2) {
      const ref = serial(parts.slice(1).join("."));
      return ref ? `${GS1}8004/${prefix}${ref}` : null;
    }
    if ((name === "gsrn" || name === "gsrnp") && parts.length === 2) {
      const number = withCheck(prefix + parts[1], 17);
      return number ? `${GS1}${name === "gsrn" ? "8018" : "8017"}/${number}` : null;
    }
    if (name === "gdti" && parts.length >= 3) {
      const gdti = withCheck(prefix + parts[1], 12);
      const ser = serial(parts.slice(2).join("."));
      return gdti && ser ? `${GS1}253/${gdti}${ser}` : null;
    }
    if (name === "cpi" && parts.length >= 3) {
      const ref = parts.slice(1, -1).join(".");
      const ser = parts[parts.length - 1];
      if (!ref || !isDigits(ser) || !/^(?:%2[3dfDF]|[0-9A-Z-])+$/.test(ref)) return null;
      return `${GS1}8010/${prefix}${ref}/8011/${ser}`;
    }
    if (name === "sgcn" && parts.length === 3) {
      const sgcn = withCheck(prefix + parts[1], 12);
      return sgcn && isDigits(parts[2]) ? `${GS1}255/${sgcn}${parts[2]}` : null;
    }
    if (name === "ginc" && parts.length >= 2) {
      const ref = serial(parts.slice(1).join("."));
      return ref ? `${GS1}401/${prefix}${ref}` : null;
    }
    if (name === "gsin" && parts.length === 2) {
      const gsin = withCheck(prefix + parts[1], 16);
      return gsin ? `${GS1}402/${gsin}` : null;
    }
    if (name === "itip" && parts.length >= 5) {
      const gtin = gtinOf(prefix, parts[1]);
      const ser = serial(parts.slice(4).join("."));
      const [piece, total] = [parts[2], parts[3]];
      if (!(gtin && ser && piece.length === 2 && total.length === 2 && isDigits(piece + total))) return null;
      return `${GS1}8006/${gtin}${piece}${total}/21/${ser}`;
    }
    if (name === "upui" && parts.length >= 3) {
      const gtin = gtinOf(prefix, parts[1]);
      const tpx = serial(parts.slice(2).join("."));
      return gtin && tpx ? `${GS1}01/${gtin}/235/${tpx}` : null;
    }
    if (name === "pgln" && parts.length === 2) {
      const gln = withCheck(prefix + parts[1], 12);
      return gln ? `${GS1}417/${gln}` : null;
    }
    return null;
  }
  if (kind === "class" && name === "lgtin" && parts.length >= 3) {
    const gtin = gtinOf(prefix, parts[1]);
    const lot = serial(parts.slice(2).join("."));
    return gtin && lot ? `${GS1}01/${gtin}/10/${lot}` : null;
  }
  if (kind === "idpat" && parts[parts.length - 1] === "*") {
    if ((name === "sgtin" || name === "upui") && parts.length === 3) {
      const gtin = gtinOf(prefix, parts[1]);
      return gtin ? `${GS1}01/${gtin}` : null;
    }
    if (name === "grai" && parts.length === 3) {
      const grai = withCheck("0" + prefix + parts[1], 13);
      return grai ? `${GS1}8003/${grai}` : null;
    }
    if (name === "gdti" && parts.length === 3) {
      const gdti = withCheck(prefix + parts[1], 12);
      return gdti ? `${GS1}253/${gdti}` : null;
    }
    if (name === "sgcn" && parts.length === 3) {
      const sgcn = withCheck(prefix + parts[1], 12);
      return sgcn ? `${GS1}255/${sgcn}` : null;
    }
    if (name === "cpi" && parts.length === 3) return parts[1] ? `${GS1}8010/${prefix}${parts[1]}` : null;
    if (name === "itip" && parts.length === 5) {
      const gtin = gtinOf(prefix, parts[1]);
      const [piece, total] = [parts[2], parts[3]];
      if (!(gtin && piece.length === 2 && total.length === 2 && isDigits(piece + total))) return null;
      return `${GS1}8006/${gtin}${piece}${total}`;
    }
  }
  return null;
}

export function canonicalGs1Uri(text) {
  if (text.startsWith("https://id.gs1.org/") && ALREADY_CANONICAL_RE.test(text)) return text;
  if (text.startsWith("urn:epc:")) return epcUrn(text);
  if (text.startsWith("https://") || text.startsWith("http://")) return canonicalDigitalLink(text);
  return null;
}

// --- value canonicalisation -----------------------------------------------------------------------

function canonText(value) {
  let text = strip(value);
  if (!text) return "";
  if (text.includes(":")) {
    if (text.startsWith("urn:epcglobal:cbv:")) {
      for (const [old, replacement] of OLD_CBV_URNS) {
        if (text.startsWith(old)) {
          text = replacement + text.slice(old.length);
          break;
        }
      }
    } else if (text.startsWith("urn:epc:") || text.startsWith("http")) {
      const normalised = canonicalGs1Uri(text);
      if (normalised !== null) return normalised;
    }
    return text;
  }
  const first = text[0];
  if ((/[0-9]/.test(first) || "+-.".includes(first)) && NUMBER_RE.test(text)) {
    const number = numberText(Number(text));
    if (number !== null) return number;
  }
  return text;
}

function canon(value) {
  if (typeof value === "string") return canonText(value);
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "number") return numberText(value) ?? String(value);
  if (value === null || value === undefined) return "";
  return canonText(String(value));
}

class Context {
  constructor(user) {
    this.user = {};
    for (const [k, v] of Object.entries(user)) if (!["http", "https", "urn"].includes(k)) this.user[k] = v;
    this.vocab = { ...STANDARD_PREFIXES, ...this.user };
  }
}

function expandCurie(text, prefixes) {
  const i = text.indexOf(":");
  if (i >= 0) {
    const prefix = text.slice(0, i);
    const rest = text.slice(i + 1);
    if (!rest.startsWith("//") && has(prefixes, prefix)) return prefixes[prefix] + rest;
  }
  return text;
}

function canonVocab(value, iris, ctx) {
  if (typeof value === "string") {
    const text = strip(value);
    if (iris.has(text)) return iris.get(text);
    const expanded = expandCurie(text, ctx.vocab);
    if (GS1_VOCABULARIES.some((p) => expanded.startsWith(p))) return expanded;
    return canon(text);
  }
  return canon(value);
}

export function contextPrefixes(context) {
  const found = {};
  for (const item of asList(context)) {
    if (!isObject(item)) continue;
    for (const [key, value] of Object.entries(item)) {
      if (key.startsWith("@")) continue;
      if (typeof value === "string") found[key] = value;
      else if (isObject(value) && typeof value["@id"] === "string") found[key] = value["@id"];
    }
  }
  return found;
}

function contextFor(event, context) {
  const own = event["@context"];
  const prefixes = {};
  if (context !== undefined && context !== null) Object.assign(prefixes, contextPrefixes(context));
  if (own !== undefined && own !== null) Object.assign(prefixes, contextPrefixes(own));
  return new Context(prefixes);
}

// --- the pre-hash string --------------------------------------------------------------------------

const IGNORED = new Set(["type", "eventID", "recordTime", "errorDeclaration", "certificationInfo", "@context", "rdfs:comment", "comment", "ilmd"]);
const GENERIC_IGNORED = new Set(["@context", "rdfs:comment", "comment"]);

function keyName(key, ctx) {
  const i = key.indexOf(":");
  if (i >= 0) {
    const prefix = key.slice(0, i);
    const local = key.slice(i + 1);
    const iri = has(ctx.user, prefix) ? ctx.user[prefix] : has(XML_NAMESPACES, prefix) ? XML_NAMESPACES[prefix] : has(STANDARD_PREFIXES, prefix) ? STANDARD_PREFIXES[prefix] : undefined;
    if (iri !== undefined) return "{" + iri + "}" + local;
  }
  return key;
}

// Python sorts strings by code point; so does this (plain < compares UTF-16 units).
const byCodePoint = (a, b) => {
  const x = Array.from(a);
  const y = Array.from(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
};
const sorted = (list) => list.sort((a, b) => (a === b ? 0 : /[\ud800-\udfff]/.test(a + b) ? byCodePoint(a, b) : a < b ? -1 : 1));

function generic(name, value, ctx, out) {
  if (isObject(value)) {
    const children = [];
    for (const [key, child] of Object.entries(value)) {
      if (!GENERIC_IGNORED.has(key)) generic(keyName(key, ctx), child, ctx, children);
    }
    out.push(name + sorted(children).join(""));
  } else if (Array.isArray(value)) {
    for (const item of value) generic(name, item, ctx, out);
  } else {
    const text = canon(value);
    out.push(text ? `${name}=${text}` : name);
  }
}

function leftover(name, obj, consumed, ctx, out) {
  const children = [];
  for (const [key, value] of Object.entries(obj)) {
    if (!consumed.has(key) && !GENERIC_IGNORED.has(key)) generic(keyName(key, ctx), value, ctx, children);
  }
  if (children.length) out.push(name + sorted(children).join(""));
}

const field = (name, text) => (text ? `${name}=${text}` : "");

function plain(name, value, ctx, left) {
  if (isContainer(value)) {
    generic(name, value, ctx, left);
    return "";
  }
  return field(name, canon(value));
}

function time(name, value, ctx, left) {
  if (isContainer(value)) {
    generic(name, value, ctx, left);
    return "";
  }
  return field(name, canonicalTime(value));
}

const vocab = (iris) => (name, value, ctx, left) => {
  if (isContainer(value)) {
    generic(name, value, ctx, left);
    return "";
  }
  return field(name, canonVocab(value, iris, ctx));
};

function epcs(name, value, ctx, left) {
  const entries = [];
  for (const item of asList(value)) {
    if (isObject(item)) {
      generic(name, item, ctx, left);
      continue;
    }
    const text = canon(item);
    if (text) entries.push("epc=" + text);
  }
  return entries.length ? name + sorted(entries).join("") : "";
}

const QTY_KEYS = new Set(["epcClass", "quantity", "uom"]);

function quantities(name, value, ctx, left) {
  const entries = [];
  for (const element of asList(value)) {
    if (!isObject(element)) continue;
    let text = "";
    for (const key of ["epcClass", "quantity", "uom"]) if (has(element, key)) text += field(key, canon(element[key]));
    if (text) entries.push("quantityElement" + text);
    leftover("quantityElement", element, QTY_KEYS, ctx, left);
  }
  return entries.length ? name + sorted(entries).join("") : "";
}

function persistent(name, value, ctx, left) {
  if (!isObject(value)) return plain(name, value, ctx, left);
  let text = "";
  for (const key of ["set", "unset"]) {
    const items = value[key];
    if (items === null || items === undefined) continue;
    const entries = [];
    for (const item of asList(items)) {
      const c = canonVocab(item, DISPOSITION_IRIS, ctx);
      if (c) entries.push(`${key}=${c}`);
    }
    text += sorted(entries).join("");
  }
  leftover(name, value, new Set(["set", "unset"]), ctx, left);
  return text ? name + text : "";
}

const ID_ONLY = new Set(["id"]);

function location(name, value, ctx, left) {
  if (!isObject(value)) {
    const text = Array.isArray(value) ? "" : canon(value);
    return text ? name + "id=" + text : "";
  }
  const text = has(value, "id") ? field("id", canon(value.id)) : "";
  leftover(name, value, ID_ONLY, ctx, left);
  return text ? name + text : "";
}

const typedList = (idKey, types) => {
  const consumed = new Set(["type", idKey]);
  return (name, value, ctx, left) => {
    const entries = [];
    for (const element of asList(value)) {
      if (!isObject(element)) continue;
      let text = "";
      if (has(element, "type")) text += field("type", canonVocab(element.type, types, ctx));
      if (has(element, idKey)) text += field(idKey, canon(element[idKey]));
      if (text) entries.push(text);
      leftover(idKey, element, consumed, ctx, left);
    }
    return entries.length ? name + sorted(entries).join("") : "";
  };
};

const METADATA_ORDER = ["time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod", "bizRules"];
const REPORT_ORDER = [
  "type", "exception", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod", "time",
  "microorganism", "chemicalSubstance", "value", "component", "stringValue", "booleanValue",
  "hexBinaryValue", "uriValue", "minValue", "maxValue", "meanValue", "sDev", "percRank",
  "percValue", "uom", "coordinateReferenceSystem",
];
const REPORT_VOCAB = { type: MEASUREMENT_IRIS, exception: EXCEPTION_IRIS, component: COMPONENT_IRIS };
const TIME_KIND = "time";
const PLAIN_KIND = "plain";
const plan = (order, vocabularies) => new Map(order.map((key, rank) => [key, [rank, vocabularies[key] || (key.toLowerCase().includes("time") ? TIME_KIND : PLAIN_KIND)]]));
const METADATA_PLAN = plan(METADATA_ORDER, {});
const REPORT_PLAN = plan(REPORT_ORDER, REPORT_VOCAB);
const ELEMENT_KEYS = new Set(["sensorMetadata", "sensorReport"]);

function orderedObject(obj, keyPlan, ctx) {
  const present = Object.keys(obj).filter((k) => keyPlan.has(k)).sort((a, b) => keyPlan.get(a)[0] - keyPlan.get(b)[0]);
  let out = "";
  for (const key of present) {
    const value = obj[key];
    if (value === null || value === undefined) continue;
    const kind = keyPlan.get(key)[1];
    const text = kind === TIME_KIND ? canonicalTime(value) : kind === PLAIN_KIND ? canon(value) : canonVocab(value, kind, ctx);
    if (text) out += `${key}=${text}`;
  }
  return out;
}

function sensors(name, value, ctx, left) {
  const elements = [];
  for (const element of asList(value)) {
    if (!isObject(element)) continue;
    let text = "";
    const rest = [];
    const metadata = element.sensorMetadata;
    if (isObject(metadata)) {
      const metaText = orderedObject(metadata, METADATA_PLAN, ctx);
      if (metaText) text += "sensorMetadata" + metaText;
      leftover("sensorMetadata", metadata, new Set(METADATA_ORDER), ctx, rest);
    }
    const reports = element.sensorReport;
    const reportTexts = [];
    for (const report of Array.isArray(reports) ? reports : reports ? [reports] : []) {
      if (!isObject(report)) continue;
      const reportText = orderedObject(report, REPORT_PLAN, ctx);
      if (reportText) reportTexts.push("sensorReport" + reportText);
      leftover("sensorReport", report, new Set(REPORT_ORDER), ctx, rest);
    }
    text += sorted(reportTexts).join("");
    if (text) elements.push("sensorElement" + text);
    for (const [key, child] of Object.entries(element)) {
      if (!ELEMENT_KEYS.has(key) && !GENERIC_IGNORED.has(key)) generic(keyName(key, ctx), child, ctx, rest);
    }
    if (rest.length) left.push("sensorElement" + sorted(rest).join(""));
  }
  return sorted(elements).join("");
}

const ORDER = [
  ["eventTime", time],
  ["eventTimeZoneOffset", plain],
  ["epcList", epcs],
  ["parentID", plain],
  ["inputEPCList", epcs],
  ["childEPCs", epcs],
  ["quantityList", quantities],
  ["childQuantityList", quantities],
  ["inputQuantityList", quantities],
  ["outputEPCList", epcs],
  ["outputQuantityList", quantities],
  ["action", plain],
  ["transformationID", plain],
  ["bizStep", vocab(BIZ_STEP_IRIS)],
  ["disposition", vocab(DISPOSITION_IRIS)],
  ["persistentDisposition", persistent],
  ["readPoint", location],
  ["bizLocation", location],
  ["bizTransactionList", typedList("bizTransaction", BTT_IRIS)],
  ["sourceList", typedList("source", SDT_IRIS)],
  ["destinationList", typedList("destination", SDT_IRIS)],
  ["sensorElementList", sensors],
];
const ORDERED_KEYS = new Set(ORDER.map(([k]) => k));

export function prehash(event, context) {
  if (!isObject(event)) throw new Error("an event is a JSON object");
  const type = event.type;
  if (typeof type !== "string" || !type) throw new Error("the event has no type");
  const ctx = contextFor(event, context);
  const parts = ["eventType=", type];
  const left = [];
  for (const [key, handler] of ORDER) {
    if (has(event, key)) {
      const text = handler(key, event[key], ctx, left);
      if (text) parts.push(text);
    }
  }
  if (has(event, "ilmd")) generic("ilmd", event.ilmd, ctx, parts);
  parts.push(...left);
  const extensions = [];
  for (const [key, value] of Object.entries(event)) {
    if (!ORDERED_KEYS.has(key) && !IGNORED.has(key)) generic(keyName(key, ctx), value, ctx, extensions);
  }
  parts.push(...sorted(extensions));
  return parts.join("");
}

export function eventDigest(event, context) {
  return sha256(new TextEncoder().encode(prehash(event, context)));
}

export function eventHash(event, context) {
  return "ni:///sha-256;" + toHex(eventDigest(event, context)) + "?ver=CBV2.0";
}

// Waymark stores, attests and anchors an event under its record digest (node/protocol/event_hash.py
// record_digest). For an ordinary event it is the CBV 2.0 digest. An error declaration shares its CBV
// hash with the event it declares erroneous (errorDeclaration is not hashed), so it is kept under the
// SHA-256 of its pre-hash string, CORRECTION_SEPARATOR and its errorDeclaration written canonically.
export const CORRECTION_SEPARATOR = "\nwaymark:errorDeclaration\n";

export function recordDigest(event, context) {
  const text = prehash(event, context);
  const declaration = has(event, "errorDeclaration") ? event.errorDeclaration : null;
  if (declaration === null || declaration === undefined) return sha256(new TextEncoder().encode(text));
  const parts = [];
  generic("errorDeclaration", declaration, contextFor(event, context), parts);
  return sha256(new TextEncoder().encode(text + CORRECTION_SEPARATOR + parts.join("")));
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- the attestation subject ----------------------------------------------------------------------

const PRIMARY_FIELDS = ["epcList", "parentID", "outputEPCList", "inputEPCList", "childEPCs"];
const PRIMARY_CLASS_FIELDS = ["quantityList", "outputQuantityList", "inputQuantityList", "childQuantityList"];
const smallest = (ids) => ids.reduce((a, b) => (sorted([a, b])[0] === a ? a : b));

export function primaryObjectId(event, context) {
  contextFor(event, context);
  for (const key of PRIMARY_FIELDS) {
    const value = event[key];
    if (!value || (Array.isArray(value) && value.length === 0)) continue;
    const ids = asList(value).filter((item) => typeof item === "string" && strip(item)).map((item) => canon(item));
    if (ids.length) return smallest(ids);
  }
  for (const key of PRIMARY_CLASS_FIELDS) {
    const value = event[key];
    if (Array.isArray(value)) {
      const ids = value.filter((e) => isObject(e) && typeof e.epcClass === "string").map((e) => canon(e.epcClass));
      if (ids.length) return smallest(ids);
    }
  }
  // An event about no object (a sensor-only ObjectEvent, EPCIS 2.0 7.4.2) is about a place.
  for (const key of ["readPoint", "bizLocation"]) {
    const place = has(event, key) ? event[key] : null;
    if (isObject(place) && typeof place.id === "string" && strip(place.id)) return canon(place.id);
  }
  throw new Error("the event names no object and no place (epcList, parentID, ..., readPoint, bizLocation are all empty)");
}
