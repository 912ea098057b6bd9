// "Verify here": the page re-checks every event of a passport itself, trusting the server for
// nothing but the data to check. Per event, in the order node/proofs.py uses:
//   event_hash    the event shown hashes to the id that was signed and anchored (its record
//                 digest: the CBV 2.0 hash, or for an error declaration the hash with the
//                 declaration, see eventhash.js recordDigest)
//   signature     the EIP-712 Attestation recovers to the signer (secp256k1, in the browser)
//   role          the chain's ConsortiumRegistry says the signer held a role allowed for the
//                 event's bizStep at the event time (hasRoleAt over read-only JSON-RPC); a step
//                 outside the role table may be attested by any attesting role
//   merkle_proof  the proof leads from the (event hash, signer) leaf to the root
//                 (@openzeppelin/merkle-tree's StandardMerkleTree.verify)
//   anchor        the chain's ProvenanceRegistry has the root anchored: the anchor that counts
//                 is the one by the signer's organisation at the event time
//                 (anchorOfOrganisation), else the root's first (anchorOf), as node/proofs.py
//                 counted_anchor, so a rival that anchored the root first is not its anchorer
//   confirmations enough blocks on top of the anchor
// The first failed check of an event is named; events not anchored yet end as "pending".

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

// --- who may attest what (node/ingest/roles.py) ----------------------------------------------------

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

// The roles of the table for a step, or null for a step outside it (node/ingest/roles.py
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

  async head() {
    if (!this._head) this._head = this.rpc("eth_blockNumber", []).then((h) => Number(BigInt(h)));
    return this._head;
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

  async anchorOf(root) {
    return readAnchor(await this.call(this.config.provenanceRegistry, "0x" + selector("anchorOf(bytes32)") + toHex(fromHex(root))));
  }

  async anchorOfOrganisation(root, orgId) {
    const data = "0x" + selector("anchorOfOrganisation(bytes32,uint64)") + toHex(fromHex(root)) + toHex(word(orgId));
    return readAnchor(await this.call(this.config.provenanceRegistry, data));
  }

  // The anchor that counts for an event attested by a member of orgId at the event time
  // (node/proofs.py anchor_counted_for): that organisation's anchor of the root, else the first.
  async countedAnchor(root, orgId) {
    const own = orgId ? await this.anchorOfOrganisation(root, orgId) : null;
    return own && own.orgId ? own : this.anchorOf(root);
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

// --- one event ----------------------------------------------------------------------------------------

export async function verifyEvent(item, chain, config, separator) {
  const checks = [];
  const result = { status: "verified", failedCheck: null, checks, signerOrg: null };
  const pass = (name, detail) => checks.push({ name, status: "passed", detail });
  const fail = (name, detail) => {
    checks.push({ name, status: "failed", detail });
    result.status = "failed";
    result.failedCheck = name;
    return result;
  };
  const event = item.event;
  const stored = item.verification;

  // 1. the event as shown hashes to the id that was signed and anchored
  let digest;
  try {
    digest = recordDigest(event);
  } catch (e) {
    return fail("event_hash", `the event cannot be hashed: ${e.message}`);
  }
  if (hex0x(digest) !== item.digest.toLowerCase()) {
    return fail("event_hash", `the event shown hashes to ${hex0x(digest)}, not to its id ${item.digest}`);
  }
  pass("event_hash", `hashes to ${item.id}`);

  // 2. the EIP-712 signature over (hash, subject, time) as derived from the event itself
  let signer, eventTime;
  try {
    eventTime = unixSeconds(event.eventTime);
    const subject = attestationSubject(event);
    signer = recoverSigner(attestationDigest(separator, digest, subject, eventTime), stored.signature);
  } catch (e) {
    return fail("signature", `the signature does not verify: ${e.message}`);
  }
  if (signer.toLowerCase() !== stored.signer.toLowerCase()) {
    return fail("signature", `the signature recovers to ${signer}, not to the named signer ${stored.signer}`);
  }
  pass("signature", `signed by ${signer}`);

  // 3. a role allowed for this step, held at the event time (asked of the chain)
  const roles = allowedRoles(typeof event.bizStep === "string" ? event.bizStep : null, event["@context"]);
  let held = null;
  for (const role of roles) {
    if (await chain.hasRoleAt(signer, role, eventTime)) {
      held = role;
      break;
    }
  }
  if (!held) return fail("role", `${signer} held none of ${roles.join(", ") || "(no role for this step)"} at ${new Date(eventTime * 1000).toISOString()}`);
  const orgId = await chain.organisationOfAt(signer, eventTime);
  result.signerOrg = orgId ? { id: orgId, name: await chain.organisationName(orgId) } : null;
  pass("role", `${result.signerOrg ? result.signerOrg.name : signer} held ${held}`);

  // 4-6. Merkle proof, anchor, confirmations
  if (!stored.merkle) {
    for (const name of ["merkle_proof", "anchor", "confirmations"]) checks.push({ name, status: "pending", detail: "not anchored yet" });
    result.status = "pending";
    return result;
  }
  let proofOk = false;
  try {
    proofOk = StandardMerkleTree.verify(stored.merkle.root, ["bytes32", "address"], [hex0x(digest), signer], stored.merkle.proof);
  } catch (e) {
    return fail("merkle_proof", `the proof cannot be checked: ${e.message}`);
  }
  if (!proofOk) return fail("merkle_proof", `the proof does not lead from this event to root ${stored.merkle.root}`);
  pass("merkle_proof", `under root ${stored.merkle.root}`);
  const anchor = await chain.countedAnchor(stored.merkle.root, orgId);
  if (!anchor.orgId) return fail("anchor", `root ${stored.merkle.root} is not anchored on chain ${config.chainId}`);
  result.anchor = { orgId: anchor.orgId, blockNumber: anchor.blockNumber };
  pass("anchor", `anchored in block ${anchor.blockNumber} at ${new Date(anchor.timestamp * 1000).toISOString()}`);
  const depth = (await chain.head()) - anchor.blockNumber;
  const needed = config.confirmationsRequired || 0;
  if (depth < needed) {
    checks.push({ name: "confirmations", status: "pending", detail: `${depth} of ${needed} confirmations` });
    result.status = "pending";
    return result;
  }
  pass("confirmations", `${depth} blocks on top; ${needed} required`);
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
  return {
    status: failed >= 0 || (manufacturer && !manufacturer.ok && manufacturer.commissionedBy) ? "failed" : pending || !passport.timeline.length ? "pending" : "passed",
    results,
    firstFailure: failed >= 0 ? { index: failed, item: passport.timeline[failed], result: results[failed] } : null,
    manufacturer,
    chainId,
  };
}
