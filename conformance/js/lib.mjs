// Shared helpers of the JavaScript client checks: configuration, fixtures
// (a patient fed as the feeder system through SMART backend services, an
// EHR launch through the development launch endpoint) and a reporter.
// Only Node's standard library is used here; the clients under test are
// imported by the check scripts themselves.

import { createHash, createPrivateKey, createPublicKey, randomBytes, randomInt, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

export const BASE = (process.env.KJ_BASE_URL || "").replace(/\/+$/, "");
if (!BASE) {
  console.error("KJ_BASE_URL (the FHIR base URL of the server under test) is required");
  process.exit(2);
}
const FEEDER_KEY = process.env.KJ_FEEDER_KEY || root + "testdata/smart/feeder-dev-key.pem";
const FEEDER_CLIENT = process.env.KJ_FEEDER_CLIENT || "kj-feeder";

// The public SMART client the checks launch as, and a redirect URI
// registered for it (testdata/smart/clients.json). Nothing listens there:
// the scripts read the redirect instead of following it.
export const CLIENT_ID = process.env.KJ_JS_CLIENT_ID || "kj-demo-app";
export const REDIRECT_URI = process.env.KJ_JS_REDIRECT_URI || "http://localhost:3000/callback";
export const PRACTITIONER_SCOPE = "launch openid fhirUser patient/*.rs patient/Flag.cud";

export const SYSTEM_FNR = "urn:oid:2.16.578.1.12.4.1.4.1";
export const SYSTEM_HPR = "urn:oid:2.16.578.1.12.4.1.4.4";
// HPR number of the gp persona (testdata/smart/personas.json): fixture
// patients name it as their GP, so the gp's UNNTAK access basis holds.
export const GP_HPR = "990010000";
export const ACCESS_BASIS = { "nhn-access-basis": "UNNTAK" };
export const FLAG_CATEGORY = "https://kjernejournal.example.no/fhir/CodeSystem/kritisk-info-type";

// Reporter prints "PASS js/<name>" or "FAIL js/<name>: reason" per check.
// After a failure the later checks of the script are reported as skipped,
// since each builds on the one before.
export class Reporter {
  constructor() {
    this.failed = null;
  }

  async check(name, fn) {
    if (this.failed) {
      console.log(`SKIP js/${name}: js/${this.failed} failed`);
      return undefined;
    }
    try {
      const out = await fn();
      console.log(`PASS js/${name}`);
      return out;
    } catch (err) {
      this.failed = name;
      console.log(`FAIL js/${name}: ${describe(err)}`);
      return undefined;
    }
  }

  done() {
    process.exitCode = this.failed ? 1 : 0;
  }
}

// describe makes one line of an error, with the server's OperationOutcome
// when a client carried one.
export function describe(err) {
  let s = err && err.message ? err.message : String(err);
  if (err && err.cause) s += `: ${err.cause.code || err.cause.message || err.cause}`;
  const data = err && err.response && err.response.data;
  const outcome = outcomeText(data);
  if (outcome) s += ` (${outcome})`;
  return s.replace(/\s+/g, " ");
}

export function outcomeText(data) {
  if (!data || data.resourceType !== "OperationOutcome") return "";
  return (data.issue || []).map((i) => `${i.severity}/${i.code}: ${i.diagnostics || (i.details && i.details.text) || ""}`).join("; ");
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

export function assertEqual(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

let smartConfig;

// smartConfiguration reads the server's SMART discovery document.
export async function smartConfiguration() {
  if (!smartConfig) {
    const res = await fetch(BASE + "/.well-known/smart-configuration");
    assert(res.ok, `GET /.well-known/smart-configuration: status ${res.status}`);
    smartConfig = await res.json();
  }
  return smartConfig;
}

const b64url = (buf) => Buffer.from(buf).toString("base64url");

// clientAssertion is an RFC 7523 private_key_jwt assertion of the feeder
// client for aud (the token endpoint), signed ES256 with the development
// key; kid is the key's RFC 7638 thumbprint, as the server registers it.
function clientAssertion(aud) {
  const key = createPrivateKey(readFileSync(FEEDER_KEY));
  const jwk = createPublicKey(key).export({ format: "jwk" });
  const kid = b64url(createHash("sha256").update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })).digest());
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: "ES256", typ: "JWT", kid }));
  const claims = b64url(JSON.stringify({
    iss: FEEDER_CLIENT, sub: FEEDER_CLIENT, aud, iat: now, exp: now + 240, jti: b64url(randomBytes(16)),
  }));
  const sig = sign("sha256", Buffer.from(`${header}.${claims}`), { key, dsaEncoding: "ieee-p1363" });
  return `${header}.${claims}.${b64url(sig)}`;
}

