// "Verify here": the page re-checks every event of a passport itself, trusting the server for
// nothing but the data to check. The rule is node/protocol/verification.py's, written again here and held
// to it by tests/protocol/data/verification_vectors.json (generated from the Python core; run
// against this file in Chromium by tests/scanner_web/test_verification_vectors.py). Per event,
// in order, the first failure named:
//   event_hash    the event shown hashes to the id that was signed and anchored (its record
//                 digest: the CBV 2.0 hash, or for an error declaration the hash with the
//                 declaration, see eventhash.js recordDigest)
//   signature     the EIP-712 Attestation recovers to the signer (secp256k1, in the browser)
//   role          the signer held a role allowed for the event's bizStep at the event time
//                 (hasRoleAt); a step outside the role table may be attested by any attesting role
//   merkle_proof  the proof leads from the (event hash, signer) leaf to the root (an empty proof:
//                 the event is its batch's only leaf, leaf == root)
//   anchor        the root is anchored by the signer's organisation at the event time
//                 (anchorOfOrganisation), or by the organisation hosting it at the anchor's time
//                 (hostOfAt); a rival's anchor counts for nobody
//   confirmations enough blocks on top of the anchor (else pending)
// Not anchored yet: pending (overdue once past the maximum reporting delay). Marks of a verified
// event, never shown as plainly genuine: late (anchored more than maxReportingDelayAt(anchor
// time) after its event time), signer_revoked (the signer no longer held its role at the anchor time).
// The lookups (registry at a time, anchors, head) are passed in: the chain over read-only
// JSON-RPC on the page (Chain below), tables in the vectors' runner.

import { secp256k1 } from "@noble/curves/secp256k1";
import { keccak_256 } from "@noble/hashes/sha3";
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { contextPrefixes, primaryObjectId, recordDigest, toHex, unixSeconds } from "./eventhash.js";

export const CHECKS = ["event_hash", "signature", "role", "merkle_proof", "anchor", "confirmations"];

const encoder = new TextEncoder();
const keccak = (bytes) => keccak_256(bytes);
const keccakText = (text) => keccak(encoder.encode(text));

