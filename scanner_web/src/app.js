// The scanner page: scan or type a code, show the passport with its verdict on top, and
// verify it again in this browser. Everything shown comes from the API as data and is put in
// the page as text (never as HTML).
//
// The server is the party being checked, so nothing it says decides how it is checked: the
// chain id, registry addresses, read-only RPC and required confirmations are this bundle's own
// (ANCHORS, compiled in at build time and covered by the sha-256 the registry approves; the
// loader runs this bundle only when that hash matches), and the members' nodes come from the
// registry's node directory read over that RPC. A "genuine" verdict is never taken from the
// server: it is shown only once this browser has verified every event against the chain and no
// member's node holds a record of the unit that this server leaves out. A server whose answers
// name other trust anchors than the bundle's is shown as suspicious. scanner_web/README.md says
// what a hostile server can and cannot do.

import { ANCHORS } from "waymark:anchors";
import { chooseLanguage, DICTIONARIES, LANGUAGES, reasonText, setLanguage, stepLabel, t } from "./i18n.js";
import { confirmWithMembers } from "./members.js";
import { PAGE_STRINGS } from "./page_i18n.js";
import { startCamera } from "./scan.js";
import { Chain, verifyPassport } from "./verify.js";

for (const [lang, words] of Object.entries(PAGE_STRINGS)) Object.assign(DICTIONARIES[lang], words);

const boot = JSON.parse(document.getElementById("waymark-boot")?.textContent || "{}");
// What the server says about the chain: compared with ANCHORS, never used.
const serverConfig = boot.config || {};
const state = { passport: boot.passport || null, error: boot.error || null, camera: null, verification: null, confirmation: null, confirming: false };

// --- small DOM helpers ------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const $ = (id) => document.getElementById(id);
const short = (text, n = 10) => (text && text.length > 2 * n + 3 ? `${text.slice(0, n + 2)}…${text.slice(-n)}` : text);

function formatTime(iso) {
  try {
    return new Intl.DateTimeFormat(document.documentElement.lang, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
  } catch {
    return iso;
  }
}

function deviceId() {
  // A random id this browser keeps, so that the server can tell devices apart (it stores only a salted hash).
  let id = localStorage.getItem("waymark-device");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("waymark-device", id);
  }
  return id;
}

// --- language -----------------------------------------------------------------------------------------

function applyLanguage(lang) {
  setLanguage(lang);
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  const select = $("language");
  if (select) select.value = lang;
  render();
}

function setupLanguage() {
  const select = $("language");
  for (const [code, name] of Object.entries(LANGUAGES)) select.append(el("option", { value: code }, name));
  select.addEventListener("change", () => {
    localStorage.setItem("waymark-lang", select.value);
    applyLanguage(select.value);
  });
  applyLanguage(chooseLanguage(localStorage.getItem("waymark-lang"), navigator.languages || [navigator.language]));
}

// --- looking codes up ---------------------------------------------------------------------------------

async function lookUp(text, how) {
  state.error = null;
  state.passport = null;
  state.verification = null;
  state.confirmation = null;
  $("status").textContent = t("loading");
  $("status").dataset.how = how || "";
  render();
  try {
    const response = await fetch(`/api/v1/scan?uri=${encodeURIComponent(text)}`, {
      headers: { Accept: "application/json", "Waymark-Device": deviceId() },
    });
    const body = await response.json();
    if (response.ok) {
      state.passport = body;
      try {
        history.replaceState(null, "", new URL(body.link).pathname);
      } catch {
        /* a link on another host: keep the address */
      }
    } else {
      state.error = body;
    }
  } catch (e) {
    state.error = { code: "network", message: e.message };
  }
  $("status").textContent = "";
  render();
  runVerification();
}

function manualSubmit(event) {
  event.preventDefault();
  const link = $("manual-link").value.trim();
  const gtin = $("manual-gtin").value.trim();
  const serial = $("manual-serial").value.trim();
  const lot = $("manual-lot").value.trim();
  if (link) return lookUp(link, "typed");
  if (gtin && serial) {
    const enc = (v) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
    return lookUp(`/01/${gtin}${lot ? `/10/${enc(lot)}` : ""}/21/${enc(serial)}`, "typed");
  }
}

