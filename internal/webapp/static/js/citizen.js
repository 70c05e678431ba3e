// The citizen's view (standalone launch): the own record, "Logg over bruk"
// (the usage log as the server shows it to the citizen) and the privacy
// settings: reservation (and its undo within 30 days), restriction of the
// whole record or parts, removal of the own portal access, and the blocks
// of named health personnel (read only: set by citizen support).

import { h, replace, uid, announce, focusHeading } from "./dom.js";
import { RecordView, problem } from "./record.js";
import {
  HP_CATEGORY, SECTION_HINTS, SECTION_NAMES, SYSTEM_FNR, SYSTEM_HP_CATEGORY, SYSTEM_USAGE_MARKER, formatDateTime, formatPid, humanName,
} from "./texts.js";
import * as privacy from "./privacy.js";

const PANELS = [
  { id: "journal", title: "Min kjernejournal" },
  { id: "logg", title: "Logg over bruk" },
  { id: "personvern", title: "Personvern" },
];

export async function citizenView({ api, client, root, user }) {
  const patientId = client.patient.id || user.id;
  root.dataset.view = "citizen";
  document.title = "Din kjernejournal – Kjernejournal";

  const intro = h("div", { class: "citizen-intro" },
    h("h1", { id: "page-title" }, "Din kjernejournal"),
    h("p", { class: "who", dataset: { state: "loading" } }, "Henter opplysninger om deg …"));
  const alerts = h("div", { class: "alerts", "aria-live": "polite" });
  const links = PANELS.map((p) => h("a", { href: `#${p.id}`, dataset: { panel: p.id } }, p.title));
  const nav = h("nav", { class: "tabs", "aria-label": "Deler av tjenesten" }, h("ul", null, links.map((a) => h("li", null, a))));

  const record = new RecordView({ api, patientId, role: "citizen", level: 3 });
  const panels = {};
  for (const p of PANELS) {
    panels[p.id] = h("section", { id: p.id, class: "panel", "aria-labelledby": `${p.id}-h`, dataset: { state: "loading" } },
      h("h2", { id: `${p.id}-h` }, p.title));
  }
  panels.journal.append(h("p", { class: "panel-intro" },
    "Dette er opplysningene helsepersonell kan se om deg i kjernejournalen."), ...record.build());
  replace(root, intro, alerts, nav, ...PANELS.map((p) => panels[p.id]));

  const state = { settings: null, logLoaded: false };
  const log = new UsageLog(api, patientId, panels.logg);
  const settings = new PrivacyPanel(api, patientId, panels.personvern, async () => {
    await refresh();
    log.reset();
    if (current() === "logg") log.load();
  });

  // The panel follows the URL's fragment (#journal, #logg, #personvern);
  // other fragments (the skip link's #main) leave the panel as it is.
  let active = "journal";
  function current() {
    const id = (location.hash || "").slice(1);
    if (panels[id]) active = id;
    return active;
  }
  function show(focus) {
    const before = root.dataset.panel;
    const id = current();
    if (focus && before === id) return;
    for (const p of PANELS) {
      panels[p.id].hidden = p.id !== id;
    }
    for (const a of links) {
      if (a.dataset.panel === id) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    root.dataset.panel = id;
    if (id === "logg" && !log.started) log.load();
    if (focus) focusHeading(document.getElementById(`${id}-h`));
  }
  window.addEventListener("hashchange", () => show(true));
  show(false);

  // The citizen's own Patient, for the name and person number.
  api.request(`Patient/${encodeURIComponent(patientId)}`).then(({ json }) => {
    const fnr = (json.identifier || []).find((i) => i.system === SYSTEM_FNR);
    const name = humanName(json.name);
    if (name) user.setName(name);
    replace(intro.querySelector(".who"), `${name}`, fnr ? `, fødselsnummer ${formatPid(fnr.value)}` : "");
    intro.querySelector(".who").dataset.state = "loaded";
  }).catch(() => {
    replace(intro.querySelector(".who"), user.name ? `Innlogget som ${user.name}.` : "");
    intro.querySelector(".who").dataset.state = "refused";
  });

  async function refresh() {
    const sum = await settings.load();
    state.settings = sum;
    replace(alerts);
    if (sum && sum.portal.length) {
      alerts.append(h("div", { class: "notice notice-refused", dataset: { setting: "portaltilgang" } },
        h("p", { class: "notice-title" }, "Du har fjernet din tilgang til kjernejournalen på nett"),
        h("p", null, RESTORE_TEXT)));
    }
    if (sum && sum.reserved) {
      alerts.append(h("div", { class: "notice notice-restricted", dataset: { setting: "reservasjon" } },
        h("p", { class: "notice-title" }, "Du er reservert mot kjernejournal"),
        h("p", null, sum.automatic
          ? "Du er reservert automatisk fordi du har hemmelig adresse i Folkeregisteret. Helsepersonell ser ingen kjernejournal for deg."
          : `Helsepersonell ser ingen kjernejournal for deg. Kjernejournalen slettes ${formatDateTime(sum.deleteAt)} hvis du ikke angrer reservasjonen før da.`),
        sum.automatic ? null : h("p", null, h("a", { href: "#personvern" }, "Angre reservasjonen under Personvern"))));
    }
    for (const key of privacy.PARTS) {
      record.note(key, sum && sum.restricted.includes(key) ? "Du har sperret denne delen. Helsepersonell ser den bare hvis de åpner den med forhøyet tilgang, og det vises i loggen din." : "");
    }
    if (sum && sum.portal.length) {
      // Rule 8: nothing of the record is read on the web until access is
      // restored; the settings above say how.
      record.showAll("refused", () => h("p", { class: "empty" }, "Ikke tilgjengelig på nett: du har fjernet tilgangen din."));
    } else {
      await record.loadAll();
    }
    panels.journal.dataset.state = "loaded";
  }
  await refresh();
}

const RESTORE_TEXT = "Du kan fortsatt se og endre personverninnstillingene her. Tilgangen til å lese kjernejournalen og loggen på nett kan ikke gjenopprettes her: " +
  "kontakt kundesenteret (Veiledning Helsenorge), eller be helsepersonell som behandler deg om hjelp til å gjenopprette den.";

// "Logg over bruk": who, organisation, when, what, paged by the next link.
class UsageLog {
  constructor(api, patientId, panel) {
    this.api = api;
    this.patientId = patientId;
    this.panel = panel;
    this.started = false;
    this.body = h("div", { class: "panel-body" });
    panel.append(
      h("p", { class: "panel-intro" },
        "Her ser du hvem som har brukt kjernejournalen din, fra hvilken virksomhet, når og hva de gjorde. ",
        "Navnet på helsepersonellet vises først sju dager etter oppslaget; virksomheten vises med en gang. ",
        "Når noen har sett journaldokumenter, vises det at dokumenter ble sett, men ikke hvilke."),
      this.body);
  }

  reset() {
    this.started = false;
    this.panel.dataset.state = "loading";
    replace(this.body);
  }

  async load() {
    this.started = true;
    this.panel.dataset.state = "loading";
    replace(this.body, h("p", { class: "loading" }, "Henter loggen …"));
    this.rows = h("tbody");
    this.count = 0;
    this.more = h("div", { class: "actions" });
    try {
      const { json } = await this.api.request(`AuditEvent?patient=${encodeURIComponent(this.patientId)}&_count=20`);
      const capId = uid("log-caption");
      this.caption = h("caption", { id: capId }, "Hendelser, nyeste først");
      const table = h("table", { class: "usage-log" }, this.caption,
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Tidspunkt"), h("th", { scope: "col" }, "Hvem"),
          h("th", { scope: "col" }, "Virksomhet"), h("th", { scope: "col" }, "Hva"), h("th", { scope: "col" }, "Merknad"))),
        this.rows);
      const filterId = uid("log-others");
      const filter = h("input", { type: "checkbox", id: filterId });
      filter.addEventListener("change", () => {
        table.classList.toggle("others-only", filter.checked);
        this.caption.textContent = this.captionText(filter.checked);
      });
      this.filtered = () => filter.checked;
      replace(this.body,
        h("div", { class: "check log-filter" }, filter, h("label", { for: filterId }, "Vis bare andres bruk (skjul dine egne oppslag)")),
        h("div", { class: "table-wrap" }, table),
        this.more);
      this.add(json);
      this.panel.dataset.state = "loaded";
    } catch (err) {
      replace(this.body, problem(err));
      this.panel.dataset.state = "refused";
    }
  }

  captionText(othersOnly) {
    return othersOnly
      ? `${this.count} hendelser hentet, nyeste først; dine egne oppslag er skjult`
      : `${this.count} hendelser, nyeste først`;
  }

  add(bundle) {
    const events = ((bundle && bundle.entry) || []).map((e) => e.resource).filter((r) => r && r.resourceType === "AuditEvent");
    for (const ev of events) this.rows.append(eventRow(ev));
    this.count += events.length;
    if (!this.count) this.rows.append(h("tr", null, h("td", { colspan: "5" }, "Ingen har brukt kjernejournalen din ennå.")));
    this.caption.textContent = this.captionText(this.filtered && this.filtered());
    this.panel.dataset.count = String(this.count);
    const next = ((bundle && bundle.link) || []).find((l) => l.relation === "next");
    replace(this.more);
    if (next) {
      const b = h("button", { type: "button", class: "button button-secondary" }, "Vis eldre hendelser");
      b.addEventListener("click", async () => {
        b.disabled = true;
        this.panel.dataset.state = "loading";
        try {
          const { json } = await this.api.request(next.url);
          const before = this.count;
          this.add(json);
          announce(`${this.count - before} eldre hendelser vist.`);
          const first = this.rows.children[before];
          if (first) focusHeading(first.querySelector("th,td"));
        } catch (err) {
          replace(this.more, problem(err));
        }
        this.panel.dataset.state = "loaded";
      });
      this.more.append(b);
    }
  }
}

