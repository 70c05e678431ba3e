package audit

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// Synthetic identities only.
const (
	hprDoctor  = "9900001"
	pidCitizen = "01019912345" // not a real person number
	dnrCitizen = "41019912345"
	pidSupport = "02029912345"
	orgHosp    = "990000001"
	orgWard    = "990000002"
	patient    = "pas-1"
)

var t0 = time.Date(2026, 3, 2, 10, 15, 30, 123456000, time.UTC)

func validate(t *testing.T, body []byte) *bcrpb.ContainedResource {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	require.NoError(t, err)
	pb, err := u.Unmarshal(body)
	require.NoError(t, err, "google/fhir rejects %s", body)
	cr := pb.(*bcrpb.ContainedResource)
	require.NotNil(t, cr.GetAuditEvent(), "not an AuditEvent: %s", body)
	return cr
}

func decode(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), "%s", body)
	return m
}

// get walks a decoded JSON value by keys and indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func doctor() Record {
	return Record{
		ID: "ae-1", Time: t0, RequestID: "req-7f3a",
		User:         User{Role: access.Practitioner, HPR: hprDoctor, Name: "Lege Testesen", HPCategory: "LE"},
		Org:          Organisation{LegalEntity: orgHosp, LegalEntityName: "Testsykehuset HF", PointOfCare: orgWard, PointOfCareName: "Akuttmottaket"},
		ClientID:     "ehr-client-1",
		Issuer:       "https://helseid.test.example",
		PurposeOfUse: "TREAT",
		Basis:        access.Unntak,
		Patients:     []string{patient},
		Outcome:      Outcome{Reason: access.OK, Message: "access permitted", HTTPStatus: 200},
		Server:       "https://kj.test.example/fhir",
	}
}

func with(r Record, f func(*Record)) Record { f(&r); return r }

func entityByRole(m map[string]any, role string) []map[string]any {
	var out []map[string]any
	for _, e := range get(m, "entity").([]any) {
		em := e.(map[string]any)
		if code, _ := get(em, "role", "code").(string); code == role {
			out = append(out, em)
		}
	}
	return out
}

func accessExt(m map[string]any) map[string]any {
	out := map[string]any{}
	for _, x := range get(m, "extension").([]any) {
		if get(x, "url") != ExtAccess {
			continue
		}
		for _, s := range get(x, "extension").([]any) {
			sm := s.(map[string]any)
			for k, v := range sm {
				if k != "url" {
					out[sm["url"].(string)] = v
				}
			}
		}
	}
	return out
}

func userAgentOf(m map[string]any) map[string]any {
	for _, a := range get(m, "agent").([]any) {
		if get(a, "requestor") == true {
			return a.(map[string]any)
		}
	}
	return nil
}

