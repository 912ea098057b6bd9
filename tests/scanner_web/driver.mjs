// Drives the Debian chromium (headless) with playwright-core for the scanner page's tests.
//   node driver.mjs '<json>'   with {scenario, url, userDataDir, screenshot, video?, lang?}
// Prints one JSON object with what the page showed. Scenarios:
//   passport  open a code's page, read the verdict, timeline and route
//   verify    open it, press "Verify in this browser", wait for the outcome
//   camera    open the home page with a fake camera playing `video`, press "Scan with camera",
//             wait until the page resolved the QR code into a passport
//   language  open it with a browser language, then switch language with the selector
//   product   open a product- or lot-level page (no verdict), read what it shows
//   confirm   open it, wait until the members' nodes have answered, read the verdict, the
//             confirmation and the discrepancies it names
//   refused   open it, expect the loader to refuse the bundle, read what the page shows
// A verdict is read once the page has finished checking (never while it shows "checking").
import { chromium } from "playwright-core";

const args = JSON.parse(process.argv[2]);
const flags = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
if (args.video) {
  flags.push("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", `--use-file-for-fake-video-capture=${args.video}`);
}

const context = await chromium.launchPersistentContext(args.userDataDir, {
  executablePath: args.executable || "/usr/bin/chromium",
  headless: true,
  args: flags,
  viewport: { width: 390, height: 844 }, // a phone
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  locale: args.lang || "en-US",
  permissions: args.video ? ["camera"] : [],
  timeout: 60000,
});
const out = { console: [], errors: [] };
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => out.errors.push(String(e)));
  page.setDefaultTimeout(args.timeout || 30000);
  await page.goto(args.url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready=yes]");

  const readPassport = async () => {
    await page.waitForSelector("#verdict[data-verdict]:not([data-verdict=checking])", { timeout: 60000 });
    return page.evaluate(() => ({
      verdict: document.querySelector("#verdict").dataset.verdict,
      verdictTitle: document.querySelector("#verdict h2")?.textContent,
      reasons: Array.from(document.querySelectorAll("#reasons li"), (li) => li.dataset.code),
      timeline: Array.from(document.querySelectorAll("#timeline > li"), (li) => ({ step: li.dataset.step, status: li.dataset.status, browser: li.dataset.browser || null, marks: li.dataset.marks || null, text: li.querySelector(".what").textContent })),
      route: Array.from(document.querySelectorAll("#route li"), (li) => li.dataset.country),
      routePlaces: Array.from(document.querySelectorAll("#route li"), (li) => li.querySelector(".place").textContent),
      productName: document.querySelector("#product-name")?.textContent || null,
      productImage: document.querySelector("#product-image")?.naturalWidth ?? null,
      heroAboveVerdict: (() => {
        const hero = document.querySelector("#hero");
        const verdict = document.querySelector("#verdict");
        return !hero.hidden && (verdict.hidden || hero.getBoundingClientRect().bottom <= verdict.getBoundingClientRect().top);
      })(),
      corrections: Array.from(document.querySelectorAll("#timeline > li[data-corrected=yes]"), (li) => ({ step: li.dataset.step, text: li.querySelector(".correction").textContent })),
      reasonTexts: Array.from(document.querySelectorAll("#reasons li"), (li) => li.textContent),
      lot: document.querySelector("#lot")?.textContent || null,
      manufacturer: document.querySelector("#manufacturer")?.textContent,
      escrow: document.querySelector("#escrow")?.dataset.state ?? null,
      escrowText: document.querySelector("#escrow p")?.textContent ?? null,
      lang: document.documentElement.lang,
      path: location.pathname,
      decoder: document.body.dataset.decoder || null,
      width: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
    }));
  };

  if (args.scenario === "passport") {
    Object.assign(out, await readPassport());
  } else if (args.scenario === "verify") {
    await readPassport();
    await page.click("#verify-button");
    await page.waitForFunction(() => ["passed", "marked", "failed", "pending"].includes(document.querySelector("#verify").dataset.state), null, { timeout: 60000 });
    Object.assign(out, await readPassport());
    Object.assign(out, await page.evaluate(() => ({
      verifyState: document.querySelector("#verify").dataset.state,
      verifyText: document.querySelector("#verify-result").textContent,
      failedCheck: document.querySelector("#verify-result").dataset.failedCheck || null,
    })));
    await page.locator("#verify").scrollIntoViewIfNeeded();
  } else if (args.scenario === "camera") {
    await page.click("#camera-button");
    await page.waitForSelector("#verdict[data-verdict]", { timeout: 60000 });
    Object.assign(out, await readPassport());
  } else if (args.scenario === "product") {
    await page.waitForSelector("#product[data-kind]");
    Object.assign(out, await page.evaluate(() => ({
      kind: document.querySelector("#product").dataset.kind,
      verdictHidden: document.querySelector("#verdict").hidden,
      productName: document.querySelector("#product-name")?.textContent || null,
      productImage: document.querySelector("#product-image")?.naturalWidth ?? null,
      manufacturer: document.querySelector("#manufacturer")?.textContent,
      lots: Array.from(document.querySelectorAll("#lots li"), (li) => ({ lot: li.dataset.lot, recalled: li.dataset.recalled, href: li.querySelector("a").getAttribute("href") })),
      lotUnits: document.querySelector("#lot-units")?.textContent || null,
      lotInspections: document.querySelector("#lot-inspections")?.textContent || null,
      lotRecall: document.querySelector("#lot-recall")?.textContent || null,
      lotRecalled: document.querySelector("#lot-state")?.dataset.recalled || null,
      path: location.pathname,
      width: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
    })));
    if (args.follow) {
      await page.click(`#lots li[data-lot="${args.follow}"] a`);
      await page.waitForSelector("#lot-state");
      out.followed = await page.evaluate(() => ({ path: location.pathname, kind: document.querySelector("#product").dataset.kind, lotUnits: document.querySelector("#lot-units").textContent }));
    }
  } else if (args.scenario === "confirm") {
    await page.waitForSelector("#confirmation[data-state=done], #confirmation[data-state=error]", { timeout: 60000 });
    Object.assign(out, await readPassport());
    Object.assign(out, await page.evaluate(() => {
      const box = document.querySelector("#confirmation");
      return {
        bundle: document.body.dataset.bundle || null,
        pageReasons: Array.from(document.querySelectorAll("#reasons li[data-source=page]"), (li) => ({ code: li.dataset.code, text: li.textContent })),
        confirmation: {
          state: box.dataset.state,
          confirmed: box.dataset.confirmed === undefined ? null : Number(box.dataset.confirmed),
          total: box.dataset.total === undefined ? null : Number(box.dataset.total),
          summary: document.querySelector("#confirmation-summary").textContent,
          discrepancies: Array.from(document.querySelectorAll("#discrepancies li"), (li) => ({ kind: li.dataset.kind, eventId: li.dataset.eventId, text: li.textContent })),
        },
        heldBy: Array.from(document.querySelectorAll("#timeline > li"), (li) => ({ eventId: li.dataset.eventId, heldBy: li.dataset.heldBy === undefined ? null : Number(li.dataset.heldBy), browser: li.dataset.browser || null })),
        verifyState: document.querySelector("#verify").dataset.state,
      };
    }));
  } else if (args.scenario === "refused") {
    await page.waitForSelector("body[data-bundle]:not([data-bundle=approved])", { timeout: 60000 });
    Object.assign(out, await page.evaluate(() => ({
      bundle: document.body.dataset.bundle,
      verdict: document.querySelector("#verdict").dataset.verdict,
      verdictTitle: document.querySelector("#verdict h2")?.textContent,
      message: document.querySelector("#bundle-message")?.textContent,
      text: document.body.innerText,
      timeline: document.querySelectorAll("#timeline > li").length,
      lang: document.documentElement.lang,
    })));
  } else if (args.scenario === "language") {
    Object.assign(out, await readPassport());
    out.initial = { lang: out.lang, title: out.verdictTitle };
    await page.selectOption("#language", args.switchTo || "en");
    Object.assign(out, await readPassport());
  } else {
    throw new Error(`unknown scenario ${args.scenario}`);
  }
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
} catch (e) {
  out.failure = String(e && e.stack ? e.stack : e);
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(out));
