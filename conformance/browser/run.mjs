// Browser tests of kjernejournal (issue 14): headless Debian Chromium,
// driven by playwright-core, against a running server (KJ_BASE_URL), with
// the apps served from ANOTHER loopback origin so that everything a
// browser enforces across origins (CORS, CSP form-action, redirects back
// to the app) is enforced.
//
//   KJ_BASE_URL=http://127.0.0.1:8080 node conformance/browser/run.mjs [--report-dir DIR] [--module NAME ...]
//
// Environment:
//   KJ_BASE_URL          FHIR base URL of the server under test (required)
//   KJ_NOCORS_BASE_URL   a second server started with --cors-origins none;
//                        the negative CORS checks are skipped without it
//   KJ_CHROMIUM          the browser (default /usr/bin/chromium, Debian's chromium)
//   KJ_BROWSER_PATIENT   the demo patient with critical information (default pas-citizen-demo)
//   KJ_BROWSER_STEP_TIMEOUT  seconds one check may take (default 120)
//
// It starts a static HTTP server on a free loopback port, the "app
// origin", serving
//   /app/     internal/webapp/static/ (the kjernejournal app, also served by the binary)
//   /vendor/  fhirclient's browser build (node_modules/fhirclient/build/)
//   /         testapp/ (a third-party SMART app: launch.html, callback.html)
// then runs the test modules in order (thirdparty.mjs, then kjapp.mjs if it
// exists). Each exports `default async function (t)`; t is described at
// makeT below. Output: "PASS browser/<name>", "FAIL browser/<name>: reason"
// and "SKIP browser/<name>: reason" lines; browser.md and browser-junit.xml
// in the report directory, screenshots in <report-dir>/browser/. Exits
// non-zero when a check fails or a module dies.

import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, createReadStream } from "node:fs";
import { createServer } from "node:http";
import { basename, extname, join, normalize, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { chromium } from "playwright-core";

const here = fileURLToPath(new URL(".", import.meta.url));
const root = fileURLToPath(new URL("../../", import.meta.url));

// ---- configuration --------------------------------------------------------

const args = process.argv.slice(2);
let reportDir = "conformance-report";
const only = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--report-dir") reportDir = args[++i];
  else if (args[i] === "--module") only.push(String(args[++i]));
  else {
    console.error(`unknown argument ${args[i]}\nusage: KJ_BASE_URL=... node run.mjs [--report-dir DIR] [--module NAME ...]`);
    process.exit(2);
  }
}
const BASE = (process.env.KJ_BASE_URL || "").replace(/\/+$/, "");
if (!BASE) {
  console.error("KJ_BASE_URL (the FHIR base URL of the server under test) is required");
  process.exit(2);
}
const NOCORS = (process.env.KJ_NOCORS_BASE_URL || "").replace(/\/+$/, "");
const CHROMIUM = process.env.KJ_CHROMIUM || "/usr/bin/chromium";
const STEP_TIMEOUT = 1000 * Number(process.env.KJ_BROWSER_STEP_TIMEOUT || 120);
// The flags the machine notes give for Chromium here: no sandbox (root in
// a container), no GPU, and none of Chromium's own network traffic (the
// machine's network is closed; without these it keeps trying Google's
// hosts). Playwright adds --headless and a fresh, empty --user-data-dir
// (a new temporary profile every launch).
const CHROMIUM_FLAGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];
// The test modules in order; --module NAME runs only the named ones (a
// name here, or the path of another module file, e.g. while writing one).
const MODULES = only.length
  ? only.map((m) => (m.includes("/") ? { name: basename(m).replace(/\.mjs$/, ""), file: resolve(m), required: true }
    : { name: m.replace(/\.mjs$/, ""), file: join(here, `${m.replace(/\.mjs$/, "")}.mjs`), required: true }))
  : [{ name: "thirdparty", file: join(here, "thirdparty.mjs"), required: true },
    { name: "kjapp", file: join(here, "kjapp.mjs"), required: false }];
const shotDir = join(reportDir, "browser");

