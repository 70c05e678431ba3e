package conformance

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

func init() {
	register(
		Check{GroupREST, "rest/capability-search-params", "every search parameter the CapabilityStatement advertises is accepted, finds the check's own resource and excludes it on a value it does not have", checkCapabilitySearchParams},
		Check{GroupREST, "rest/capability-includes", "every _include and _revinclude the CapabilityStatement advertises is accepted, and brings in the referenced resources of the patient's record", checkCapabilityIncludes},
	)
}

// restRecord is one patient's record with one resource of each kind the
// search checks ask for.
type restRecord struct {
	patient, pid string
	ids          map[string]string // type → id
	idents       map[string]string // type → identifier value
	org          string            // the gp's legal entity (usage-log searches)
}

func restNewRecord(t *T) *restRecord {
	r := &restRecord{ids: map[string]string{}, idents: map[string]string{}}
	r.patient, r.pid = t.NewPatient(PatientSpec{})
	r.ids["Patient"] = r.patient
	for _, typ := range []string{"Encounter", "Flag", "AllergyIntolerance", "MedicationStatement"} {
		r.idents[typ] = restToken()
	}
	enc := t.Feed(restEncounterBody(r.patient, r.idents["Encounter"]))
	r.ids["Encounter"], _ = enc["id"].(string)
	med := t.Feed(restMedicationBody(r.patient, r.idents["MedicationStatement"]))
	r.ids["MedicationStatement"], _ = med["id"].(string)
	flag := restCreate(t, r.patient, restFlagBody(r.patient, r.idents["Flag"], r.ids["Encounter"]))
	r.ids["Flag"], _ = flag["id"].(string)
	al := restCreate(t, r.patient, restAllergyBody(r.patient, r.idents["AllergyIntolerance"]))
	r.ids["AllergyIntolerance"], _ = al["id"].(string)
	cons := restCreate(t, r.patient, restConsentBody(r.patient))
	r.ids["Consent"], _ = cons["id"].(string)
	r.addCritical(t)
	// A read of the record as the gp puts the patient in the usage log.
	if res := restRead(t, "Patient", r.patient, Request{Path: "Patient/" + r.patient}); res.Status != http.StatusOK {
		t.Fatalf("fixture: GET Patient/%s as the patient's GP: status %d: %s", r.patient, res.Status, Outcome(res))
	}
	if c, err := Claims(t.Token(PersonaGP, r.patient)); err == nil {
		r.org, _ = c["helseid://claims/client/claims/orgnr_parent"].(string)
	}
	return r
}

// restSearchCase is a value of one search parameter that the record's
// resource has (match) and one it has not (miss; "" where no such value
// keeps the search inside the patient's record).
type restSearchCase struct{ match, miss string }

