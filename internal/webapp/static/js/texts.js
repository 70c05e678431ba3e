// Norwegian (bokmål) texts and formatting for the kjernejournal app.

export const SYSTEM_FNR = "urn:oid:2.16.578.1.12.4.1.4.1";
export const SYSTEM_DNR = "urn:oid:2.16.578.1.12.4.1.4.2";
export const SYSTEM_HPR = "urn:oid:2.16.578.1.12.4.1.4.4";
export const SYSTEM_ACCESS_REASON = "https://kjernejournal.example.no/fhir/CodeSystem/access-reason";
export const SYSTEM_SOURCE_STATUS = "https://kjernejournal.example.no/fhir/CodeSystem/document-source-status";
export const SYSTEM_USAGE_MARKER = "https://kjernejournal.example.no/fhir/CodeSystem/usage-log-marker";
export const SYSTEM_HP_CATEGORY = "urn:oid:2.16.578.1.12.4.1.1.9060";
export const SYSTEM_LAB_SOURCE = "https://kjernejournal.example.no/fhir/CodeSystem/lab-source";

// The record's sections as the server names them (access.Section).
export const SECTION_NAMES = {
  critical: "Kritisk informasjon",
  medications: "Legemidler",
  visits: "Besøkshistorikk",
  documents: "Journaldokumenter",
  "lab-results": "Prøvesvar",
};

// What each section holds, in a sentence: the hints of the privacy
// settings' restriction (citizen.js).
export const SECTION_HINTS = {
  critical: "Allergier, reaksjoner og annen kritisk informasjon.",
  medications: "Legemidler fra e-resepter.",
  visits: "Besøk på sykehus. Sperrer du besøkshistorikken, blir også journaldokumentene utilgjengelige.",
  documents: "Journaldokumenter fra sykehusene. Ingen kan åpne dem så lenge de er sperret.",
  "lab-results": "Prøvesvar fra laboratoriene (blodprøver, urinprøver, dyrkning) det siste året.",
};

export const BASIS_NAMES = {
  UNNTAK: "Unntak fra samtykke",
  SAMTYKKE: "Samtykke",
  AKUTT: "Akutt (nødsituasjon)",
  FORHOYET_SAMTYKKE: "Forhøyet tilgang med samtykke",
  FORHOYET_AKUTT: "Forhøyet tilgang i nødsituasjon",
};

export function basisName(b) {
  return BASIS_NAMES[b] || b || "ikke oppgitt";
}