// ---- the app origin: a static file server ---------------------------------

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8", ".json": "application/json", ".map": "application/json", ".svg": "image/svg+xml",
  ".png": "image/png", ".ico": "image/x-icon", ".txt": "text/plain; charset=utf-8", ".woff2": "font/woff2",
  ".webmanifest": "application/manifest+json",
};
const MOUNTS = [
  { prefix: "/app/", dir: join(root, "internal/webapp/static") },
  { prefix: "/vendor/", dir: join(here, "node_modules/fhirclient/build") },
  { prefix: "/", dir: join(here, "testapp") },
];
const staticLog = []; // requests the static server could not answer

function serveStatic(req, res) {
  const url = new URL(req.url, "http://app.invalid");
  const send = (status, text, headers = {}) => {
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers });
    res.end(text);
  };
  if (req.method !== "GET" && req.method !== "HEAD") return send(405, "method not allowed\n", { allow: "GET, HEAD" });
  if (url.pathname === "/app") return send(301, "", { location: "/app/" + url.search });
  if (url.pathname === "/favicon.ico") return send(204, ""); // asked for by Chromium on every page
  let path;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    return send(400, "bad path\n");
  }
  const mount = MOUNTS.find((m) => path.startsWith(m.prefix));
  let file = normalize(join(mount.dir, path.slice(mount.prefix.length)));
  if (file !== mount.dir && !file.startsWith(mount.dir + sep)) return send(403, "outside the served directory\n");
  try {
    if (statSync(file).isDirectory()) file = join(file, "index.html");
    if (!statSync(file).isFile()) throw new Error("not a file");
  } catch {
    staticLog.push(`${req.method} ${url.pathname} → 404`);
    return send(404, `not found: ${url.pathname}\n`);
  }
  res.writeHead(200, {
    "content-type": TYPES[extname(file).toLowerCase()] || "application/octet-stream",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  if (req.method === "HEAD") return res.end();
  createReadStream(file).on("error", () => res.destroy()).pipe(res);
}

function startStatic() {
  return new Promise((resolve, reject) => {
    const srv = createServer(serveStatic);
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => resolve(srv));
  });
}

// ---- results --------------------------------------------------------------

const results = []; // {module, name, status, reason, seconds}
const shots = []; // {module, step, name, file, url}
const axeRuns = []; // {module, step, name, url, violations: [...], error}
const notes = []; // remarks printed and kept for the report
let currentModule = "";

function record(status, name, reason = "", seconds = 0) {
  results.push({ module: currentModule, name, status, reason, seconds });
  console.log(`${status} browser/${name}${reason ? `: ${reason}` : ""}`);
}