export function fromHex(hex) {
  const text = hex.startsWith("0x") ? hex.slice(2) : hex;
  if (text.length % 2 || /[^0-9a-fA-F]/.test(text)) throw new Error(`not hex: ${hex}`);
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
const hex0x = (bytes) => "0x" + toHex(bytes);
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const word = (n) => fromHex(BigInt(n).toString(16).padStart(64, "0"));
const addressWord = (address) => concat(new Uint8Array(12), fromHex(address));

// --- EIP-712 attestation ----------------------------------------------------------------------------

const DOMAIN_TYPEHASH = keccakText("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
const ATTESTATION_TYPEHASH = keccakText("Attestation(bytes32 eventHash,bytes32 subject,uint64 eventTime)");

export function domainSeparator(chainId, verifyingContract) {
  return keccak(concat(DOMAIN_TYPEHASH, keccakText("Waymark"), keccakText("1"), word(chainId), addressWord(verifyingContract)));
}

export function attestationDigest(separator, eventDigest32, subject32, eventTime) {
  const structHash = keccak(concat(ATTESTATION_TYPEHASH, eventDigest32, subject32, word(eventTime)));
  return keccak(concat(new Uint8Array([0x19, 0x01]), separator, structHash));
}

// The attestation subject: keccak256 of the primary object's canonical id (for an event about no
// object, its readPoint, else its bizLocation; eventhash.js primaryObjectId).
export function attestationSubject(event, context) {
  return keccakText(primaryObjectId(event, context));
}

export function checksumAddress(bytes20) {
  const lower = toHex(bytes20);
  const hash = toHex(keccakText(lower));
  let out = "0x";
  for (let i = 0; i < 40; i++) out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  return out;
}

const HALF_N = secp256k1.CURVE.n / 2n;

export function recoverSigner(digest, signatureHex) {
  const sig = fromHex(signatureHex);
  if (sig.length !== 65) throw new Error(`a signature has 65 bytes, not ${sig.length}`);
  const v = sig[64];
  if (v !== 27 && v !== 28) throw new Error(`v must be 27 or 28, got ${v}`);
  const signature = secp256k1.Signature.fromCompact(sig.slice(0, 64)).addRecoveryBit(v - 27);
  if (signature.s > HALF_N) throw new Error("s is not in the lower half of the curve order (EIP-2)");
  const point = signature.recoverPublicKey(digest);
  const uncompressed = point.toRawBytes(false);
  return checksumAddress(keccak(uncompressed.slice(1)).slice(12));
}

// --- who may attest what (node/member/ingest/roles.py) ----------------------------------------------------

export const ATTESTING = ["MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE"];
const STEP_ROLES = {};
const assign = (roles, steps) => steps.split(" ").forEach((s) => (STEP_ROLES[s] = roles));
assign(["MANUFACTURER"], "commissioning encoding creating_class_instance assembling disassembling decommissioning destroying killing repairing replacing installing removing");
assign(["MANUFACTURER", "CARRIER"], "packing unpacking repackaging");
assign(["INSPECTOR"], "inspecting sampling");
assign(["CARRIER"], "shipping departing arriving receiving loading unloading transporting accepting collecting consigning staging_outbound void_shipping picking storing stocking holding entering_exiting");
assign(["CARRIER", "ORACLE"], "sensor_reporting");
assign(ATTESTING, "other cycle_counting stock_taking retail_selling dispensing reserving");
const CUSTOMS_NS = "https://ns.waymark.example/customs/";
const CUSTOMS_STEPS = ["declared", "cleared", "detained", "returned", "duty_assessed"];
const CBV_STEP_PREFIXES = ["https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:"];

// The roles of the table for a step, or null for a step outside it (node/member/ingest/roles.py
// _table_roles); allowedRoles is what the node enforces (roles_for_bizstep): outside the table,
// any attesting role.
export function rolesForBizStep(step, context) {
  if (!step) return ATTESTING;
  if (Object.prototype.hasOwnProperty.call(STEP_ROLES, step)) return STEP_ROLES[step];
  let expanded = step;
  const i = step.indexOf(":");
  if (i > 0 && !step.slice(i + 1).startsWith("//")) {
    const prefixes = { cbv: "https://ref.gs1.org/cbv/", ...contextPrefixes(context) };
    const iri = prefixes[step.slice(0, i)];
    if (typeof iri === "string") expanded = iri + step.slice(i + 1);
  }
  for (const prefix of CBV_STEP_PREFIXES) {
    if (expanded.startsWith(prefix)) return STEP_ROLES[expanded.slice(prefix.length)] || null;
  }
  if (expanded.startsWith(CUSTOMS_NS) && CUSTOMS_STEPS.includes(expanded.slice(CUSTOMS_NS.length))) return ["CUSTOMS"];
  return null;
}

export function allowedRoles(step, context) {
  return rolesForBizStep(step, context) || ATTESTING;
}

// --- read-only JSON-RPC ----------------------------------------------------------------------------

const selector = (signature) => toHex(keccakText(signature).slice(0, 4));

export class Chain {
  constructor(rpcUrl, config) {
    this.rpcUrl = rpcUrl;
    this.config = config;
    this.id = 0;
    this.cache = new Map();
  }

  async rpc(method, params) {
    const response = await fetch(this.rpcUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++this.id, method, params }),
    });
    if (!response.ok) throw new Error(`the chain at ${this.rpcUrl} answered HTTP ${response.status}`);
    const body = await response.json();
    if (body.error) throw new Error(`the chain answered: ${body.error.message || JSON.stringify(body.error)}`);
    return body.result;
  }

  async call(to, data) {
    const key = to + data;
    if (!this.cache.has(key)) {
      this.cache.set(key, this.rpc("eth_call", [{ to, data }, "latest"]).catch((e) => {
        this.cache.delete(key);
        throw e;
      }));
    }
    return fromHex(await this.cache.get(key));
  }

  async chainId() {
    return Number(BigInt(await this.rpc("eth_chainId", [])));
  }

  // The head block the verification is made against: {blockNumber, timestamp}.
  async head() {
    if (!this._head) {
      this._head = this.rpc("eth_getBlockByNumber", ["latest", false]).then((b) => ({ blockNumber: Number(BigInt(b.number)), timestamp: Number(BigInt(b.timestamp)) }));
    }
    return this._head;
  }

  async hostOfAt(orgId, time) {
    const data = "0x" + selector("hostOfAt(uint64,uint256)") + toHex(word(orgId)) + toHex(word(time));
    return Number(readWord(await this.call(this.config.consortiumRegistry, data), 0));
  }

  async maxReportingDelayAt(time) {
    const data = "0x" + selector("maxReportingDelayAt(uint256)") + toHex(word(time));
    return Number(readWord(await this.call(this.config.consortiumRegistry, data), 0));
  }

  async hasRoleAt(account, role, time) {
    const data = "0x" + selector("hasRoleAt(address,bytes32,uint256)") + toHex(addressWord(account)) + toHex(keccakText(role)) + toHex(word(time));
    const out = await this.call(this.config.consortiumRegistry, data);
    return out.length >= 32 && out[31] === 1;
  }

  async organisationOfAt(account, time) {
    const data = "0x" + selector("organisationOfAt(address,uint256)") + toHex(addressWord(account)) + toHex(word(time));
    return Number(readWord(await this.call(this.config.consortiumRegistry, data), 0));
  }

  async organisationName(orgId) {
    const out = await this.call(this.config.consortiumRegistry, "0x" + selector("organisation(uint64)") + toHex(word(orgId)));
    // (uint64 id, string name, bytes2 country, bytes32 metadataHash, uint8 status), returned as a dynamic tuple
    const base = Number(readWord(out, 0));
    const nameAt = base + Number(readWord(out, base + 32));
    const length = Number(readWord(out, nameAt));
    return new TextDecoder().decode(out.slice(nameAt + 32, nameAt + 32 + length));
  }

  async anchorOfOrganisation(root, orgId) {
    const data = "0x" + selector("anchorOfOrganisation(bytes32,uint64)") + toHex(fromHex(root)) + toHex(word(orgId));
    return readAnchor(await this.call(this.config.provenanceRegistry, data));
  }

  async productOrg(gtin) {
    const out = await this.call(this.config.provenanceRegistry, "0x" + selector("productOf(uint256)") + toHex(word(BigInt(gtin))));
    return Number(readWord(out, 0));
  }
}

