// The scanner page's loader: runs the verifier bundle (app.js) only if its sha-256 is the one the
// consortium approved by vote, as the ConsortiumRegistry records it (verifierBundleHash()), read
// over the read-only RPC this build was made for. The bytes that were hashed are the bytes that
// run (a blob: URL of them, never a second download). Otherwise no bundle runs, no verdict is
// shown, and the page says why. What this protects against, and what it cannot, is written in
// scanner_web/README.md.

import { sha256 } from "@noble/hashes/sha2";
import { keccak_256 } from "@noble/hashes/sha3";
import { ANCHORS } from "waymark:anchors";
import { chooseLanguage } from "./i18n.js";
import { pageText } from "./page_i18n.js";

const BUNDLE = "/static/app.js";
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const ZERO = "0x" + "0".repeat(64);

async function rpc(method, params) {
  const response = await fetch(ANCHORS.rpcUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  if (!response.ok) throw new Error(`the chain at ${ANCHORS.rpcUrl} answered HTTP ${response.status}`);
  const body = await response.json();
  if (body.error) throw new Error(`the chain answered: ${body.error.message || JSON.stringify(body.error)}`);
  return body.result;
}

async function approvedHash() {
  const chainId = Number(BigInt(await rpc("eth_chainId", [])));
  if (chainId !== ANCHORS.chainId) throw new Error(`the RPC at ${ANCHORS.rpcUrl} is chain ${chainId}, not ${ANCHORS.chainId}`);
  const data = "0x" + hex(keccak_256(new TextEncoder().encode("verifierBundleHash()")).slice(0, 4));
  const out = await rpc("eth_call", [{ to: ANCHORS.consortiumRegistry, data }, "latest"]);
  if (typeof out !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(out)) throw new Error("the registry has no verifierBundleHash()");
  return out.toLowerCase();
}

async function bundleBytes() {
  // The browser may cache it: whatever copy arrives is hashed before it runs.
  const response = await fetch(BUNDLE);
  if (!response.ok) throw new Error(`${BUNDLE} answered HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function refuse(reason, params) {
  const lang = chooseLanguage(localStorage.getItem("waymark-lang"), navigator.languages || [navigator.language]);
  const box = document.getElementById("verdict");
  const title = document.createElement("h2");
  title.id = "verdict-title";
  title.textContent = pageText(lang, "verdict_untrusted");
  const text = document.createElement("p");
  text.id = "bundle-message";
  text.textContent = pageText(lang, `bundle_${reason}`, params);
  box.replaceChildren(title, text);
  box.dataset.verdict = "untrusted";
  box.hidden = false;
  document.documentElement.lang = lang;
  // Nothing of the server's answer is shown: the code that would show it is not the approved one.
  for (const id of ["passport", "verify", "scan", "hero"]) document.getElementById(id)?.remove();
  document.body.dataset.bundle = reason;
  document.body.dataset.ready = "yes";
}

async function load() {
  if (!ANCHORS) return refuse("unconfigured", {});
  let bytes, approved;
  try {
    [bytes, approved] = await Promise.all([bundleBytes(), approvedHash()]);
  } catch (e) {
    return refuse("unchecked", { error: e.message });
  }
  const actual = "0x" + hex(sha256(bytes));
  if (approved === ZERO) return refuse("unapproved", {});
  if (actual !== approved) return refuse("mismatch", { actual, approved });
  document.body.dataset.bundle = "approved";
  document.body.dataset.bundleHash = actual;
  const script = document.createElement("script");
  script.src = URL.createObjectURL(new Blob([bytes], { type: "text/javascript" }));
  document.head.append(script);
}

load();