// What the server's reason codes (issue.details, access-reason) mean for
// the user. The server's own sentence (English) is shown next to it.
const REASONS = {
  "not-authenticated": ["Ikke innlogget", "Du er ikke logget inn, eller økten er utløpt. Start appen på nytt."],
  "insufficient-scope": ["Appen mangler tilgang", "Appen har ikke fått tilgang (scope) til denne delen av journalen."],
  "no-hpr-number": ["Mangler HPR-nummer", "Bare autorisert helsepersonell med HPR-nummer får se helseopplysninger."],
  "security-level-too-low": ["For lavt sikkerhetsnivå", "Innloggingen må ha sikkerhetsnivå 4 (høyt) for å gi tilgang til helseopplysninger."],
  "no-patient-bound": ["Mangler pasient", "Hver forespørsel må gjelde nøyaktig én pasient."],
  "patient-not-in-context": ["Feil pasient", "Pasienten er ikke den pasienten innloggingen gjelder."],
  "attest-patient-mismatch": ["Attesten gjelder en annen pasient", "Tillitsattesten i innloggingen nevner ikke denne pasienten. Logg inn på nytt for pasienten du behandler."],
  "access-basis-missing": ["Tilgangsgrunnlag mangler", "Oppgi tilgangsgrunnlag (unntak, samtykke eller akutt)."],
  "access-basis-unknown": ["Ukjent tilgangsgrunnlag", "Tilgangsgrunnlaget er ikke gyldig."],
  "unntak-not-supported": ["Unntak fra samtykke gjelder ikke deg",
    "Unntak fra samtykke gjelder pasientens fastlege, avtalespesialister og leger og sykepleiere som behandler pasienten på sykehus. Innhent samtykke og bruk samtykke som grunnlag."],
  "akutt-not-supported": ["Akutt tilgang er ikke tillatt",
    "Akutt tilgang (nødsituasjon) krever at innloggingen har formålet øyeblikkelig hjelp (ETREAT) eller nødtilgang (BTG), for eksempel på legevakt eller i akuttmottak."],
  "no-record": ["Ingen kjernejournal", "Det finnes ingen kjernejournal for denne pasienten."],
  "reserved-no-new-data": ["Ingen kjernejournal", "Det finnes ingen kjernejournal for denne pasienten."],
  "section-restricted": ["Sperret av pasienten",
    "Pasienten har sperret denne delen. Den kan bare åpnes med forhøyet tilgang (samtykke eller nødsituasjon)."],
  "hp-blocked": ["Du er blokkert",
    "Pasienten har blokkert deg fra kjernejournalen sin. Blokkeringen gjelder også i nødsituasjoner."],
  "documents-unavailable": ["Journaldokumenter er ikke tilgjengelige",
    "Pasienten har sperret besøkshistorikken eller deling av journaldokumenter. Ingen tilgangsgrunnlag åpner dem; bare pasienten kan oppheve sperringen."],
  "lab-results-unavailable": ["Prøvesvar er ikke tilgjengelige",
    "Pasienten har sperret besøkshistorikken, og da er heller ikke prøvesvarene tilgjengelige. Ingen tilgangsgrunnlag åpner dem; bare pasienten kan oppheve sperringen."],
  "not-own-record": ["Ikke din journal", "Du kan bare lese din egen kjernejournal."],
  "portal-access-removed": ["Tilgangen på nett er fjernet",
    "Du har fjernet din egen tilgang til kjernejournalen på nett. Du kan fortsatt se og endre personverninnstillingene. Kundesenteret gir deg tilgangen tilbake når du ber om det."],
  "portal-restored-by-support": ["Tilgangen gis tilbake av kundesenteret",
    "Tilgang på nett som du selv har fjernet, kan bare gis tilbake av kundesenteret (eller med hjelp fra helsepersonell som behandler deg), ikke på nett."],
  "documents-for-hp": ["Journaldokumenter deles med helsepersonell",
    "Journaldokumenter fra andre sykehus deles med helsepersonell som behandler deg. Du leser dem i sykehusenes egne pasientportaler."],
  "not-own-user": ["Ikke tillatt", "Du kan bare se opplysningene om deg selv som helsepersonell."],
  "system-no-clinical-read": ["Ikke tillatt", "Systemer kan ikke lese helseopplysninger."],
  "role-not-allowed": ["Ikke tillatt", "Rollen din gir ikke tilgang til dette."],
  "privacy-by-citizen-only": ["Bare innbyggeren", "Personverninnstillingene styres av innbyggeren selv."],
  "blocks-by-support-only": ["Settes av kundesenteret",
    "Blokkering av navngitt helsepersonell settes og oppheves av kundesenteret på din forespørsel."],
  "hp-writes-critical-only": ["Ikke tillatt", "Helsepersonell registrerer bare kritisk informasjon."],
  "feeder-writes-own-fields": ["Ikke tillatt", "Systemet kan ikke skrive denne typen opplysninger."],
  "automatic-reservation-locked": ["Automatisk reservasjon",
    "Reservasjonen er satt automatisk fordi du har hemmelig adresse i Folkeregisteret, og kan ikke endres her."],
  "privacy-kind-changed": ["Kan ikke endres", "En innstilling kan ikke gjøres om til en annen type."],
  "privacy-datetime-stale": ["Utdatert endring", "Innstillingen er endret i mellomtiden. Last siden på nytt og prøv igjen."],
};

// describe turns an ApiError (status, OperationOutcome) into a title and
// text in Norwegian, the reason code and the server's own sentence.
export function describe(err) {
  const out = { title: "Noe gikk galt", text: "", code: err.reason || "", server: err.diagnostics || "", status: err.status };
  if (err.status === 0) {
    out.title = "Fikk ikke kontakt med kjernejournalen";
    out.text = "Tjenesten svarte ikke. Sjekk nettforbindelsen og prøv igjen.";
    return out;
  }
  const r = REASONS[err.reason];
  if (r) {
    [out.title, out.text] = r;
    return out;
  }
  switch (err.status) {
    case 401:
      out.title = "Ikke innlogget";
      out.text = "Økten er utløpt eller ugyldig. Start appen på nytt.";
      break;
    case 403:
      out.title = "Ingen tilgang";
      out.text = "Kjernejournalen avviste forespørselen.";
      break;
    case 404:
      out.title = "Ikke funnet";
      out.text = "Kjernejournalen fant ikke det du ba om.";
      break;
    case 409:
    case 412:
      out.title = "Endret i mellomtiden";
      out.text = "Opplysningene er endret av noen andre. Last siden på nytt og prøv igjen.";
      break;
    case 422:
    case 400:
      out.title = "Ugyldig forespørsel";
      out.text = "Kjernejournalen godtok ikke forespørselen.";
      break;
    case 429:
    case 503:
      out.title = "Tjenesten er opptatt";
      out.text = "Kjernejournalen kan ikke svare nå. Prøv igjen om litt.";
      break;
    default:
      out.text = "Kjernejournalen svarte med en feil (HTTP " + err.status + ").";
  }
  return out;
}

