// Browser tests of the built-in kjernejournal app (internal/webapp/static),
// run by run.mjs with the app served from ANOTHER origin (t.appOrigin/app/)
// and, when the server serves it, from the server's own /app/ too.
//
// The citizen (standalone launch) reads their record (lab results
// included) and "Logg over bruk", reserves and undoes the reservation, and
// restricts two parts (medications, lab results); the clinician (EHR
// launch, client kjernejournal-app) sees critical information first, sees
// the restricted parts as restricted, opens medications with "Åpne i
// nødsituasjon" and lab results with "Åpne med samtykke" (also on a narrow
// screen), and opens a journal document through the server's proxy; the
// citizen's log then shows the opening. A reserved record and a refused
// basis are shown as the server says them. Every view is scanned with
// axe-core and photographed.
//
// Waits are on the app's explicit markers (body[data-state],
// section[data-section][data-state], [data-setting][data-state], ...), never
// on time. What the checks change (reservation, restriction) is undone at
// the end, also when a check failed, so reruns and later suites see the
// citizen's record as before.

const PATIENT = process.env.KJ_BROWSER_PATIENT || "pas-citizen-demo";
const CLIENT_ID = "kjernejournal-app";

export default async function (t) {
  const other = `${t.appOrigin}/app`;
  const own = `${t.base}/app`;
  const served = await fetch(`${own}/launch.html`).then((r) => r.ok).catch(() => false);

  // Consents the checks created (POST /Consent answered 201), to lift at
  // the end if a check stopped before it lifted them itself.
  const created = new Set();
  const track = (page) => page.on("response", async (r) => {
    if (r.request().method() === "POST" && /\/Consent$/.test(new URL(r.url()).pathname) && r.status() === 201) {
      const body = await r.json().catch(() => null);
      if (body && body.id) created.add(body.id);
    }
  });

  await t.step("kjapp/vendored-fhirclient-is-the-locked-one", async () => {
    // The app ships fhirclient's browser build inside the binary; it must
    // be byte for byte the version package-lock.json pins.
    const { readFileSync } = await import("node:fs");
    const here = new URL(".", import.meta.url);
    const vendored = readFileSync(new URL("../../internal/webapp/static/vendor/fhir-client.pure.min.js", here));
    const locked = readFileSync(new URL("node_modules/fhirclient/build/fhir-client.pure.min.js", here));
    if (!vendored.equals(locked)) throw new Error("internal/webapp/static/vendor/fhir-client.pure.min.js differs from the locked fhirclient's build; copy it again");
  });

  await t.step("kjapp/launch-page-and-unlaunched-app", async () => {
    // Without iss the launch page asks for the server's address; the app
    // page opened directly (no launch) says how to start it.
    const p = await t.newPage();
    await p.goto(`${other}/launch.html`);
    await p.locator('body[data-state="ready"] #start:not([hidden])').waitFor();
    await p.getByLabel("Adressen til kjernejournalens FHIR-tjeneste").waitFor();
    await t.shot(p, "kjapp-launch-page");
    await t.axe(p, "kjapp launch page");
    await p.goto(`${other}/index.html`);
    await p.waitForFunction(() => document.body && document.body.dataset.state === "error");
    const text = await p.locator("main").innerText();
    if (!/Start appen på nytt/.test(text)) throw new Error(`the unlaunched app says: ${text.replace(/\s+/g, " ")}`);
    await t.axe(p, "kjapp not launched");
    await p.context().close();
  });

  let citizen; // the citizen's page, kept for the later checks
  try {
    await t.step("kjapp/citizen-standalone-record", async () => {
      citizen = await t.newPage();
      track(citizen);
      await standaloneCitizen(t, citizen, other);
      await recordLoaded(citizen, { critical: true });
      if (await citizen.locator('section[data-section="documents"]').count()) throw new Error("the citizen's view offers journal documents, which the server refuses citizens (documents-for-hp)");
      // The citizen reads their own lab results without an access basis.
      await labResultsShown(t, citizen);
      await noUncaught(t, citizen);
      await t.shot(citizen, "kjapp-citizen-record");
      await t.axe(citizen, "kjapp citizen record");
    });

    await t.step("kjapp/citizen-usage-log", async () => {
      need(citizen, "the citizen did not get in");
      await openPanel(citizen, "logg", "Logg over bruk");
      const rows = citizen.locator("#logg tbody tr[data-event]");
      await rows.first().waitFor();
      const n = await rows.count();
      if (n < 1) throw new Error("Logg over bruk shows no events");
      // Who, organisation, when, what: every row has a time and a sentence.
      const first = rows.first();
      const when = await first.locator("time").getAttribute("datetime");
      const what = (await first.locator("td").nth(3).innerText()).trim();
      if (!when || !what) throw new Error(`the newest event lacks its time or description: "${when}" "${what}"`);
      const older = citizen.getByRole("button", { name: "Vis eldre hendelser" });
      if (await older.count()) {
        await older.click();
        await citizen.waitForFunction((before) => Number(document.querySelector("#logg").dataset.count) > before &&
          document.querySelector("#logg").dataset.state === "loaded", n);
      }
      await t.shot(citizen, "kjapp-citizen-usage-log");
      await t.axe(citizen, "kjapp citizen usage log");
    });

    await t.step("kjapp/citizen-reservation-and-undo", async () => {
      need(citizen, "the citizen did not get in");
      await openPanel(citizen, "personvern", "Personvern");
      const res = citizen.locator('#personvern [data-setting="reservasjon"]');
      await res.waitFor();
      if ((await res.getAttribute("data-state")) === "active") {
        // Left in force by an earlier run that stopped half-way.
        t.note("the citizen was reserved before the check; undone first");
        await res.getByRole("button", { name: "Angre reservasjonen" }).click();
        await citizen.locator('#personvern [data-setting="reservasjon"][data-state="inactive"]').waitFor();
      }
      if ((await res.getAttribute("data-state")) !== "inactive") throw new Error(`the reservation is ${await res.getAttribute("data-state")}`);
      await res.getByRole("button", { name: "Reserver meg mot kjernejournal" }).click();
      await res.getByRole("button", { name: "Ja, reserver meg" }).click();
      await citizen.locator('#personvern [data-setting="reservasjon"][data-state="active"]').waitFor();
      await citizen.locator('.alerts [data-setting="reservasjon"]').waitFor();
      await t.shot(citizen, "kjapp-citizen-reserved");

      // An HP now finds no record: the app says so as the server does
      // (a reserved record answers exactly as an unknown one).
      const hp = await t.newPage();
      await t.ehrLaunch(hp, { persona: "gp", patient: PATIENT, basis: "SAMTYKKE", clientId: CLIENT_ID, launchUri: `${other}/launch.html` });
      await ready(hp, "clinician");
      await hp.locator('.alerts [data-reason="no-record"]').waitFor();
      const text = await hp.locator("main").innerText();
      if (!/Ingen kjernejournal/.test(text)) throw new Error("the clinician's view of a reserved record does not say there is no record");
      if (/reserv/i.test(await hp.locator(".patient-banner").innerText())) throw new Error("the clinician's view reveals the reservation");
      await t.shot(hp, "kjapp-clinician-reserved-record");
      await t.axe(hp, "kjapp clinician, no record");
      await hp.context().close();

      const undo = citizen.locator('#personvern [data-setting="reservasjon"][data-state="active"]');
      await undo.getByRole("button", { name: "Angre reservasjonen" }).click();
      await citizen.locator('#personvern [data-setting="reservasjon"][data-state="inactive"]').waitFor();
      if (await citizen.locator('.alerts [data-setting="reservasjon"]').count()) throw new Error("the reservation banner stayed after the undo");
    });

    await t.step("kjapp/citizen-restricts-a-part", async () => {
      need(citizen, "the citizen did not get in");
      await openPanel(citizen, "personvern", "Personvern");
      const sp = citizen.locator('#personvern [data-setting="sperring"]');
      await sp.waitFor();
      // Lab results (Prøvesvar) are a part the citizen restricts like the
      // others.
      for (const name of ["Legemidler", "Prøvesvar"]) {
        const box = sp.getByRole("checkbox", { name, exact: true });
        if (!(await box.isChecked())) await box.check();
      }
      await sp.getByRole("button", { name: "Lagre sperring" }).click();
      await citizen.locator('#personvern [data-setting="sperring"][data-state="active"]').waitFor();
      const sections = String(await citizen.locator('#personvern [data-setting="sperring"]').getAttribute("data-sections")).split(" ");
      for (const want of ["medications", "lab-results"]) {
        if (!sections.includes(want)) throw new Error(`the restriction names ${sections.join(" ")}, not ${want}`);
      }
      await t.shot(citizen, "kjapp-citizen-privacy");
      await t.axe(citizen, "kjapp citizen privacy settings");
      // The citizen's own record says the part is restricted and still
      // shows it to them.
      await openPanel(citizen, "journal", "Min kjernejournal");
      const lab = citizen.locator('section[data-section="lab-results"]');
      await lab.locator(".section-note .notice").waitFor();
      if (!/Du har sperret denne delen/.test(await lab.locator(".section-note").innerText())) throw new Error("the citizen's lab results do not say they are restricted");
      await labResultsShown(t, citizen);
    });

    let clinician;
    await t.step("kjapp/clinician-ehr-launch-critical-first", async () => {
      clinician = await t.newPage();
      await t.ehrLaunch(clinician, { persona: "emergency", patient: PATIENT, basis: "AKUTT", clientId: CLIENT_ID, launchUri: `${other}/launch.html` });
      await ready(clinician, "clinician");
      await clinician.locator('.patient-banner[data-state="loaded"]').waitFor();
      const pid = (await clinician.locator(".patient-banner .pid").innerText()).replace(/\s/g, "");
      if (!/^\d{11}$/.test(pid)) throw new Error(`the banner shows no person number (${pid})`);
      await recordLoaded(clinician, { critical: true, restricted: ["medications", "lab-results"] });
      const alert = await clinician.locator('.alerts [data-restricted]').innerText();
      if (!/Prøvesvar/.test(alert)) throw new Error(`the restriction notice does not name Prøvesvar: ${alert}`);
      await noUncaught(t, clinician);
      await t.shot(clinician, "kjapp-clinician");
      await t.axe(clinician, "kjapp clinician view");
    });

    await t.step("kjapp/clinician-opens-restricted-in-emergency", async () => {
      need(clinician, "the clinician's view did not load");
      const med = clinician.locator('section[data-section="medications"]');
      await med.and(clinician.locator('[data-state="restricted"]')).waitFor();
      if (!/Sperret av pasienten/.test(await med.innerText())) throw new Error("the restricted part does not say Sperret av pasienten");
      await med.getByRole("button", { name: /Åpne i nødsituasjon/ }).click();
      await clinician.locator('section[data-section="medications"][data-state="loaded"][data-opened="FORHOYET_AKUTT"]').waitFor();
      const items = await med.locator("li.item").count();
      if (items < 1) throw new Error("the opened medications show no items");
      await t.shot(clinician, "kjapp-clinician-restricted-opened");
      await t.axe(clinician, "kjapp clinician, restricted part opened");
    });

    await t.step("kjapp/clinician-opens-restricted-lab-results-with-consent", async () => {
      // The restricted-part mechanism is the same for every part: lab
      // results are opened with consent, then shown as for the citizen.
      need(clinician, "the clinician's view did not load");
      const lab = clinician.locator('section[data-section="lab-results"]');
      await lab.and(clinician.locator('[data-state="restricted"]')).waitFor();
      if (!/Pasienten har sperret prøvesvar/.test(await lab.innerText())) throw new Error("the restricted lab results do not say the patient restricted them");
      if (await lab.locator(".lab-report").count()) throw new Error("restricted lab results show reports before they are opened");
      await t.axe(clinician, "kjapp clinician, lab results restricted");
      await lab.getByRole("button", { name: /Åpne med samtykke/ }).click();
      await clinician.locator('section[data-section="lab-results"][data-state="loaded"][data-opened="FORHOYET_SAMTYKKE"]').waitFor({ timeout: 40_000 });
      await labResultsShown(t, clinician);
      await t.shot(clinician, "kjapp-clinician-lab-results");
      await t.axe(clinician, "kjapp clinician, lab results opened");
      // A narrow screen (a phone): the reference range moves under the
      // value, nothing is cut off sideways.
      await clinician.setViewportSize({ width: 390, height: 844 });
      try {
        const row = lab.locator("tbody tr[data-obs]").first();
        const inline = row.locator(".lab-range-inline");
        if (await inline.count() && !(await inline.isVisible())) throw new Error("on a narrow screen the reference range is not shown under the value");
        const wide = await lab.evaluate((el) => [...el.querySelectorAll(".table-wrap")].some((w) => w.scrollWidth > w.clientWidth + 1));
        if (wide) throw new Error("on a narrow screen a lab result table is wider than the screen");
        await t.shot(clinician, "kjapp-clinician-lab-results-narrow");
        await t.axe(clinician, "kjapp clinician, lab results on a narrow screen");
      } finally {
        await clinician.setViewportSize({ width: 1280, height: 900 });
      }
    });

    await t.step("kjapp/clinician-opens-a-document", async () => {
      need(clinician, "the clinician's view did not load");
      const docs = clinician.locator('section[data-section="documents"]');
      await docs.and(clinician.locator('[data-state="loaded"]')).waitFor({ timeout: 40_000 });
      const row = docs.locator("tbody tr[data-doc]").first();
      await row.waitFor();
      await row.getByRole("button", { name: /^Åpne/ }).click();
      await docs.locator('tbody tr[data-doc-state="opened"], tbody tr[data-doc-state="refused"]').first().waitFor();
      if ((await row.getAttribute("data-doc-state")) !== "opened") {
        throw new Error(`the document was not opened: ${(await row.innerText()).replace(/\s+/g, " ")}`);
      }
      // The bytes came through the proxy: read the blob the app holds.
      const href = await row.locator("a.doc-download").getAttribute("href");
      const head = await clinician.evaluate(async (u) => {
        const b = await (await fetch(u)).arrayBuffer();
        return { size: b.byteLength, start: new TextDecoder().decode(b.slice(0, 5)) };
      }, href);
      if (head.size < 1) throw new Error("the opened document is empty");
      t.note(`document opened through the proxy: ${head.size} bytes, ${await row.getAttribute("data-content-type")}, starts ${JSON.stringify(head.start)}`);
      await t.shot(clinician, "kjapp-clinician-document-opened");
    });
    if (clinician) await clinician.context().close();

    await t.step("kjapp/clinician-refusal-shown", async () => {
      // A hospital doctor (purpose TREAT) may not claim AKUTT: the server
      // refuses with akutt-not-supported, and the app says why in Norwegian.
      const p = await t.newPage();
      await t.ehrLaunch(p, { persona: "hospital-doctor", patient: PATIENT, basis: "AKUTT", clientId: CLIENT_ID, launchUri: `${other}/launch.html` });
      await ready(p, "clinician");
      const crit = p.locator('section[data-section="critical"][data-state="refused"][data-reason="akutt-not-supported"]');
      await crit.waitFor();
      if (!/Akutt tilgang er ikke tillatt/.test(await crit.innerText())) throw new Error("the refusal is not explained in Norwegian");
      await t.shot(p, "kjapp-clinician-refused");
      await t.axe(p, "kjapp clinician, refused");
      // The clinician declares consent instead, and the record opens.
      await p.getByRole("radio", { name: "Samtykke", exact: true }).check();
      await p.getByRole("button", { name: "Bruk tilgangsgrunnlaget" }).click();
      await p.locator('.patient-banner .basis[data-basis="SAMTYKKE"]').waitFor();
      await recordLoaded(p, { critical: true });
      await p.context().close();
    });

    await t.step("kjapp/citizen-log-shows-restricted-opening", async () => {
      need(citizen, "the citizen did not get in");
      await citizen.reload();
      await ready(citizen, "citizen");
      await openPanel(citizen, "logg", "Logg over bruk");
      // The opening is among the newest events; older pages are read
      // until it shows (later checks may have added events since).
      const opened = citizen.locator('#logg tbody tr[data-markers~="restricted-opened"][data-markers~="emergency"]');
      for (let page = 0; !(await opened.count()) && page < 10; page++) {
        const older = citizen.getByRole("button", { name: "Vis eldre hendelser" });
        if (!(await older.count())) break;
        const n = Number(await citizen.locator("#logg").getAttribute("data-count"));
        await older.click();
        await citizen.waitForFunction((before) => Number(document.querySelector("#logg").dataset.count) > before &&
          document.querySelector("#logg").dataset.state === "loaded", n);
      }
      if (!(await opened.count())) throw new Error("Logg over bruk shows no opening of a restricted part in an emergency");
      const text = await opened.first().innerText();
      if (!/Sperrede opplysninger ble åpnet/.test(text)) throw new Error(`the opening is not marked: ${text}`);
      await t.shot(citizen, "kjapp-citizen-usage-log-opening");
    });

    await t.step("kjapp/citizen-lifts-restriction", async () => {
      need(citizen, "the citizen did not get in");
      await openPanel(citizen, "personvern", "Personvern");
      const sp = citizen.locator('#personvern [data-setting="sperring"][data-state="active"]');
      await sp.waitFor();
      await sp.getByRole("button", { name: "Opphev all sperring" }).click();
      await citizen.locator('#personvern [data-setting="sperring"][data-state="inactive"]').waitFor();
    });

    await t.step("kjapp/citizen-removes-portal-access", async () => {
      // The app offers no way back (restored by citizen support or with a
      // treating HP); the check has citizen support restore it through the
      // API afterwards, as the Go suite's rules/8-portal-access-removed does.
      need(citizen, "the citizen did not get in");
      await openPanel(citizen, "personvern", "Personvern");
      const pa = citizen.locator('#personvern [data-setting="portaltilgang"]');
      await pa.getByRole("button", { name: "Fjern min tilgang på nett" }).click();
      await pa.getByRole("button", { name: "Ja, fjern tilgangen min" }).click();
      await citizen.locator('#personvern [data-setting="portaltilgang"][data-state="active"]').waitFor();
      const text = await citizen.locator('#personvern [data-setting="portaltilgang"]').innerText();
      if (!/kundesenteret/.test(text)) throw new Error(`the page does not say how access is restored: ${text}`);
      if (await citizen.locator('#personvern [data-setting="portaltilgang"] button').count()) throw new Error("the app offers to restore portal access online");
      await openPanel(citizen, "logg", "Logg over bruk");
      await citizen.locator('#logg[data-state="refused"] [data-reason="portal-access-removed"]').waitFor();
      await t.shot(citizen, "kjapp-citizen-portal-access-removed");
      await t.axe(citizen, "kjapp citizen, portal access removed");
      const left = await restore(t, citizen, created);
      if (left.some((x) => !/lifted \(200\)/.test(x))) throw new Error(`portal access could not be restored: ${left.join("; ")}`);
    });
  } finally {
    await restore(t, citizen, created);
  }

  // The same app served by the server itself at /app/.
  if (!served) {
    t.skip("kjapp/own-origin", `${own}/launch.html is not served`);
    return;
  }
  await t.step("kjapp/own-origin-clinician", async () => {
    const p = await t.newPage();
    await t.ehrLaunch(p, { persona: "hospital-doctor", patient: PATIENT, basis: "SAMTYKKE", clientId: CLIENT_ID, launchUri: `${own}/launch.html` });
    await ready(p, "clinician");
    if (!p.url().startsWith(own)) throw new Error(`the app ran at ${p.url()}, not at ${own}`);
    await recordLoaded(p, { critical: true });
    await noUncaught(t, p);
    await t.shot(p, "kjapp-own-origin-clinician");
    await p.context().close();
  });
  await t.step("kjapp/own-origin-citizen", async () => {
    const p = await t.newPage();
    await standaloneCitizen(t, p, own);
    if (!p.url().startsWith(own)) throw new Error(`the app ran at ${p.url()}, not at ${own}`);
    await recordLoaded(p, { critical: true });
    await noUncaught(t, p);
    await t.shot(p, "kjapp-own-origin-citizen");
    await p.context().close();
  });
  // What the README promises a newcomer: from the landing page, one click
  // to the clinician view and two to the citizen view.
  await t.step("kjapp/landing-page-clicks", async () => {
    const p = await t.newPage();
    await p.goto(`${t.base}/`);
    await t.shot(p, "landing-page");
    await t.axe(p, "landing page (/)");
    await p.locator("#start-clinician").click(); // 1
    await ready(p, "clinician");
    await recordLoaded(p, { critical: true });
    await p.goto(`${t.base}/`);
    await p.locator("#start-citizen").click(); // 1
    const button = p.locator('button[name="persona"][value="citizen"]');
    await button.click(); // 2
    await ready(p, "citizen");
    await recordLoaded(p, { critical: true });
    await noUncaught(t, p);
    await p.context().close();
  });
}