function readAnchor(out) {
  return { orgId: Number(readWord(out, 0)), blockNumber: Number(readWord(out, 32)), timestamp: Number(readWord(out, 64)), eventCount: Number(readWord(out, 96)) };
}

function readWord(bytes, offset) {
  if (bytes.length < offset + 32) throw new Error("short answer from the chain");
  return BigInt("0x" + toHex(bytes.slice(offset, offset + 32)));
}

// --- the rule (node/protocol/verification.py) ---------------------------------------------------------------

// The anchor that counts (verification.py counted_anchor): the organisation's own, else its host's
// at the anchor time (hosts tried: at the event time and now); null for none.
export async function countedAnchor(lookups, root, orgId, eventTime, now) {
  if (!orgId) return null;
  const own = await lookups.anchorOfOrganisation(root, orgId);
  if (own.orgId) return own;
  const hosts = [...new Set([await lookups.hostOfAt(orgId, eventTime), await lookups.hostOfAt(orgId, now)])];
  for (const host of hosts) {
    if (!host) continue;
    const hosted = await lookups.anchorOfOrganisation(root, host);
    if (hosted.orgId && (await lookups.hostOfAt(orgId, hosted.timestamp)) === host) return hosted;
  }
  return null;
}

export async function marksOf(lookups, signer, role, eventTime, anchor) {
  const marks = [];
  const delay = await lookups.maxReportingDelayAt(anchor.timestamp);
  if (delay !== null && delay !== undefined && anchor.timestamp - eventTime > delay) marks.push("late");
  if (!(await lookups.hasRoleAt(signer, role, anchor.timestamp))) marks.push("signer_revoked");
  return marks;
}