// The answer for a patient without a record (reserved or unknown): the
// server answers exactly as for a patient it never had.
export const NO_RECORD = {
  title: "Ingen kjernejournal",
  text: "Det finnes ingen kjernejournal for denne pasienten. Pasienten kan ha reservert seg, eller er ikke registrert.",
};

const oslo = "Europe/Oslo";

function parts(iso, withTime) {
  const d = new Date(iso);
  if (isNaN(d)) return null;
  const opts = { timeZone: oslo, day: "2-digit", month: "2-digit", year: "numeric" };
  if (withTime) Object.assign(opts, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const p = {};
  for (const { type, value } of new Intl.DateTimeFormat("en-GB", opts).formatToParts(d)) p[type] = value;
  return p;
}

// formatDate: 02.09.1983 (a FHIR date without time is shown as is).
export function formatDate(v) {
  if (!v) return "";
  if (/^\d{4}-\d{2}-\d{2}$/.test(v)) {
    const [y, m, d] = v.split("-");
    return `${d}.${m}.${y}`;
  }
  if (/^\d{4}-\d{2}$/.test(v)) {
    const [y, m] = v.split("-");
    return `${m}.${y}`;
  }
  if (/^\d{4}$/.test(v)) return v;
  const p = parts(v, false);
  return p ? `${p.day}.${p.month}.${p.year}` : v;
}

// formatDateTime: 12.11.2026 kl. 14:52 (Norwegian time).
export function formatDateTime(v) {
  if (!v) return "";
  if (!v.includes("T")) return formatDate(v);
  const p = parts(v, true);
  return p ? `${p.day}.${p.month}.${p.year} kl. ${p.hour}:${p.minute}` : v;
}

export function formatPeriod(period) {
  if (!period) return "";
  const s = formatDate(period.start), e = formatDate(period.end);
  if (s && e && s !== e) return `${s}–${e}`;
  return s || (e ? `til ${e}` : "");
}

// formatPid: 028983 21285 (date part and personal number).
export function formatPid(pid) {
  return /^\d{11}$/.test(pid || "") ? pid.slice(0, 6) + "\u00a0" + pid.slice(6) : pid || "";
}

export function formatSize(bytes) {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1024) return bytes + " byte";
  if (bytes < 1024 * 1024) return (bytes / 1024).toLocaleString("nb-NO", { maximumFractionDigits: 1 }) + " kB";
  return (bytes / 1024 / 1024).toLocaleString("nb-NO", { maximumFractionDigits: 1 }) + " MB";
}

export const GENDER = { female: "Kvinne", male: "Mann", other: "Annet", unknown: "Ukjent" };

export const ALLERGY = {
  criticality: { high: "Høy kritikalitet", low: "Lav kritikalitet", "unable-to-assess": "Kritikalitet ikke vurdert" },
  severity: { mild: "mild", moderate: "moderat", severe: "alvorlig" },
  type: { allergy: "Allergi", intolerance: "Intoleranse" },
  category: { medication: "legemiddel", food: "mat", environment: "miljø", biologic: "biologisk" },
  verification: { confirmed: "bekreftet", unconfirmed: "ikke bekreftet", refuted: "avkreftet", "entered-in-error": "feilregistrert" },
  clinical: { active: "aktiv", inactive: "inaktiv", resolved: "opphørt" },
};

export const MED_STATUS = {
  active: "I bruk", completed: "Avsluttet", "entered-in-error": "Feilregistrert", intended: "Planlagt",
  stopped: "Stoppet", "on-hold": "Midlertidig stoppet", unknown: "Ukjent", "not-taken": "Ikke tatt",
};

export const FLAG_STATUS = { active: "aktiv", inactive: "inaktiv", "entered-in-error": "feilregistrert" };

