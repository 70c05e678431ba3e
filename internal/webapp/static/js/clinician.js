// The clinician's view (EHR launch): the patient in context, critical
// information first, then medications, visit history, documents and lab
// results; what
// the patient restricted is shown as restricted and opened only with an
// elevated access basis.

import { h, replace } from "./dom.js";
import { RecordView, problem } from "./record.js";
import { BASIS_NAMES, GENDER, NO_RECORD, SECTION_NAMES, SYSTEM_DNR, SYSTEM_FNR, SYSTEM_HPR, basisName, formatDate, formatPid, humanName } from "./texts.js";

function param(params, name) {
  return ((params && params.parameter) || []).filter((p) => p.name === name);
}

export async function clinicianView({ api, client, root, user }) {
  const patientId = client.patient.id;
  document.title = "Pasient – Kjernejournal";
  root.dataset.view = "clinician";

  const banner = h("section", { class: "patient-banner", "aria-labelledby": "patient-name", dataset: { state: "loading" } },
    h("h1", { id: "patient-name" }, "Henter pasient …"));
  const alerts = h("div", { class: "alerts" });
  const record = new RecordView({ api, patientId, role: "practitioner", level: 2 });
  const sections = record.build();
  replace(root, banner, alerts, ...sections);

  if (!patientId) {
    replace(banner, h("h1", { id: "patient-name" }, "Ingen pasient valgt"));
    alerts.append(h("div", { class: "notice notice-refused", role: "alert" },
      h("p", { class: "notice-title" }, "Ingen pasient i konteksten"),
      h("p", null, "Appen må startes fra journalsystemet med en valgt pasient.")));
    record.showAll("none", () => h("p", { class: "empty" }, "Ingen pasient."));
    banner.dataset.state = "none";
    return;
  }

  // The user (Practitioner) for the header; its name is in the ID token too.
  if (user.type === "Practitioner" && user.id) {
    api.request(`Practitioner/${encodeURIComponent(user.id)}`).then(({ json }) => {
      const n = humanName(json && json.name);
      if (n) user.setName(n);
    }).catch(() => {});
  }

  // Without a basis from the EHR (a standalone launch), the clinician
  // declares it here before anything is read.
  if (!api.basis) {
    await chooseBasis(alerts, api);
  }

  const [pat, status] = await Promise.allSettled([
    api.request(`Patient/${encodeURIComponent(patientId)}`),
    api.request(`Patient/${encodeURIComponent(patientId)}/$kj-status`),
  ]);

  // A reserved record answers exactly as an unknown one (404): no record.
  if (pat.status === "rejected" && pat.reason.status === 404) {
    replace(banner, h("h1", { id: "patient-name" }, NO_RECORD.title),
      h("p", null, "Pasient-id i konteksten: ", h("code", null, patientId)));
    banner.dataset.state = "none";
    alerts.append(h("div", { class: "notice notice-refused", role: "alert", dataset: { reason: "no-record" } },
      h("p", { class: "notice-title" }, NO_RECORD.title), h("p", null, NO_RECORD.text)));
    record.showAll("none", () => h("p", { class: "empty" }, "Ingen opplysninger."));
    return;
  }

  let blocked = pat.status === "rejected" && pat.reason.reason === "hp-blocked";
  if (pat.status === "fulfilled") {
    renderBanner(banner, pat.value.json, api.basis);
  } else {
    replace(banner, h("h1", { id: "patient-name" }, "Pasienten kunne ikke vises"));
    banner.dataset.state = "refused";
    if (!blocked) alerts.append(problem(pat.reason));
  }

  if (status.status === "fulfilled") {
    const st = status.value.json;
    blocked = blocked || param(st, "blocked").some((p) => p.valueBoolean === true);
    const restricted = param(st, "restrictedSection").map((p) => p.valueCode);
    if (restricted.length || param(st, "restricted").some((p) => p.valueBoolean)) {
      alerts.append(h("div", { class: "notice notice-restricted", dataset: { restricted: restricted.join(" ") } },
        h("p", { class: "notice-title" }, "Pasienten har sperret deler av kjernejournalen"),
        h("p", null, "Sperret: ", restricted.map((c) => SECTION_NAMES[c] || c).join(", ") || "deler av journalen",
          ". Sperrede deler vises bare med forhøyet tilgang (samtykke eller nødsituasjon), og hver åpning vises for pasienten.")));
    }
    if (param(st, "hasCriticalInformation").some((p) => p.valueBoolean === false)) {
      banner.dataset.critical = "none";
    }
  } else if (status.reason.status !== 404) {
    alerts.append(problem(status.reason, { kind: "warning", title: "Status for journalen kunne ikke hentes" }));
  }

  if (blocked) {
    // Rule 6: a blocked HP is refused always, emergencies included.
    const text = "Pasienten har blokkert deg fra kjernejournalen sin. Blokkeringen gjelder også i nødsituasjoner, og ingen tilgangsgrunnlag åpner journalen for deg.";
    const box = pat.status === "rejected"
      ? problem(pat.reason, { title: "Du er blokkert av pasienten", text })
      : h("div", { class: "notice notice-refused", dataset: { reason: "hp-blocked" } },
        h("p", { class: "notice-title" }, "Du er blokkert av pasienten"), h("p", null, text));
    box.setAttribute("role", "alert");
    alerts.prepend(box);
    record.showAll("refused", () => h("p", { class: "empty" }, "Ikke tilgjengelig: du er blokkert."));
    return;
  }

  await record.loadAll();

  // A refused basis (UNNTAK or AKUTT the token does not support): the
  // clinician may declare another one, e.g. consent obtained.
  if (pat.status === "rejected" && BASIS_REASONS.includes(pat.reason.reason)) {
    const again = chooseBasis(alerts, api, {
      legend: "Velg et annet tilgangsgrunnlag",
      hint: "Kjernejournalen avviste tilgangsgrunnlaget. Har du pasientens samtykke, kan du bruke samtykke som grunnlag.",
      choices: ["UNNTAK", "SAMTYKKE", "AKUTT"].filter((b) => b !== api.basis),
      focus: false,
    });
    again.then(() => clinicianView({ api, client, root, user })).then(() => {
      document.body.dataset.state = "ready";
    });
  }
}

