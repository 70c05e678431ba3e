// The SMART JavaScript client library (fhirclient, its Node adapter)
// through a real EHR launch against the server, then reads with the
// client it hands out.
//
// The app is driven as a server-side Node app would be: the EHR opens the
// app's launch URL with iss and launch, the library redirects to the
// authorisation endpoint, the server redirects back to the app's
// registered redirect URI with a code, and the library's ready() trades
// it for a token. Instead of listening on the redirect URI (it is
// registered with a fixed port), the script hands the adapter the
// request objects the app's HTTP server would have received, with one
// session shared between the two requests.
//
//   KJ_BASE_URL=http://127.0.0.1:8080 node ehr-launch.mjs

import smart from "fhirclient";

import {
  ACCESS_BASIS, BASE, CLIENT_ID, PRACTITIONER_SCOPE, REDIRECT_URI, Reporter,
  assert, assertEqual, createLaunch, createPatient, flag, smartConfiguration,
} from "./lib.mjs";

const app = new URL(REDIRECT_URI);
const session = {};

// appRequest is what the app's HTTP server receives for path (on the
// redirect URI's origin); appResponse records a redirect the library makes.
function appRequest(path) {
  return { url: path, headers: { host: app.host }, socket: {}, session };
}
function appResponse() {
  const res = { status: 0, location: "" };
  res.writeHead = (status, headers) => {
    res.status = status;
    res.location = headers.location || headers.Location || "";
  };
  res.end = () => {};
  return res;
}

const r = new Reporter();

const patient = await r.check("fhirclient/fixture-patient", () => createPatient());

let authorizeURL;
await r.check("fhirclient/authorize", async () => {
  const launch = await createLaunch("gp", patient.id);
  // The EHR opens the app's launch page with iss and launch.
  const req = appRequest(`/launch?${new URLSearchParams({ iss: BASE, launch })}`);
  const res = appResponse();
  await smart(req, res).authorize({ clientId: CLIENT_ID, scope: PRACTITIONER_SCOPE, redirectUri: REDIRECT_URI });
  assert(res.status === 302 && res.location, `authorize() did not redirect (status ${res.status})`);
  authorizeURL = new URL(res.location);
  const cfg = await smartConfiguration();
  assertEqual(authorizeURL.origin + authorizeURL.pathname, cfg.authorization_endpoint, "redirect target (the discovered authorization_endpoint)");
  const q = authorizeURL.searchParams;
  assertEqual(q.get("launch"), launch, "launch parameter");
  assertEqual(q.get("aud"), BASE, "aud parameter");
  assertEqual(q.get("code_challenge_method"), "S256", "code_challenge_method (the library uses PKCE when discovery lists S256)");
});

let callback;
await r.check("fhirclient/authorization-code", async () => {
  const res = await fetch(authorizeURL, { redirect: "manual" });
  const loc = res.headers.get("location");
  assert(res.status >= 300 && res.status < 400 && loc, `authorization endpoint: status ${res.status}, no redirect`);
  callback = new URL(loc);
  assertEqual(callback.origin + callback.pathname, REDIRECT_URI, "redirect to the app");
  const err = callback.searchParams.get("error");
  assert(!err, `authorisation refused: ${err} ${callback.searchParams.get("error_description") || ""}`);
  assert(callback.searchParams.get("code"), "no code in the redirect to the app");
  assertEqual(callback.searchParams.get("state"), authorizeURL.searchParams.get("state"), "state");
});

let client;
await r.check("fhirclient/ready", async () => {
  client = await smart(appRequest(callback.pathname + callback.search), appResponse()).ready();
  const tr = client.state.tokenResponse;
  assert(tr.access_token, "no access token");
  assertEqual(client.patient.id, patient.id, "patient in context");
  const granted = String(tr.scope || "").split(" ");
  for (const s of ["launch", "patient/*.rs", "patient/Flag.cud"]) {
    assert(granted.includes(s), `granted scope ${JSON.stringify(tr.scope)} lacks ${s}`);
  }
});

await r.check("fhirclient/fhir-user", async () => {
  const user = client.user.fhirUser;
  assert(user, "no fhirUser in the id_token (scopes openid fhirUser)");
  assertEqual(client.user.resourceType, "Practitioner", "fhirUser type");
});

await r.check("fhirclient/patient-read", async () => {
  const p = await client.patient.read({ headers: ACCESS_BASIS });
  assertEqual(p.resourceType, "Patient", "resourceType");
  assertEqual(p.id, patient.id, "Patient.id");
  assert((p.identifier || []).some((i) => i.value === patient.pid), "the fed person number is not among Patient.identifier");
});

let created;
await r.check("fhirclient/flag-create", async () => {
  created = await client.create(flag(patient.id, "Pacemaker (fhirclient)"), { headers: ACCESS_BASIS });
  assertEqual(created.resourceType, "Flag", "resourceType");
  assert(created.id, "created Flag has no id");
});

await r.check("fhirclient/flag-search", async () => {
  const bundle = await client.request({ url: `Flag?patient=${patient.id}`, headers: ACCESS_BASIS });
  assertEqual(bundle.resourceType, "Bundle", "resourceType");
  assertEqual(bundle.type, "searchset", "Bundle.type");
  const ids = (bundle.entry || []).map((e) => e.resource && e.resource.id);
  assert(ids.includes(created.id), `the created Flag/${created.id} is not in the searchset (${ids.join(", ") || "empty"})`);
  for (const e of bundle.entry || []) {
    if (e.resource.resourceType === "Flag") assertEqual(e.resource.subject.reference, `Patient/${patient.id}`, "Flag.subject");
  }
});

await r.check("fhirclient/without-access-basis", async () => {
  // A health professional's request without the nhn-access-basis header
  // is refused with 403; the library reports the server's status.
  try {
    await client.request(`Flag?patient=${patient.id}`);
  } catch (err) {
    assertEqual(err.status, 403, "status");
    return;
  }
  throw new Error("a search without nhn-access-basis was answered");
});

r.done();