function eventRow(ev) {
  const agents = ev.agent || [];
  const actor = agents.find((a) => a.requestor && !["110153", "110152"].includes(typeCode(a.type))) || agents.find((a) => a.requestor) || {};
  let who;
  if (typeCode(actor.type) === "PAT") {
    who = "Du";
  } else {
    const cat = HP_CATEGORY[roleCode(actor, SYSTEM_HP_CATEGORY)];
    who = actor.name ? `${actor.name}${cat ? ` (${cat})` : ""}` : (actor.who && actor.who.display) || "Ukjent";
  }
  const markers = ((ev.meta && ev.meta.tag) || []).filter((t) => t.system === SYSTEM_USAGE_MARKER && t.code !== "name-delayed");
  const badgeKind = { "restricted-opened": "warn", emergency: "critical", refused: "plain", "documents-viewed": "info" };
  const self = typeCode(actor.type) === "PAT";
  return h("tr", { dataset: { event: ev.id || "", markers: markers.map((m) => m.code).join(" "), self: self ? "true" : null } },
    h("td", null, h("time", { datetime: ev.recorded || "" }, formatDateTime(ev.recorded))),
    h("td", null, who),
    h("td", null, organisation(actor)),
    // The sentence names the actor and when the name shows; both are in
    // their own columns already.
    h("td", null, (ev.outcomeDesc || "").replace(/\s*Navnet på helsepersonellet vises fra .*?kl\. \d{2}:\d{2}\./, "")),
    h("td", null, markers.length ? h("ul", { class: "badges" }, markers.map((m) => h("li", { class: `badge badge-${badgeKind[m.code] || "plain"}` }, m.display || m.code))) : ""));
}