function oneLine(s, max = 600) {
  s = String(s).replace(/\s+/g, " ").trim();
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

// describe makes one line of an error; Playwright's messages carry a call
// log after the first lines, of which the first two are kept.
function describe(err) {
  const msg = (err && err.message ? err.message : String(err)).replace(/\x1b\[[0-9;]*m/g, "");
  const lines = msg.split("\n").map((l) => l.trim()).filter((l) => l && !/^=+/.test(l));
  const cut = lines.findIndex((l) => /^Call log:?$/i.test(l));
  const head = cut >= 0 ? [...lines.slice(0, cut), ...lines.slice(cut + 1, cut + 3)] : lines.slice(0, 4);
  return oneLine(head.join(" "));
}

const safeName = (s) => String(s).replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "shot";

// ---- t --------------------------------------------------------------------

let axeSource;
function axeScript() {
  if (!axeSource) axeSource = readFileSync(join(here, "node_modules/axe-core/axe.min.js"), "utf8");
  return axeSource;
}

// The WCAG 2.1 A and AA rules (what public Norwegian web services must meet).
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// makeT builds the object each test module receives:
//   t.base        FHIR base URL of the server under test (KJ_BASE_URL)
//   t.nocorsBase  a server with --cors-origins none (KJ_NOCORS_BASE_URL), or ""
//   t.appOrigin   http://127.0.0.1:PORT, the static server (another origin)
//   t.browser     the playwright Browser
//   t.newPage(options?)  a fresh context (own cookies and storage, locale
//                 nb-NO) and page in it; its console errors, uncaught
//                 errors, failed requests and HTTP error answers are
//                 recorded and shown in the reason of a failed check
//   t.step(name, async fn)  runs one check: PASS browser/<name> or
//                 FAIL browser/<name>: reason; returns fn's result (or
//                 undefined when it failed); pages opened in a failed
//                 check are screenshotted as <name>-failed[-N].png
//   t.skip(name, reason)  reports SKIP browser/<name>: reason
//   t.shot(page, name)  PNG of the full page in <report-dir>/browser/<name>.png
//   t.axe(page, name)  axe-core (WCAG 2.1 A/AA) in the page; findings go
//                 to the report; throws when one is serious or critical
//   t.ehrLaunch(page, {persona, patient, basis, clientId, launchUri, base?})
//                 the EHR launch page with go=1: base + /ehr?persona=..&
//                 patient=..&basis=..&client_id=..&launch_uri=..&go=1; waits
//                 until the browser has left /ehr (for the app's launch
//                 URI) and returns that URL
//   t.events(page)  what was recorded for the page so far (strings)
//   t.note(text)  a remark printed and kept in browser.md
//   t.token(persona, scope)  an access token for a persona, from the
//                 server's development login (authorization code + PKCE,
//                 no browser): for set-up and clean-up as another user
function makeT(browser, appOrigin) {
  const pages = []; // {page, context, label, events: [], step}
  let stepPages = null; // pages opened in the running step
  let stepName = "";

  const t = {
    base: BASE,
    nocorsBase: NOCORS,
    appOrigin,
    browser,
    reportDir,

    async newPage(options = {}) {
      const context = await browser.newContext({ locale: "nb-NO", viewport: { width: 1280, height: 900 }, ...options });
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      page.setDefaultNavigationTimeout(30_000);
      const entry = { page, context, label: `page ${pages.length + 1}`, events: [] };
      const add = (s) => entry.events.push(oneLine(s, 400));
      page.on("console", (m) => {
        // "Failed to load resource" repeats what the response or
        // requestfailed event below records.
        if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) {
          add(`console error on ${m.location().url || page.url()}: ${m.text()}`);
        }
      });
      page.on("pageerror", (e) => add(`uncaught ${e.name || "error"} on ${page.url()}: ${e.message}`));
      page.on("requestfailed", (r) => add(`request failed: ${r.method()} ${r.url()} (${r.failure() ? r.failure().errorText : "?"})`));
      page.on("response", (r) => {
        if (r.status() >= 400) add(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
      });
      pages.push(entry);
      if (stepPages) stepPages.push(entry);
      return page;
    },

    events(page) {
      const e = pages.find((p) => p.page === page);
      return e ? [...e.events] : [];
    },

    async token(persona, scope) {
      return devToken(BASE, persona, scope);
    },

    note(text) {
      notes.push({ module: currentModule, step: stepName, text });
      console.log(`NOTE browser/${stepName || currentModule}: ${text}`);
    },

    skip(name, reason) {
      record("SKIP", name, reason);
    },

    async step(name, fn) {
      const started = Date.now();
      const mine = [];
      const marks = new Map(pages.map((p) => [p, p.events.length]));
      stepPages = mine;
      stepName = name;
      try {
        const out = await withTimeout(Promise.resolve().then(fn), STEP_TIMEOUT, `the check`);
        record("PASS", name, "", (Date.now() - started) / 1000);
        return out;
      } catch (err) {
        // What the pages recorded during the check: new pages entirely,
        // pages from before only what came after the check started.
        const seen = [];
        for (const p of pages) {
          const from = marks.has(p) ? marks.get(p) : 0;
          for (const e of p.events.slice(from)) seen.push(`[${p.label}] ${e}`);
        }
        let reason = describe(err);
        if (seen.length) {
          const shown = seen.slice(0, 8);
          reason += ` | recorded: ${shown.join("; ")}${seen.length > shown.length ? `; … ${seen.length - shown.length} more` : ""}`;
        }
        record("FAIL", name, oneLine(reason, 1800), (Date.now() - started) / 1000);
        // A picture of where the check stopped.
        const subjects = mine.length ? mine : pages.slice(-1);
        for (const [i, p] of subjects.entries()) {
          if (p.page.isClosed()) continue;
          const n = `${safeName(name)}-failed${subjects.length > 1 ? `-${i + 1}` : ""}`;
          await t.shot(p.page, n).catch(() => {});
        }
        return undefined;
      } finally {
        stepPages = null;
        stepName = "";
      }
    },

    async shot(page, name) {
      mkdirSync(shotDir, { recursive: true });
      const file = join(shotDir, `${safeName(name)}.png`);
      await page.screenshot({ path: file, fullPage: true, timeout: 15_000 });
      const rel = relative(reportDir, file).split(sep).join("/");
      const i = shots.findIndex((s) => s.file === rel);
      const entry = { module: currentModule, step: stepName, name, file: rel, url: page.url() };
      if (i >= 0) shots[i] = entry;
      else shots.push(entry);
      return file;
    },

    async axe(page, name) {
      const run = { module: currentModule, step: stepName, name, url: page.url(), violations: [], error: "" };
      axeRuns.push(run);
      let res;
      try {
        // Through the DevTools protocol (page.evaluate), not a <script>
        // tag: the server's pages have a strict Content-Security-Policy
        // that must not be relaxed for the test.
        if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(axeScript());
        res = await page.evaluate(
          (tags) => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] }),
          AXE_TAGS,
        );
      } catch (err) {
        run.error = describe(err);
        throw new Error(`axe-core could not run on ${page.url()}: ${run.error}`);
      }
      run.violations = res.violations.map((v) => ({
        id: v.id, impact: v.impact || "unknown", help: v.help, helpUrl: v.helpUrl,
        nodes: v.nodes.length, targets: v.nodes.slice(0, 5).map((n) => [].concat(n.target).join(" ")),
      }));
      run.passes = (res.passes || []).length;
      const bad = run.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
      if (bad.length) {
        throw new Error(`axe-core (WCAG 2.1 A/AA) on ${name}: ${bad.length} serious or critical: ` +
          bad.map((v) => `${v.id} (${v.impact}, ${v.nodes} element${v.nodes === 1 ? "" : "s"}: ${v.targets.join(", ")}): ${v.help}`).join("; "));
      }
      return run.violations;
    },

    async ehrLaunch(page, opts = {}) {
      const base = (opts.base || BASE).replace(/\/+$/, "");
      const q = new URLSearchParams();
      const set = (k, v) => {
        if (v !== undefined && v !== null && v !== "") q.set(k, v);
      };
      set("persona", opts.persona);
      set("patient", opts.patient);
      set("basis", opts.basis);
      set("client_id", opts.clientId);
      set("launch_uri", opts.launchUri);
      q.set("go", "1");
      const url = `${base}/ehr?${q}`;
      const res = await page.goto(url, { waitUntil: "commit" });
      const left = (u) => !u.href.startsWith(`${base}/ehr`);
      const refused = async () => {
        await page.waitForLoadState("domcontentloaded").catch(() => {});
        const text = await page.locator("[role=alert], .err").allInnerTexts().catch(() => []);
        return new Error(`the EHR launch page did not launch the app (${res ? `HTTP ${res.status()}, ` : ""}still at ${page.url()})` +
          `${text.length ? `: ${text.join(" ")}` : ""}`);
      };
      // The server answers go=1 with a redirect (303) to the app's launch
      // URI, which the navigation has followed; a page instead of it says
      // what was wrong with the query.
      if (res && res.status() >= 400) throw await refused();
      try {
        await page.waitForURL(left, { timeout: 15_000, waitUntil: "commit" });
      } catch {
        throw await refused();
      }
      return page.url();
    },
  };

  t.closeAll = async () => {
    for (const p of pages) await p.context.close().catch(() => {});
    pages.length = 0;
  };
  return t;
}

