// Runs the page's own modules under Node for tests/scanner_web/test_page_modules.py:
//   stdin {"strings": true}                 -> {languages, english, missing, placeholders}
//   stdin {"compare": {passport, answers}}  -> members.js compare() of those answers
import { LANGUAGES } from "../../scanner_web/src/i18n.js";
import { compare } from "../../scanner_web/src/members.js";
import { PAGE_STRINGS } from "../../scanner_web/src/page_i18n.js";

const input = JSON.parse(await new Promise((done) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk)).on("end", () => done(text));
}));
const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
let out;
if (input.strings) {
  const english = PAGE_STRINGS.en;
  out = {
    languages: Object.keys(LANGUAGES),
    pageLanguages: Object.keys(PAGE_STRINGS),
    problems: Object.keys(LANGUAGES).flatMap((lang) => Object.keys(english).flatMap((key) => {
      const text = (PAGE_STRINGS[lang] || {})[key];
      if (typeof text !== "string") return [`${lang}.${key} missing`];
      return JSON.stringify(placeholders(text)) === JSON.stringify(placeholders(english[key])) ? [] : [`${lang}.${key} placeholders differ`];
    })),
  };
} else {
  const { passport, answers } = input.compare;
  const result = compare(passport, answers.map((a) => (a.ok ? { ...a, events: new Map(Object.entries(a.events)) } : a)));
  out = {
    ...result,
    heldBy: Object.fromEntries([...result.heldBy].map(([id, nodes]) => [id, nodes.map((n) => n.name)])),
    confirmedBy: result.confirmedBy.map((n) => n.name),
    lacking: result.lacking.map((d) => ({ id: d.id, missingOn: d.missingOn.map((n) => n.name) })),
    omitted: result.omitted.map((d) => ({ ...d, heldBy: d.heldBy.map((n) => n.name) })),
    silent: result.silent.map((n) => n.name),
  };
}
process.stdout.write(JSON.stringify(out));
