// Reads JSON on stdin: {"documents": [EPCISDocument...], "events": [[event, context]...],
//   "attestations": [{event, context, chainId, contract, signature}...], "roles": [[bizStep, context]...]}
// and prints {"documents": [[hash...]...], "events": [{prehash, hash, recordHash, subject, time}...],
//   "attestations": [{signer} or {error}...], "roles": [[role...]...]} using the page's code.
import { eventHash, prehash, primaryObjectId, recordDigest, toHex, unixSeconds } from "../../scanner_web/src/eventhash.js";
import { allowedRoles, attestationDigest, attestationSubject, domainSeparator, recoverSigner } from "../../scanner_web/src/verify.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const out = { documents: [], events: [], attestations: [], roles: [] };
for (const doc of input.documents || []) {
  const body = doc.epcisBody || {};
  const events = body.eventList ?? (body.event ? [body.event] : []);
  out.documents.push(events.map((e) => eventHash(e, doc["@context"])));
}
for (const [event, context] of input.events || []) {
  const result = {};
  try {
    result.prehash = prehash(event, context);
    result.hash = eventHash(event, context);
    result.recordHash = "ni:///sha-256;" + toHex(recordDigest(event, context)) + "?ver=CBV2.0";
  } catch (e) {
    result.error = String(e.message || e);
  }
  try { result.subject = primaryObjectId(event, context); } catch (e) { result.subject = null; }
  try { result.time = unixSeconds(event.eventTime); } catch (e) { result.time = null; }
  out.events.push(result);
}
// The signature check of verify.js's verifyEvent: record digest, subject and time derived from the event.
for (const { event, context, chainId, contract, signature } of input.attestations || []) {
  try {
    const digest = attestationDigest(domainSeparator(chainId, contract), recordDigest(event, context), attestationSubject(event, context), unixSeconds(event.eventTime));
    out.attestations.push({ signer: recoverSigner(digest, signature) });
  } catch (e) {
    out.attestations.push({ error: String(e.message || e) });
  }
}
for (const [step, context] of input.roles || []) out.roles.push(allowedRoles(step, context));
process.stdout.write(JSON.stringify(out));
