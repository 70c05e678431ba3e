// The record's sections, shared by the clinician's and the citizen's view:
// critical information first, then medications, visit history, journal
// documents and lab results. Each section element carries data-section and
// data-state (loading, loaded, restricted, refused, error, none) for tests
// and styling.

import { h, replace, uid, announce, focusHeading } from "./dom.js";
import { ApiError } from "./api.js";
import {
  ALLERGY, ENCOUNTER_CLASS, ENCOUNTER_STATUS, FLAG_STATUS, LAB_FLAG, LAB_STATUS, MED_STATUS, SECTION_NAMES, SOURCE_STATUS,
  SYSTEM_ACCESS_REASON, SYSTEM_LAB_SOURCE, SYSTEM_SOURCE_STATUS, basisName, code, conceptText, describe, formatDate,
  formatDateTime, formatNumber, formatPeriod, formatSize, formatUnit,
} from "./texts.js";

// Lab reports per page (the newest first).
const LAB_PAGE = 20;

const SECTIONS = [
  {
    key: "critical",
    intro: "Allergier, reaksjoner og annen kritisk informasjon som kan ha betydning for behandlingen.",
    parts: [
      { type: "AllergyIntolerance", title: "Allergier og reaksjoner", empty: "Ingen registrerte allergier eller reaksjoner.", render: allergyItem, sort: byCriticality },
      { type: "Flag", title: "Annen kritisk informasjon", empty: "Ingen annen kritisk informasjon er registrert.", render: flagItem, sort: byDate((r) => r.period && r.period.start) },
    ],
  },
  {
    key: "medications",
    intro: "Legemidler fra e-resepter (reseptformidleren).",
    parts: [{ type: "MedicationStatement", empty: "Ingen legemidler er registrert.", render: medicationItem, sort: byMedication }],
  },
  {
    key: "visits",
    intro: "Besøk og innleggelser i spesialisthelsetjenesten (Norsk pasientregister).",
    parts: [{ type: "Encounter", empty: "Ingen besøk er registrert.", render: encounterItem, sort: byDate((r) => r.period && r.period.start) }],
  },
  {
    key: "documents",
    intro: "Dokumenter hentes direkte fra sykehusene som deler dem; ingenting lagres i kjernejournalen.",
    documents: true,
    parts: [{ type: "DocumentReference", empty: "Ingen journaldokumenter er tilgjengelige." }],
  },
  {
    // Lab results are searched in the laboratories' result services when
    // asked for and never stored; the server shows the last year only.
    // One page of the newest reports with their results; older pages on
    // request (the Bundle's next link).
    key: "lab-results",
    intro: "Prøvesvar fra laboratoriene det siste året, nyeste først. Svarene hentes direkte fra laboratoriene; ingenting lagres i kjernejournalen.",
    lab: true,
    parts: [{
      type: "DiagnosticReport", query: `_include=DiagnosticReport:result&_sort=-date&_count=${LAB_PAGE}`, maxPages: 1,
      empty: "Ingen prøvesvar fra det siste året.",
    }],
  },
];

// A refusal or error, in Norwegian, with the server's own words and
// reason code in a disclosure.
export function problem(err, { kind = "refused", title, text } = {}) {
  const d = err instanceof ApiError ? describe(err) : { title: "Noe gikk galt", text: String(err && err.message || err), code: "", server: "" };
  const box = h("div", { class: `notice notice-${kind}`, dataset: { reason: d.code || "", status: String(d.status ?? "") } },
    h("p", { class: "notice-title" }, title || d.title),
    h("p", null, text || d.text));
  if (d.code || d.server) {
    box.append(h("details", null,
      h("summary", null, "Svar fra kjernejournalen"),
      d.code ? h("p", null, "Begrunnelseskode: ", h("code", null, d.code), d.status ? ` (HTTP ${d.status})` : "") : null,
      d.server ? h("p", { lang: "en" }, d.server) : null));
  }
  return box;
}

function restrictedOf(bundle) {
  const redacted = (((bundle || {}).meta || {}).security || []).some((s) => s.code === "REDACTED");
  let message = "";
  for (const e of (bundle && bundle.entry) || []) {
    if (!e.resource || e.resource.resourceType !== "OperationOutcome") continue;
    for (const is of e.resource.issue || []) {
      const c = ((is.details && is.details.coding) || []).find((x) => x.system === SYSTEM_ACCESS_REASON);
      if (c && c.code === "ok-restricted-hidden") message = is.diagnostics || message;
    }
  }
  return redacted || message ? { message } : null;
}

