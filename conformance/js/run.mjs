// Runs the JavaScript client checks (ehr-launch.mjs, crud.mjs) against
// KJ_BASE_URL, streams their "PASS/FAIL/SKIP js/<name>" lines, and writes
// js.md and js-junit.xml into the report directory. Exits non-zero when a
// check fails or a script dies.
//
//   KJ_BASE_URL=http://127.0.0.1:8080 node conformance/js/run.mjs [--report-dir DIR]

import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const scripts = [
  { file: "ehr-launch.mjs", client: "fhirclient 2.6.3 (SMART JavaScript client library, Node adapter)", what: "EHR launch and reads" },
  { file: "crud.mjs", client: "fhir-kit-client 2.0.3", what: "CRUD, versioning, search and history" },
];

const args = process.argv.slice(2);
const i = args.indexOf("--report-dir");
const reportDir = i >= 0 ? args[i + 1] : "conformance-report";
const here = fileURLToPath(new URL(".", import.meta.url));

function run(script) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [join(here, script.file)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b) => {
      out += b;
      process.stdout.write(b);
    });
    child.stderr.on("data", (b) => {
      err += b;
      process.stderr.write(b);
    });
    child.on("close", (code, signal) => resolve({ ...script, code, signal, out, err, seconds: (Date.now() - started) / 1000 }));
  });
}

const line = /^(PASS|FAIL|SKIP) js\/(\S+?)(?::\s(.*))?$/;
const results = [];
let failed = false;
for (const script of scripts) {
  const res = await run(script);
  const checks = res.out.split("\n").map((l) => l.match(line)).filter(Boolean)
    .map(([, status, name, reason]) => ({ status, name, reason: reason || "" }));
  if (res.code !== 0 || checks.length === 0) failed = true;
  if (res.code !== 0 && !checks.some((c) => c.status === "FAIL")) {
    // The script died outside a check (an exception, a missing module).
    const reason = (res.err.trim().split("\n").find((l) => /Error|error/.test(l)) || `exit ${res.code ?? res.signal}`).trim();
    checks.push({ status: "FAIL", name: script.file.replace(/\.mjs$/, ""), reason });
    console.log(`FAIL js/${script.file.replace(/\.mjs$/, "")}: ${reason}`);
  }
  results.push({ ...res, checks });
}

const count = (s) => results.reduce((n, r) => n + r.checks.filter((c) => c.status === s).length, 0);
const total = results.reduce((n, r) => n + r.checks.length, 0);
const cell = (s) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
const xml = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

let md = `# JavaScript clients\n\nAgainst ${process.env.KJ_BASE_URL}: ${total} checks, ${count("PASS")} passed, ${count("FAIL")} failed, ${count("SKIP")} skipped.\n`;
let junit = `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="kjernejournal conformance, JavaScript clients" tests="${total}" failures="${count("FAIL")}" skipped="${count("SKIP")}">\n`;
for (const r of results) {
  md += `\n## ${r.client}: ${r.what} (\`conformance/js/${r.file}\`, ${r.seconds.toFixed(1)} s)\n\n| Check | Result | Reason |\n|---|---|---|\n`;
  const f = r.checks.filter((c) => c.status === "FAIL").length;
  const s = r.checks.filter((c) => c.status === "SKIP").length;
  junit += `  <testsuite name="js/${r.file}" tests="${r.checks.length}" failures="${f}" skipped="${s}" time="${r.seconds.toFixed(3)}">\n`;
  for (const c of r.checks) {
    md += `| js/${c.name} | ${c.status.toLowerCase()} | ${cell(c.reason)} |\n`;
    junit += `    <testcase classname="js.${xml(r.file.replace(/\.mjs$/, ""))}" name="js/${xml(c.name)}">`;
    if (c.status === "FAIL") junit += `<failure message="${xml(c.reason)}"></failure>`;
    if (c.status === "SKIP") junit += `<skipped message="${xml(c.reason)}"></skipped>`;
    junit += `</testcase>\n`;
  }
  junit += `  </testsuite>\n`;
}
junit += `</testsuites>\n`;
mkdirSync(reportDir, { recursive: true });
writeFileSync(join(reportDir, "js.md"), md);
writeFileSync(join(reportDir, "js-junit.xml"), junit);
console.log(`${total} JavaScript client checks: ${count("PASS")} passed, ${count("FAIL")} failed, ${count("SKIP")} skipped; report in ${join(reportDir, "js.md")}`);
process.exitCode = failed || count("FAIL") > 0 ? 1 : 0;