function need(v, why) {
  if (!v) throw new Error(`not run: ${why}`);
}

// ready waits until the app has finished loading its view.
async function ready(page, view) {
  // The app's page (index.html; a Go file server answers it as the
  // directory, /app/), after the launch page and the login have passed.
  await page.waitForURL((u) => /\/app\/(index\.html)?$/.test(u.pathname), { timeout: 45_000, waitUntil: "commit" });
  await page.waitForFunction(() => document.body && document.querySelector("main[data-view], body[data-state=error]") &&
    ["ready", "error"].includes(document.body.dataset.state), null, { timeout: 45_000 });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== "ready") {
    const text = (await page.locator("main").innerText()).replace(/\s+/g, " ");
    throw new Error(`the app stopped with an error at ${page.url()}: ${text}`);
  }
  const got = await page.locator("main").getAttribute("data-view");
  if (got !== view) throw new Error(`the app shows the ${got} view, want ${view}`);
}

// standaloneCitizen logs in as the citizen on the development login page.
async function standaloneCitizen(t, page, app) {
  await page.goto(`${app}/launch.html?iss=${encodeURIComponent(t.base)}`);
  const button = page.locator('button[name="persona"][value="citizen"]');
  await button.waitFor({ timeout: 30_000 });
  await button.click();
  await ready(page, "citizen");
}