// ---- main -----------------------------------------------------------------

async function main() {
  rmSync(shotDir, { recursive: true, force: true });
  mkdirSync(shotDir, { recursive: true });
  const started = Date.now();

  if (!existsSync(CHROMIUM)) {
    record("FAIL", "chromium", `${CHROMIUM} is missing (make conformance installs Debian's chromium; or set KJ_CHROMIUM)`);
    return;
  }
  const srv = await startStatic();
  const appOrigin = `http://127.0.0.1:${srv.address().port}`;
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, timeout: 60_000 });
  } catch (err) {
    srv.close();
    record("FAIL", "chromium", `could not start ${CHROMIUM}: ${describe(err)}`);
    return;
  }
  console.log(`browser: ${CHROMIUM} ${browser.version()}; server ${BASE}${NOCORS ? `, server without CORS ${NOCORS}` : ""}; app origin ${appOrigin}`);

  try {
    for (const { name: mod, file, required } of MODULES) {
      currentModule = mod;
      if (!existsSync(file)) {
        if (required) record("FAIL", mod, `${file} is missing`);
        continue;
      }
      const t = makeT(browser, appOrigin);
      const before = results.length;
      const modStarted = Date.now();
      try {
        const m = await import(pathToFileURL(file).href);
        if (typeof m.default !== "function") throw new Error(`${mod}.mjs has no default export function (t)`);
        await m.default(t);
        if (results.length === before) record("FAIL", mod, "the module ran no checks");
      } catch (err) {
        record("FAIL", mod, `the module stopped: ${describe(err)}`);
      } finally {
        await t.closeAll();
      }
      moduleSeconds[mod] = (Date.now() - modStarted) / 1000;
    }
  } finally {
    await browser.close().catch(() => {});
    srv.close();
    srv.closeAllConnections?.();
  }
  totalSeconds = (Date.now() - started) / 1000;
}