function resources(entries, type) {
  return entries.filter((e) => e.resource && e.resource.resourceType === type).map((e) => e.resource);
}

export class RecordView {
  // role: "practitioner" or "citizen"; level: heading level of the
  // section headings (2 or 3).
  constructor({ api, patientId, role, level = 2 }) {
    this.api = api;
    this.patientId = patientId;
    this.role = role;
    this.level = level;
    this.sections = new Map();
    this.objectURLs = [];
  }

  build() {
    const out = [];
    for (const def of SECTIONS) {
      // Journal documents are shared with health personnel; the citizen
      // reads them in the hospitals' own portals (the server refuses the
      // citizen's search with documents-for-hp).
      if (def.documents && this.role === "citizen") continue;
      const hid = uid(`sec-${def.key}`);
      const heading = h(`h${this.level}`, { id: hid }, SECTION_NAMES[def.key]);
      const body = h("div", { class: "section-body" });
      const el = h("section", {
        class: `record-section record-${def.key}`, "aria-labelledby": hid,
        dataset: { section: def.key, state: "loading" }, "aria-busy": "true",
      }, heading, h("p", { class: "section-intro" }, def.intro), h("div", { class: "section-note" }), body);
      this.sections.set(def.key, { def, el, body, heading, basis: undefined });
      out.push(el);
    }
    return out;
  }

  setState(key, state, extra = {}) {
    const s = this.sections.get(key);
    s.el.dataset.state = state;
    s.el.setAttribute("aria-busy", state === "loading" ? "true" : "false");
    for (const [k, v] of Object.entries(extra)) {
      if (v == null) delete s.el.dataset[k];
      else s.el.dataset[k] = v;
    }
  }

  // showAll puts the same message in every section (no record, blocked).
  showAll(state, makeBox) {
    for (const key of this.sections.keys()) {
      replace(this.sections.get(key).body, makeBox());
      this.setState(key, state);
    }
  }

  // note shows a line above a section's content (the citizen's own
  // restrictions).
  note(key, text) {
    const s = this.sections.get(key);
    if (!s) return; // a section this view does not show
    const n = s.el.querySelector(".section-note");
    replace(n, text ? h("p", { class: "notice notice-info" }, text) : null);
  }

  loadAll() {
    return Promise.all([...this.sections.keys()].map((k) => this.load(k)));
  }

  async fetchParts(s, basis) {
    const results = [];
    for (const part of s.def.parts) {
      const q = `${part.type}?patient=${encodeURIComponent(this.patientId)}${part.query ? `&${part.query}` : ""}`;
      results.push({ part, ...(await this.api.search(q, { basis, maxPages: part.maxPages })) });
    }
    return results;
  }

  async load(key) {
    const s = this.sections.get(key);
    this.setState(key, "loading", { reason: null });
    replace(s.body, h("p", { class: "loading" }, "Henter ", SECTION_NAMES[key].toLowerCase(), " …"));
    let results;
    try {
      results = await this.fetchParts(s, s.basis);
    } catch (err) {
      const refused = err.status === 403 || err.status === 404;
      replace(s.body, problem(err, { kind: refused ? "refused" : "error" }));
      this.setState(key, refused ? "refused" : "error", { reason: err.reason || String(err.status || "") });
      return;
    }
    this.render(key, results);
  }

  render(key, results) {
    const s = this.sections.get(key);
    const restricted = results.map((r) => restrictedOf(r.bundle)).find(Boolean);
    if (restricted) {
      this.renderRestricted(key, restricted);
      return;
    }
    const opened = s.basis && s.basis.startsWith("FORHOYET") ? s.basis : null;
    const content = [];
    if (opened) {
      content.push(h("p", { class: "notice notice-opened" },
        h("strong", null, "Sperrede opplysninger er åpnet"),
        ` med ${basisName(opened).toLowerCase()}. Åpningen er logget og vises for pasienten i loggen over bruk.`));
    }
    for (const r of results) {
      if (s.def.documents) content.push(...this.renderDocuments(key, r));
      else if (s.def.lab) content.push(...this.renderLab(key, r));
      else content.push(this.renderPart(r, s.def.parts.length > 1));
    }
    replace(s.body, content);
    this.setState(key, "loaded", { opened, reason: null });
  }

