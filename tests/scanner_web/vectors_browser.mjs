// Runs the verification vectors through scanner_web/src/verify.js inside the Debian chromium
// (headless, playwright-core): vectors_runner.js is bundled with esbuild as the page bundles
// verify.js, loaded into a blank page, and run there.
//   node vectors_browser.mjs '{"vectors": "<path>", "executable": "/usr/bin/chromium"}'
// Prints {"results": [...], "userAgent": ...} (see vectors_runner.js), or {"failure": ...}.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const args = JSON.parse(process.argv[2]);
const here = dirname(fileURLToPath(import.meta.url));
const bundled = await build({
  entryPoints: [join(here, "vectors_runner.js")],
  bundle: true,
  format: "iife",
  globalName: "waymarkVectors",
  target: "es2020",
  write: false,
  logLevel: "warning",
});
const vectors = JSON.parse(readFileSync(args.vectors, "utf8"));
const browser = await chromium.launch({ executablePath: args.executable || "/usr/bin/chromium", headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
const out = { errors: [] };
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => out.errors.push(String(e)));
  await page.setContent("<!doctype html><title>vectors</title>");
  await page.addScriptTag({ content: bundled.outputFiles[0].text });
  out.results = await page.evaluate((v) => window.waymarkVectors.runVectors(v), vectors);
  out.userAgent = await page.evaluate(() => navigator.userAgent);
} catch (e) {
  out.failure = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