const moduleSeconds = {};
let totalSeconds = 0;

// shortUrl keeps a report readable: an authorisation request's query is
// long and says nothing about the page.
function shortUrl(u) {
  try {
    const x = new URL(u);
    const q = x.search.length > 80 ? `${x.search.slice(0, 77)}…` : x.search;
    return x.origin + x.pathname + q + x.hash;
  } catch {
    return u;
  }
}

function writeReports() {
  const count = (s) => results.filter((r) => r.status === s).length;
  const cell = (s) => String(s).replace(/\|/g, "\\|").replace(/\n/g, " ");
  const xml = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  const modules = [...new Set(results.map((r) => r.module))];

  let md = `# Browser tests\n\nHeadless Chromium (\`${CHROMIUM}\`) driven by playwright-core against ${BASE}` +
    `${NOCORS ? ` (and ${NOCORS}, started with \`--cors-origins none\`)` : ""}; apps served from another loopback origin. ` +
    `${results.length} checks: ${count("PASS")} passed, ${count("FAIL")} failed, ${count("SKIP")} skipped` +
    ` (${totalSeconds.toFixed(1)} s).\n`;
  for (const mod of modules) {
    md += `\n## \`conformance/browser/${mod}.mjs\`${moduleSeconds[mod] ? ` (${moduleSeconds[mod].toFixed(1)} s)` : ""}\n\n| Check | Result | Reason |\n|---|---|---|\n`;
    for (const r of results.filter((x) => x.module === mod)) md += `| browser/${r.name} | ${r.status.toLowerCase()} | ${cell(r.reason)} |\n`;
  }
  if (notes.length) {
    md += `\n## Notes\n\n`;
    for (const n of notes) md += `- ${n.step ? `browser/${n.step}: ` : ""}${n.text}\n`;
  }
  md += `\n## Screenshots\n\n`;
  if (!shots.length) md += `None.\n`;
  for (const s of shots) md += `- [\`${s.file}\`](${s.file}): ${s.step ? `browser/${s.step}, ` : ""}${shortUrl(s.url)}\n`;
  md += `\n## Accessibility (axe-core ${axeVersion()}, WCAG 2.1 A and AA rules)\n\n`;
  if (!axeRuns.length) md += `No page was scanned.\n`;
  else {
    md += `| Page | URL | Rules passed | Critical | Serious | Moderate | Minor |\n|---|---|---|---|---|---|---|\n`;
    for (const a of axeRuns) {
      const n = (impact) => a.violations.filter((v) => v.impact === impact).reduce((s, v) => s + v.nodes, 0);
      md += a.error
        ? `| ${cell(a.name)} | ${cell(shortUrl(a.url))} | axe-core did not run: ${cell(a.error)} | | | | |\n`
        : `| ${cell(a.name)} | ${cell(shortUrl(a.url))} | ${a.passes} | ${n("critical")} | ${n("serious")} | ${n("moderate")} | ${n("minor")} |\n`;
    }
    md += `\nCounts are elements. Findings:\n\n`;
    const found = axeRuns.flatMap((a) => a.violations.map((v) => ({ page: a.name, ...v })));
    if (!found.length) md += `None on any page.\n`;
    for (const v of found) md += `- ${v.page}: \`${v.id}\` (${v.impact}, ${v.nodes} element${v.nodes === 1 ? "" : "s"}: ${v.targets.map((x) => `\`${x}\``).join(", ")}): ${v.help}\n`;
  }
  if (staticLog.length) {
    md += `\n## The app origin could not serve\n\n${[...new Set(staticLog)].map((l) => `- ${l}`).join("\n")}\n`;
  }

  let junit = `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="kjernejournal conformance, browser" tests="${results.length}" failures="${count("FAIL")}" skipped="${count("SKIP")}" time="${totalSeconds.toFixed(3)}">\n`;
  for (const mod of modules) {
    const rs = results.filter((x) => x.module === mod);
    junit += `  <testsuite name="browser/${xml(mod)}.mjs" tests="${rs.length}" failures="${rs.filter((r) => r.status === "FAIL").length}" skipped="${rs.filter((r) => r.status === "SKIP").length}" time="${(moduleSeconds[mod] || 0).toFixed(3)}">\n`;
    for (const r of rs) {
      junit += `    <testcase classname="browser.${xml(mod)}" name="browser/${xml(r.name)}" time="${r.seconds.toFixed(3)}">`;
      if (r.status === "FAIL") junit += `<failure message="${xml(r.reason)}"></failure>`;
      if (r.status === "SKIP") junit += `<skipped message="${xml(r.reason)}"></skipped>`;
      junit += `</testcase>\n`;
    }
    junit += `  </testsuite>\n`;
  }
  junit += `</testsuites>\n`;
  mkdirSync(reportDir, { recursive: true });
  writeFileSync(join(reportDir, "browser.md"), md);
  writeFileSync(join(reportDir, "browser-junit.xml"), junit);
  console.log(`${results.length} browser checks: ${count("PASS")} passed, ${count("FAIL")} failed, ${count("SKIP")} skipped; ` +
    `${shots.length} screenshots; report in ${join(reportDir, "browser.md")}`);
  return count("FAIL") === 0 && results.length > 0;
}