  renderPart({ part, entries }, titled) {
    const items = resources(entries, part.type).sort(part.sort || (() => 0));
    const wrap = h("div", { class: "part", dataset: { type: part.type, count: String(items.length) } });
    if (titled) wrap.append(h(`h${this.level + 1}`, null, part.title));
    if (!items.length) wrap.append(h("p", { class: "empty" }, part.empty));
    else wrap.append(h("ul", { class: "items" }, items.map((r) => h("li", { class: "item", dataset: { id: r.id || "" } }, part.render(r)))));
    return wrap;
  }

  renderRestricted(key, restricted) {
    const s = this.sections.get(key);
    const name = SECTION_NAMES[key];
    const box = h("div", { class: "notice notice-restricted" },
      h("p", { class: "notice-title" }, "Sperret av pasienten"),
      h("p", null, `Pasienten har sperret ${name.toLowerCase()}. Opplysningene vises bare hvis du åpner dem med forhøyet tilgang. `,
        "Hver åpning logges og vises for pasienten."));
    if (this.role === "practitioner") {
      const err = h("div", { class: "restricted-error" });
      const open = async (basis, label) => {
        for (const b of box.querySelectorAll("button")) b.disabled = true;
        replace(err, h("p", { class: "loading" }, "Åpner …"));
        this.setState(key, "opening");
        let results;
        try {
          results = await this.fetchParts(s, basis);
        } catch (e) {
          // A refused basis leaves the section restricted, with the reason.
          replace(err, problem(e));
          for (const b of box.querySelectorAll("button")) b.disabled = false;
          this.setState(key, "restricted", { reason: e.reason || String(e.status || "") });
          announce(`${label}: ${describe(e).title}.`);
          return;
        }
        s.basis = basis;
        this.render(key, results);
        announce(`${name} er åpnet med ${basisName(basis).toLowerCase()}.`);
        s.heading.setAttribute("tabindex", "-1");
        s.heading.focus();
      };
      box.append(h("div", { class: "actions" },
        h("button", { type: "button", class: "button", onclick: () => open("FORHOYET_SAMTYKKE", "Åpne med samtykke") },
          "Åpne med samtykke", h("span", { class: "visually-hidden" }, `: ${name}`)),
        h("button", { type: "button", class: "button button-danger", onclick: () => open("FORHOYET_AKUTT", "Åpne i nødsituasjon") },
          "Åpne i nødsituasjon", h("span", { class: "visually-hidden" }, `: ${name}`))), err);
    } else {
      box.append(h("p", null, "Du har sperret denne delen for helsepersonell."));
    }
    if (restricted.message) {
      box.append(h("details", null, h("summary", null, "Svar fra kjernejournalen"), h("p", { lang: "en" }, restricted.message)));
    }
    replace(s.body, box);
    this.setState(key, "restricted", { reason: "ok-restricted-hidden" });
  }