const BASIS_REASONS = ["access-basis-missing", "access-basis-unknown", "unntak-not-supported", "akutt-not-supported"];

function renderBanner(banner, p, basis) {
  const name = humanName(p.name) || "Ukjent navn";
  const ids = p.identifier || [];
  const fnr = ids.find((i) => i.system === SYSTEM_FNR) || ids.find((i) => i.system === SYSTEM_DNR);
  const gp = (p.generalPractitioner || [])[0];
  const gpHpr = gp && gp.identifier && gp.identifier.system === SYSTEM_HPR ? gp.identifier.value : "";
  const facts = h("dl", { class: "facts" },
    h("div", null, h("dt", null, fnr && fnr.system === SYSTEM_DNR ? "D-nummer" : "Fødselsnummer"), h("dd", { class: "pid" }, fnr ? formatPid(fnr.value) : "ukjent")),
    h("div", null, h("dt", null, "Født"), h("dd", null, formatDate(p.birthDate) || "ukjent")),
    h("div", null, h("dt", null, "Kjønn"), h("dd", null, GENDER[p.gender] || "ukjent")),
    gp ? h("div", null, h("dt", null, "Fastlege"), h("dd", null, gp.display || "", gpHpr ? ` (HPR ${gpHpr})` : "")) : null,
    h("div", null, h("dt", null, "Tilgangsgrunnlag"), h("dd", { class: "basis", dataset: { basis: basis || "" } }, basis ? basisName(basis) : "ikke oppgitt")));
  replace(banner, h("h1", { id: "patient-name" }, name), facts);
  banner.dataset.state = "loaded";
}

// chooseBasis asks for the access basis (nhn-access-basis) and resolves
// when one is chosen.
function chooseBasis(where, api, {
  legend = "Velg tilgangsgrunnlag",
  hint = "Journalsystemet oppga ikke tilgangsgrunnlag. Hver forespørsel sendes med grunnlaget du velger, og det logges.",
  choices = ["UNNTAK", "SAMTYKKE", "AKUTT"],
  focus = true,
} = {}) {
  if (focus) document.body.dataset.state = "choose-basis";
  return new Promise((resolve) => {
    const name = "basis";
    const pick = choices.includes("SAMTYKKE") ? "SAMTYKKE" : choices[0];
    const options = choices.map((b) => {
      const id = `basis-${b}`;
      return h("div", { class: "check" }, h("input", { type: "radio", id, name, value: b, checked: b === pick }),
        h("label", { for: id }, BASIS_NAMES[b]));
    });
    const form = h("form", { class: "basis-form" },
      h("fieldset", null, h("legend", null, legend), h("p", { class: "hint" }, hint), options),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "button" }, "Bruk tilgangsgrunnlaget")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      api.basis = new FormData(form).get(name) || "SAMTYKKE";
      form.remove();
      document.body.dataset.state = "loading";
      resolve();
    });
    where.append(form);
    if (focus) form.querySelector("input:checked").focus();
  });
}