function axeVersion() {
  try {
    return JSON.parse(readFileSync(join(here, "node_modules/axe-core/package.json"), "utf8")).version;
  } catch {
    return "?";
  }
}

try {
  await main();
} catch (err) {
  record("FAIL", "runner", describe(err));
}
process.exitCode = writeReports() ? 0 : 1;

// devToken runs the development authorisation server's login as persona,
// as a browser would but without one: authorize, the login form's
// persona button, the code exchange with PKCE S256.
async function devToken(base, persona, scope) {
  const { createHash, randomBytes } = await import("node:crypto");
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const redirect = "http://localhost:3000/callback"; // registered for kj-demo-app; never contacted
  const q = new URLSearchParams({ response_type: "code", client_id: "kj-demo-app", redirect_uri: redirect, scope, state: "s",
    aud: base, code_challenge: challenge, code_challenge_method: "S256" });
  const page = await (await fetch(`${base}/auth/authorize?${q}`)).text();
  const session = (page.match(/name="session" value="([^"]+)"/) || [])[1];
  if (!session) throw new Error(`token for ${persona}: the login page has no session: ${oneLine(page, 200)}`);
  const login = await fetch(`${base}/auth/login`, { method: "POST", body: new URLSearchParams({ session, persona }), redirect: "manual" });
  const code = new URL(login.headers.get("location") || "http://x/").searchParams.get("code");
  if (!code) throw new Error(`token for ${persona}: login answered ${login.status} ${login.headers.get("location")}`);
  const res = await fetch(`${base}/auth/token`, { method: "POST", body: new URLSearchParams({ grant_type: "authorization_code", code,
    redirect_uri: redirect, client_id: "kj-demo-app", code_verifier: verifier }) });
  const body = await res.json();
  if (!body.access_token) throw new Error(`token for ${persona}: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}