  renderDocuments(key, { part, bundle, entries }) {
    const s = this.sections.get(key);
    const docs = resources(entries, "DocumentReference").sort(byDate((r) => r.date || (r.context && r.context.period && r.context.period.start)));
    const out = [];
    const problems = sourceProblems(entries, "dokumentene");
    if (problems.length) out.push(sourceNotice(problems));
    if (!docs.length) {
      out.push(h("p", { class: "empty" }, part.empty));
      return out;
    }
    const capId = uid("doc-caption");
    const rows = docs.map((d) => this.documentRow(s, d));
    out.push(h("div", { class: "table-wrap" },
      h("table", { class: "documents", "aria-describedby": capId },
        h("caption", { id: capId }, `${docs.length} dokumenter, nyeste først`),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Dato"), h("th", { scope: "col" }, "Dokument"),
          h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "Fra"), h("th", { scope: "col" }, "Åpne"))),
        h("tbody", null, rows))));
    return out;
  }

  documentRow(s, d) {
    const att = ((d.content || [])[0] || {}).attachment || {};
    const title = att.title || d.description || conceptText(d.type) || "Dokument";
    const type = conceptText((d.category || [])[0]) || conceptText(d.type);
    const from = (d.custodian && d.custodian.display) || ((d.author || [])[0] || {}).display || "";
    const cell = h("td", { class: "doc-action" });
    const row = h("tr", { dataset: { doc: d.id || "", docState: "closed" } },
      h("td", null, formatDate(d.date || att.creation)),
      h("th", { scope: "row" }, title),
      h("td", null, type),
      h("td", null, from),
      cell);
    if (!att.url) {
      cell.append("Ikke tilgjengelig");
      return row;
    }
    const button = h("button", { type: "button", class: "button button-small" }, "Åpne",
      h("span", { class: "visually-hidden" }, `: ${title}`));
    button.addEventListener("click", async () => {
      button.disabled = true;
      row.dataset.docState = "loading";
      replace(cell, h("span", { class: "loading" }, "Henter …"));
      try {
        const blob = await this.api.binary(att.url, { basis: s.basis });
        const type = blob.type || att.contentType || "application/octet-stream";
        const url = URL.createObjectURL(blob.type ? blob : new Blob([blob], { type }));
        this.objectURLs.push(url);
        const ext = /pdf/.test(type) ? ".pdf" : /plain/.test(type) ? ".txt" : /xml/.test(type) ? ".xml" : "";
        const file = title.replace(/[^\p{L}\p{N} ._-]+/gu, "").trim().replace(/\s+/g, "-") + ext;
        replace(cell,
          h("a", { href: url, target: "_blank", rel: "noopener", class: "doc-view" }, "Vis", h("span", { class: "visually-hidden" }, `: ${title} (åpnes i ny fane)`)),
          " ",
          h("a", { href: url, download: file || "dokument", class: "doc-download" }, "Last ned", h("span", { class: "visually-hidden" }, `: ${title}`)),
          h("span", { class: "doc-meta" }, ` ${formatSize(blob.size)}`));
        row.dataset.docState = "opened";
        row.dataset.size = String(blob.size);
        row.dataset.contentType = type;
        announce(`Dokumentet «${title}» er hentet.`);
        cell.querySelector("a").focus();
      } catch (err) {
        row.dataset.docState = "refused";
        replace(cell, problem(err, { kind: "refused" }));
      }
    });
    cell.append(button);
    return row;
  }

  // renderLab shows the lab reports, newest first, each with its results
  // (the Observations the search included) in a table; a failed
  // laboratory is named above the list as a failed document source is.
  renderLab(key, { part, bundle, entries }) {
    const s = this.sections.get(key);
    const seen = new Set();
    const problems = h("div", { class: "lab-sources" });
    const addProblems = (list) => {
      const items = sourceProblems(list, "prøvesvarene", seen);
      if (!items.length) return;
      const ul = problems.querySelector("ul");
      if (ul) ul.append(...items);
      else problems.append(sourceNotice(items));
    };
    addProblems(entries);
    const reports = resources(entries, "DiagnosticReport");
    const wrap = h("div", { class: "part", dataset: { type: part.type, count: String(reports.length) } });
    if (!reports.length) {
      wrap.append(h("p", { class: "empty" }, part.empty));
      return [problems, wrap];
    }
    const count = h("p", { class: "lab-count" });
    const list = h("ul", { class: "lab-reports" });
    const more = h("div", { class: "lab-more" });
    let shown = 0;
    const add = (ents) => {
      const index = observations(ents);
      const items = resources(ents, "DiagnosticReport").sort(byDate(reportDate)).map((r) => this.labReport(r, index));
      list.append(...items);
      shown += items.length;
      wrap.dataset.count = String(shown);
      return items;
    };
    const page = (b) => {
      const next = ((b && b.link) || []).find((l) => l.relation === "next");
      count.textContent = next
        ? `De ${shown} nyeste prøvesvarene vises. Eldre prøvesvar fra det siste året hentes med knappen under listen.`
        : `${shown} prøvesvar fra det siste året, nyeste først.`;
      replace(more);
      if (!next) return;
      const button = h("button", { type: "button", class: "button button-secondary" }, "Vis eldre prøvesvar");
      button.addEventListener("click", async () => {
        button.disabled = true;
        this.setState(key, "loading");
        let got;
        try {
          got = await this.api.search(next.url, { basis: s.basis, maxPages: 1 });
        } catch (err) {
          replace(more, problem(err, { kind: err.status === 403 ? "refused" : "error" }));
          this.setState(key, "loaded");
          return;
        }
        addProblems(got.entries);
        const items = add(got.entries);
        page(got.bundle);
        this.setState(key, "loaded");
        announce(`${items.length} eldre prøvesvar vist.`);
        if (items.length) focusHeading(items[0].querySelector(".lab-title"));
      });
      more.append(button);
    };
    add(entries);
    page(bundle);
    wrap.append(count, list, more);
    return [problems, wrap];
  }

  // labReport is one DiagnosticReport: date and panel, status, laboratory,
  // the conclusion (microbiology) and a table of its results.
  labReport(r, index) {
    const hid = uid("lab");
    const when = reportDate(r);
    const panel = conceptText(r.code) || "Prøvesvar";
    const [statusText, statusKind] = LAB_STATUS[r.status] || [];
    const micro = (r.category || []).some((c) => code(c, V2_0074) === "MB");
    const results = (r.result || []).map((ref) => ({ ref, obs: index.get(ref.reference) }));
    const item = h("li", {
      class: "lab-report",
      dataset: { report: r.id || "", status: r.status || "", category: micro ? "MB" : code((r.category || [])[0]) || "" },
    },
    h(`h${this.level + 1}`, { id: hid, class: "lab-title" }, when ? `${formatDate(when)}: ` : "", panel,
      statusText ? " " : "", badge(statusText, statusKind)),
    meta(micro && "Mikrobiologi", labName(r), when && `prøve tatt ${formatDateTime(when)}`, r.issued && `besvart ${formatDateTime(r.issued)}`));
    if (r.conclusion) {
      item.append(h("p", { class: "lab-conclusion" }, h("strong", null, "Konklusjon: "), r.conclusion));
    }
    if (!results.length) {
      if (!r.conclusion) item.append(h("p", { class: "empty" }, "Ingen analyser er besvart ennå."));
      return item;
    }
    item.append(h("div", { class: "table-wrap" },
      h("table", { class: "lab-table", "aria-labelledby": hid },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Analyse"), h("th", { scope: "col" }, "Resultat"),
          h("th", { scope: "col" }, "Referanseområde"))),
        h("tbody", null, results.map(({ ref, obs }) => labRow(ref, obs, r.status))))));
    return item;
  }

  dispose() {
    for (const u of this.objectURLs) URL.revokeObjectURL(u);
    this.objectURLs = [];
  }
}