// recordLoaded checks the record's sections: all done loading, critical
// information first on the page and (when asked) with content, and the
// named parts shown as restricted.
async function recordLoaded(page, { critical, restricted = [] }) {
  await page.waitForFunction(() => {
    const s = [...document.querySelectorAll("section[data-section]")];
    // Five parts for health personnel; the citizen's view has no journal
    // documents (they are shared with health personnel).
    return s.length >= 3 && s.every((x) => !["loading", "opening"].includes(x.dataset.state));
  }, null, { timeout: 45_000 });
  const order = await page.$$eval("section[data-section]", (els) => els.map((e) => ({
    key: e.dataset.section, state: e.dataset.state, top: e.getBoundingClientRect().top + window.scrollY,
  })));
  if (order[0].key !== "critical") throw new Error(`the first section is ${order[0].key}, not critical information`);
  if (order.some((o) => o.top < order[0].top)) throw new Error("a section is shown above critical information");
  if (critical) {
    const c = order[0];
    if (c.state !== "loaded") throw new Error(`critical information is ${c.state}`);
    const n = await page.locator('section[data-section="critical"] li.item').count();
    if (n < 1) throw new Error("critical information shows no allergies or flags");
  }
  for (const key of restricted) {
    const o = order.find((x) => x.key === key);
    if (!o || o.state !== "restricted") throw new Error(`${key} is ${o && o.state}, want restricted`);
  }
}