async function tokenRequest(form) {
  const { token_endpoint } = await smartConfiguration();
  const res = await fetch(token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
  const body = await res.json().catch(() => ({}));
  assert(res.status === 200 && body.access_token, `token endpoint: status ${res.status}: ${body.error || ""} ${body.error_description || ""}`);
  return body;
}

// feederToken gets a token for the feeder system (SMART backend services).
export async function feederToken() {
  const { token_endpoint } = await smartConfiguration();
  const body = await tokenRequest({
    grant_type: "client_credentials",
    scope: "system/Patient.cu",
    client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    client_assertion: clientAssertion(token_endpoint),
  });
  return body.access_token;
}

// syntheticPID is a random Norwegian person number in the synthetic
// (Tenor, month + 80) range, with valid check digits.
function syntheticPID() {
  for (;;) {
    const year = 1940 + randomInt(60);
    const dd = String(1 + randomInt(28)).padStart(2, "0");
    const mm = String(81 + randomInt(12));
    const yy = String(year % 100).padStart(2, "0");
    const ind = String(randomInt(500)).padStart(3, "0"); // issued for 1900-1999
    const d = (dd + mm + yy + ind).split("").map(Number);
    const k1 = 11 - ([3, 7, 6, 1, 8, 9, 4, 5, 2].reduce((s, w, i) => s + w * d[i], 0) % 11);
    if (k1 === 10) continue;
    const c1 = k1 === 11 ? 0 : k1;
    d.push(c1);
    const k2 = 11 - ([5, 4, 3, 2, 7, 6, 5, 4, 3, 2].reduce((s, w, i) => s + w * d[i], 0) % 11);
    if (k2 === 10) continue;
    d.push(k2 === 11 ? 0 : k2);
    return d.join("");
  }
}

// createPatient feeds a fresh patient whose GP is the gp persona and
// returns { id, pid }.
export async function createPatient() {
  const token = await feederToken();
  const pid = syntheticPID();
  const res = await fetch(BASE + "/Patient", {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/fhir+json", accept: "application/fhir+json" },
    body: JSON.stringify({
      resourceType: "Patient",
      identifier: [{ system: SYSTEM_FNR, value: pid }],
      name: [{ family: "Konformansesen", given: ["Jorunn"] }],
      gender: "female",
      birthDate: "1980-01-01",
      generalPractitioner: [{ type: "Practitioner", identifier: { system: SYSTEM_HPR, value: GP_HPR } }],
    }),
  });
  const body = await res.json().catch(() => ({}));
  assert(res.status === 201 && body.id, `feeding a Patient: status ${res.status}: ${outcomeText(body)}`);
  return { id: body.id, pid };
}

// createLaunch asks the development EHR stand-in (POST {base}/auth/launch)
// for a launch id binding practitioner to patient.
export async function createLaunch(practitioner, patient, clientId = CLIENT_ID) {
  const { issuer } = await smartConfiguration();
  const url = (issuer || BASE).replace(/\/+$/, "") + "/auth/launch";
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ patient, practitioner, client_id: clientId }),
  });
  const body = await res.json().catch(() => ({}));
  assert(res.status === 201 && body.launch, `POST ${url}: status ${res.status}: ${body.error || ""} ${body.error_description || ""}`);
  return body.launch;
}

// ehrLaunchToken runs an EHR launch with PKCE by plain HTTP (no client
// library) and returns the token response.
export async function ehrLaunchToken(practitioner, patient, scope = PRACTITIONER_SCOPE) {
  const cfg = await smartConfiguration();
  const launch = await createLaunch(practitioner, patient);
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(12));
  const q = new URLSearchParams({
    response_type: "code", client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, scope, state, aud: BASE, launch,
    code_challenge: b64url(createHash("sha256").update(verifier).digest()), code_challenge_method: "S256",
  });
  const res = await fetch(`${cfg.authorization_endpoint}?${q}`, { redirect: "manual" });
  const loc = new URL(res.headers.get("location") || "", BASE);
  const code = loc.searchParams.get("code");
  assert(res.status >= 300 && res.status < 400 && code, `authorize: status ${res.status}, redirect ${loc}`);
  assertEqual(loc.searchParams.get("state"), state, "state");
  return tokenRequest({ grant_type: "authorization_code", code, redirect_uri: REDIRECT_URI, client_id: CLIENT_ID, code_verifier: verifier });
}

// flag is a Flag conforming to KjFlag (profiles/flag-kj.json).
export function flag(patient, text) {
  return {
    resourceType: "Flag",
    status: "active",
    category: [{ coding: [{ system: FLAG_CATEGORY, code: "implantat" }] }],
    code: { text },
    period: { start: "2024-01-10T08:00:00Z" },
    subject: { reference: `Patient/${patient}` },
  };
}