// sourceProblems lists the sources a federated search could not read (the
// Bundle's OperationOutcome entries, search.mode outcome, with a
// document-source-status code): who, what happened and what is missing
// (missing: "dokumentene", "prøvesvarene"). seen drops repeats (every
// page of a search names the same failed source).
function sourceProblems(entries, missing, seen = new Set()) {
  const out = [];
  for (const e of entries) {
    if (!e.resource || e.resource.resourceType !== "OperationOutcome") continue;
    for (const is of e.resource.issue || []) {
      const c = ((is.details && is.details.coding) || []).find((x) => x.system === SYSTEM_SOURCE_STATUS);
      const m = /^source (.+?) \(/.exec(is.diagnostics || "");
      const who = m ? m[1] : (c && c.display) || "En kilde";
      const text = `${who} ${SOURCE_STATUS[c && c.code] || "svarte ikke som forventet"}; ${missing} derfra mangler i listen.`;
      if (seen.has(text + (is.diagnostics || ""))) continue;
      seen.add(text + (is.diagnostics || ""));
      out.push(h("li", null, text, is.diagnostics ? h("span", { class: "server-words", lang: "en" }, ` (${is.diagnostics})`) : null));
    }
  }
  return out;
}

function sourceNotice(items) {
  return h("div", { class: "notice notice-warning", dataset: { sources: "partial" } },
    h("p", { class: "notice-title" }, "Listen kan være ufullstendig"), h("ul", null, items));
}

// Lab results.

const V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074";
const V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

function reportDate(r) {
  return r.effectiveDateTime || (r.effectivePeriod && r.effectivePeriod.start) || r.issued || "";
}

// observations maps "Observation/<id>" (and the full URL) to the included
// Observations.
function observations(entries) {
  const m = new Map();
  for (const e of entries) {
    const o = e.resource;
    if (!o || o.resourceType !== "Observation") continue;
    if (o.id) m.set(`Observation/${o.id}`, o);
    if (e.fullUrl) m.set(e.fullUrl, o);
  }
  return m;
}

// labName: the laboratory as the source tag names it (without the source's
// code the server adds in brackets), else the performer.
function labName(r) {
  const tag = ((r.meta && r.meta.tag) || []).find((t) => t.system === SYSTEM_LAB_SOURCE);
  if (tag && tag.display) {
    const suffix = ` (${tag.code})`;
    return tag.display.endsWith(suffix) ? tag.display.slice(0, -suffix.length) : tag.display;
  }
  return ((r.performer || [])[0] || {}).display || (tag && tag.code) || "";
}

function labValue(o) {
  const q = o.valueQuantity;
  if (q && q.value != null) {
    const unit = formatUnit(q);
    return `${q.comparator ? `${q.comparator} ` : ""}${formatNumber(q.value)}${unit ? ` ${unit}` : ""}`;
  }
  if (o.valueString) return o.valueString;
  if (o.valueCodeableConcept) return conceptText(o.valueCodeableConcept);
  if (typeof o.valueBoolean === "boolean") return o.valueBoolean ? "Ja" : "Nei";
  if (typeof o.valueInteger === "number") return formatNumber(o.valueInteger);
  if (o.dataAbsentReason) return `Ingen verdi (${conceptText(o.dataAbsentReason)})`;
  return "";
}

// labRange: "3,5–5" for low and high, "< 5" for only high, "> 15" for only
// low; the unit only when it differs from the value's.
function labRange(o) {
  const rr = (o.referenceRange || [])[0];
  if (!rr) return "";
  const lo = rr.low && rr.low.value, hi = rr.high && rr.high.value;
  let t = "";
  if (lo != null && hi != null) t = `${formatNumber(lo)}–${formatNumber(hi)}`;
  else if (hi != null) t = `< ${formatNumber(hi)}`;
  else if (lo != null) t = `> ${formatNumber(lo)}`;
  else return rr.text || "";
  const unit = formatUnit(rr.high || rr.low);
  if (unit && unit !== formatUnit(o.valueQuantity)) t += ` ${unit}`;
  return t;
}

function labFlag(o) {
  for (const cc of o.interpretation || []) {
    for (const c of cc.coding || []) {
      if (c.system && c.system !== V3_INTERPRETATION) continue;
      if (c.code === "N") return null;
      if (LAB_FLAG[c.code]) return { code: c.code, ...LAB_FLAG[c.code] };
      return { code: c.code || "", text: c.display || c.code || "", kind: "plain" };
    }
    if (cc.text) return { code: "", text: cc.text, kind: "plain" };
  }
  return null;
}

// labRow is one result: analysis, value with unit and flag, reference
// range. A flag is a badge with a mark (↑, ↓↓) and a word, never colour
// alone; the row of a value outside the range is marked at its start too.
// data-flag is the interpretation code (N when not flagged).
function labRow(ref, o, reportStatus) {
  if (!o) {
    return h("tr", { dataset: { obs: ref.reference || "", flag: "" } },
      h("th", { scope: "row" }, ref.display || "Analyse"), h("td", null, "Svaret mangler i søket"), h("td", null, ""));
  }
  // The NLK specimen prefix (B-, P-, S-, U-, Pt-) stays with the name on
  // narrow screens: a word joiner forbids the line break after its hyphen.
  const name = ((((o.code && o.code.coding) || []).find((c) => c.display) || {}).display || conceptText(o.code) || ref.display || "Analyse")
    .replace(/^(\p{L}{1,3}-)(?=\p{L})/u, "$1\u2060");
  const flag = labFlag(o);
  const value = labValue(o);
  const range = labRange(o);
  const [statusText, statusKind] = o.status !== reportStatus ? LAB_STATUS[o.status] || [] : [];
  const cls = flag && flag.kind === "critical" ? "lab-critical" : flag && flag.kind === "warn" ? "lab-abnormal" : null;
  return h("tr", { class: cls, dataset: { obs: o.id || "", flag: flag ? flag.code : "N" } },
    h("th", { scope: "row" }, name, statusText ? " " : "", badge(statusText, statusKind)),
    h("td", { class: "lab-value" },
      h("span", { class: "lab-number" }, value || h("span", { class: "empty" }, "Ingen verdi")),
      flag ? " " : null,
      flag ? h("span", { class: `badge badge-${flag.kind} lab-flag` },
        flag.mark ? h("span", { "aria-hidden": "true" }, `${flag.mark} `) : null, flag.text) : null,
      // Narrow screens show the range here instead of in its own column
      // (CSS shows one of the two, so it is read once).
      range ? h("span", { class: "lab-range-inline" }, `Referanse: ${range}`) : null),
    h("td", { class: "lab-range" }, range || h("span", { class: "empty" }, h("span", { "aria-hidden": "true" }, "–"),
      h("span", { class: "visually-hidden" }, "ikke oppgitt"))));
}

// Items.

function meta(...bits) {
  const parts = bits.filter(Boolean);
  return parts.length ? h("p", { class: "item-meta" }, parts.join(" · ")) : null;
}

function badge(text, kind) {
  return text ? h("span", { class: `badge badge-${kind || "plain"}` }, text) : null;
}

function allergyItem(r) {
  const crit = r.criticality;
  const cat = (r.category || []).map((c) => ALLERGY.category[c] || c).join(", ");
  const type = ALLERGY.type[r.type] || "Reaksjon";
  const reactions = (r.reaction || []).map((x) => {
    const m = (x.manifestation || []).map(conceptText).filter(Boolean).join(", ");
    return m + (x.severity ? ` (${ALLERGY.severity[x.severity] || x.severity})` : "");
  }).filter(Boolean);
  const who = (r.recorder && r.recorder.display) || (r.asserter && r.asserter.display);
  return [
    h("p", { class: "item-title" }, conceptText(r.code) || "Ukjent stoff", " ",
      badge(ALLERGY.criticality[crit], crit === "high" ? "critical" : "plain")),
    h("p", null, `${type}${cat ? ` – ${cat}` : ""}`, reactions.length ? `. Reaksjon: ${reactions.join("; ")}` : ""),
    meta(r.recordedDate && `Registrert ${formatDate(r.recordedDate)}`, who && `av ${who}`,
      ALLERGY.verification[code(r.verificationStatus)], ALLERGY.clinical[code(r.clinicalStatus)]),
  ];
}

function flagItem(r) {
  const cat = conceptText((r.category || [])[0]);
  return [
    h("p", { class: "item-title" }, conceptText(r.code) || "Kritisk informasjon"),
    cat ? h("p", null, cat) : null,
    meta(r.period && r.period.start && `Fra ${formatDate(r.period.start)}`, r.period && r.period.end && `til ${formatDate(r.period.end)}`,
      r.author && r.author.display && `registrert av ${r.author.display}`, FLAG_STATUS[r.status]),
  ];
}

function medicationItem(r) {
  const name = conceptText(r.medicationCodeableConcept) || (r.medicationReference && r.medicationReference.display) || "Legemiddel";
  const dose = (r.dosage || []).map((d) => d.text).filter(Boolean).join("; ");
  const eff = r.effectivePeriod ? formatPeriod(r.effectivePeriod) : formatDate(r.effectiveDateTime);
  return [
    h("p", { class: "item-title" }, name, " ", badge(MED_STATUS[r.status] || r.status, r.status === "active" ? "ok" : "plain")),
    dose ? h("p", null, `Dosering: ${dose}`) : null,
    meta(eff && `Periode: ${eff}`, r.informationSource && r.informationSource.display && `forskrevet av ${r.informationSource.display}`),
  ];
}

function encounterItem(r) {
  const kind = (r.type || []).map(conceptText).filter(Boolean)[0] || ENCOUNTER_CLASS[r.class && r.class.code] || (r.class && r.class.display) || "Besøk";
  const where = [conceptText(r.serviceType), r.serviceProvider && r.serviceProvider.display].filter(Boolean).join(", ");
  const reason = (r.reasonCode || []).map(conceptText).filter(Boolean).join(", ");
  return [
    h("p", { class: "item-title" }, formatPeriod(r.period) || "Ukjent dato", ": ", kind),
    where ? h("p", null, where) : null,
    meta(reason && `Årsak: ${reason}`, ENCOUNTER_STATUS[r.status]),
  ];
}

function byDate(get) {
  return (a, b) => String(get(b) || "").localeCompare(String(get(a) || ""));
}

function byCriticality(a, b) {
  const rank = { high: 0, "unable-to-assess": 1, low: 2 };
  return (rank[a.criticality] ?? 3) - (rank[b.criticality] ?? 3);
}

function byMedication(a, b) {
  const act = (r) => (r.status === "active" ? 0 : 1);
  return act(a) - act(b) || byDate((r) => (r.effectivePeriod && r.effectivePeriod.start) || r.effectiveDateTime || r.dateAsserted)(a, b);
}