// cases are the values of the fixture resources (rest_support.go) for
// each advertised search parameter the suite knows, by "Type.name".
func (r *restRecord) cases() map[string]restSearchCase {
	ident := func(typ string) restSearchCase {
		return restSearchCase{restIDSystem + "|" + r.idents[typ], restIDSystem + "|" + restToken()}
	}
	hpr := restSearchCase{SystemHPR + "|" + GPHPR, SystemHPR + "|990099999"}
	dayBefore := time.Now().UTC().Add(-24 * time.Hour).Format("2006-01-02")
	cs := map[string]restSearchCase{
		"Patient.birthdate": {"1980-01-01", "1981-01-01"},
		"Patient.family":    {"Konformansesen", "Zyxwv"},
		"Patient.given":     {"Kari", "Zyxwv"},
		"Patient.name":      {"konformanse", "Zyxwv"},
		"Patient.gender":    {"female", "male"},
		// system|value names a patient (and binds the search to it), so
		// the value that must miss is asked without a system.
		"Patient.identifier":                      {SystemFNR + "|" + r.pid, syntheticPID()},
		"Patient.general-practitioner":            {"", ""},
		"Patient.general-practitioner:identifier": hpr,

		"AllergyIntolerance.category":            {"medication", "food"},
		"AllergyIntolerance.clinical-status":     {"active", "resolved"},
		"AllergyIntolerance.verification-status": {"confirmed", "refuted"},
		"AllergyIntolerance.code":                {restATC + "|J01CA04", restATC + "|N02BE01"},
		"AllergyIntolerance.criticality":         {"high", "low"},
		"AllergyIntolerance.date":                {"ge" + dayBefore, "lt2000-01-01"},
		"AllergyIntolerance.identifier":          ident("AllergyIntolerance"),
		"AllergyIntolerance.manifestation":       {restSNOMED + "|39579001", restSNOMED + "|271807003"},
		"AllergyIntolerance.type":                {"allergy", "intolerance"},
		"AllergyIntolerance.recorder:identifier": hpr,

		"Flag.category":          {restKIType + "|implantat", restKIType + "|smitte"},
		"Flag.code":              {restSNOMED + "|14106009", restSNOMED + "|271807003"},
		"Flag.date":              {"ge2024-01-01", "lt2000-01-01"},
		"Flag.encounter":         {"Encounter/" + r.ids["Encounter"], "Encounter/" + restToken()},
		"Flag.identifier":        ident("Flag"),
		"Flag.status":            {"active", "inactive"},
		"Flag.author:identifier": hpr,

		"MedicationStatement.category":          {"http://terminology.hl7.org/CodeSystem/medication-statement-category|community", "http://terminology.hl7.org/CodeSystem/medication-statement-category|inpatient"},
		"MedicationStatement.code":              {restATC + "|C07AB02", restATC + "|N02BE01"},
		"MedicationStatement.effective":         {"2024-03-01", "2023-03-01"},
		"MedicationStatement.identifier":        ident("MedicationStatement"),
		"MedicationStatement.status":            {"active", "stopped"},
		"MedicationStatement.source:identifier": {"urn:oid:2.16.578.1.12.4.1.4.101|300020186", "urn:oid:2.16.578.1.12.4.1.4.101|999999999"},

		"Encounter.class":                       {restActCode + "|IMP", restActCode + "|AMB"},
		"Encounter.date":                        {"le2024-02-03", "ge2024-03-01"},
		"Encounter.identifier":                  ident("Encounter"),
		"Encounter.reason-code":                 {restSNOMED + "|22298006", restSNOMED + "|271807003"},
		"Encounter.status":                      {"finished", "planned"},
		"Encounter.type":                        {restSNOMED + "|183807002", restSNOMED + "|271807003"},
		"Encounter.service-provider:identifier": {"urn:oid:2.16.578.1.12.4.1.4.101|300010008", "urn:oid:2.16.578.1.12.4.1.4.101|999999999"},

		"Consent.category": {"https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting|blokkering", "https://kjernejournal.example.no/fhir/CodeSystem/privacy-setting|reservasjon"},
		"Consent.status":   {"active", "inactive"},

		"DocumentReference.category": {restDocType + "|A00", ""},
		"DocumentReference.type":     {restDocType + "|A00", ""},

		"AuditEvent.agent":   {GPHPR, "990099999"},
		"AuditEvent.date":    {"ge" + dayBefore, "lt2000-01-01"},
		"AuditEvent.outcome": {"0", "12"},
	}
	if r.org != "" {
		cs["AuditEvent.organization"] = restSearchCase{r.org, "999999999"}
	}
	// Parameters every type has.
	for typ, id := range r.ids {
		cs[typ+"._id"] = restSearchCase{id, restToken()}
		cs[typ+"._lastUpdated"] = restSearchCase{"ge" + dayBefore, "lt2000-01-01"}
	}
	// The patient binding itself.
	for _, k := range []string{"AllergyIntolerance.patient", "Flag.patient", "Flag.subject", "MedicationStatement.patient",
		"MedicationStatement.subject", "Encounter.patient", "Encounter.subject", "Consent.patient",
		"AuditEvent.patient", "DocumentReference.patient", "DiagnosticReport.patient", "DiagnosticReport.subject",
		"Observation.patient", "Observation.subject"} {
		cs[k] = restSearchCase{r.patient, ""}
	}
	cs["Patient._id"] = restSearchCase{r.patient, ""}
	r.criticalCases(cs)
	return cs
}

