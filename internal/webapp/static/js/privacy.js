// The citizen's privacy settings: Consent resources of the profile
// KjPrivacyConsent (profiles/consent-privacy.json, internal/privacy).

export const PROFILE = "https://kjernejournal.example.no/fhir/StructureDefinition/KjPrivacyConsent";
export const SETTING_SYSTEM = "https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting";
export const SECTION_SYSTEM = "https://kjernejournal.example.no/fhir/CodeSystem/record-section";
const SOURCE_EXT = "https://kjernejournal.example.no/fhir/StructureDefinition/privacy-setting-source";
const HPR = "urn:oid:2.16.578.1.12.4.1.4.4";

export const RESERVATION = "reservasjon";
export const RESTRICTION = "sperring";
export const BLOCK = "blokkering";
export const PORTAL = "portaltilgang";

// The sections a restriction can name (record-section codes); "all" is
// every one of them. The privacy settings offer them in this order, with
// the names and hints of texts.js (SECTION_NAMES, SECTION_HINTS).
export const PARTS = ["critical", "medications", "visits", "documents", "lab-results"];
export const RETENTION_DAYS = 30;

// seconds: the server counts the 30 days from dateTime, to the second
// with a time zone; it never goes backwards (not before since).
export function nowSeconds(since) {
  let t = Math.floor(Date.now() / 1000) * 1000;
  if (since) {
    const s = Date.parse(since);
    if (Number.isFinite(s) && s > t) t = s;
  }
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function consent(patientId, kind, { active = true, sections, since } = {}) {
  const c = {
    resourceType: "Consent",
    meta: { profile: [PROFILE] },
    status: active ? "active" : "inactive",
    scope: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/consentscope", code: "patient-privacy" }] },
    category: [{ coding: [{ system: SETTING_SYSTEM, code: kind }] }],
    patient: { reference: `Patient/${patientId}` },
    dateTime: nowSeconds(since),
    policyRule: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/v3-ActCode", code: "OPTOUT" }] },
    provision: { type: "deny" },
  };
  if (sections && sections.length) {
    c.provision.code = sections.map((s) => ({ coding: [{ system: SECTION_SYSTEM, code: s }] }));
  }
  return c;
}

// lifted is the stored Consent with status inactive, as of now: privacy
// settings are lifted by an update, never deleted.
export function lifted(stored) {
  const c = structuredClone(stored);
  delete c.meta.versionId;
  delete c.meta.lastUpdated;
  c.status = "inactive";
  c.dateTime = nowSeconds(stored.dateTime);
  return c;
}

// withSections is the stored restriction naming other sections, as of now.
export function withSections(stored, sections) {
  const c = structuredClone(stored);
  delete c.meta.versionId;
  delete c.meta.lastUpdated;
  c.provision = Object.assign({}, c.provision, { code: sections.map((s) => ({ coding: [{ system: SECTION_SYSTEM, code: s }] })) });
  c.dateTime = nowSeconds(stored.dateTime);
  return c;
}

export function kindOf(c) {
  const cd = (((c.category || [])[0] || {}).coding || []).find((x) => x.system === SETTING_SYSTEM);
  return cd ? cd.code : "";
}

export function parse(c) {
  const sections = new Set();
  for (const cc of (c.provision && c.provision.code) || []) {
    for (const cd of cc.coding || []) {
      if (cd.system !== SECTION_SYSTEM) continue;
      if (cd.code === "all") PARTS.forEach((p) => sections.add(p));
      else sections.add(cd.code);
    }
  }
  const hpr = [];
  for (const a of (c.provision && c.provision.actor) || []) {
    const id = a.reference && a.reference.identifier;
    if (id && id.system === HPR) hpr.push(id.value);
  }
  return {
    id: c.id,
    version: c.meta && c.meta.versionId,
    kind: kindOf(c),
    active: c.status === "active",
    since: c.dateTime,
    automatic: (c.extension || []).some((e) => e.url === SOURCE_EXT),
    sections: PARTS.filter((p) => sections.has(p)),
    hpr,
    resource: c,
  };
}

export function summary(consents) {
  const all = consents.map(parse);
  const active = all.filter((s) => s.active);
  const reservations = active.filter((s) => s.kind === RESERVATION);
  const restrictions = active.filter((s) => s.kind === RESTRICTION);
  const restricted = new Set(restrictions.flatMap((s) => s.sections));
  const firstSince = reservations.map((s) => s.since).sort()[0];
  return {
    all,
    reservations,
    reserved: reservations.length > 0,
    automatic: reservations.some((s) => s.automatic),
    reservedSince: firstSince,
    deleteAt: firstSince ? new Date(Date.parse(firstSince) + RETENTION_DAYS * 864e5).toISOString() : "",
    restrictions,
    restricted: PARTS.filter((p) => restricted.has(p)),
    blocks: active.filter((s) => s.kind === BLOCK),
    portal: active.filter((s) => s.kind === PORTAL),
  };
}
