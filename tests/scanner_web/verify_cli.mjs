// Reads JSON on stdin: {"passport": <passport body>, "config": <its chain info, rpcUrl reachable
// from here>} and prints what the page's "Verify here" (verify.js verifyPassport) finds, against
// the real chain: {"status", "results": [{status, failedCheck, anchor, signerOrg, marks}...]}.
import { verifyPassport } from "../../scanner_web/src/verify.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { passport, config } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const out = await verifyPassport(passport, config);
process.stdout.write(JSON.stringify({
  status: out.status,
  results: out.results.map((r) => ({ status: r.status, failedCheck: r.failedCheck, anchor: r.anchor || null, signerOrg: r.signerOrg ? r.signerOrg.id : null, marks: r.marks || [] })),
}));
