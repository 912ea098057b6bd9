// The verification vectors (tests/protocol/data/verification_vectors.json, written from
// node/protocol/verification.py) run through scanner_web/src/verify.js, with the registry and the anchors
// answered from the vectors' tables: intervals [from, until) of unix seconds, until null for
// "still"; the delay in force is the last row whose from <= t (none: null). Bundled into Chromium
// by vectors_browser.mjs; returns one {status, failedCheck, marks, overdue, signerOrg, role,
// anchorOrg, checks} per event case.
import { domainSeparator, verifyAttested } from "../../scanner_web/src/verify.js";

const within = (t, row) => row.from <= t && (row.until === null || t < row.until);
const same = (a, b) => a.toLowerCase() === b.toLowerCase();

export function tableLookups(registry, anchors, head) {
  return {
    hasRoleAt: async (account, role, t) => registry.roles.some((r) => same(r.account, account) && r.role === role && within(t, r)),
    organisationOfAt: async (account, t) => (registry.orgs.find((r) => same(r.account, account) && within(t, r)) || { org: 0 }).org,
    hostOfAt: async (org, t) => (registry.hosts.find((r) => r.org === org && within(t, r)) || { host: 0 }).host,
    maxReportingDelayAt: async (t) => registry.delays.reduce((found, r) => (r.from <= t ? r.delay : found), null),
    anchorOfOrganisation: async (root, org) => anchors.find((a) => same(a.root, root) && a.orgId === org) || { orgId: 0, blockNumber: 0, timestamp: 0, eventCount: 0 },
    head: async () => head,
  };
}

export async function runVectors(vectors) {
  const separator = domainSeparator(vectors.domain.chainId, vectors.domain.verifyingContract);
  const out = [];
  for (const c of vectors.events) {
    const lookups = tableLookups(vectors.registry, c.anchors, c.head);
    const r = await verifyAttested({ event: c.event, eventId: c.eventId, attester: c.attester, signature: c.signature, inclusion: c.inclusion }, lookups, separator, c.confirmations);
    out.push({
      name: c.name,
      status: r.status,
      failedCheck: r.failedCheck,
      marks: [...r.marks].sort(),
      overdue: r.overdue,
      signerOrg: r.signerOrgId,
      role: r.role,
      anchorOrg: r.anchor ? r.anchor.orgId : null,
      checks: r.checks.map((x) => [x.name, x.status]),
    });
  }
  return out;
}