// labResultsShown checks the lab results (Prøvesvar) of the demo patient:
// loaded, at least one report with a date and a panel name, the
// laboratory, results with a value; reference ranges as "3,5–5", "< 5" or
// "> 15"; every result marked outside its range says so in words (Høy,
// Lav, Kritisk høy, ...), not by colour alone; preliminary reports say
// Foreløpig; microbiology shows its conclusion. A failed laboratory, as the
// conformance stack's down-lab, is named as failed document sources are.
async function labResultsShown(t, page) {
  const lab = page.locator('section[data-section="lab-results"]');
  await page.waitForFunction(() => {
    const s = document.querySelector('section[data-section="lab-results"]');
    return s && !["loading", "opening"].includes(s.dataset.state);
  }, null, { timeout: 45_000 });
  const state = await lab.getAttribute("data-state");
  if (state !== "loaded") throw new Error(`Prøvesvar is ${state}: ${(await lab.innerText()).replace(/\s+/g, " ")}`);
  const heading = (await lab.locator("h2, h3").first().innerText()).trim();
  if (heading !== "Prøvesvar") throw new Error(`the lab results' heading is "${heading}"`);
  const reports = lab.locator("li.lab-report");
  const n = await reports.count();
  if (n < 1) throw new Error(`the demo patient's lab results show no reports: ${(await lab.innerText()).replace(/\s+/g, " ")}`);
  const title = await reports.first().locator(".lab-title").innerText();
  if (!/^\d{2}\.\d{2}\.\d{4}: \S/.test(title)) throw new Error(`the newest report's heading has no date and panel: "${title}"`);
  const from = await reports.first().locator(".item-meta").innerText();
  if (!/\S/.test(from) || !/prøve tatt/.test(from)) throw new Error(`the newest report does not say where and when: "${from}"`);
  const dates = await reports.evaluateAll((els) => els.map((e) => e.querySelector(".lab-title").textContent.slice(0, 10).split(".").reverse().join("")));
  if (dates.some((d, i) => i && d > dates[i - 1])) throw new Error(`the reports are not newest first: ${dates.join(", ")}`);
  const rows = lab.locator("tbody tr[data-obs]");
  const values = await rows.evaluateAll((trs) => trs.map((tr) => ({
    name: tr.querySelector("th").textContent.replace(/\u2060/g, "").trim(), // the app joins B- to its name
    value: tr.querySelector(".lab-number") ? tr.querySelector(".lab-number").textContent.trim() : "",
    range: tr.querySelector("td.lab-range") ? tr.querySelector("td.lab-range").textContent.trim() : "",
    flag: tr.dataset.flag,
    flagText: tr.querySelector(".lab-flag") ? tr.querySelector(".lab-flag").innerText.trim() : "",
  })));
  if (!values.some((v) => v.name && /\d/.test(v.value))) throw new Error("no lab result shows a numeric value");
  if (!values.some((v) => /^(\d+(,\d+)?–\d+(,\d+)?|[<>] \d+(,\d+)?)/.test(v.range))) {
    throw new Error(`no lab result shows a reference range: ${values.map((v) => v.range).join(" | ")}`);
  }
  const words = { H: "Høy", L: "Lav", HH: "Kritisk høy", LL: "Kritisk lav" };
  for (const v of values.filter((x) => words[x.flag])) {
    if (!v.flagText.includes(words[v.flag])) throw new Error(`${v.name} (${v.value}) is flagged ${v.flag} but says "${v.flagText}"`);
  }
  const flagged = values.filter((v) => words[v.flag]);
  for (const el of await lab.locator(".lab-report[data-status=preliminary] .lab-title").all()) {
    if (!/Foreløpig/.test(await el.innerText())) throw new Error(`a preliminary report is not marked Foreløpig: ${await el.innerText()}`);
  }
  for (const el of await lab.locator('.lab-report[data-category="MB"]').all()) {
    const c = await el.locator(".lab-conclusion").count();
    const rowsHere = await el.locator("tbody tr").count();
    if (!c && !rowsHere) throw new Error(`a microbiology report shows neither conclusion nor results: ${await el.innerText()}`);
  }
  const failed = lab.locator('[data-sources="partial"]');
  const failedText = (await failed.count()) ? (await failed.innerText()).replace(/\s+/g, " ") : "";
  if (failedText && !/prøvesvarene derfra mangler i listen/.test(failedText)) throw new Error(`the failed laboratory is not named as such: ${failedText}`);
  t.note(`Prøvesvar: ${n} reports, ${values.length} results, ${flagged.length} outside the range` +
    `${flagged.length ? ` (${flagged.map((v) => `${v.name} ${v.value}: ${v.flagText}`).join("; ")})` : ""}` +
    `${failedText ? "; a failed laboratory is named" : ""}`);
  return { reports: n, results: values.length, flagged: flagged.length };
}