func TestEventVariants(t *testing.T) {
	type want struct {
		subtype  string // restful-interaction code, "" for none
		action   string
		outcome  string
		profile  string // BALP profile suffix, "" for none
		resource string // expected entity role 4 reference
		query    string // decoded query entity, "" for none
		userType string // type code of the requestor agent
	}
	cases := []struct {
		name  string
		r     Record
		want  want
		check func(t *testing.T, m map[string]any)
	}{
		{"read", with(doctor(), func(r *Record) { r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1" }),
			want{"read", "R", "0", "PatientRead", "Flag/f1", "", "IRCP"},
			func(t *testing.T, m map[string]any) {
				u := userAgentOf(m)
				assert.Equal(t, domain.SystemHPR, get(u, "who", "identifier", "system"))
				assert.Equal(t, hprDoctor, get(u, "who", "identifier", "value"))
				assert.Equal(t, "Lege Testesen", get(u, "name"))
				assert.Equal(t, "LE", get(u, "role", 0, "coding", 0, "code"))
				assert.Equal(t, "urn:oid:2.16.578.1.12.4.1.1.9060", get(u, "role", 0, "coding", 0, "system"))
				assert.Equal(t, "TREAT", get(u, "purposeOfUse", 0, "coding", 0, "code"))
				org := get(u, "extension", 0)
				assert.Equal(t, ExtOrganisation, get(org, "url"))
				assert.Equal(t, orgHosp, get(org, "extension", 0, "valueReference", "identifier", "value"))
				assert.Equal(t, "Akuttmottaket", get(org, "extension", 1, "valueReference", "display"))
				assert.Equal(t, "UNNTAK", get(accessExt(m), "basis", "code"))
				assert.Nil(t, get(m, "outcomeDesc"), "a plain success needs no description")
				client := get(m, "agent", 1)
				assert.Equal(t, "110153", get(client, "type", "coding", 0, "code"))
				assert.Equal(t, "ehr-client-1", get(client, "who", "identifier", "value"))
				assert.Equal(t, false, get(client, "requestor"))
				assert.Equal(t, "110152", get(m, "agent", 2, "type", "coding", 0, "code"))
				assert.Equal(t, "https://kj.test.example/fhir", get(m, "source", "observer", "display"))
				assert.Equal(t, "2026-03-02T10:15:30.123456Z", get(m, "recorded"))
				rid := entityByRole(m, "")
				require.Len(t, rid, 1)
				assert.Equal(t, "XrequestId", get(rid[0], "type", "code"))
				assert.Equal(t, "req-7f3a", get(rid[0], "what", "identifier", "value"))
			}},
		{"vread", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID, r.VersionID = VRead, "AllergyIntolerance", "a1", "3"
		}), want{"vread", "R", "0", "PatientRead", "AllergyIntolerance/a1/_history/3", "", "IRCP"}, nil},
		{"search", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.Query = Search, "MedicationStatement", "patient=pas-1&_count=10"
		}), want{"search", "E", "0", "PatientQuery", "", "patient=pas-1&_count=10", "IRCP"},
			func(t *testing.T, m map[string]any) {
				assert.Equal(t, "MedicationStatement", get(entityByRole(m, "24")[0], "description"))
			}},
		{"search hiding restricted parts", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.Query = Search, "Encounter", "patient=pas-1"
			r.Outcome = Outcome{Reason: access.OKPartsHidden, Message: "the patient has restricted visits", HTTPStatus: 200}
		}), want{"search", "E", "0", "PatientQuery", "", "patient=pas-1", "IRCP"},
			func(t *testing.T, m map[string]any) {
				assert.Equal(t, "ok-restricted-hidden: the patient has restricted visits", get(m, "outcomeDesc"))
			}},
		{"history of one resource", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID, r.Query = History, "Flag", "f1", "_since=2026-01-01"
		}), want{"history-instance", "E", "0", "", "Flag/f1", "_since=2026-01-01", "IRCP"}, nil},
		{"history of a type", with(doctor(), func(r *Record) { r.Interaction, r.ResourceType = History, "Flag" }),
			want{"history-type", "E", "0", "", "", "", "IRCP"}, nil},
		{"create", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = Create, "AllergyIntolerance", "new-1"
			r.Outcome.HTTPStatus = 201
		}), want{"create", "C", "0", "PatientCreate", "AllergyIntolerance/new-1", "", "AGNT"}, nil},
		{"update", with(doctor(), func(r *Record) { r.Interaction, r.ResourceType, r.ResourceID = Update, "Flag", "f1" }),
			want{"update", "U", "0", "PatientUpdate", "Flag/f1", "", "AGNT"}, nil},
		{"delete", with(doctor(), func(r *Record) { r.Interaction, r.ResourceType, r.ResourceID = Delete, "Flag", "f1" }),
			want{"delete", "D", "0", "PatientDelete", "Flag/f1", "", "AGNT"}, nil},
		{"batch", with(doctor(), func(r *Record) { r.Interaction, r.Patients = Batch, nil }),
			want{"batch", "E", "0", "", "", "", "IRCP"}, nil},
		{"transaction", with(doctor(), func(r *Record) { r.Interaction, r.Patients = Transaction, nil }),
			want{"transaction", "E", "0", "", "", "", "IRCP"}, nil},
		{"operation", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID, r.Operation = Operation, "Patient", patient, "$summary"
		}), want{"operation", "E", "0", "", "Patient/pas-1", "", "IRCP"},
			func(t *testing.T, m map[string]any) {
				assert.Equal(t, "Patient/pas-1/$summary", get(entityByRole(m, "24")[0], "description"))
			}},
		{"document search", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.Query = DocumentSearch, "DocumentReference", "patient=pas-1&type=A00"
			r.Documents = []Document{{ID: "doc-a", Source: orgHosp, SourceName: "Testsykehuset HF"}, {ID: "doc-b", Source: "990000003"}}
		}), want{"search", "E", "0", "PatientQuery", "", "patient=pas-1&type=A00", "IRCP"},
			func(t *testing.T, m map[string]any) {
				assert.Equal(t, "ITI-67", get(m, "subtype", 1, "code"))
				docs := entityByRole(m, "3")
				require.Len(t, docs, 2)
				assert.Equal(t, "doc-a", get(docs[0], "what", "identifier", "value"))
				assert.Equal(t, orgHosp, get(docs[0], "what", "identifier", "assigner", "identifier", "value"))
				assert.Equal(t, "Testsykehuset HF", get(docs[0], "what", "identifier", "assigner", "display"))
			}},
		{"document read", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = DocumentRead, "Binary", "doc-a"
			r.Documents = []Document{{ID: "doc-a", Source: orgHosp}}
		}), want{"", "R", "0", "", "", "", "IRCP"},
			func(t *testing.T, m map[string]any) {
				assert.Equal(t, "ITI-68", get(m, "subtype", 0, "code"))
				assert.Len(t, entityByRole(m, "3"), 1)
			}},
		{"emergency opening restricted parts", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.Query = Search, "MedicationStatement", "patient=pas-1"
			r.Basis, r.PurposeOfUse, r.OpenedRestricted = access.ForhoyetAkutt, "ETREAT", true
			r.Outcome = Outcome{Reason: access.OKRestrictedOpened, Message: "restricted medications opened", HTTPStatus: 200}
		}), want{"search", "E", "0", "PatientQuery", "", "patient=pas-1", "IRCP"},
			func(t *testing.T, m map[string]any) {
				x := accessExt(m)
				assert.Equal(t, true, x["openedRestricted"])
				assert.Equal(t, true, x["emergency"])
				assert.Equal(t, "FORHOYET_AKUTT", get(x, "basis", "code"))
				assert.Equal(t, "ok-restricted-opened", get(x, "reason", "code"))
				assert.Equal(t, "ETREAT", get(userAgentOf(m), "purposeOfUse", 0, "coding", 0, "code"))
			}},
		{"refused: patient not in context", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
			r.Outcome = Outcome{Refused: true, Reason: access.PatientNotInContext, Message: "Patient/pas-1 is not the patient in the token's context", HTTPStatus: 403}
		}), want{"read", "R", "4", "", "Flag/f1", "", "IRCP"},
			func(t *testing.T, m map[string]any) {
				assert.Equal(t, "patient-not-in-context: Patient/pas-1 is not the patient in the token's context", get(m, "outcomeDesc"))
				x := accessExt(m)
				assert.Equal(t, true, x["refused"])
				assert.EqualValues(t, 403, x["httpStatus"])
				assert.Equal(t, "patient-not-in-context", get(x, "reason", "code"))
			}},
		{"refused: cross-patient search binds no patient", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.Query, r.Patients = Search, "Flag", "code=xyz", nil
			r.Outcome = Outcome{Refused: true, Reason: access.NoPatientBound, Message: "searching across patients is not allowed", HTTPStatus: 403}
		}), want{"search", "E", "4", "", "", "code=xyz", "IRCP"},
			func(t *testing.T, m map[string]any) { assert.Empty(t, entityByRole(m, "1")) }},
		{"refused as not found (reserved patient)", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Patient", patient
			r.Outcome = Outcome{Refused: true, Reason: access.NoRecord, Message: "there is no kjernejournal for Patient/pas-1", HTTPStatus: 404}
		}), want{"read", "R", "4", "", "Patient/pas-1", "", "IRCP"}, nil},
		{"server failure", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
			r.Outcome = Outcome{Reason: access.OK, Message: "storage unavailable", HTTPStatus: 503}
		}), want{"read", "R", "8", "", "Flag/f1", "", "IRCP"}, nil},
		{"citizen reads own record", Record{
			ID: "ae-c", Time: t0, RequestID: "req-c", Interaction: Read, ResourceType: "Patient", ResourceID: patient,
			Patients: []string{patient}, User: User{Role: access.Citizen, PID: pidCitizen, Name: "Kari Testperson"},
			ClientID: "citizen-portal", Outcome: Outcome{Reason: access.OK, HTTPStatus: 200},
		}, want{"read", "R", "0", "PatientRead", "Patient/pas-1", "", "PAT"},
			func(t *testing.T, m map[string]any) {
				u := userAgentOf(m)
				assert.Equal(t, domain.SystemFNR, get(u, "who", "identifier", "system"))
				assert.Equal(t, pidCitizen, get(u, "who", "identifier", "value"))
				assert.Nil(t, get(u, "purposeOfUse"))
				assert.Equal(t, "kjernejournal", get(m, "source", "site"))
			}},
		{"citizen with D-number", Record{
			Time: t0, Interaction: Search, ResourceType: "AuditEvent", Query: "patient=pas-1",
			Patients: []string{patient}, User: User{Role: access.Citizen, PID: dnrCitizen},
			Outcome: Outcome{Reason: access.OK, HTTPStatus: 200},
		}, want{"search", "E", "0", "PatientQuery", "", "patient=pas-1", "PAT"},
			func(t *testing.T, m map[string]any) {
				assert.Equal(t, domain.SystemDNR, get(userAgentOf(m), "who", "identifier", "system"))
				id, _ := get(m, "id").(string)
				assert.Regexp(t, `^[A-Za-z0-9\-.]{20,64}$`, id, "a random FHIR id when none is given")
			}},
		{"citizen changes privacy settings", Record{
			ID: "ae-p", Time: t0, Interaction: PrivacyChange, ResourceType: "Consent", ResourceID: "c1",
			Patients: []string{patient}, User: User{Role: access.Citizen, PID: pidCitizen},
			Outcome: Outcome{Reason: access.OK, HTTPStatus: 200},
		}, want{"update", "U", "0", "", "Consent/c1", "", "PAT"}, nil},
		{"feeder system writes medications", Record{
			ID: "ae-s", Time: t0, Interaction: Create, ResourceType: "MedicationStatement", ResourceID: "m1",
			Patients: []string{patient}, User: User{Role: access.System}, ClientID: "reseptformidleren",
			Org:     Organisation{LegalEntity: "990000009", LegalEntityName: "Reseptformidleren"},
			Outcome: Outcome{Reason: access.OK, HTTPStatus: 201},
		}, want{"create", "C", "0", "PatientCreate", "MedicationStatement/m1", "", "110153"},
			func(t *testing.T, m map[string]any) {
				assert.Len(t, get(m, "agent"), 2, "no person agent for a system")
				c := userAgentOf(m)
				assert.Equal(t, "reseptformidleren", get(c, "who", "identifier", "value"))
				assert.Equal(t, ExtOrganisation, get(c, "extension", 0, "url"))
				assert.Equal(t, "system", get(c, "role", 0, "coding", 0, "code"))
			}},
		{"citizen support sets a block", Record{
			ID: "ae-b", Time: t0, Interaction: PrivacyChange, ResourceType: "Consent", ResourceID: "block-1",
			Patients: []string{patient}, User: User{Role: access.CitizenSupport, PID: pidSupport, Name: "Saksbehandler Test"},
			Outcome: Outcome{Reason: access.OK, HTTPStatus: 200},
		}, want{"update", "U", "0", "", "Consent/block-1", "", "AGNT"},
			func(t *testing.T, m map[string]any) {
				u := userAgentOf(m)
				assert.Equal(t, domain.SystemFNR, get(u, "who", "identifier", "system"))
				assert.Equal(t, "citizen-support", get(u, "role", 0, "coding", 0, "code"))
			}},
		{"auditor searches the log", Record{
			ID: "ae-a", Time: t0, Interaction: Search, ResourceType: "AuditEvent", Query: "agent-hpr=9900001&date=ge2026-01-01",
			User: User{Role: access.Auditor, Name: "Tilsyn Test"}, Outcome: Outcome{Reason: access.OK, HTTPStatus: 200},
		}, want{"search", "E", "0", "Query", "", "agent-hpr=9900001&date=ge2026-01-01", "IRCP"}, nil},
		{"hostile input is kept and still valid", Record{
			ID: "bad id!", Time: t0, RequestID: "r\x00\n\u2028", Interaction: Read, ResourceType: "Flag", ResourceID: "../../etc/passwd",
			Patients: []string{"a b", "\xff"}, Query: "x=%00&y=<script>\xff",
			User:         User{Role: access.Practitioner, HPR: "1\"2", Name: "Ola \\ \"Test\"\t", HPCategory: " L E"},
			PurposeOfUse: "TREAT\n", ClientID: "c", Issuer: "not a uri",
			Outcome: Outcome{Refused: true, Reason: "weird reason ", Message: "\x01", HTTPStatus: 400},
		}, want{"read", "R", "4", "", "", "x=%00&y=<script>\xff", "IRCP"},
			func(t *testing.T, m map[string]any) {
				assert.Equal(t, "Flag/../../etc/passwd", get(entityByRole(m, "4")[0], "what", "display"))
				assert.Equal(t, " L E", get(userAgentOf(m), "role", 0, "text"))
				assert.Len(t, entityByRole(m, "1"), 2, "Event keeps every patient")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := Event(tc.r)
			validate(t, body)
			m := decode(t, body)
			assert.Equal(t, "AuditEvent", m["resourceType"])
			assert.Equal(t, "rest", get(m, "type", "code"))
			assert.Equal(t, "http://terminology.hl7.org/CodeSystem/audit-event-type", get(m, "type", "system"))
			if tc.want.subtype != "" {
				assert.Equal(t, "http://hl7.org/fhir/restful-interaction", get(m, "subtype", 0, "system"))
				assert.Equal(t, tc.want.subtype, get(m, "subtype", 0, "code"))
			}
			last := get(m, "subtype").([]any)
			assert.Equal(t, string(tc.r.Interaction), get(last[len(last)-1], "code"))
			assert.Equal(t, tc.want.action, m["action"])
			assert.Equal(t, tc.want.outcome, m["outcome"])
			if tc.want.outcome != "0" {
				assert.NotEmpty(t, m["outcomeDesc"])
			}
			if tc.want.profile == "" {
				assert.Nil(t, get(m, "meta", "profile"))
			} else {
				assert.Equal(t, balpProfile+tc.want.profile, get(m, "meta", "profile", 0))
			}
			if len(tc.r.Patients) == 1 {
				p := entityByRole(m, "1")
				require.Len(t, p, 1)
				assert.Equal(t, "Patient/"+tc.r.Patients[0], get(p[0], "what", "reference"))
				assert.Equal(t, "1", get(p[0], "type", "code"))
			}
			if tc.want.resource != "" {
				res := entityByRole(m, "4")
				require.Len(t, res, 1)
				if ref := get(res[0], "what", "reference"); ref != nil {
					assert.Equal(t, tc.want.resource, ref)
				}
			}
			qs := entityByRole(m, "24")
			if tc.want.query != "" {
				require.Len(t, qs, 1)
				raw, err := base64.StdEncoding.DecodeString(get(qs[0], "query").(string))
				require.NoError(t, err)
				assert.Equal(t, tc.want.query, string(raw), "the raw query is kept byte for byte")
			} else {
				for _, q := range qs {
					assert.Nil(t, q["query"])
				}
			}
			u := userAgentOf(m)
			require.NotNil(t, u, "exactly one agent is the requestor")
			assert.Equal(t, tc.want.userType, get(u, "type", "coding", 0, "code"))
			n := 0
			for _, a := range get(m, "agent").([]any) {
				if get(a, "requestor") == true {
					n++
				}
			}
			assert.Equal(t, 1, n)
			if tc.r.ID != "" && validID(tc.r.ID) {
				assert.Equal(t, body, Event(tc.r), "the same record gives the same bytes")
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestEventsOnePerPatient(t *testing.T) {
	// A support role's search that returned three patients' data (one named
	// twice) gives three AuditEvents, each about one patient.
	r := Record{
		ID: "ae-multi", Time: t0, RequestID: "req-m", Interaction: Search, ResourceType: "Consent", Query: "status=active",
		Patients: []string{"pas-1", "pas-2", "pas-1", "pas-3"},
		User:     User{Role: access.CitizenSupport, PID: pidSupport}, Outcome: Outcome{Reason: access.OK, HTTPStatus: 200},
	}
	evs := Events(r)
	require.Len(t, evs, 3)
	ids := map[string]bool{}
	for i, ev := range evs {
		validate(t, ev)
		m := decode(t, ev)
		ids[m["id"].(string)] = true
		p := entityByRole(m, "1")
		require.Len(t, p, 1)
		assert.Equal(t, "Patient/"+[]string{"pas-1", "pas-2", "pas-3"}[i], get(p[0], "what", "reference"))
		assert.Equal(t, balpProfile+"PatientQuery", get(m, "meta", "profile", 0))
		assert.Equal(t, "req-m", get(entityByRole(m, "")[0], "what", "identifier", "value"), "the request id ties them together")
	}
	assert.Equal(t, map[string]bool{"ae-multi": true, "ae-multi-2": true, "ae-multi-3": true}, ids)

	one := decode(t, Event(r))
	assert.Len(t, entityByRole(one, "1"), 3)
	assert.Equal(t, balpProfile+"Query", get(one, "meta", "profile", 0), "no Patient* profile with several patients")

	single := Events(with(r, func(r *Record) { r.Patients = nil }))
	require.Len(t, single, 1)
	validate(t, single[0])
	assert.Equal(t, Event(with(r, func(r *Record) { r.Patients = []string{"pas-9"} })), Events(with(r, func(r *Record) { r.Patients = []string{"pas-9"} }))[0])
}

func TestSetPrincipalAndDecision(t *testing.T) {
	p := &auth.Principal{
		ClientID: "ehr-client-1", Issuer: "https://helseid.test.example", Name: "Lege Testesen",
		HPR: hprDoctor, PID: "03039912345", OrgParent: orgHosp, HPCategory: "LE", PurposeOfUse: "TREAT",
		Attest: &auth.Attest{Practitioner: auth.AttestPractitioner{
			LegalEntity: auth.Ident{ID: orgHosp, Name: "Testsykehuset HF"},
			PointOfCare: auth.Ident{ID: orgWard, Name: "Akuttmottaket"},
		}},
	}
	var r Record
	r.SetPrincipal(p, access.Practitioner)
	assert.Equal(t, User{Role: access.Practitioner, HPR: hprDoctor, PID: "03039912345", Name: "Lege Testesen", HPCategory: "LE"}, r.User)
	assert.Equal(t, Organisation{LegalEntity: orgHosp, LegalEntityName: "Testsykehuset HF", PointOfCare: orgWard, PointOfCareName: "Akuttmottaket"}, r.Org)
	assert.Equal(t, "TREAT", r.PurposeOfUse)

	pol := &access.Policy{Orgs: access.Organisations{Hospitals: []string{orgHosp}}}
	d := pol.Decide(access.Subject{Role: access.Practitioner, HPR: hprDoctor, SecurityLevel: 4, HPCategory: "LE", LegalEntity: orgHosp, Patients: []string{patient}},
		access.Request{Interaction: access.Search, ResourceType: "MedicationStatement", Patient: patient, Basis: access.ForhoyetSamtykke},
		access.PatientState{Exists: true, Restricted: []access.Section{access.Medications}})
	r.SetDecision(d, 200)
	assert.True(t, r.OpenedRestricted)
	assert.False(t, r.Outcome.Refused)
	assert.Equal(t, access.OKRestrictedOpened, r.Outcome.Reason)

	r.Time, r.Interaction, r.ResourceType, r.Patients = t0, Search, "MedicationStatement", []string{patient}
	m := decode(t, Event(r))
	assert.Equal(t, hprDoctor, get(userAgentOf(m), "who", "identifier", "value"), "an HP is logged by HPR number, never by person number")
	assert.NotContains(t, string(Event(r)), "03039912345")

	d = pol.Decide(access.Subject{Role: access.Practitioner, SecurityLevel: 4}, access.Request{Interaction: access.Read, ResourceType: "Flag", Patient: patient}, access.PatientState{Exists: true})
	r.SetDecision(d, 403)
	assert.True(t, r.Outcome.Refused)
	m = decode(t, Event(r))
	assert.Equal(t, "4", m["outcome"])
	assert.True(t, strings.HasPrefix(m["outcomeDesc"].(string), "no-hpr-number: "))

	var none Record
	none.SetPrincipal(nil, access.System)
	assert.Equal(t, access.System, none.User.Role)
}
