// A generic FHIR client (fhir-kit-client) through CRUD, versioning,
// search and history of a KjFlag, as the gp persona with a token from an
// EHR launch and the access basis UNNTAK on every request.
//
//   KJ_BASE_URL=http://127.0.0.1:8080 node crud.mjs

import { Client, RESPONSE_KEY } from "fhir-kit-client";

import {
  ACCESS_BASIS, BASE, FLAG_CATEGORY, Reporter, assert, assertEqual, createPatient, ehrLaunchToken, flag,
} from "./lib.mjs";

const r = new Reporter();
const response = (result) => result[RESPONSE_KEY];

// failsWith runs fn and requires that the client rejects it with status.
async function failsWith(status, fn, what) {
  try {
    await fn();
  } catch (err) {
    assert(err.response, `${what}: ${err.message}`);
    assertEqual(err.response.status, status, `${what}: status`);
    assertEqual(err.response.data && err.response.data.resourceType, "OperationOutcome", `${what}: body`);
    return;
  }
  throw new Error(`${what}: succeeded, want status ${status}`);
}

let client, patient;
await r.check("fhir-kit-client/setup", async () => {
  patient = await createPatient();
  const token = await ehrLaunchToken("gp", patient.id);
  assertEqual(token.patient, patient.id, "token's patient context");
  client = new Client({ baseUrl: BASE, bearerToken: token.access_token, customHeaders: { ...ACCESS_BASIS } });
});

await r.check("fhir-kit-client/capabilities", async () => {
  const cs = await client.capabilityStatement();
  assertEqual(cs.resourceType, "CapabilityStatement", "resourceType");
  assertEqual(cs.fhirVersion, "4.0.1", "fhirVersion");
  const flagRes = cs.rest[0].resource.find((x) => x.type === "Flag");
  assert(flagRes, "Flag is not in the CapabilityStatement");
  const interactions = flagRes.interaction.map((i) => i.code);
  for (const code of ["create", "read", "vread", "update", "delete", "history-instance", "search-type"]) {
    assert(interactions.includes(code), `Flag does not advertise ${code} (has ${interactions.join(", ")})`);
  }
});

let created;
await r.check("fhir-kit-client/create", async () => {
  created = await client.create({ resourceType: "Flag", body: flag(patient.id, "Pacemaker (fhir-kit-client)") });
  const res = response(created);
  assertEqual(res.status, 201, "status");
  assertEqual(created.resourceType, "Flag", "resourceType");
  assert(created.id, "no id");
  assertEqual(created.meta && created.meta.versionId, "1", "meta.versionId");
  const loc = res.headers.get("location") || "";
  assert(loc.includes(`Flag/${created.id}/_history/1`), `Location ${JSON.stringify(loc)} does not name Flag/${created.id}/_history/1`);
  assertEqual(res.headers.get("etag"), 'W/"1"', "ETag");
});

let current;
await r.check("fhir-kit-client/read", async () => {
  current = await client.read({ resourceType: "Flag", id: created.id });
  assertEqual(current.id, created.id, "id");
  assertEqual(current.code.text, "Pacemaker (fhir-kit-client)", "code.text");
  assertEqual(current.category[0].coding[0].system, FLAG_CATEGORY, "category system");
  assertEqual(current.subject.reference, `Patient/${patient.id}`, "subject");
  assertEqual(response(current).headers.get("etag"), 'W/"1"', "ETag");
});

await r.check("fhir-kit-client/update", async () => {
  const body = { ...current, code: { text: "Pacemaker, MR-betinget (fhir-kit-client)" } };
  const updated = await client.update({
    resourceType: "Flag", id: created.id, body, options: { headers: { "If-Match": 'W/"1"' } },
  });
  assertEqual(response(updated).status, 200, "status");
  assertEqual(updated.meta.versionId, "2", "meta.versionId");
  assertEqual(updated.code.text, "Pacemaker, MR-betinget (fhir-kit-client)", "code.text");
  assertEqual(response(updated).headers.get("etag"), 'W/"2"', "ETag");
});

await r.check("fhir-kit-client/update-stale-etag", async () => {
  await failsWith(412, () => client.update({
    resourceType: "Flag", id: created.id, body: { ...current, code: { text: "stale" } },
    options: { headers: { "If-Match": 'W/"1"' } },
  }), "update with If-Match of version 1");
});

await r.check("fhir-kit-client/vread", async () => {
  const v1 = await client.vread({ resourceType: "Flag", id: created.id, version: "1" });
  assertEqual(v1.meta.versionId, "1", "meta.versionId");
  assertEqual(v1.code.text, "Pacemaker (fhir-kit-client)", "code.text of version 1");
});

await r.check("fhir-kit-client/search", async () => {
  const bundle = await client.search({ resourceType: "Flag", searchParams: { patient: patient.id, status: "active" } });
  assertEqual(bundle.resourceType, "Bundle", "resourceType");
  assertEqual(bundle.type, "searchset", "Bundle.type");
  const hit = (bundle.entry || []).find((e) => e.resource.id === created.id);
  assert(hit, `Flag/${created.id} is not in the searchset`);
  assertEqual(hit.resource.meta.versionId, "2", "found version");
  assertEqual(hit.search && hit.search.mode, "match", "entry.search.mode");
  const none = await client.search({ resourceType: "Flag", searchParams: { patient: patient.id, status: "inactive" } });
  assert(!(none.entry || []).some((e) => e.resource.id === created.id), "status=inactive finds the active Flag");
});

await r.check("fhir-kit-client/compartment-search", async () => {
  const bundle = await client.compartmentSearch({ resourceType: "Flag", compartment: { resourceType: "Patient", id: patient.id } });
  assertEqual(bundle.type, "searchset", "Bundle.type");
  assert((bundle.entry || []).some((e) => e.resource.id === created.id), `Flag/${created.id} is not in Patient/${patient.id}/Flag`);
});

await r.check("fhir-kit-client/history", async () => {
  const bundle = await client.history({ resourceType: "Flag", id: created.id });
  assertEqual(bundle.type, "history", "Bundle.type");
  const versions = (bundle.entry || []).map((e) => e.resource && e.resource.meta.versionId);
  assertEqual(versions.join(","), "2,1", "versions, newest first");
});

await r.check("fhir-kit-client/delete", async () => {
  const res = response(await client.delete({ resourceType: "Flag", id: created.id }));
  assert(res.status === 200 || res.status === 204, `status ${res.status}, want 200 or 204`);
  await failsWith(410, () => client.read({ resourceType: "Flag", id: created.id }), "read after delete");
  const bundle = await client.history({ resourceType: "Flag", id: created.id });
  const entries = bundle.entry || [];
  assertEqual(entries.length, 3, "history entries after delete");
  assertEqual(entries[0].request && entries[0].request.method, "DELETE", "newest history entry's request.method");
  const after = await client.search({ resourceType: "Flag", searchParams: { patient: patient.id } });
  assert(!(after.entry || []).some((e) => e.resource.id === created.id), "the deleted Flag is still found by search");
});

r.done();
