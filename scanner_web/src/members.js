// Independent confirmation: the members' nodes, as the ConsortiumRegistry's node directory lists
// them (read over the page's own read-only RPC, never from the server being checked), are asked
// for the unit's history, and their event ids are compared with what this server shows.
//
// An event counts as held by a node when the node lists it as anchored: events not anchored yet
// exist only on the node that captured them, and replication copies anchored batches. A node
// "confirms" the page when it holds every anchored event the page shows. Discrepancies are named:
// an event the page shows that some node lacks, and an event some node holds that the page does
// not show (an omission by this server, or an event only that node claims).

import { keccak_256 } from "@noble/hashes/sha3";
import { toHex } from "./eventhash.js";

const ACTIVE = 1; // IConsortiumRegistry.OrganisationStatus.Active
const selector = (signature) => toHex(keccak_256(new TextEncoder().encode(signature)).slice(0, 4));
const uintWord = (n) => BigInt(n).toString(16).padStart(64, "0");

function word(bytes, offset) {
  if (bytes.length < offset + 32) throw new Error("short answer from the chain");
  return BigInt("0x" + toHex(bytes.slice(offset, offset + 32)));
}

function dynamicString(bytes, at) {
  const length = Number(word(bytes, at));
  if (bytes.length < at + 32 + length) throw new Error("short answer from the chain");
  return new TextDecoder().decode(bytes.slice(at + 32, at + 32 + length));
}

// The active organisations with a node URL in the registry: [{orgId, name, url}].
export async function memberNodes(chain, registry) {
  const count = Number(word(await chain.call(registry, "0x" + selector("organisationCount()")), 0));
  const ids = Array.from({ length: count }, (_, i) => i + 1);
  const found = await Promise.all(ids.map(async (orgId) => {
    // organisation(uint64) -> (uint64 id, string name, bytes2 country, bytes32 metadataHash, uint8 status)
    const org = await chain.call(registry, "0x" + selector("organisation(uint64)") + uintWord(orgId));
    const base = Number(word(org, 0));
    if (Number(word(org, base + 128)) !== ACTIVE) return null;
    // nodeRecord(uint64) -> (string url, bytes32 encryptionKey, uint48 updatedAt)
    const record = await chain.call(registry, "0x" + selector("nodeRecord(uint64)") + uintWord(orgId));
    const at = Number(word(record, 0));
    const url = dynamicString(record, at + Number(word(record, at)));
    if (!/^https?:\/\/[^\s]+$/.test(url)) return null;
    return { orgId, name: dynamicString(org, base + Number(word(org, base + 32))), url: url.replace(/\/+$/, "") };
  }));
  return found.filter(Boolean);
}

// One node's anchored event ids for the unit: {node, ok, events: Map(id -> {bizStep, eventTime})} or {node, ok: false, error}.
async function askNode(node, identifier, timeoutMs) {
  try {
    const response = await fetch(`${node.url}/units/${encodeURIComponent(identifier)}/history`, {
      headers: { Accept: "application/json" },
      signal: AbortSignal.timeout(timeoutMs),
      credentials: "omit",
    });
    if (response.status === 404) return { node, ok: true, events: new Map() };
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const entries = await response.json();
    if (!Array.isArray(entries)) throw new Error("not a history");
    const events = new Map();
    for (const entry of entries) {
      if (entry && entry.anchored === true && typeof entry.eventId === "string") {
        events.set(entry.eventId, { bizStep: entry.bizStep || null, eventTime: entry.eventTime || null });
      }
    }
    return { node, ok: true, events };
  } catch (e) {
    return { node, ok: false, error: e.message };
  }
}

function anchoredOnPage(item) {
  const v = item.verification || {};
  return Boolean(v.anchor) || v.anchored === true;
}

// Compares the page's timeline with every node's answer.
export function compare(passport, answers) {
  const shown = new Map(passport.timeline.map((item) => [item.id, item]));
  const answered = answers.filter((a) => a.ok);
  const pageAnchored = passport.timeline.filter(anchoredOnPage).map((item) => item.id);
  const holders = (id) => answered.filter((a) => a.events.has(id)).map((a) => a.node);
  const heldBy = new Map(pageAnchored.map((id) => [id, holders(id)]));
  const confirmedBy = answered.filter((a) => pageAnchored.every((id) => a.events.has(id))).map((a) => a.node);
  const lacking = pageAnchored
    .map((id) => ({ id, item: shown.get(id), missingOn: answered.filter((a) => !a.events.has(id)).map((a) => a.node) }))
    .filter((d) => d.missingOn.length);
  const omittedIds = new Set(answered.flatMap((a) => [...a.events.keys()]).filter((id) => !shown.has(id)));
  const omitted = [...omittedIds].sort().map((id) => {
    const by = holders(id);
    const about = answered.find((a) => a.events.has(id)).events.get(id);
    return { id, bizStep: about.bizStep, eventTime: about.eventTime, heldBy: by };
  });
  return {
    total: answers.length,
    answered: answered.length,
    silent: answers.filter((a) => !a.ok).map((a) => ({ ...a.node, error: a.error })),
    confirmedBy,
    heldBy,
    lacking,
    omitted,
  };
}

export async function confirmWithMembers(passport, chain, registry, { timeoutMs = 8000 } = {}) {
  const nodes = await memberNodes(chain, registry);
  const answers = await Promise.all(nodes.map((node) => askNode(node, passport.id, timeoutMs)));
  return compare(passport, answers);
}