async function toggleCamera() {
  const video = $("camera");
  if (state.camera) {
    state.camera.stop();
    state.camera = null;
    video.hidden = true;
    $("camera-button").textContent = t("scanCamera");
    return;
  }
  $("status").textContent = t("cameraStarting");
  video.hidden = false;
  try {
    state.camera = await startCamera(video, (text, decoder) => {
      state.camera = null;
      video.hidden = true;
      $("camera-button").textContent = t("scanCamera");
      document.body.dataset.decoder = decoder;
      lookUp(text, "camera");
    });
    document.body.dataset.decoder = state.camera.decoder;
    $("camera-button").textContent = t("stopCamera");
  } catch (e) {
    video.hidden = true;
    $("status").textContent = t("cameraUnavailable", { reason: e.message });
  }
}

// --- rendering ------------------------------------------------------------------------------------------

function render() {
  renderHero();
  renderVerdict();
  renderPassport();
  renderVerify();
}

// --- product master data: what the product is comes first ------------------------------------------------

function masterOf(p) {
  const master = p && (p.kind === "product" || p.kind === "lot" ? p.master : p.product && p.product.master);
  return master && master.status === "verified" ? master : null;
}

function renderHero() {
  const box = $("hero");
  box.replaceChildren();
  const p = state.passport;
  const master = masterOf(p);
  if (!master) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const image = (master.images || [])[0];
  if (image) box.append(el("img", { id: "product-image", src: image.url, alt: image.alt || master.name, width: 96, height: 96, decoding: "async" }));
  box.append(
    el("div", {},
      el("h1", { id: "product-name" }, master.name),
      master.brand && el("p", { class: "detail", id: "product-brand" }, master.brand),
      p.kind === "lot" && el("p", { class: "detail" }, t("lotTitle", { lot: p.lot })),
    ),
  );
}

function masterDetails(master) {
  if (!master) return [];
  return [
    master.description && [el("dt", {}, t("product")), el("dd", { id: "product-description" }, master.description)],
    master.countryOfOrigin && [el("dt", {}, t("origin")), el("dd", { id: "product-origin" }, master.countryOfOrigin)],
    master.materials && master.materials.length && [el("dt", {}, t("materials")), el("dd", {}, master.materials.join(", "))],
    master.certifications && master.certifications.length && [el("dt", {}, t("certifications")), el("dd", { id: "product-certifications" }, master.certifications.map((c) => c.issuer ? `${c.name} (${c.issuer})` : c.name).join("; "))],
  ].filter(Boolean).flat();
}

function lotHref(gtin, lot) {
  const enc = (v) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return `/01/${gtin}/10/${enc(lot)}`;
}

function recallText(entry) {
  return entry.recalled ? t("recalled", { date: formatTime(entry.recalledAt) }) : t("notRecalled");
}

function renderProductPage(root, p) {
  const maker = p.manufacturer;
  const master = masterOf(p);
  root.append(
    el("section", { class: "card", id: "product", "data-kind": p.kind },
      el("h3", {}, t(p.kind === "lot" ? "lotPage" : "productPage")),
      el("dl", {},
        masterDetails(master),
        [el("dt", {}, t("gtin")), el("dd", {}, p.gtin)],
        p.lot && [el("dt", {}, t("lot")), el("dd", { id: "lot" }, p.lot)],
        [el("dt", {}, t("manufacturer")), el("dd", { id: "manufacturer" }, maker ? `${maker.name} (${maker.country})` : t("notRegistered"))],
      ),
      !master && el("p", { class: "detail" }, t("masterUnverified")),
    ),
  );
  if (p.kind === "lot") {
    root.append(
      el("section", { class: "card", id: "lot-state", "data-recalled": p.recalled ? "yes" : "no" },
        el("h3", {}, t("lotTitle", { lot: p.lot })),
        el("dl", {},
          [el("dt", {}, t("producedAt")), el("dd", { id: "lot-produced" }, p.producedAt ? formatTime(p.producedAt) : "—")],
          [el("dt", {}, t("units")), el("dd", { id: "lot-units" }, String(p.units))],
          [el("dt", {}, t("inspections")), el("dd", { id: "lot-inspections" }, p.inspections.length ? p.inspections.map((i) => t("inspectedOn", { date: formatTime(i.time) })).join("; ") : t("notInspected"))],
        ),
        el("p", { id: "lot-recall", class: p.recalled ? "badge failed" : "badge verified" }, recallText(p)),
      ),
    );
  } else {
    root.append(
      el("section", { class: "card", id: "lots" },
        el("h3", {}, t("lots")),
        el("ul", {}, p.lots.map((entry) =>
          el("li", { "data-lot": entry.lot, "data-recalled": entry.recalled ? "yes" : "no" },
            el("a", { href: lotHref(p.gtin, entry.lot) }, t("lotTitle", { lot: entry.lot })),
            " · ", `${t("units")}: ${entry.units}`,
            entry.producedAt ? ` · ${t("producedAt")} ${formatTime(entry.producedAt)}` : "",
            " · ", recallText(entry),
          ))),
      ),
    );
  }
}

