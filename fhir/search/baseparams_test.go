package search

import (
	"strings"
	"testing"

	"github.com/kjernejournal/kjernejournal/profiles"
)

// Realistic resources carrying every R4 base parameter added for issue 17.
var baseParamResources = map[string]string{
	"Patient": `{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"2024-03-05T09:30:00.000Z",
	  "profile":["http://hl7.no/fhir/StructureDefinition/no-basis-Patient"],"source":"urn:kj:ehr:dips#abc",
	  "tag":[{"system":"urn:kj:tag","code":"seed"}],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},
	 "identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"13116900216"}],
	 "active":true,"name":[{"family":"Nordmann","given":["Kari"]}],
	 "telecom":[{"system":"phone","value":"+4791234567","use":"mobile"},{"system":"email","value":"kari@example.no"}],
	 "gender":"female","birthDate":"1969-11-13","deceasedDateTime":"2024-02-01T12:00:00+01:00",
	 "address":[{"use":"home","line":["Storgata 1"],"city":"Tromsø","postalCode":"9008","state":"Troms","country":"NO"}],
	 "communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"nb"}]}}],
	 "managingOrganization":{"reference":"Organization/o1"},
	 "link":[{"other":{"reference":"Patient/p2"},"type":"seealso"}]}`,
	"AllergyIntolerance": `{"resourceType":"AllergyIntolerance","id":"a1","meta":{"versionId":"1","lastUpdated":"2024-03-05T09:30:00.000Z"},
	 "code":{"coding":[{"system":"http://snomed.info/sct","code":"764146007","display":"Penicillin"}]},
	 "patient":{"reference":"Patient/p1"},"recordedDate":"2024-03-05",
	 "asserter":{"reference":"Practitioner/pr2"},"lastOccurrence":"2024-02-20T08:00:00Z",
	 "reaction":[{"manifestation":[{"coding":[{"system":"http://snomed.info/sct","code":"271807003"}]}],
	   "onset":"2024-02-20","severity":"severe",
	   "exposureRoute":{"coding":[{"system":"http://snomed.info/sct","code":"26643006","display":"Oral route"}]}}]}`,
	"MedicationStatement": `{"resourceType":"MedicationStatement","id":"m1","meta":{"versionId":"1","lastUpdated":"2024-03-05T09:30:00.000Z"},
	 "status":"active","medicationCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":"C07AB02"}]},
	 "subject":{"reference":"Patient/p1"},"context":{"reference":"Encounter/e1"},
	 "partOf":[{"reference":"Procedure/pr1"}]}`,
	"Encounter": `{"resourceType":"Encounter","id":"e1","meta":{"versionId":"1","lastUpdated":"2024-03-05T09:30:00.000Z"},
	 "status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"},
	 "subject":{"reference":"Patient/p1"},"episodeOfCare":[{"reference":"EpisodeOfCare/eoc1"}],
	 "basedOn":[{"reference":"ServiceRequest/sr1"}],
	 "participant":[{"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"ATND"}]}],
	   "individual":{"reference":"Practitioner/pr1"}},{"individual":{"reference":"RelatedPerson/rp1"}}],
	 "appointment":[{"reference":"Appointment/ap1"}],
	 "period":{"start":"2024-01-10T08:00:00Z","end":"2024-01-12T12:00:00Z"},
	 "reasonReference":[{"reference":"Condition/c1"}],
	 "diagnosis":[{"condition":{"reference":"Condition/c1"},"rank":1}],
	 "account":[{"reference":"Account/acc1"}],
	 "hospitalization":{"specialArrangement":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/encounter-special-arrangements","code":"wheel"}]}]},
	 "location":[{"location":{"reference":"Location/l1"},"period":{"start":"2024-01-10T08:00:00Z","end":"2024-01-11T08:00:00Z"}}],
	 "length":{"value":2.5,"unit":"dager","system":"http://unitsofmeasure.org","code":"d"},
	 "partOf":{"reference":"Encounter/e0"}}`,
	"Consent": `{"resourceType":"Consent","id":"c1","meta":{"versionId":"1","lastUpdated":"2024-03-05T09:30:00.000Z"},
	 "identifier":[{"system":"urn:kj:consent","value":"K-1"}],
	 "status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
	 "category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
	 "patient":{"reference":"Patient/p1"},"dateTime":"2024-03-01T10:00:00+01:00",
	 "performer":[{"reference":"Patient/p1"}],"organization":[{"reference":"Organization/o1"}],
	 "sourceReference":{"reference":"DocumentReference/d1"},
	 "provision":{"type":"deny","period":{"start":"2024-03-01","end":"2025-03-01"},
	   "actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},"reference":{"reference":"Practitioner/pr1"}}],
	   "action":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentaction","code":"access"}]}],
	   "securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],
	   "purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}],
	   "data":[{"meaning":"related","reference":{"reference":"Encounter/e1"}}]}}`,
	"Condition": `{"resourceType":"Condition","id":"co1","meta":{"versionId":"1","lastUpdated":"2024-03-05T09:30:00.000Z"},
	 "clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
	 "verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}]},
	 "severity":{"coding":[{"system":"http://snomed.info/sct","code":"24484000","display":"Severe"}]},
	 "code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},
	 "bodySite":[{"coding":[{"system":"http://snomed.info/sct","code":"368209003","display":"Right arm"}]}],
	 "subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},
	 "onsetDateTime":"2019-05-02","abatementString":"etter operasjon i 2023","recordedDate":"2019-05-10T10:00:00Z",
	 "_onsetAge":{"extension":[]},"abatementRange":{"low":{"value":40,"unit":"år","system":"http://unitsofmeasure.org","code":"a"}},
	 "asserter":{"reference":"Practitioner/pr1"},
	 "stage":[{"summary":{"coding":[{"system":"http://snomed.info/sct","code":"258215001","display":"Stage 1"}]}}],
	 "evidence":[{"code":[{"coding":[{"system":"http://snomed.info/sct","code":"271737000"}]}],"detail":[{"reference":"Observation/o1"}]}]}`,
	"Procedure": `{"resourceType":"Procedure","id":"pr1","meta":{"versionId":"1","lastUpdated":"2024-03-05T09:30:00.000Z"},
	 "instantiatesCanonical":["http://example.org/fhir/PlanDefinition/dialyse"],"instantiatesUri":["http://example.org/protokoll/dialyse"],
	 "basedOn":[{"reference":"ServiceRequest/sr1"}],"partOf":[{"reference":"Procedure/pr0"}],
	 "status":"in-progress","code":{"coding":[{"system":"http://snomed.info/sct","code":"265764009"}]},
	 "subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},
	 "performedPeriod":{"start":"2024-01-01"},
	 "performer":[{"actor":{"reference":"Organization/o1"}}],"location":{"reference":"Location/l1"},
	 "reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"46177005"}]}],
	 "reasonReference":[{"reference":"Condition/co1"}]}`,
}

