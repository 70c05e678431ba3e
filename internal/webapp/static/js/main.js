// Entry point of index.html: completes the SMART launch (fhirclient) and
// shows the clinician's view for a Practitioner, the citizen's view for a
// Patient. body[data-state] is loading, ready or error.

import { Api } from "./api.js";
import { h, replace } from "./dom.js";
import { clinicianView } from "./clinician.js";
import { citizenView } from "./citizen.js";

const root = document.getElementById("main");
const userEl = document.getElementById("user");
const logout = document.getElementById("logout");

function restartURL() {
  const iss = sessionStorage.getItem("kj-iss");
  return "launch.html" + (iss ? "?iss=" + encodeURIComponent(iss) : "");
}

function fail(title, text, detail) {
  document.title = "Feil – Kjernejournal";
  replace(root,
    h("h1", null, title),
    h("div", { class: "notice notice-refused", role: "alert" }, h("p", null, text),
      detail ? h("details", null, h("summary", null, "Teknisk beskrivelse"), h("p", { lang: "en" }, detail)) : null),
    h("p", null, h("a", { href: restartURL() }, "Start appen på nytt")));
  document.body.dataset.state = "error";
}

logout.addEventListener("click", () => {
  // The token lives in sessionStorage only; dropping it ends the session.
  const to = restartURL();
  sessionStorage.clear();
  replace(root, h("h1", null, "Du er logget ut"), h("p", null, h("a", { href: to }, "Logg inn igjen")));
  replace(userEl);
  logout.hidden = true;
  document.body.dataset.state = "ready";
  root.focus();
});

async function main() {
  document.body.dataset.state = "loading";
  if (!window.FHIR) {
    fail("Appen kunne ikke starte", "En nødvendig del av appen (fhirclient) ble ikke lastet.");
    return;
  }
  let client;
  try {
    client = await window.FHIR.oauth2.ready();
  } catch (err) {
    const msg = String((err && err.message) || err);
    if (/access_denied|declined/i.test(msg)) {
      fail("Innloggingen ble avbrutt", "Du avbrøt innloggingen, eller tilgangen ble avslått.", msg);
    } else if (/No state|state/i.test(msg) && !/error/i.test(location.search)) {
      fail("Appen er ikke startet", "Appen må startes fra journalsystemet, eller fra innloggingssiden for innbyggere.", msg);
    } else {
      fail("Innloggingen mislyktes", "Kjernejournalen godtok ikke innloggingen.", msg);
    }
    return;
  }
  const api = new Api(client);
  sessionStorage.setItem("kj-iss", api.base);

  const fhirUser = String(client.getFhirUser() || "");
  const [type, id] = fhirUser.split("/").slice(-2);
  const idToken = client.getIdToken() || {};
  const user = {
    type, id, name: idToken.name || "",
    setName(n) {
      this.name = n;
      replace(userEl, "Innlogget: ", h("strong", null, n));
    },
  };
  if (user.name) user.setName(user.name);
  logout.hidden = false;

  try {
    if (type === "Practitioner") {
      await clinicianView({ api, client, root, user });
    } else if (type === "Patient") {
      await citizenView({ api, client, root, user });
    } else {
      fail("Ukjent bruker", "Innloggingen sier ikke om du er helsepersonell eller innbygger (fhirUser mangler).", fhirUser || "no fhirUser claim");
      return;
    }
    document.body.dataset.state = "ready";
  } catch (err) {
    fail("Noe gikk galt", "Appen kunne ikke vise kjernejournalen.", String((err && err.stack) || err));
  }
}

main();
