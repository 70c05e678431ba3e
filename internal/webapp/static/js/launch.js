// launch.html: starts the SMART authorisation with fhirclient. An EHR
// launch arrives with ?iss=<FHIR base>&launch=<id>; a standalone launch
// (the citizen) with ?iss=<FHIR base>, or the user gives the address.
// The app may be served from another origin than the FHIR server: the
// server's address always comes from iss.

const CLIENT_ID = "kjernejournal-app";
// EHR launch: the clinician's reads, and the critical information they may
// report (the persona's own scopes narrow it further).
const EHR_SCOPE = "launch openid fhirUser online_access patient/*.rs patient/AllergyIntolerance.cud patient/Flag.cud";
// Standalone: the citizen reads their record and log and manages their
// privacy settings (Consent).
const STANDALONE_SCOPE = "openid fhirUser launch/patient patient/*.rs patient/Consent.cud";

const status = document.getElementById("status");
const form = document.getElementById("start");
const input = document.getElementById("iss");
const error = document.getElementById("error");

function showError(title, err) {
  document.body.dataset.state = "error";
  status.textContent = "";
  error.hidden = false;
  error.querySelector(".notice-title").textContent = title;
  error.querySelector(".detail").textContent = String((err && err.message) || err || "");
  form.hidden = false;
  error.focus();
}

function authorize(iss, launch) {
  document.body.dataset.state = "authorizing";
  status.textContent = launch ? "Starter appen fra journalsystemet …" : "Sender deg til innlogging …";
  sessionStorage.setItem("kj-iss", iss);
  const opts = { clientId: CLIENT_ID, scope: launch ? EHR_SCOPE : STANDALONE_SCOPE, redirectUri: "index.html", iss, pkceMode: "required" };
  if (launch) opts.launch = launch;
  window.FHIR.oauth2.authorize(opts).catch((err) =>
    showError("Fikk ikke kontakt med kjernejournalen på " + iss + ". Sjekk adressen, og at tjenesten tillater denne appen (CORS).", err));
}

const q = new URLSearchParams(location.search);
const iss = q.get("iss");
const launch = q.get("launch");
input.value = iss || sessionStorage.getItem("kj-iss") || "";
// Served by the FHIR server itself (/app/launch.html), its origin is the
// FHIR base: offer it when the origin answers as a SMART server.
if (!input.value) {
  fetch(location.origin + "/.well-known/smart-configuration", { headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : null))
    .then((c) => {
      if (c && c.authorization_endpoint && !input.value) input.value = location.origin;
    })
    .catch(() => {});
}

if (!window.FHIR) {
  showError("En nødvendig del av appen (fhirclient) ble ikke lastet.", "");
} else if (iss) {
  authorize(iss, launch);
} else {
  document.body.dataset.state = "ready";
  status.textContent = "";
  form.hidden = false;
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const v = input.value.trim().replace(/\/+$/, "");
  if (!/^https?:\/\/[^\s]+$/i.test(v)) {
    input.setAttribute("aria-invalid", "true");
    document.getElementById("iss-error").hidden = false;
    input.focus();
    return;
  }
  input.removeAttribute("aria-invalid");
  document.getElementById("iss-error").hidden = true;
  authorize(v, "");
});
