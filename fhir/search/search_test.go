package search

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// now is the clock of every test registry, so ap tolerances are fixed.
var now = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// testTypes are the resource types the tests' registries are built for:
// the types kjernejournal stores.
var testTypes = []string{"Patient", "AllergyIntolerance", "Flag", "MedicationStatement", "Encounter", "Consent", "Condition", "Procedure"}

func testRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := Load(testTypes)
	if err != nil {
		t.Fatal(err)
	}
	r.Now = func() time.Time { return now }
	return r
}

func fixtureIndexes(t testing.TB, r *Registry, typ string) []Index {
	t.Helper()
	var out []Index
	for _, body := range fixtures[typ] {
		idx, err := r.Extract(typ, []byte(body))
		if err != nil {
			t.Fatalf("extract %s: %v", typ, err)
		}
		out = append(out, idx)
	}
	return out
}

func mustParse(t testing.TB, r *Registry, typ, raw string) *Query {
	t.Helper()
	vs, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	q, _, err := r.ParseQuery(typ, vs, false)
	if err != nil {
		t.Fatalf("%s?%s: %v", typ, raw, err)
	}
	return q
}

func matchIDs(q *Query, idxs []Index) string {
	var ids []string
	for _, idx := range idxs {
		if q.Match(idx) {
			ids = append(ids, idx.ID)
		}
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// TestSearch covers every parameter, prefix and modifier on the fixtures.
// want lists the matching ids, sorted.
func TestSearch(t *testing.T) {
	const (
		clin  = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
		hpr   = "urn:oid:2.16.578.1.12.4.1.4.4"
		fnr   = "urn:oid:2.16.578.1.12.4.1.4.1"
		icd10 = "urn:oid:2.16.578.1.12.4.1.1.7110"
	)
	cases := []struct{ typ, query, want string }{
		// reference: id, Type/id, :Type, comma OR, repeated AND, :missing
		{"AllergyIntolerance", "patient=p1", "a1,a2,a3"},
		{"AllergyIntolerance", "patient=Patient/p2", "a4"},
		{"AllergyIntolerance", "patient=http://example.org/fhir/Patient/p2", "a4"},
		{"AllergyIntolerance", "patient:Patient=p2", "a4"},
		{"AllergyIntolerance", "patient=p1,p2", "a1,a2,a3,a4"},
		{"AllergyIntolerance", "patient=p1&patient=p2", ""},
		// token: code, system|code, system|, |code, :not, :missing
		{"AllergyIntolerance", "clinical-status=active", "a1,a4"},
		{"AllergyIntolerance", "clinical-status=" + clin + "|inactive", "a2"},
		{"AllergyIntolerance", "clinical-status=" + clin + "|", "a1,a2,a4"},
		{"AllergyIntolerance", "clinical-status=|active", ""},
		{"AllergyIntolerance", "clinical-status:not=active", "a2,a3"}, // a3 has none: :not includes it
		{"AllergyIntolerance", "clinical-status:not=active,inactive", "a3"},
		{"AllergyIntolerance", "clinical-status:missing=true", "a3"},
		{"AllergyIntolerance", "clinical-status:missing=false", "a1,a2,a4"},
		{"AllergyIntolerance", "verification-status=confirmed,unconfirmed", "a1,a2"},
		{"AllergyIntolerance", "category=food", "a2"},
		{"AllergyIntolerance", "category=|food", "a2"},
		{"AllergyIntolerance", "category=environment&category=biologic", "a3"},
		{"AllergyIntolerance", "category=environment&category=food", ""},
		{"AllergyIntolerance", "category=environment,food", "a2,a3"},
		{"AllergyIntolerance", "criticality=high", "a1"},
		{"AllergyIntolerance", "criticality:not=high", "a2,a3,a4"},
		{"AllergyIntolerance", "type=allergy", "a1"},
		{"AllergyIntolerance", "type=intolerance", "a2"},
		{"AllergyIntolerance", "code=764146007", "a1,a4"},
		{"AllergyIntolerance", "code=http://snomed.info/sct|764146007", "a1,a4"},
		{"AllergyIntolerance", "code=http://loinc.org|764146007", ""},
		{"AllergyIntolerance", "code=764146007&patient=p1", "a1"},
		// token :text, folded, word prefix
		{"AllergyIntolerance", "code:text=penicillin", "a1,a4"},
		{"AllergyIntolerance", "code:text=PENICILLINALLERGI", "a1"},
		{"AllergyIntolerance", "code:text=bjorkepollen", "a3"},
		{"AllergyIntolerance", "code:text=Bjørke", "a3"},
		{"AllergyIntolerance", "code:text=cashewnott", "a2"},
		{"AllergyIntolerance", "code:text=allergi", ""},
		{"AllergyIntolerance", "manifestation=271807003", "a1"},
		{"AllergyIntolerance", "manifestation:text=utslett", "a1"},
		// date on recordedDate: second with +01:00, year, month, date only
		{"AllergyIntolerance", "date=2024-03-05", "a1,a4"},
		{"AllergyIntolerance", "date=eq2024-03-05", "a1,a4"},
		{"AllergyIntolerance", "date=2024-03", "a1,a3,a4"},
		{"AllergyIntolerance", "date=2024", "a1,a3,a4"},
		{"AllergyIntolerance", "date=2023", "a2"},
		{"AllergyIntolerance", "date=ne2024", "a2"},
		{"AllergyIntolerance", "date=lt2024-03-05", "a2,a3"},
		{"AllergyIntolerance", "date=gt2024-03-05", "a3"},
		{"AllergyIntolerance", "date=ge2024-03-05", "a1,a3,a4"},
		{"AllergyIntolerance", "date=le2024-03-05", "a1,a2,a3,a4"},
		{"AllergyIntolerance", "date=sa2023", "a1,a3,a4"},
		{"AllergyIntolerance", "date=eb2024", "a2"},
		{"AllergyIntolerance", "date=2024-03-05T10:30:00+01:00", "a1"},
		{"AllergyIntolerance", "date=2024-03-05T09:30:00Z", "a1"},
		{"AllergyIntolerance", "date=2024-03-05T10:30:00%2B01:00", "a1"},
		{"AllergyIntolerance", "date=2024-03-05T04:30:00-05:00", "a1"},
		{"AllergyIntolerance", "date=2024-03-05T09:30", "a1"},       // no zone: UTC
		{"AllergyIntolerance", "date=2024-03-05T10:30", ""},         // no zone is UTC, not +01:00
		{"AllergyIntolerance", "date=2024-03-05T09:30:00.000Z", ""}, // a millisecond cannot contain a second
		{"AllergyIntolerance", "date=2024-03-05T09:30:00.5Z", ""},   //
		{"AllergyIntolerance", "date=ge2024-03-05&date=lt2024-04", "a1,a3,a4"},
		{"AllergyIntolerance", "date=2023,2024-03-05", "a1,a2,a4"},
		{"AllergyIntolerance", "date=ap2024-04-20", "a1,a3,a4"}, // ±62 days
		{"AllergyIntolerance", "date=2024-04-20", ""},
		{"AllergyIntolerance", "date:missing=true", ""},
		// reference to a practitioner: literal, logical (identifier), chain
		{"AllergyIntolerance", "recorder=pr1", "a1"},
		{"AllergyIntolerance", "recorder=Practitioner/pr1", "a1"},
		{"AllergyIntolerance", "recorder:identifier=" + hpr + "|7654321", "a2"},
		{"AllergyIntolerance", "recorder:identifier=7654321", "a2"},
		{"AllergyIntolerance", "recorder:Practitioner.identifier=" + hpr + "|1234567", "a1"},
		{"AllergyIntolerance", "recorder:missing=true", "a3,a4"},
		{"AllergyIntolerance", "identifier=urn:kj:allergy|A-1", "a1"},
		{"AllergyIntolerance", "identifier:missing=true", "a2,a3,a4"},
		{"AllergyIntolerance", "_id=a2,a3", "a2,a3"},
		{"AllergyIntolerance", "_id:not=a1", "a2,a3,a4"},
		{"AllergyIntolerance", "_lastUpdated=2024-03-06", "a2"},
		{"AllergyIntolerance", "_lastUpdated=ge2024-03-07", "a3,a4"},
		{"AllergyIntolerance", "_lastUpdated=lt2024-03-06", "a1"},
		// an unresolved chain matches nothing rather than everything
		{"AllergyIntolerance", "patient.identifier=" + fnr + "|02816401618", ""},

		// Flag: our own status, category and code; date over an open Period
		{"Flag", "status=active", "f1"},
		{"Flag", "status:not=active", "f2,f3"},
		{"Flag", "category=1", "f1"},
		{"Flag", "category=urn:oid:2.16.578.1.12.4.1.1.9601|3", "f2"},
		{"Flag", "category:missing=true", "f3"},
		{"Flag", "category:text=implantat", "f2"},
		{"Flag", "code=pacemaker", "f2"},
		{"Flag", "code:text=malign", "f1"},
		{"Flag", "code:text=anestesi", "f1"},
		{"Flag", "date=2024", ""}, // an ongoing period is not inside 2024
		{"Flag", "date=ge2024", "f1"},
		{"Flag", "date=2022", "f2"},
		{"Flag", "date=ne2022", "f1"},
		{"Flag", "date=ap2022-06", "f1,f2"},
		{"Flag", "date=sa2021", "f2"},
		{"Flag", "date=eb2023", "f2"},
		{"Flag", "date=lt2021", "f1"},
		{"Flag", "date=gt2022-07", "f1"},
		{"Flag", "date=le2022-05-01", "f1"}, // f2 starts exactly at the search start
		{"Flag", "date:missing=true", "f3"},
		{"Flag", "author=Practitioner/pr1", "f1"},
		{"Flag", "author=o1", "f2"},
		{"Flag", "author:Organization=o1", "f2"},
		{"Flag", "author:Practitioner=o1", ""},
		{"Flag", "encounter=e1", "f1"},
		{"Flag", "encounter=Encounter/e1", "f1"},
		{"Flag", "encounter:missing=true", "f2,f3"},
		{"Flag", "subject=p1", "f1,f2,f3"},
		{"Flag", "subject:Patient=p1", "f1,f2,f3"},
		{"Flag", "patient=p1&status=active,inactive", "f1,f2"},

		// MedicationStatement: choice types medication[x], effective[x]
		{"MedicationStatement", "status=active,stopped", "m1,m2"},
		{"MedicationStatement", "code=C10AA05", "m1"},
		{"MedicationStatement", "code=http://www.whocc.no/atc|", "m1,m3"},
		{"MedicationStatement", "code:text=paracet", "m3"},
		{"MedicationStatement", "code:missing=true", "m2"},
		{"MedicationStatement", "medication=Medication/med1", "m2"},
		{"MedicationStatement", "medication=med1", "m2"},
		{"MedicationStatement", "medication:missing=true", "m1,m3"},
		{"MedicationStatement", "category=community", "m1"},
		{"MedicationStatement", "category:missing=true", "m2"},
		{"MedicationStatement", "effective=2021", "m1"},
		{"MedicationStatement", "effective=2019", "m2"},
		{"MedicationStatement", "effective=ge2025", "m3"},
		{"MedicationStatement", "effective=eb2020", "m2"},
		{"MedicationStatement", "effective=2021-06-15", ""},
		{"MedicationStatement", "effective=ap2021-06-15", "m1"},
		{"MedicationStatement", "source=pr1", "m1"},
		{"MedicationStatement", "source:identifier=" + hpr + "|7654321", "m2"},
		{"MedicationStatement", "subject=Patient/p1", "m1,m2,m3"},

		// Encounter
		{"Encounter", "status=finished", "e1"},
		{"Encounter", "class=AMB", "e1"},
		{"Encounter", "class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP", "e2"},
		{"Encounter", "type=poli", "e1"},
		{"Encounter", "type:text=poliklinisk", "e1"},
		{"Encounter", "type:missing=true", "e2"},
		{"Encounter", "date=2024-09-01", "e1"},
		{"Encounter", "date=2024-09-01T13:00:00+02:00", ""},
		{"Encounter", "date=ap2024-09-01T13:00:00Z", "e1"},
		{"Encounter", "date=ge2025-12-30", "e2"},
		{"Encounter", "date=2025-12-30", ""},
		{"Encounter", "date=sa2025-12-29", "e2"},
		{"Encounter", "date=le2025-12-30T21:00:00Z", "e1"}, // e2 starts 22:00+01:00 = 21:00Z
		{"Encounter", "date=le2025-12-30T21:00:01Z", "e1,e2"},
		{"Encounter", "service-provider=o1", "e1"},
		{"Encounter", "service-provider:identifier=urn:oid:2.16.578.1.12.4.1.4.101|983974899", "e2"},
		{"Encounter", "reason-code=K80.2", "e1"},
		{"Encounter", "reason-code=" + icd10 + "|", "e1,e2"},
		{"Encounter", "reason-code:text=kolecyst", "e1"},
		{"Encounter", "reason-code:text=pneumoni", "e2"},

		// Patient: identifier, strings with Norwegian letters, birthdate
		{"Patient", "identifier=" + fnr + "|02816401618", "p1"},
		{"Patient", "identifier=02816401618", "p1"},
		{"Patient", "identifier=" + fnr + "|", "p1"},
		{"Patient", "identifier:text=x", ""},
		{"Patient", "name=odegard", "p1"},
		{"Patient", "name=Ødeg", "p1,p2"},
		{"Patient", "name=Ødegår", "p1"},
		{"Patient", "name=ODEGAA", "p2"},
		{"Patient", "name=ode", "p1,p2"},
		{"Patient", "name=åse", "p1"},
		{"Patient", "name=ase", "p1"},
		{"Patient", "name=aase", ""}, // "aa" is not folded to å
		{"Patient", "name:exact=Ødegård", "p1"},
		{"Patient", "name:exact=ødegård", ""},
		{"Patient", "name:contains=gaard", "p2"},
		{"Patient", "name:contains=marie", "p1"},
		{"Patient", "name=marie", "p1"},
		{"Patient", "name=a%CC%8Ase", "p1"}, // decomposed å
		{"Patient", "family=hansen (test) .*", "p3"},
		{"Patient", "family:contains=.*", "p3"},
		{"Patient", "family=.*", ""},
		{"Patient", "family=h[a-z]*", ""},
		{"Patient", "given=nils-aege", "p3"},
		{"Patient", "given=marie", "p1"},
		{"Patient", "birthdate=1964", "p1,p2"},
		{"Patient", "birthdate=1964-01-02", "p1"},
		{"Patient", "birthdate=1964-01", "p1"},
		{"Patient", "birthdate=lt1990-05-15", "p1,p2,p3"},
		{"Patient", "birthdate=gt1990-05-15", "p3"},
		{"Patient", "birthdate=1990-05-15", ""},
		{"Patient", "gender=male", "p2,p3"},
		{"Patient", "general-practitioner:identifier=" + hpr + "|990017097", "p1"},
		{"Patient", "general-practitioner:missing=true", "p2,p3"},
		{"Patient", "_id=p2", "p2"},
		// hostile values are literals: they are valid tokens that match nothing
		{"Patient", "gender=%7B%22%24gt%22%3A%22%22%7D", ""},
		{"Patient", "gender=$where", ""},
		{"Patient", "gender=.*", ""},
		{"Patient", "name=%24where", ""},
	}
	r := testRegistry(t)
	idxs := map[string][]Index{}
	for typ := range fixtures {
		idxs[typ] = fixtureIndexes(t, r, typ)
	}
	for _, c := range cases {
		t.Run(c.typ+"?"+c.query, func(t *testing.T) {
			q := mustParse(t, r, c.typ, c.query)
			if got := matchIDs(q, idxs[c.typ]); got != c.want {
				t.Errorf("got [%s], want [%s]", got, c.want)
			}
			// Matching straight from the JSON gives the same answer.
			var viaJSON []string
			for _, body := range fixtures[c.typ] {
				ok, idx, err := q.MatchJSON([]byte(body))
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					viaJSON = append(viaJSON, idx.ID)
				}
			}
			slices.Sort(viaJSON)
			if got := strings.Join(viaJSON, ","); got != c.want {
				t.Errorf("MatchJSON: got [%s], want [%s]", got, c.want)
			}
		})
	}
}

func TestChainResolved(t *testing.T) {
	r := testRegistry(t)
	idxs := fixtureIndexes(t, r, "AllergyIntolerance")
	q := mustParse(t, r, "AllergyIntolerance", "patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|02816401618&clinical-status=active")
	chains := q.Chains()
	if len(chains) != 1 || chains[0].TargetType != "Patient" || chains[0].Param != "patient" ||
		chains[0].Identifiers[0] != (Token{System: "urn:oid:2.16.578.1.12.4.1.4.1", Code: "02816401618", HasSystem: true}) {
		t.Fatalf("chains = %+v", chains)
	}
	if ids, ok := q.PatientBinding(); ok {
		t.Fatalf("an unresolved chain binds %v", ids)
	}
	chains[0].Resolve([]string{"p1"})
	if got := matchIDs(q, idxs); got != "a1" {
		t.Errorf("got %s", got)
	}
	if ids, ok := q.PatientBinding(); !ok || !slices.Equal(ids, []string{"p1"}) {
		t.Errorf("binding = %v %v", ids, ok)
	}
	// No patient has the identifier: bound, to nobody.
	chains[0].Resolve(nil)
	if ids, ok := q.PatientBinding(); !ok || len(ids) != 0 {
		t.Errorf("binding = %v %v", ids, ok)
	}
}

func TestPatientBinding(t *testing.T) {
	r := testRegistry(t)
	cases := []struct {
		typ, query string
		want       string // "-" unbound
	}{
		{"AllergyIntolerance", "patient=p1", "p1"},
		{"AllergyIntolerance", "patient=Patient/p1&code=x", "p1"},
		{"AllergyIntolerance", "patient:Patient=p1", "p1"},
		{"AllergyIntolerance", "patient=p1,p2", "p1,p2"},
		{"AllergyIntolerance", "patient=p1,p2&patient=p2", "p2"},
		{"AllergyIntolerance", "patient=p1&patient=p2", ""},
		{"AllergyIntolerance", "code=x", "-"},
		{"AllergyIntolerance", "", "-"},
		{"AllergyIntolerance", "patient:missing=false", "-"},
		{"AllergyIntolerance", "recorder=Patient/p1", "-"}, // a recorder is not the record's patient
		{"Flag", "subject=p1", "p1"},
		{"Flag", "subject=Patient/p1", "p1"},
		{"Flag", "subject=Location/l1", "-"},
		{"Flag", "subject:Location=l1", "-"},
		{"Flag", "subject=p1&patient=p1", "p1"},
		{"Flag", "subject=p1&patient=p2", ""},
		{"MedicationStatement", "subject:identifier=urn:x|1", "-"},
		{"Encounter", "subject=p9", "p9"},
		{"Patient", "_id=p1", "p1"},
		{"Patient", "_id=p1,p2", "p1,p2"},
		{"Patient", "_id:not=p1", "-"},
		{"Patient", "name=ola", "-"},
		{"Patient", "identifier=urn:oid:2.16.578.1.12.4.1.4.1|02816401618", "-"}, // until resolved
	}
	for _, c := range cases {
		q := mustParse(t, r, c.typ, c.query)
		ids, ok := q.PatientBinding()
		got := strings.Join(ids, ",")
		if !ok {
			got = "-"
		}
		if got != c.want {
			t.Errorf("%s?%s: binding %q, want %q", c.typ, c.query, got, c.want)
		}
	}
	q := mustParse(t, r, "Patient", "identifier=urn:oid:2.16.578.1.12.4.1.4.1|02816401618")
	if len(q.Chains()) != 1 || !q.Chains()[0].Self {
		t.Fatalf("chains %+v", q.Chains())
	}
	q.Chains()[0].Resolve([]string{"p1"})
	if ids, ok := q.PatientBinding(); !ok || !slices.Equal(ids, []string{"p1"}) {
		t.Errorf("binding = %v %v", ids, ok)
	}
}