async function openPanel(page, id, name) {
  await page.getByRole("navigation", { name: "Deler av tjenesten" }).getByRole("link", { name }).click();
  await page.locator(`#${id}:not([hidden])`).waitFor();
  await page.waitForFunction((i) => ["loaded", "refused"].includes(document.getElementById(i).dataset.state), id);
}

// noUncaught fails on errors the app's scripts raised. Refusals (HTTP 4xx
// answers the app shows) are expected; complaints about the server's
// Content-Security-Policy header are the server's and only noted.
async function noUncaught(t, page) {
  const events = t.events(page).filter((e) => /^uncaught|^console error/.test(e) && !/status of 4\d\d/.test(e));
  const csp = events.filter((e) => /Content-Security-Policy directive/.test(e));
  if (csp.length) t.note(`the server's CSP header: ${[...new Set(csp.map((e) => e.replace(/^console error on \S+: /, "")))].join("; ")}`);
  const bad = events.filter((e) => !csp.includes(e));
  if (bad.length) throw new Error(`the page reported errors: ${bad.join("; ")}`);
}

// restore lifts what the checks put in force and did not lift themselves:
// through the citizen's own session (the app's token in sessionStorage),
// as the app does, and only Consents the checks created. A removal of
// portal access is lifted by citizen support, as rule 8 says.
async function restore(t, page, created) {
  if (!created.size) return [];
  const support = await t.token("citizen-support", "openid user/Consent.cruds").catch((e) => {
    t.note(`no citizen-support token: ${e.message}`);
    return "";
  });
  if (!page || page.isClosed()) {
    t.note(`could not lift Consents ${[...created].join(", ")}: the citizen's page is gone`);
    return ["the citizen's page is gone"];
  }
  const left = await page.evaluate(async ([ids, support]) => {
    const key = JSON.parse(sessionStorage.getItem("SMART_KEY") || "null");
    const st = key && JSON.parse(sessionStorage.getItem(key) || "null");
    if (!st) return ["no session"];
    const base = st.serverUrl.replace(/\/+$/, "");
    const h = { Authorization: `Bearer ${st.tokenResponse.access_token}`, Accept: "application/fhir+json" };
    const out = [];
    for (const id of ids) {
      const r = await fetch(`${base}/Consent/${id}`, { headers: h, cache: "no-store" });
      if (!r.ok) {
        out.push(`${id}: GET ${r.status}`);
        continue;
      }
      const c = await r.json();
      if (c.status !== "active") continue;
      c.status = "inactive";
      const now = new Date(Math.max(Date.now(), Date.parse(c.dateTime))).toISOString().replace(/\.\d{3}Z$/, "Z");
      c.dateTime = now;
      delete c.meta.versionId;
      delete c.meta.lastUpdated;
      const as = JSON.stringify(c).includes('"portaltilgang"') ? { ...h, Authorization: `Bearer ${support}` } : h;
      const p = await fetch(`${base}/Consent/${id}`, { method: "PUT", headers: { ...as, "Content-Type": "application/fhir+json" }, body: JSON.stringify(c) });
      out.push(`${id}: lifted (${p.status})`);
    }
    return out;
  }, [[...created], support]).catch((e) => [`failed: ${e.message}`]);
  if (left.length) t.note(`restored after the checks: ${left.join("; ")}`);
  return left;
}