export const ENCOUNTER_CLASS = {
  EMER: "Øyeblikkelig hjelp", AMB: "Poliklinisk", IMP: "Innleggelse", ACUTE: "Akutt innleggelse",
  SS: "Dagbehandling", HH: "Hjemmebesøk", VR: "Virtuell konsultasjon", OBSENC: "Observasjon",
};

export const ENCOUNTER_STATUS = {
  planned: "planlagt", arrived: "ankommet", "in-progress": "pågår", onleave: "permisjon",
  finished: "avsluttet", cancelled: "avlyst", "entered-in-error": "feilregistrert", unknown: "ukjent",
};

export const HP_CATEGORY = { LE: "lege", SP: "sykepleier", JO: "jordmor", FA1: "farmasøyt", TL: "tannlege", HP: "helsepersonell" };

export const SOURCE_STATUS = {
  "source-timeout": "svarte ikke i tide",
  "source-error": "svarte med en feil",
  "source-warning": "ga en advarsel",
};

// Lab results: the interpretation flag of an Observation (v3
// ObservationInterpretation), in words and with a mark that does not
// depend on colour; kind picks the badge (warn: outside the reference
// range, critical: at a critical level). N (normal) is not marked.
export const LAB_FLAG = {
  H: { text: "Høy", mark: "↑", kind: "warn" },
  L: { text: "Lav", mark: "↓", kind: "warn" },
  HH: { text: "Kritisk høy", mark: "↑↑", kind: "critical" },
  LL: { text: "Kritisk lav", mark: "↓↓", kind: "critical" },
  HU: { text: "Svært høy", mark: "↑↑", kind: "critical" },
  LU: { text: "Svært lav", mark: "↓↓", kind: "critical" },
  A: { text: "Avvikende", mark: "!", kind: "warn" },
  AA: { text: "Kritisk avvikende", mark: "!!", kind: "critical" },
  ">": { text: "Over måleområdet", mark: "↑", kind: "warn" },
  "<": { text: "Under måleområdet", mark: "↓", kind: "warn" },
  POS: { text: "Positiv", mark: "+", kind: "warn" },
  DET: { text: "Påvist", mark: "+", kind: "warn" },
  NEG: { text: "Negativ", kind: "plain" },
  ND: { text: "Ikke påvist", kind: "plain" },
  R: { text: "Resistent", kind: "warn" },
  I: { text: "Intermediær", kind: "plain" },
  S: { text: "Følsom", kind: "plain" },
  IND: { text: "Usikker", kind: "plain" },
};

// The status of a lab report or result; a final one is not marked.
export const LAB_STATUS = {
  registered: ["Registrert, ikke besvart", "warn"],
  partial: ["Delvis besvart", "warn"],
  preliminary: ["Foreløpig", "warn"],
  amended: ["Endret", "info"],
  corrected: ["Korrigert", "info"],
  appended: ["Med tillegg", "info"],
  cancelled: ["Kansellert", "plain"],
  "entered-in-error": ["Feilregistrert", "plain"],
};

// formatNumber: a lab value as Norwegian labs print it (decimal comma,
// no thousands separator, the precision as given).
export function formatNumber(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return v == null ? "" : String(v);
  return v.toLocaleString("nb-NO", { useGrouping: false, maximumFractionDigits: 20 }).replace("\u2212", "-");
}

// formatUnit: a unit as printed (unit, else the UCUM code), with powers of
// ten raised: 10^9/L and 10*9/L become 10⁹/L.
export function formatUnit(q) {
  const u = (q && (q.unit || q.code)) || "";
  const sup = { 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹", "-": "⁻" };
  return u.replace(/10[\^*](-?\d+)/g, (_, e) => "10" + [...e].map((c) => sup[c]).join(""));
}

// text of a CodeableConcept: text, else the first display, else the code.
export function conceptText(cc) {
  if (!cc) return "";
  if (cc.text) return cc.text;
  for (const c of cc.coding || []) if (c.display) return c.display;
  for (const c of cc.coding || []) if (c.code) return c.code;
  return "";
}

export function code(cc, system) {
  for (const c of (cc && cc.coding) || []) if (!system || c.system === system) return c.code;
  return undefined;
}

export function humanName(names) {
  const n = (names || []).find((x) => x.use === "official") || (names || [])[0];
  if (!n) return "";
  if (n.text) return n.text;
  return [...(n.given || []), n.family].filter(Boolean).join(" ");
}