// One event: {event, eventId (0x digest), attester, signature, inclusion: {root, proof} | null}.
// lookups: hasRoleAt(account, role, t), organisationOfAt(account, t), hostOfAt(org, t),
// maxReportingDelayAt(t) (null: none), anchorOfOrganisation(root, org) -> {orgId (0: none),
// blockNumber, timestamp, eventCount}, head() -> {blockNumber, timestamp}.
export async function verifyAttested(input, lookups, separator, confirmations = 0) {
  const checks = [];
  const result = { status: "verified", failedCheck: null, checks, marks: [], overdue: false, signer: null, signerOrgId: 0, role: null, anchor: null, confirmations: null };
  const pass = (name, detail) => checks.push({ name, status: "passed", detail });
  const fail = (name, detail) => {
    checks.push({ name, status: "failed", detail });
    result.status = "failed";
    result.failedCheck = name;
    return result;
  };
  const { event } = input;

  // 1. the event hashes to its id
  let digest;
  try {
    digest = recordDigest(event);
  } catch (e) {
    return fail("event_hash", `the event cannot be hashed: ${e.message}`);
  }
  if (hex0x(digest) !== input.eventId.toLowerCase()) return fail("event_hash", `the event hashes to ${hex0x(digest)}, not to its id ${input.eventId}`);
  pass("event_hash", `the event hashes to its id ${input.eventId}`);

  // 2. the EIP-712 signature over (hash, subject, time) as derived from the event itself
  let signer, eventTime;
  try {
    eventTime = unixSeconds(event.eventTime);
    signer = recoverSigner(attestationDigest(separator, digest, attestationSubject(event), eventTime), input.signature);
  } catch (e) {
    return fail("signature", `the signature does not verify: ${e.message}`);
  }
  if (signer.toLowerCase() !== input.attester.toLowerCase()) return fail("signature", `the signature recovers to ${signer}, not to the attester ${input.attester}`);
  pass("signature", `EIP-712 signature by ${signer}`);

  // 3. a role allowed for this step, held at the event time
  const roles = allowedRoles(typeof event.bizStep === "string" ? event.bizStep : null, event["@context"]);
  let role = null;
  for (const r of roles) {
    if (await lookups.hasRoleAt(signer, r, eventTime)) {
      role = r;
      break;
    }
  }
  if (!role) return fail("role", `${signer} held none of ${roles.join(", ")} at ${eventTime} (the event time)`);
  pass("role", `${signer} held ${role} at ${eventTime} (the event time)`);
  const orgId = await lookups.organisationOfAt(signer, eventTime);
  Object.assign(result, { signer, signerOrgId: orgId, role });

  // 4-6. Merkle proof, anchor, confirmations; pending while not anchored
  const head = await lookups.head();
  if (!input.inclusion) {
    const delay = await lookups.maxReportingDelayAt(head.timestamp);
    result.overdue = delay !== null && delay !== undefined && head.timestamp - eventTime > delay;
    const detail = "not anchored yet" + (result.overdue ? ", and past the maximum reporting delay" : "");
    for (const name of ["merkle_proof", "anchor", "confirmations"]) checks.push({ name, status: "pending", detail });
    result.status = "pending";
    return result;
  }
  const { root, proof } = input.inclusion;
  let proofOk = false;
  try {
    proofOk = fromHex(root).length === 32 && proof.every((p) => fromHex(p).length === 32)
      && StandardMerkleTree.verify(root, ["bytes32", "address"], [hex0x(digest), signer], proof);
  } catch (e) {
    proofOk = false;
  }
  if (!proofOk) return fail("merkle_proof", `the proof does not lead from this event to root ${root}`);
  pass("merkle_proof", `the leaf is under root ${root}` + (proof.length ? "" : " (its only leaf)"));
  const anchor = await countedAnchor(lookups, root, orgId, eventTime, head.timestamp);
  if (!anchor) return fail("anchor", `root ${root} is not anchored by organisation ${orgId} (the attester's at the event time) nor by an organisation hosting it`);
  pass("anchor", `anchored by organisation ${anchor.orgId} in block ${anchor.blockNumber} at ${anchor.timestamp}`);
  result.anchor = anchor;
  result.confirmations = Math.max(0, head.blockNumber - anchor.blockNumber);
  result.marks = await marksOf(lookups, signer, role, eventTime, anchor);
  if (result.confirmations < confirmations) {
    checks.push({ name: "confirmations", status: "pending", detail: `${result.confirmations} of ${confirmations} confirmations` });
    result.status = "pending";
    return result;
  }
  pass("confirmations", `${result.confirmations} blocks on top; ${confirmations} required`);
  return result;
}