// restGeneric is a syntactically valid value of a search parameter type,
// for parameters the suite has no fixture value for: the server must still
// accept them.
func restGeneric(typ string) string {
	switch typ {
	case "token":
		return restIDSystem + "|none"
	case "date":
		return "ge2000-01-01"
	case "string":
		return "zyxwv"
	case "reference":
		// A bare id is a valid value of any reference parameter.
		return restToken()
	case "number":
		return "1"
	case "quantity":
		return "1"
	case "uri":
		return "http://example.org/none"
	}
	return ""
}

// restSearchQuery binds a query of one parameter to the patient: the
// binding parameter is added unless the parameter is the binding.
func restSearchQuery(typ, patient, param, value string) string {
	q := url.Values{}
	q.Set(param, value)
	bind := restBinding(typ, patient)
	if name, v, _ := strings.Cut(bind, "="); name != param {
		q.Set(name, v)
	}
	return typ + "?" + q.Encode()
}

func checkCapabilitySearchParams(t *T) {
	cs := restCapabilities(t)
	rec := restNewRecord(t)
	cases := rec.cases()
	for _, r := range cs.Resource {
		if !r.has("search-type") || slices.Contains(restConformanceTypes, r.Type) {
			continue // conformance types: rest_conformance_resources.go
		}
		if _, known := restAccessOf[r.Type]; !known {
			t.Errorf("%s: search-type is advertised, but the suite does not know who may search it", r.Type)
			continue
		}
		id := rec.ids[r.Type]
		for _, sp := range r.SearchParam {
			c, known := cases[r.Type+"."+sp.Name]
			if !known || c.match == "" {
				c = restSearchCase{match: restGeneric(sp.Type)}
				known = false
			}
			if c.match == "" {
				continue // composite and special parameters need a value of their own
			}
			restSearchOne(t, r.Type, rec, sp.Name, c, known, id)
			// Reference parameters that point at something identified by a
			// business identifier are asked with :identifier too.
			if mc, ok := cases[r.Type+"."+sp.Name+":identifier"]; ok && sp.Type == "reference" {
				restSearchOne(t, r.Type, rec, sp.Name+":identifier", mc, true, id)
			}
		}
	}
}

// restSearchOne runs one parameter with its matching and its missing
// value. With verify, the record's resource of the type must be among the
// matches of the one and not of the other; the usage log, whose entries
// are the server's own, must have some and none.
func restSearchOne(t *T, typ string, rec *restRecord, param string, c restSearchCase, verify bool, id string) {
	path := restSearchQuery(typ, rec.patient, param, c.match)
	res := restRead(t, typ, rec.patient, Request{Path: path})
	b, err := restBundleOf(res, "searchset")
	if res.Status != http.StatusOK || err != nil {
		t.Errorf("%s %s (advertised): GET %s: status %d, %v: %s", typ, param, path, res.Status, err, Outcome(res))
		return
	}
	found := func(b restBundle) bool {
		if id == "" {
			return len(b.refs("match")) > 0
		}
		return slices.Contains(b.refs("match"), typ+"/"+id)
	}
	// Documents and lab results come from the sources, and the fixture
	// patient has none there: only that the search is accepted can be
	// checked.
	if !verify || federated(typ) {
		return
	}
	if !found(b) {
		t.Errorf("%s %s: GET %s does not find the check's own %s (matches: %v)", typ, param, path, typ, b.refs("match"))
	}
	if c.miss == "" {
		return
	}
	path = restSearchQuery(typ, rec.patient, param, c.miss)
	res = restRead(t, typ, rec.patient, Request{Path: path})
	b, err = restBundleOf(res, "searchset")
	switch {
	case res.Status != http.StatusOK || err != nil:
		t.Errorf("%s %s: GET %s: status %d, %v: %s", typ, param, path, res.Status, err, Outcome(res))
	case found(b):
		t.Errorf("%s %s: GET %s finds %v, though the value is not the resource's", typ, param, path, b.refs("match"))
	}
}