function typeCode(t) {
  return (((t || {}).coding || [])[0] || {}).code || "";
}

function roleCode(agent, system) {
  for (const r of agent.role || []) for (const c of r.coding || []) if (c.system === system) return c.code;
  return "";
}

function organisation(agent) {
  let le = "", pc = "";
  for (const x of agent.extension || []) {
    if (!/audit-organisation$/.test(x.url || "")) continue;
    for (const sub of x.extension || []) {
      const ref = sub.valueReference || {};
      const name = ref.display || (ref.identifier && `org.nr. ${ref.identifier.value}`) || "";
      if (sub.url === "legalEntity") le = name;
      if (sub.url === "pointOfCare") pc = name;
    }
  }
  if (pc && le && pc !== le && !pc.startsWith(le)) return `${pc} (${le})`;
  return pc || le || "";
}

// The privacy settings.
class PrivacyPanel {
  constructor(api, patientId, panel, changed) {
    this.api = api;
    this.patientId = patientId;
    this.panel = panel;
    this.changed = changed;
    this.body = h("div", { class: "panel-body" });
    panel.append(h("p", { class: "panel-intro" },
      "Her bestemmer du selv hvem som kan se kjernejournalen din. Endringene gjelder med en gang."), this.body);
  }

  async load() {
    this.panel.dataset.state = "loading";
    let sum;
    try {
      const { entries } = await this.api.search(`Consent?patient=${encodeURIComponent(this.patientId)}&_count=100`);
      sum = privacy.summary(entries.map((e) => e.resource).filter((r) => r && r.resourceType === "Consent"));
    } catch (err) {
      replace(this.body, problem(err));
      this.panel.dataset.state = "refused";
      return null;
    }
    this.sum = sum;
    replace(this.body, this.reservation(sum), this.restriction(sum), this.portal(sum), this.blocks(sum));
    this.panel.dataset.state = "loaded";
    return sum;
  }

