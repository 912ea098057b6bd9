// Reads JSON on stdin: {"documents": [EPCISDocument...], "events": [[event, context]...]}
// and prints {"documents": [[hash...]...], "events": [{prehash, hash, subject}...]} using the page's code.
import { eventHash, prehash, primaryObjectId, unixSeconds } from "../../scanner_web/src/eventhash.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const out = { documents: [], events: [] };
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
  } catch (e) {
    result.error = String(e.message || e);
  }
  try { result.subject = primaryObjectId(event, context); } catch (e) { result.subject = null; }
  try { result.time = unixSeconds(event.eventTime); } catch (e) { result.time = null; }
  out.events.push(result);
}
process.stdout.write(JSON.stringify(out));