// restIncludeCase is what an _include or _revinclude must bring in from
// the record, by "Type?_include=value".
func (r *restRecord) includes() map[string]string {
	p := "Patient/" + r.patient
	return map[string]string{
		"Flag?_include=Flag:encounter":                             "Encounter/" + r.ids["Encounter"],
		"Flag?_include=Flag:patient":                               p,
		"Flag?_include=Flag:subject":                               p,
		"AllergyIntolerance?_include=AllergyIntolerance:patient":   p,
		"MedicationStatement?_include=MedicationStatement:patient": p,
		"MedicationStatement?_include=MedicationStatement:subject": p,
		"Encounter?_include=Encounter:patient":                     p,
		"Encounter?_include=Encounter:subject":                     p,
		"Patient?_revinclude=AllergyIntolerance:patient":           "AllergyIntolerance/" + r.ids["AllergyIntolerance"],
		"Patient?_revinclude=Flag:patient":                         "Flag/" + r.ids["Flag"],
		"Patient?_revinclude=Flag:subject":                         "Flag/" + r.ids["Flag"],
		"Patient?_revinclude=MedicationStatement:patient":          "MedicationStatement/" + r.ids["MedicationStatement"],
		"Patient?_revinclude=MedicationStatement:subject":          "MedicationStatement/" + r.ids["MedicationStatement"],
		"Patient?_revinclude=Encounter:patient":                    "Encounter/" + r.ids["Encounter"],
		"Patient?_revinclude=Encounter:subject":                    "Encounter/" + r.ids["Encounter"],
		"Encounter?_revinclude=Flag:encounter":                     "Flag/" + r.ids["Flag"],
	}
}

func checkCapabilityIncludes(t *T) {
	cs := restCapabilities(t)
	rec := restNewRecord(t)
	want := rec.includes()
	// Iterative values, once each: listed on many root types, they mean
	// the same on every one.
	iterated := map[string]bool{}
	for _, r := range cs.Resource {
		if !r.has("search-type") {
			continue
		}
		for kind, values := range map[string][]string{"_include": r.SearchInclude, "_revinclude": r.SearchRevInclude} {
			for _, v := range values {
				key := r.Type + "?" + kind + "=" + v
				path := key + "&" + restBinding(r.Type, rec.patient)
				iterative := func() string { return r.Type + "?" + kind + ":iterate=" + v + "&" + restBinding(r.Type, rec.patient) }
				// A value of another source type is one for :iterate (R5's
				// convention for listing iterative includes on the root
				// type); a _revinclude value is tried plain first.
				if src, _, _ := strings.Cut(v, ":"); kind == "_include" && src != r.Type || iterated[kind+v] {
					if iterated[kind+v] {
						continue
					}
					iterated[kind+v] = true
					path = iterative()
				}
				res := restRead(t, r.Type, rec.patient, Request{Path: path})
				if kind == "_revinclude" && res.Status == http.StatusBadRequest {
					iterated[kind+v] = true
					path = iterative()
					res = restRead(t, r.Type, rec.patient, Request{Path: path})
				}
				b, err := restBundleOf(res, "searchset")
				if res.Status != http.StatusOK || err != nil {
					t.Errorf("%s %s=%s (advertised): GET %s: status %d, %v: %s", r.Type, kind, v, path, res.Status, err, Outcome(res))
					continue
				}
				if ref, ok := want[key]; ok && !slices.Contains(b.refs("include"), ref) {
					t.Errorf("%s %s=%s: GET %s does not include %s (included: %v)", r.Type, kind, v, path, ref, b.refs("include"))
				}
				if len(b.refs("match")) == 0 && !federated(r.Type) {
					t.Errorf("%s %s=%s: GET %s finds none of the record's %s", r.Type, kind, v, path, r.Type)
				}
			}
		}
	}
}