  // run does one change and reloads; errors show where the change was made.
  async run(where, done, fn) {
    const out = where.querySelector(".result") || where.appendChild(h("div", { class: "result" }));
    for (const b of where.querySelectorAll("button")) b.disabled = true;
    where.dataset.busy = "true";
    try {
      await fn();
    } catch (err) {
      replace(out, problem(err));
      for (const b of where.querySelectorAll("button")) b.disabled = false;
      delete where.dataset.busy;
      return;
    }
    await this.changed();
    announce(done);
    const again = this.body.querySelector(`[data-setting="${where.dataset.setting}"]`);
    if (again) {
      again.querySelector(".result")?.replaceChildren(h("p", { class: "notice notice-ok", role: "status" }, done));
      focusHeading(again.querySelector("h3"));
    }
  }

  // confirm shows an inline confirmation (no modal dialog) and runs yes.
  confirm(where, { question, yes, danger = true }, onYes) {
    const box = where.querySelector(".confirm");
    const qid = uid("confirm");
    const cancel = h("button", { type: "button", class: "button button-secondary" }, "Avbryt");
    const ok = h("button", { type: "button", class: `button ${danger ? "button-danger" : ""}` }, yes);
    replace(box, h("div", { class: "confirm-box", role: "group", "aria-labelledby": qid },
      h("p", { id: qid, class: "notice-title" }, question), h("div", { class: "actions" }, ok, cancel)));
    cancel.addEventListener("click", () => {
      replace(box);
      where.querySelector(".actions button")?.focus();
    });
    ok.addEventListener("click", onYes);
    ok.focus();
  }

  section(setting, title, state, ...content) {
    const hid = uid(`set-${setting}`);
    return h("section", { class: "setting", "aria-labelledby": hid, dataset: { setting, state } },
      h("h3", { id: hid }, title), ...content, h("div", { class: "confirm" }), h("div", { class: "result" }));
  }

