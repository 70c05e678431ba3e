// A third-party SMART app in the browser: testapp/ (fhirclient's browser
// build), served from the app origin, another origin than the server's.
//
//  - EHR launch: the development EHR page (/ehr) launches the app as
//    hospital-doctor for the demo patient with access basis SAMTYKKE; the
//    app reads the patient, the user (fhirUser) and the patient's
//    AllergyIntolerance and Flag resources.
//  - Standalone launch: the app opened with ?iss=; the server's login page
//    (one submit button per persona, a patient select for practitioners)
//    as hospital-doctor, then as the citizen.
//  - axe-core on the server's /ehr page and login page.
//  - Negative: against a server started with --cors-origins none
//    (KJ_NOCORS_BASE_URL) the same launches fail in the browser, blocked
//    by CORS; and with the very same requests that pass against the first
//    server, discovery, /metadata, the token endpoint and a FHIR read are
//    each shown blocked.

const CLIENT_ID = "kj-demo-app";
// The demo patient with critical information (an allergy and a critical
// condition): the demo citizen (internal/seed/citizen.go), stored by
// `serve --demo-patients`.
const PATIENT = process.env.KJ_BROWSER_PATIENT || "pas-citizen-demo";
const CITIZEN_PATIENT = "pas-citizen-demo";
const HOSPITAL_DOCTOR_HPR = "990018265"; // testdata/smart/personas.json

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// finished waits for the test app's data-state marker on whatever page the
// browser ended on and returns window.kjResult, or throws with the app's
// error text (or, when the browser never got back to the app, where it is
// and what that page says).
async function finished(t, page, timeout = 30_000) {
  try {
    await page.waitForSelector("body[data-state=done], body[data-state=error]", { timeout });
  } catch {
    const at = page.url();
    const said = await page.locator("[role=alert], .err, h1").allInnerTexts().catch(() => []);
    throw new Error(`the app did not finish (the browser is at ${at}${said.length ? `, which says: ${said.join(" / ")}` : ""})`);
  }
  const state = await page.getAttribute("body", "data-state");
  if (state === "error") {
    throw new Error(`the app failed at ${new URL(page.url()).pathname}: ${await page.getAttribute("body", "data-error")}`);
  }
  return page.evaluate(() => window.kjResult);
}

function checkCritical(r, patient) {
  assert(r.patient.id === patient, `Patient read: got Patient/${r.patient.id}, want Patient/${patient}`);
  assert(r.allergies.length > 0, `no AllergyIntolerance read for Patient/${patient}`);
  assert(r.flags.length > 0, `no Flag read for Patient/${patient}`);
}

function checkOnAppOrigin(t, page) {
  const at = new URL(page.url());
  assert(at.origin === t.appOrigin, `the app ended on ${at.origin}, not on the app origin ${t.appOrigin}`);
}

// standaloneLogin opens the test app with iss=base and waits for the
// server's login page.
async function standaloneLogin(t, page, base) {
  await page.goto(`${t.appOrigin}/launch.html?iss=${encodeURIComponent(base)}`);
  await page.waitForURL((u) => u.href.startsWith(base), { timeout: 20_000 }).catch(async () => {
    const err = await page.getAttribute("body", "data-error").catch(() => null);
    throw new Error(`the app did not reach the login page of ${base} (at ${page.url()}${err ? `: ${err}` : ""})`);
  });
  await page.waitForSelector("button[name=persona]", { timeout: 20_000 }).catch(() => {
    throw new Error(`no persona buttons (button[name=persona]) on the login page ${page.url()}`);
  });
}

async function choosePersona(page, persona) {
  const button = page.locator(`button[name=persona][value="${persona}"]`);
  assert((await button.count()) === 1, `the login page has no button for persona ${persona}`);
  await button.click();
}