// TestBaseParamsExtracted: each parameter added for issue 17 is extracted
// from a realistic resource and a search by it finds the resource, and a
// search by another value does not.
func TestBaseParamsExtracted(t *testing.T) {
	r := testRegistry(t)
	cases := []struct{ typ, hit, miss string }{
		{"Patient", "active=true", "active=false"},
		{"Patient", "address=storgata", "address=lillegata"},
		{"Patient", "address-city=tromso", "address-city=bergen"},
		{"Patient", "address-country=NO", "address-country=SE"},
		{"Patient", "address-postalcode=9008", "address-postalcode=0150"},
		{"Patient", "address-state=troms", "address-state=nordland"},
		{"Patient", "address-use=home", "address-use=work"},
		{"Patient", "death-date=2024-02-01", "death-date=2024-02-02"},
		{"Patient", "email=kari@example.no", "email=%2B4791234567"},
		{"Patient", "phone=%2B4791234567", "phone=kari@example.no"},
		{"Patient", "telecom=kari@example.no", "telecom=ola@example.no"},
		{"Patient", "language=urn:ietf:bcp:47|nb", "language=nn"},
		{"Patient", "organization=Organization/o1", "organization=o2"},
		{"Patient", "_tag=urn:kj:tag|seed", "_tag=urn:kj:tag|other"},
		{"Patient", "_security=R", "_security=N"},
		{"Patient", "_profile=http://hl7.no/fhir/StructureDefinition/no-basis-Patient", "_profile=http://hl7.org/fhir/StructureDefinition/Patient"},
		{"Patient", "_source=urn:kj:ehr:dips%23abc", "_source=urn:kj:ehr:other"},
		{"AllergyIntolerance", "onset=2024-02-20", "onset=2024-02-21"},
		{"AllergyIntolerance", "last-date=ge2024-02-01", "last-date=lt2024-02-01"},
		{"AllergyIntolerance", "severity=severe", "severity=mild"},
		{"AllergyIntolerance", "route=http://snomed.info/sct|26643006", "route=http://snomed.info/sct|47625008"},
		{"AllergyIntolerance", "asserter=Practitioner/pr2", "asserter=Practitioner/pr1"},
		{"MedicationStatement", "context=Encounter/e1", "context=Encounter/e2"},
		{"MedicationStatement", "part-of=Procedure/pr1", "part-of=Procedure/pr2"},
		{"Encounter", "account=acc1", "account=acc2"},
		{"Encounter", "appointment=ap1", "appointment=ap2"},
		{"Encounter", "based-on=ServiceRequest/sr1", "based-on=sr2"},
		{"Encounter", "diagnosis=Condition/c1", "diagnosis=Condition/c2"},
		{"Encounter", "episode-of-care=eoc1", "episode-of-care=eoc2"},
		{"Encounter", "location=Location/l1", "location=Location/l2"},
		{"Encounter", "location-period=ge2024-01-10", "location-period=gt2024-01-12"},
		{"Encounter", "part-of=Encounter/e0", "part-of=Encounter/e9"},
		{"Encounter", "participant=RelatedPerson/rp1", "participant=Practitioner/pr9"},
		{"Encounter", "participant-type=ATND", "participant-type=ADM"},
		{"Encounter", "practitioner=pr1", "practitioner=rp1"},
		{"Encounter", "reason-reference=Condition/c1", "reason-reference=Condition/c2"},
		{"Encounter", "special-arrangement=wheel", "special-arrangement=int"},
		{"Consent", "action=access", "action=collect"},
		{"Consent", "actor=Practitioner/pr1", "actor=Practitioner/pr2"},
		{"Consent", "consentor=Patient/p1", "consentor=Patient/p2"},
		{"Consent", "data=Encounter/e1", "data=Encounter/e2"},
		{"Consent", "date=2024-03-01", "date=2024-03-02"},
		{"Consent", "identifier=urn:kj:consent|K-1", "identifier=urn:kj:consent|K-2"},
		{"Consent", "organization=o1", "organization=o2"},
		{"Consent", "period=ge2024-06-01", "period=gt2025-03-02"},
		{"Consent", "purpose=TREAT", "purpose=ETREAT"},
		{"Consent", "security-label=R", "security-label=V"},
		{"Consent", "source-reference=DocumentReference/d1", "source-reference=Consent/c9"},
		{"Consent", "_tag:missing=true", "_tag:missing=false"},
		{"Condition", "abatement-date:missing=true", "abatement-date:missing=false"},
		{"Condition", "abatement-age=ge50|http://unitsofmeasure.org|a", "abatement-age=lt40"},
		{"Condition", "onset-age:missing=true", "onset-age:missing=false"},
		{"Encounter", "length=2.5|http://unitsofmeasure.org|d", "length=2.5|http://unitsofmeasure.org|h"},
		{"Condition", "abatement-string=etter", "abatement-string=for"},
		{"Condition", "asserter=Practitioner/pr1", "asserter=Practitioner/pr2"},
		{"Condition", "body-site:text=right", "body-site:text=left"},
		{"Condition", "encounter=Encounter/e1", "encounter=e2"},
		{"Condition", "evidence=271737000", "evidence=1"},
		{"Condition", "evidence-detail=Observation/o1", "evidence-detail=Observation/o2"},
		{"Condition", "onset-date=2019-05", "onset-date=2019-06"},
		{"Condition", "onset-info:missing=true", "onset-info:missing=false"},
		{"Condition", "recorded-date=2019-05-10", "recorded-date=2019-05-11"},
		{"Condition", "severity=http://snomed.info/sct|24484000", "severity=6736007"},
		{"Condition", "stage=258215001", "stage=258219007"},
		{"Condition", "verification-status=confirmed", "verification-status=refuted"},
		{"Procedure", "based-on=ServiceRequest/sr1", "based-on=CarePlan/sr1"},
		{"Procedure", "date=ge2025-01-01", "date=lt2023-12-31"},
		{"Procedure", "encounter=Encounter/e1", "encounter=Encounter/e2"},
		{"Procedure", "instantiates-canonical=http://example.org/fhir/PlanDefinition/dialyse", "instantiates-canonical=http://example.org/fhir/PlanDefinition/other"},
		{"Procedure", "instantiates-uri=http://example.org/protokoll/dialyse", "instantiates-uri=http://example.org/protokoll/other"},
		{"Procedure", "location=l1", "location=l2"},
		{"Procedure", "part-of=Procedure/pr0", "part-of=Procedure/pr9"},
		{"Procedure", "performer=Organization/o1", "performer=Practitioner/o1"},
		{"Procedure", "reason-code=46177005", "reason-code=1"},
		{"Procedure", "reason-reference=Condition/co1", "reason-reference=Condition/co2"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		body := baseParamResources[c.typ]
		idx, err := r.Extract(c.typ, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		// What the engines store: the binary form.
		bin, err := idx.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Index
		if err := back.UnmarshalBinary(bin); err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		for _, tc := range []struct {
			raw  string
			want bool
		}{{c.hit, true}, {c.miss, false}} {
			q := mustParse(t, r, c.typ, tc.raw)
			if got := q.Match(back); got != tc.want {
				t.Errorf("%s?%s: match %v, want %v (index %+v)", c.typ, tc.raw, got, tc.want, back.Values(strings.SplitN(strings.SplitN(tc.raw, "=", 2)[0], ":", 2)[0]))
			}
			if !q.Reextract() {
				t.Errorf("%s?%s: Reextract false for a parameter added later", c.typ, tc.raw)
			}
		}
		seen[c.typ+"."+strings.SplitN(strings.SplitN(c.hit, "=", 2)[0], ":", 2)[0]] = true
	}
	// Every parameter listed as added later exists in the registry, and
	// every one of a served type has a case above.
	for k := range addedLater {
		typ, name, _ := strings.Cut(k, ".")
		if typ == "Resource" {
			if _, ok := r.Param("Patient", name); !ok {
				t.Errorf("%s: not in the registry", k)
			}
			continue
		}
		if _, ok := r.Param(typ, name); !ok {
			t.Errorf("%s: not in the registry", k)
		}
		if !seen[k] {
			t.Errorf("%s: no extraction case", k)
		}
	}
}

// TestReextractOldParams: a query on parameters every stored index has
// reads the stored index; patient-linked Patient.link is not indexed.
func TestReextractOldParams(t *testing.T) {
	r := testRegistry(t)
	for _, c := range []struct{ typ, raw string }{
		{"Encounter", "status=finished&_sort=-date"},
		{"Patient", "family=nordmann"},
		{"Consent", "status=active&scope=patient-privacy"},
	} {
		if mustParse(t, r, c.typ, c.raw).Reextract() {
			t.Errorf("%s?%s: Reextract true", c.typ, c.raw)
		}
	}
	if mustParse(t, r, "Consent", "status=active&_sort=date").Reextract() != true {
		t.Error("Consent?_sort=date: Reextract false")
	}
	if _, ok := r.Param("Patient", "link"); ok {
		t.Error("Patient link is indexed; it names other patients")
	}
}

// TestOldIndexLacksAddedParams: an index stored by a build without the
// added parameters (a registry of the definitions minus those) does not
// match a search by one of them, which is why such a query asks
// (Reextract) for the index extracted again from the body, as the
// interaction layer does (indexFor).
func TestOldIndexLacksAddedParams(t *testing.T) {
	defs, err := ParseDefinitions(profiles.SearchParameters)
	if err != nil {
		t.Fatal(err)
	}
	var old []Definition
	for _, d := range defs {
		keep := d
		keep.Base = nil
		for _, b := range d.Base {
			if !addedLater[b+"."+d.Code] {
				keep.Base = append(keep.Base, b)
			}
		}
		if len(keep.Base) > 0 {
			// Definitions extended with a type (date, identifier on
			// Consent) keep their other terms.
			old = append(old, keep)
		}
	}
	oldReg, err := NewRegistry(old, testTypes)
	if err != nil {
		t.Fatal(err)
	}
	r := testRegistry(t)
	body := []byte(baseParamResources["Encounter"])
	stale, _ := oldReg.Extract("Encounter", body)
	q := mustParse(t, r, "Encounter", "location=Location/l1")
	if q.Match(stale) {
		t.Fatal("the old index matches a parameter it does not have")
	}
	if !q.Reextract() {
		t.Fatal("Reextract false")
	}
	fresh, _ := r.Extract("Encounter", body)
	if !q.Match(fresh) {
		t.Fatal("the re-extracted index does not match")
	}
}