  reservation(sum) {
    if (sum.automatic) {
      return this.section("reservasjon", "Reservasjon", "automatic",
        h("p", { class: "notice notice-restricted" }, "Du er reservert automatisk fordi du har hemmelig adresse i Folkeregisteret. ",
          "Reservasjonen følger adressen og kan ikke endres her."));
    }
    if (sum.reserved) {
      const el = this.section("reservasjon", "Reservasjon", "active",
        h("p", null, `Du reserverte deg ${formatDateTime(sum.reservedSince)}. Helsepersonell ser ingen kjernejournal for deg, og ingen nye opplysninger blir lagt inn.`),
        h("p", null, h("strong", null, `Kjernejournalen slettes ${formatDateTime(sum.deleteAt)}.`),
          " Fram til da kan du angre og få alt tilbake. Etter slettingen kan ingenting gjenopprettes."),
        h("div", { class: "actions" }, h("button", {
          type: "button", class: "button",
          onclick: () => this.run(el, "Reservasjonen er angret. Kjernejournalen din er tilgjengelig for helsepersonell igjen.", async () => {
            for (const r of sum.reservations.filter((x) => !x.automatic)) {
              await this.api.request(`Consent/${encodeURIComponent(r.id)}`, {
                method: "PUT", body: privacy.lifted(r.resource), headers: r.version ? { "If-Match": `W/"${r.version}"` } : undefined,
              });
            }
          }),
        }, "Angre reservasjonen")));
      return el;
    }
    const el = this.section("reservasjon", "Reservasjon", "inactive",
      h("p", null, "Du kan reservere deg mot kjernejournal. Da ser ikke helsepersonell kjernejournalen din, heller ikke i en nødsituasjon, ",
        "og ingen nye opplysninger blir lagt inn. Etter 30 dager slettes kjernejournalen. Innen 30 dager kan du angre og få alt tilbake."),
      h("div", { class: "actions" }, h("button", {
        type: "button", class: "button button-danger",
        onclick: () => this.confirm(el, {
          question: "Vil du reservere deg? Helsepersonell vil ikke lenger se allergier og annen kritisk informasjon om deg, heller ikke i en nødsituasjon.",
          yes: "Ja, reserver meg",
        }, () => this.run(el, "Du er reservert mot kjernejournal. Du kan angre innen 30 dager.", () =>
          this.api.request("Consent", { method: "POST", body: privacy.consent(this.patientId, privacy.RESERVATION) }))),
      }, "Reserver meg mot kjernejournal")));
    return el;
  }