// --- one event of a passport, against the chain ---------------------------------------------------------

export async function verifyEvent(item, chain, config, separator) {
  const stored = item.verification;
  const input = { event: item.event, eventId: item.digest, attester: stored.signer, signature: stored.signature, inclusion: stored.merkle ? { root: stored.merkle.root, proof: stored.merkle.proof } : null };
  const result = await verifyAttested(input, chain, separator, config.confirmationsRequired || 0);
  result.signerOrg = result.signerOrgId ? { id: result.signerOrgId, name: await chain.organisationName(result.signerOrgId) } : null;
  if (result.anchor) result.anchor = { orgId: result.anchor.orgId, blockNumber: result.anchor.blockNumber };
  return result;
}

// --- a whole passport -----------------------------------------------------------------------------------

export async function verifyPassport(passport, config, onEvent = () => {}) {
  const chain = new Chain(config.rpcUrl, config);
  const chainId = await chain.chainId();
  if (chainId !== config.chainId) throw new Error(`the RPC at ${config.rpcUrl} is chain ${chainId}, not ${config.chainId}`);
  const separator = domainSeparator(config.chainId, config.provenanceRegistry);
  const results = [];
  for (const item of passport.timeline) {
    let result;
    try {
      result = await verifyEvent(item, chain, config, separator);
    } catch (e) {
      result = { status: "failed", failedCheck: "chain", checks: [{ name: "chain", status: "failed", detail: e.message }] };
    }
    results.push(result);
    onEvent(item, result);
  }
  // The product's manufacturer (on chain) commissioned the unit?
  let manufacturer = null;
  if (passport.gtin) {
    const productOrg = await chain.productOrg(passport.gtin);
    const index = passport.timeline.findIndex((t) => !t.via.length && t.bizStep === "commissioning");
    const by = index >= 0 ? results[index].signerOrg : null;
    manufacturer = { productOrg, commissionedBy: by ? by.id : 0, ok: productOrg !== 0 && by !== null && by.id === productOrg };
  }
  const failed = results.findIndex((r) => r.status === "failed");
  const pending = results.some((r) => r.status === "pending");
  // A marked event (late, signer_revoked) is verified but never plainly genuine.
  const marked = results.some((r) => r.marks && r.marks.length);
  return {
    status: failed >= 0 || (manufacturer && !manufacturer.ok && manufacturer.commissionedBy) ? "failed" : pending || !passport.timeline.length ? "pending" : marked ? "marked" : "passed",
    results,
    firstFailure: failed >= 0 ? { index: failed, item: passport.timeline[failed], result: results[failed] } : null,
    manufacturer,
    chainId,
  };
}