export default async function (t) {
  const launchUri = `${t.appOrigin}/launch.html`;

  // ---- EHR launch -----------------------------------------------------------
  await t.step("thirdparty/ehr-launch", async () => {
    const page = await t.newPage();
    await t.ehrLaunch(page, { persona: "hospital-doctor", patient: PATIENT, basis: "SAMTYKKE", clientId: CLIENT_ID, launchUri });
    const r = await finished(t, page);
    await t.shot(page, "thirdparty-ehr-launch");
    checkOnAppOrigin(t, page);
    checkCritical(r, PATIENT);
    assert(r.tokenPatient === PATIENT, `token response patient: got ${JSON.stringify(r.tokenPatient)}, want ${PATIENT}`);
    assert(r.fhirUser === `Practitioner/${HOSPITAL_DOCTOR_HPR}`, `fhirUser: got ${r.fhirUser}, want Practitioner/${HOSPITAL_DOCTOR_HPR}`);
    assert(r.user.resourceType === "Practitioner" && r.user.hpr === HOSPITAL_DOCTOR_HPR,
      `fhirUser read: got ${r.user.resourceType}/${r.user.id} with HPR ${JSON.stringify(r.user.hpr)}, want the Practitioner with HPR ${HOSPITAL_DOCTOR_HPR}`);
    assert(r.tokenBasis === "SAMTYKKE", `token response nhn_access_basis: got ${JSON.stringify(r.tokenBasis)}, want the basis chosen in the EHR (SAMTYKKE)`);
    assert(r.smartStyleUrl, "token response has no smart_style_url");
  });

  // ---- the EHR page itself ---------------------------------------------------
  await t.step("thirdparty/ehr-page-axe", async () => {
    const page = await t.newPage();
    const res = await page.goto(`${t.base}/ehr`);
    assert(res && res.ok(), `GET ${t.base}/ehr: ${res ? res.status() : "no answer"}`);
    await t.shot(page, "ehr-page");
    await t.axe(page, "EHR launch page (/ehr)");
  });

  // ---- standalone launch as hospital doctor ---------------------------------
  const doctor = await t.step("thirdparty/standalone-login-page", async () => {
    const page = await t.newPage();
    await standaloneLogin(t, page, t.base);
    await t.shot(page, "login-page");
    return page;
  });
  await t.step("thirdparty/login-page-axe", async () => {
    assert(doctor, "the login page was not reached (thirdparty/standalone-login-page)");
    await t.axe(doctor, "login page (/auth/authorize)");
  });
  await t.step("thirdparty/standalone-hospital-doctor", async () => {
    assert(doctor, "the login page was not reached (thirdparty/standalone-login-page)");
    const select = doctor.locator("select[name=patient]");
    assert((await select.count()) === 1, "the login page has no patient select (select[name=patient])");
    const values = await select.locator("option").evaluateAll((os) => os.map((o) => o.value));
    assert(values.includes(PATIENT), `the patient select does not offer ${PATIENT} (offers ${values.slice(0, 8).join(", ")}…)`);
    await select.selectOption(PATIENT);
    await choosePersona(doctor, "hospital-doctor");
    const r = await finished(t, doctor);
    await t.shot(doctor, "thirdparty-standalone-hospital-doctor");
    checkOnAppOrigin(t, doctor);
    checkCritical(r, PATIENT);
    assert(r.fhirUser === `Practitioner/${HOSPITAL_DOCTOR_HPR}` && r.user.hpr === HOSPITAL_DOCTOR_HPR,
      `fhirUser: got ${r.fhirUser} (HPR ${JSON.stringify(r.user.hpr)}), want Practitioner/${HOSPITAL_DOCTOR_HPR}`);
  });

  // ---- standalone launch as the citizen -------------------------------------
  await t.step("thirdparty/standalone-citizen", async () => {
    const page = await t.newPage();
    await standaloneLogin(t, page, t.base);
    await choosePersona(page, "citizen");
    const r = await finished(t, page);
    await t.shot(page, "thirdparty-standalone-citizen");
    checkOnAppOrigin(t, page);
    checkCritical(r, CITIZEN_PATIENT);
    assert(r.fhirUser === `Patient/${CITIZEN_PATIENT}` && r.user.resourceType === "Patient" && r.user.id === CITIZEN_PATIENT,
      `fhirUser: got ${r.fhirUser} read as ${r.user.resourceType}/${r.user.id}, want Patient/${CITIZEN_PATIENT}`);
  });

  // ---- negative: the same against a server without CORS ----------------------
  if (!t.nocorsBase) {
    const why = "KJ_NOCORS_BASE_URL (a server started with --cors-origins none) is not set";
    t.skip("thirdparty/cors-none-ehr-launch-blocked", why);
    t.skip("thirdparty/cors-none-standalone-blocked", why);
    t.skip("thirdparty/cors-none-requests-blocked", why);
    return;
  }
  const nocors = t.nocorsBase;

  // blocked asserts that the app stopped with an error on the launch page
  // because the browser would not let it read the discovery document, and
  // that the server did answer that request (so CORS, nothing else, is
  // why): returns the error and the browser's console message.
  async function blocked(page) {
    try {
      await page.waitForSelector("body[data-state=error], body[data-state=done]", { timeout: 30_000 });
    } catch {
      throw new Error(`the launch neither failed nor finished (at ${page.url()})`);
    }
    const state = await page.getAttribute("body", "data-state");
    assert(state === "error", `against ${nocors} (--cors-origins none) the app got through (data-state=${state}); CORS did not stop it`);
    assert(new URL(page.url()).origin === t.appOrigin, `the app left its origin: ${page.url()}`);
    const error = await page.getAttribute("body", "data-error");
    const events = t.events(page);
    const cors = events.find((e) => /blocked by CORS policy/i.test(e));
    assert(cors, `the app failed (${error}) but Chromium reported no CORS block`);
    const res = await fetch(`${nocors}/.well-known/smart-configuration`);
    assert(res.ok, `the server without CORS does not answer its discovery document (${res.status}), so this shows nothing about CORS`);
    assert(!res.headers.get("access-control-allow-origin"), "the server started with --cors-origins none sends Access-Control-Allow-Origin");
    return { error, cors };
  }

  await t.step("thirdparty/cors-none-ehr-launch-blocked", async () => {
    const page = await t.newPage();
    await t.ehrLaunch(page, {
      base: nocors, persona: "hospital-doctor", patient: PATIENT, basis: "SAMTYKKE", clientId: CLIENT_ID, launchUri,
    });
    const { error, cors } = await blocked(page);
    await t.shot(page, "thirdparty-cors-none-ehr-launch");
    t.note(`EHR launch against ${nocors}: the app failed with "${error}"; Chromium: ${cors}`);
  });

  await t.step("thirdparty/cors-none-standalone-blocked", async () => {
    const page = await t.newPage();
    await page.goto(`${t.appOrigin}/launch.html?iss=${encodeURIComponent(nocors)}`);
    const { error, cors } = await blocked(page);
    await t.shot(page, "thirdparty-cors-none-standalone");
    t.note(`standalone launch against ${nocors}: the app failed with "${error}"; Chromium: ${cors}`);
  });

  // The launches stop at the first request (discovery). The requests after
  // it are each blocked too: from the app origin, the same fetches go
  // through against the first server and are refused against the second.
  await t.step("thirdparty/cors-none-requests-blocked", async () => {
    const page = await t.newPage();
    await page.goto(`${t.appOrigin}/index.html`);
    // Each server's own token endpoint, read from Node (no CORS there).
    const tokenEndpoint = async (base) => {
      const res = await fetch(`${base}/.well-known/smart-configuration`);
      assert(res.ok, `GET ${base}/.well-known/smart-configuration: ${res.status}`);
      return (await res.json()).token_endpoint;
    };
    const probe = async (base) => page.evaluate(async ({ base, token }) => {
      const attempt = async (what, url, init) => {
        try {
          const res = await fetch(url, init);
          return { what, ok: true, status: res.status };
        } catch (err) {
          return { what, ok: false, error: String((err && err.message) || err) };
        }
      };
      return [
        await attempt("discovery", `${base}/.well-known/smart-configuration`),
        await attempt("metadata", `${base}/metadata`, { headers: { accept: "application/fhir+json" } }),
        // A simple request (no preflight): the answer comes, but the page may not read it.
        await attempt("token", token, {
          method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
          body: "grant_type=authorization_code&code=nothing&client_id=kj-demo-app",
        }),
        // Authorization and nhn-access-basis need a preflight (OPTIONS).
        await attempt("fhir-read", `${base}/Patient/pas-citizen-demo`, {
          headers: { authorization: "Bearer not-a-token", "nhn-access-basis": "SAMTYKKE", accept: "application/fhir+json" },
        }),
      ];
    }, { base, token: await tokenEndpoint(base) });
    const withCors = await probe(t.base);
    const withoutCors = await probe(nocors);
    const bad = withCors.filter((r) => !r.ok);
    assert(!bad.length, `from ${t.appOrigin}, against ${t.base} (CORS on) these were blocked: ${bad.map((r) => `${r.what}: ${r.error}`).join("; ")}`);
    const through = withoutCors.filter((r) => r.ok);
    assert(!through.length, `from ${t.appOrigin}, against ${nocors} (--cors-origins none) these got through: ${through.map((r) => `${r.what} (${r.status})`).join(", ")}`);
    const cors = t.events(page).filter((e) => /blocked by CORS policy/i.test(e));
    assert(cors.length >= withoutCors.length, `Chromium reported ${cors.length} CORS blocks for ${withoutCors.length} refused requests`);
    t.note(`from the app origin: ${withCors.map((r) => `${r.what} ${r.status}`).join(", ")} against ${t.base}; ` +
      `all four refused by the browser against ${nocors} (${withoutCors[0].error})`);
  });
}