  restriction(sum) {
    const current = sum.restricted;
    const fid = uid("sperring");
    const boxes = {};
    const all = h("input", { type: "checkbox", id: `${fid}-all`, name: "all", value: "all" });
    const rows = [h("div", { class: "check" }, all, h("label", { for: `${fid}-all` }, "Hele kjernejournalen"))];
    for (const p of privacy.PARTS) {
      const id = `${fid}-${p}`;
      const hint = SECTION_HINTS[p];
      boxes[p] = h("input", { type: "checkbox", id, name: "section", value: p, "aria-describedby": hint ? `${id}-hint` : null });
      boxes[p].checked = current.includes(p);
      rows.push(h("div", { class: "check" }, boxes[p], h("label", { for: id }, SECTION_NAMES[p] || p),
        hint ? h("p", { id: `${id}-hint`, class: "hint" }, hint) : null));
    }
    const syncAll = () => {
      all.checked = privacy.PARTS.every((p) => boxes[p].checked);
    };
    all.addEventListener("change", () => {
      for (const p of privacy.PARTS) boxes[p].checked = all.checked;
    });
    for (const p of privacy.PARTS) boxes[p].addEventListener("change", syncAll);
    syncAll();
    const status = current.length
      ? h("p", { class: "notice notice-restricted" }, "Sperret for helsepersonell nå: ", current.map((c) => SECTION_NAMES[c]).join(", "), ".")
      : h("p", null, "Ingen deler av kjernejournalen din er sperret nå.");
    const form = h("form", { class: "restriction-form", novalidate: true },
      h("fieldset", null, h("legend", null, "Velg hva du vil sperre"), rows),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "button" }, "Lagre sperring"),
        current.length ? h("button", { type: "button", class: "button button-secondary", dataset: { action: "lift" } }, "Opphev all sperring") : null));
    const el = this.section("sperring", "Sperring", current.length ? "active" : "inactive",
      h("p", null, "Du kan sperre hele kjernejournalen eller deler av den. Helsepersonell ser da at noe er sperret, og kan bare åpne det med ",
        "forhøyet tilgang: med ditt samtykke eller i en nødsituasjon. Hver åpning vises i loggen din."),
      status, form);
    el.dataset.sections = current.join(" ");
    const apply = (want) => this.run(el, want.length ? `Sperringen er lagret: ${want.map((c) => SECTION_NAMES[c]).join(", ")}.` : "Sperringen er opphevet.", async () => {
      const active = sum.restrictions;
      if (want.length && active.length === 1) {
        const r = active[0];
        await this.api.request(`Consent/${encodeURIComponent(r.id)}`, {
          method: "PUT", body: privacy.withSections(r.resource, want), headers: r.version ? { "If-Match": `W/"${r.version}"` } : undefined,
        });
        return;
      }
      for (const r of active) {
        await this.api.request(`Consent/${encodeURIComponent(r.id)}`, {
          method: "PUT", body: privacy.lifted(r.resource), headers: r.version ? { "If-Match": `W/"${r.version}"` } : undefined,
        });
      }
      if (want.length) {
        const sections = want.length === privacy.PARTS.length ? ["all"] : want;
        await this.api.request("Consent", { method: "POST", body: privacy.consent(this.patientId, privacy.RESTRICTION, { sections }) });
      }
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const want = privacy.PARTS.filter((p) => boxes[p].checked);
      if (want.join() === current.join()) {
        replace(el.querySelector(".result"), h("p", { class: "notice notice-info", role: "status" }, "Ingen endring å lagre."));
        return;
      }
      apply(want);
    });
    form.querySelector('[data-action="lift"]')?.addEventListener("click", () => apply([]));
    return el;
  }

  portal(sum) {
    if (sum.portal.length) {
      return this.section("portaltilgang", "Din tilgang på nett", "active",
        h("p", { class: "notice notice-refused" }, `Du fjernet din tilgang til kjernejournalen på nett ${formatDateTime(sum.portal[0].since)}.`),
        h("p", null, RESTORE_TEXT));
    }
    const el = this.section("portaltilgang", "Din tilgang på nett", "inactive",
      h("p", null, "Du kan fjerne din egen tilgang til å lese kjernejournalen og loggen på nett, for eksempel hvis andre kan logge inn for deg. ",
        "Helsepersonell har fortsatt tilgang som før."),
      h("p", null, "Tilgangen kan ikke gjenopprettes her. For å få den tilbake må du kontakte kundesenteret (Veiledning Helsenorge), ",
        "eller få hjelp av helsepersonell som behandler deg."),
      h("div", { class: "actions" }, h("button", {
        type: "button", class: "button button-danger",
        onclick: () => this.confirm(el, {
          question: "Vil du fjerne din tilgang på nett? Du kan ikke gjenopprette den selv.",
          yes: "Ja, fjern tilgangen min",
        }, () => this.run(el, "Tilgangen din på nett er fjernet.", () =>
          this.api.request("Consent", { method: "POST", body: privacy.consent(this.patientId, privacy.PORTAL) }))),
      }, "Fjern min tilgang på nett")));
    return el;
  }

  blocks(sum) {
    const hprs = [...new Set(sum.blocks.flatMap((b) => b.hpr))].sort();
    return this.section("blokkering", "Blokkering av helsepersonell", hprs.length ? "active" : "inactive",
      hprs.length
        ? h("ul", { class: "blocked" }, hprs.map((x) => h("li", null, `Helsepersonell med HPR-nummer ${x}`)))
        : h("p", null, "Du har ikke blokkert noe helsepersonell."),
      h("p", null, "Blokkering av navngitt helsepersonell settes og oppheves av kundesenteret (Veiledning Helsenorge) på din forespørsel. ",
        "Den gjelder alltid, også i nødsituasjoner. Du kan ikke endre blokkeringer her."));
  }
}