// --- the full passport, loaded when needed ----------------------------------------------------------------

let fullLoading = null;

async function ensureFull() {
  // The page's first paint gets a slim passport (no event bodies, proofs or check details);
  // verifying or opening the details loads the full one.
  const p = state.passport;
  if (!p || !p.slim) return p;
  if (!fullLoading) {
    fullLoading = fetch(`/api/v1/passport?uri=${encodeURIComponent(p.id)}`, { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((full) => {
        // This scan's verdict, flags and ownership stay; the history comes in full.
        state.passport = { ...full, verdict: p.verdict, reasons: p.reasons, ownership: p.ownership, scans: p.scans, lot: p.lot, slim: false };
        return state.passport;
      })
      .finally(() => {
        fullLoading = null;
      });
  }
  return fullLoading;
}

function renderVerdict() {
  const box = $("verdict");
  box.replaceChildren();
  const passport = state.passport;
  const error = state.error;
  if (!passport && !error) {
    box.hidden = true;
    return;
  }
  if (passport && !passport.verdict) {
    box.hidden = true; // a product, lot or location: no verdict of its own
    return;
  }
  box.hidden = false;
  if (!passport) {
    const verdict = error.verdict === "unknown" || error.code === "unknown_code" ? "unknown" : "invalid";
    box.dataset.verdict = verdict;
    if (verdict === "invalid") box.append(el("h2", {}, t("invalidCode")), el("p", { class: "detail", id: "error-message" }, error.message || ""));
    else box.append(el("h2", { id: "verdict-title" }, t("verdict_unknown")), el("p", {}, t("verdictHelp_unknown")));
    return;
  }
  const { verdict, reasons } = pageVerdict(passport);
  box.dataset.verdict = verdict;
  box.append(el("h2", { id: "verdict-title" }, t(`verdict_${verdict}`)), el("p", {}, t(`verdictHelp_${verdict}`)));
  const items = [
    ...passport.reasons.map((r) => el("li", { "data-code": r.code, title: r.message }, reasonText(r.code, r.message))),
    ...reasons.map((r) => el("li", { "data-code": r.code, "data-source": "page" }, r.text)),
  ];
  if (items.length) box.append(el("ul", { class: "reasons", id: "reasons" }, items));
}

// --- what the page itself concludes ------------------------------------------------------------------------

const ANCHOR_FIELDS = ["chainId", "consortiumRegistry", "provenanceRegistry", "rpcUrl"];
const sameAnchor = (field, claimed) =>
  field === "chainId" ? Number(claimed) === ANCHORS.chainId
    : field === "rpcUrl" ? String(claimed).replace(/\/+$/, "") === ANCHORS.rpcUrl.replace(/\/+$/, "")
      : String(claimed).toLowerCase() === ANCHORS[field];

// The trust anchors this server's answers name where they differ from the bundle's own.
function misstatedAnchors(passport) {
  if (!ANCHORS) return [];
  const wrong = new Map();
  for (const claim of [serverConfig, passport && passport.chain]) {
    if (!claim || typeof claim !== "object") continue;
    for (const field of ANCHOR_FIELDS) {
      const claimed = claim[field];
      if (claimed !== undefined && claimed !== null && !sameAnchor(field, claimed) && !wrong.has(field)) wrong.set(field, `${field} ${claimed} ≠ ${ANCHORS[field]}`);
    }
  }
  return [...wrong.values()];
}

const MIN_ANSWERS = 2; // member nodes that must answer (all of them when fewer are listed)

// The verdict shown: the server's, except that "genuine" needs this browser's own checks (every
// event verified against the chain; at least two member nodes answered and none holds a record
// this server leaves out), and a server that names other trust anchors is suspicious whatever it says.
function pageVerdict(passport) {
  const reasons = [];
  let verdict = passport.verdict;
  const v = state.verification;
  const c = state.confirmation;
  if (verdict === "genuine") {
    if (!v) verdict = "checking";
    else if (v.error) {
      verdict = "unverified";
      reasons.push({ code: "browser_unchecked", text: t("reason_browser_unchecked", { error: v.error }) });
    } else if (v.status === "failed") {
      verdict = "suspicious";
      const f = v.firstFailure;
      const detail = f ? `${stepLabel(f.item.bizStep) || f.item.type} (${formatTime(f.item.eventTime)}) — ${t(`check_${f.result.failedCheck}`)}` : t("verifyManufacturer");
      reasons.push({ code: "browser_failed", text: t("reason_browser_failed", { detail }) });
    } else if (v.status === "marked") {
      verdict = "unverified";
      const count = v.results.filter((r) => r.marks && r.marks.length).length;
      reasons.push({ code: "events_marked", text: t("verifyMarked", { total: v.results.length, count }) });
    } else if (v.status !== "passed") {
      verdict = "unverified";
      reasons.push({ code: "events_pending", text: reasonText("events_pending") });
    } else if (!c) verdict = "checking";
    else if (c.error) {
      verdict = "unverified";
      reasons.push({ code: "browser_unchecked", text: t("reason_browser_unchecked", { error: c.error }) });
    } else if (c.omitted.length) {
      verdict = "unverified";
      reasons.push({ code: "records_omitted", text: t("reason_records_omitted", { count: c.omitted.length }) });
    } else if (c.answered < Math.min(MIN_ANSWERS, c.total)) {
      // Unanswered nodes could hold what this server leaves out: too few answers prove nothing.
      verdict = "unverified";
      reasons.push({ code: "too_few_answers", text: t("reason_too_few_answers", { answered: c.answered, m: c.total, needed: Math.min(MIN_ANSWERS, c.total) }) });
    }
  }
  const wrong = misstatedAnchors(passport);
  if (wrong.length) {
    verdict = "suspicious";
    reasons.push({ code: "anchors_mismatch", text: t("reason_anchors_mismatch", { fields: wrong.join("; ") }) });
  }
  return { verdict, reasons };
}

function renderPassport() {
  const root = $("passport");
  root.replaceChildren();
  const p = state.passport;
  if (!p) {
    root.hidden = true;
    return;
  }
  root.hidden = false;
  if (p.kind === "product" || p.kind === "lot") return renderProductPage(root, p);
  if (p.kind === "location") {
    root.append(el("section", { class: "card", id: "location" }, el("h3", {}, p.name), el("p", {}, p.country)));
    return;
  }

  const maker = p.product && p.product.manufacturer;
  root.append(
    el("section", { class: "card", id: "product" },
      el("h3", {}, t("product")),
      el("dl", {},
        masterDetails(masterOf(p)),
        p.gtin && [el("dt", {}, t("gtin")), el("dd", {}, p.gtin)],
        p.lot && [el("dt", {}, t("lot")), el("dd", { id: "lot" }, p.gtin ? el("a", { href: lotHref(p.gtin, p.lot) }, p.lot) : p.lot)],
        p.serial && [el("dt", {}, t("serial")), el("dd", {}, p.serial)],
        p.sscc && [el("dt", {}, "SSCC"), el("dd", {}, p.sscc)],
        p.product && [el("dt", {}, t("manufacturer")), el("dd", { id: "manufacturer" }, maker ? `${maker.name} (${maker.country})` : t("notRegistered"))],
      ),
    ),
  );

  // Ownership
  const own = p.ownership;
  const ownership = el("section", { class: "card", id: "ownership", "data-claimed": own.claimed ? "yes" : "no" }, el("h3", {}, t("ownership")));
  if (own.claimed) {
    ownership.append(el("p", {}, t(own.byThisDevice ? "claimedByYou" : "claimed", { date: formatTime(own.claimedAt) })));
  } else if (p.kind === "unit" && p.timeline.length) {
    const input = el("input", { id: "claim-code", autocomplete: "off", placeholder: "XXXX-XXXX-XXXX-XXXX", "aria-label": t("claimCode") });
    const message = el("p", { class: "detail", id: "claim-message" });
    ownership.append(
      el("p", {}, t("notClaimed")),
      el("form", { class: "row", onsubmit: (e) => claim(e, input, message) }, input, el("button", { type: "submit" }, t("claim"))),
      message,
    );
  }
  root.append(ownership);

  // The order this unit belongs to (through its own id, its lot or its shipment), as its escrow stands now.
  if (p.escrow) root.append(el("section", { class: "card", id: "escrow", "data-state": p.escrow.state }, el("h3", {}, t("escrow")), el("p", {}, t(`order_${p.escrow.state}`))));

  // Route: a map-free summary
  if (p.route.length) {
    root.append(
      el("section", { class: "card", id: "route" },
        el("h3", {}, t("route")),
        el("ol", { class: "route" },
          p.route.map((stop) =>
            el("li", { "data-country": stop.country || "", "data-location": stop.locationId || "" },
              el("strong", { class: "place" }, stop.name || (stop.locationId ? t("unknownPlace") : t("atSea"))),
              el("span", { class: "country" }, stop.country || "—"),
              el("span", {}, stop.steps.map(stepLabel).join(", ")),
              el("small", {}, stop.organisations.join(", ")),
            ),
          ),
        ),
      ),
    );
  }

  // Timeline
  root.append(
    el("section", { class: "card", id: "timeline-card" },
      el("h3", {}, t("timeline")),
      el("ol", { class: "timeline", id: "timeline" }, p.timeline.map((item, index) => timelineItem(item, index))),
    ),
  );

  if (p.documents.length) {
    root.append(
      el("section", { class: "card", id: "documents" },
        el("h3", {}, t("documents")),
        el("ul", {}, p.documents.map((d) => el("li", { "data-status": d.status }, el("span", {}, d.type.replace(/_/g, " ")), " ", el("code", {}, short(d.digest, 8)), " — ", t(`doc_${d.status}`)))),
      ),
    );
  }
  if (p.sensorExcursions.length) {
    root.append(
      el("section", { class: "card", id: "excursions" },
        el("h3", {}, t("excursions")),
        el("ul", {}, p.sensorExcursions.map((x) => el("li", {}, `${formatTime(x.time)}: ${x.type} ${x.value ?? ""} ${x.uom ?? ""} (${x.exception})`))),
      ),
    );
  }
  if (p.scans && p.scans.scansInWindow) {
    root.append(el("p", { class: "detail" }, t("scansInWindow", { count: p.scans.scansInWindow, devices: p.scans.devicesInWindow })));
  }
}

function timelineItem(item, index) {
  const v = item.verification;
  const browser = state.verification && state.verification.results[index];
  const org = v.signerOrg ? v.signerOrg.name : short(v.signer, 6);
  const status = browser ? browser.status : v.status;
  // Marks (late, signer_revoked): verified, never shown as plainly genuine.
  const marks = (browser ? browser.marks : v.marks) || [];
  const place = item.location && (item.location.name || item.location.id);
  const correction = item.correction;
  const c = state.confirmation;
  const holders = c && c.heldBy ? c.heldBy.get(item.id) : null;
  const node = el("li", { "data-event-id": item.id, "data-status": v.status, "data-browser": browser ? browser.status : null, "data-step": item.bizStep || "", "data-corrected": correction ? "yes" : null, "data-marks": marks.length ? marks.join(" ") : null, "data-held-by": holders ? holders.length : null },
    el("div", { class: "when" }, formatTime(item.eventTime)),
    el("div", { class: "what" },
      el("strong", {}, stepLabel(item.bizStep) || item.type),
      item.via.length ? el("span", { class: "via" }, " ", t("via", { container: "SSCC " + item.via[item.via.length - 1].split("/").pop() })) : null,
    ),
    el("div", { class: "who" }, t("by", { org }), v.signerRole ? " · " + t("role", { role: v.signerRole }) : "", place ? ` · ${place}` : ""),
    correction && el("p", { class: "correction" },
      t("declaredErroneous", { date: formatTime(correction.declaredAt) }),
      correction.reason ? ` — ${t("correctionReason", { reason: correction.reason.split(/[-:/]/).pop().replace(/_/g, " ") })}` : "",
      correction.correctiveEventIds && correction.correctiveEventIds.length ? ` — ${t("correctiveEvents", { count: correction.correctiveEventIds.length })}` : "",
    ),
    el("span", { class: `badge ${marks.length ? "marked" : status}` }, t(`status_${status === "passed" ? "verified" : status}`), marks.map((m) => ` · ${t(`mark_${m}`)}`).join(""), browser ? ` · ${t("browserChecked")}` : ""),
    holders && el("span", { class: "held" }, " ", t("heldBy", { n: holders.length, m: c.total })),
    marks.length ? el("p", { class: "marks" }, marks.map((m) => t(`markHelp_${m}`)).join(" ")) : null,
  );
  const checks = (browser || v).checks || [];
  node.append(
    el("details", { ontoggle: (e) => { if (e.target.open && state.passport.slim) ensureFull().then(render).catch(() => {}); } },
      el("summary", {}, t("details")),
      state.passport.slim && el("p", { class: "detail" }, t("loadingDetails")),
      el("ul", { class: "checks" }, checks.map((c) => el("li", { "data-check": c.name, "data-status": c.status }, `${t(`check_${c.name}`)}: ${c.status} — ${c.detail}`))),
      el("p", { class: "detail" }, `${t("eventId")}: `, el("code", {}, item.id)),
      v.anchor && el("p", { class: "detail" }, `${t("anchorTx")}: `, el("code", {}, short(v.anchor.txHash || "", 10)), " · ", t("block", { number: v.anchor.blockNumber, confirmations: v.anchor.confirmations })),
    ),
  );
  return node;
}

async function claim(event, input, message) {
  event.preventDefault();
  message.textContent = "";
  const response = await fetch("/api/v1/ownership/claims", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", "Waymark-Device": deviceId() },
    body: JSON.stringify({ method: "code", uri: state.passport.link, code: input.value }),
  });
  const body = await response.json();
  if (response.ok) {
    state.passport.ownership = body;
    message.textContent = t("claimedOk");
    render();
  } else {
    message.textContent = body.message;
  }
}

// --- verify here ----------------------------------------------------------------------------------------

function renderVerify() {
  const section = $("verify");
  const p = state.passport;
  section.hidden = !p || !p.timeline || !p.timeline.length;
  if (section.hidden) return;
  $("verify-help").textContent = t("verifyHelp", { rpc: ANCHORS ? ANCHORS.rpcUrl : "—" });
  renderConfirmation();
  const result = $("verify-result");
  const v = state.verification;
  if (!v) {
    result.textContent = "";
    section.dataset.state = section.dataset.state === "running" ? "running" : "idle";
    return;
  }
  section.dataset.state = v.status;
  if (v.error) result.textContent = t("error", { message: v.error });
  else if (v.status === "passed") result.textContent = t("verifyPassed", { total: v.results.length });
  else if (v.status === "marked") result.textContent = t("verifyMarked", { total: v.results.length, count: v.results.filter((r) => r.marks && r.marks.length).length });
  else if (v.firstFailure) {
    const { item, result: r } = v.firstFailure;
    const failed = r.checks.find((c) => c.status === "failed");
    result.textContent = t("verifyFailed", { step: stepLabel(item.bizStep) || item.type, time: formatTime(item.eventTime), check: t(`check_${r.failedCheck}`), detail: failed ? failed.detail : "" });
    result.dataset.failedCheck = r.failedCheck;
  } else if (v.status === "failed") result.textContent = t("verifyManufacturer");
  else result.textContent = t("verifyPending", { ok: v.results.filter((r) => r.status === "verified").length, total: v.results.length });
}

const stepOf = (step) => {
  // a node lists steps as stored; the page's labels know the CBV short names and wmc: customs steps
  const text = String(step || "");
  return text.replace(/^https:\/\/ref\.gs1\.org\/cbv\/BizStep-|^urn:epcglobal:cbv:bizstep:/, "").replace(/^https:\/\/ns\.waymark\.example\/customs\//, "wmc:");
};
const names = (nodes) => nodes.map((n) => n.name).join(", ");

function renderConfirmation() {
  const box = $("confirmation");
  const summary = $("confirmation-summary");
  const list = $("discrepancies");
  const c = state.confirmation;
  list.replaceChildren();
  box.hidden = !state.confirming && !c;
  if (box.hidden) return;
  delete box.dataset.confirmed;
  delete box.dataset.total;
  if (!c) {
    box.dataset.state = "running";
    summary.textContent = t("confirmRunning");
    return;
  }
  if (c.error) {
    box.dataset.state = "error";
    summary.textContent = t("confirmError", { error: c.error });
    return;
  }
  box.dataset.state = "done";
  if (!c.total) {
    summary.textContent = t("confirmNone");
    return;
  }
  box.dataset.confirmed = String(c.confirmedBy.length);
  box.dataset.total = String(c.total);
  summary.textContent = t("confirmedBy", { n: c.confirmedBy.length, m: c.total }) + (c.silent.length ? " · " + t("confirmSilent", { orgs: names(c.silent) }) : "");
  for (const d of c.lacking) {
    list.append(el("li", { "data-kind": "lacking", "data-event-id": d.id },
      t("discrepancyLacking", { step: stepLabel(d.item.bizStep) || d.item.type, time: formatTime(d.item.eventTime), orgs: names(d.missingOn) })));
  }
  for (const d of c.omitted) {
    list.append(el("li", { "data-kind": "omitted", "data-event-id": d.id },
      t("discrepancyOmitted", { step: stepLabel(stepOf(d.bizStep)) || "?", time: d.eventTime ? formatTime(d.eventTime) : "?", id: short(d.id.replace(/^ni:\/\/\/sha-256;|\?.*$/g, ""), 6), orgs: names(d.heldBy) })));
  }
}

let runs = 0; // a newer run (another scan, the button pressed again) supersedes an older one

async function runVerification() {
  const start = state.passport;
  if (!start || !start.verdict || !start.timeline || !start.timeline.length) return;
  const run = ++runs;
  const section = $("verify");
  section.dataset.state = "running";
  state.verification = null;
  state.confirmation = null;
  state.confirming = true;
  render();
  const result = $("verify-result");
  let done = 0;
  try {
    if (!ANCHORS) throw new Error("this page was built without the consortium's chain and registry");
    const p = await ensureFull();
    if (run !== runs) return;
    const confirming = confirmWithMembers(p, new Chain(ANCHORS.rpcUrl, ANCHORS), ANCHORS.consortiumRegistry).catch((e) => ({ error: e.message }));
    const verification = await verifyPassport(p, ANCHORS, () => {
      done += 1;
      if (run === runs) result.textContent = t("verifyRunning", { done, total: p.timeline.length });
    });
    if (run !== runs) return;
    state.verification = verification;
    render();
    const confirmation = await confirming;
    if (run !== runs) return;
    state.confirmation = confirmation;
  } catch (e) {
    if (run !== runs) return;
    state.verification = { status: "failed", results: [], firstFailure: null, error: e.message };
    state.confirmation = state.confirmation || { error: e.message };
  }
  state.confirming = false;
  render();
}

// --- start ------------------------------------------------------------------------------------------------

function start() {
  setupLanguage();
  $("manual").addEventListener("submit", manualSubmit);
  $("camera-button").addEventListener("click", toggleCamera);
  $("verify-button").addEventListener("click", runVerification);
  document.body.dataset.ready = "yes";
  runVerification();
}

start();
