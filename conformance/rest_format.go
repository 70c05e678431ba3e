package conformance

import (
	"mime"
	"net/http"
	"slices"
	"strings"
)

// Content negotiation: FHIR JSON is what this server speaks; anything it
// cannot speak is refused with the status a client can act on, never
// answered in a format it did not ask for or stored misread.

func init() {
	register(
		Check{GroupREST, "rest/format-json", "application/fhir+json is answered for Accept: application/fhir+json, _format=json and _format=application/fhir+json; Accept: application/json gets JSON", checkFormatJSON},
		Check{GroupREST, "rest/format-xml-406", "Accept: application/fhir+xml and _format=xml are answered 406 with an OperationOutcome", checkFormatXML},
		Check{GroupREST, "rest/content-type-415", "a body sent as text/plain (or application/xml) is refused with 415 and an OperationOutcome, and nothing is stored", checkContentType415},
		Check{GroupREST, "rest/charset", "UTF-8 bodies (declared or not) keep Norwegian letters; a body in another charset, or not valid UTF-8, is refused and nothing is stored", checkCharset},
	)
}

// restMediaType is the media type of a Content-Type header and its
// charset parameter.
func restMediaType(ct string) (mt, charset string) {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", ""
	}
	return mt, params["charset"]
}

func checkFormatJSON(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	path := "Patient/" + patient
	for _, c := range []struct {
		what   string
		req    Request
		accept []string
	}{
		{"Accept: application/fhir+json", Request{Path: path, Header: http.Header{"Accept": {"application/fhir+json"}}}, []string{"application/fhir+json"}},
		{"_format=json", Request{Path: path + "?_format=json", Header: http.Header{"Accept": {"*/*"}}}, []string{"application/fhir+json", "application/json"}},
		{"_format=application/fhir+json", Request{Path: path + "?_format=application/fhir%2Bjson", Header: http.Header{"Accept": {"*/*"}}}, []string{"application/fhir+json"}},
		{"Accept: application/json", Request{Path: path, Header: http.Header{"Accept": {"application/json"}}}, []string{"application/json", "application/fhir+json"}},
		{"Accept: application/fhir+json;q=0.9, application/fhir+xml;q=0.1", Request{Path: path, Header: http.Header{"Accept": {"application/fhir+xml;q=0.1, application/fhir+json;q=0.9"}}}, []string{"application/fhir+json"}},
		{"search with _format=json", Request{Path: "Patient?_id=" + patient + "&_format=json"}, []string{"application/fhir+json", "application/json"}},
	} {
		res := restRead(t, "Patient", patient, c.req)
		mt, cs := restMediaType(res.Header.Get("Content-Type"))
		switch {
		case res.Status != http.StatusOK:
			t.Errorf("%s: GET %s: status %d, want 200: %s", c.what, c.req.Path, res.Status, Outcome(res))
		case !slices.Contains(c.accept, mt):
			t.Errorf("%s: Content-Type %q, want %s", c.what, res.Header.Get("Content-Type"), strings.Join(c.accept, " or "))
		case cs != "" && !strings.EqualFold(cs, "utf-8"):
			t.Errorf("%s: Content-Type %q declares charset %s; FHIR JSON is UTF-8", c.what, res.Header.Get("Content-Type"), cs)
		case res.ResourceType() == "":
			t.Errorf("%s: the body is not FHIR JSON: %s", c.what, Outcome(res))
		}
	}
}

func checkFormatXML(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	for _, c := range []struct {
		what string
		req  Request
	}{
		{"Accept: application/fhir+xml", Request{Path: "Patient/" + patient, Header: http.Header{"Accept": {"application/fhir+xml"}}}},
		{"_format=xml", Request{Path: "Patient/" + patient + "?_format=xml", Header: http.Header{"Accept": {"*/*"}}}},
		{"_format=application/fhir+xml", Request{Path: "Patient/" + patient + "?_format=application/fhir%2Bxml", Header: http.Header{"Accept": {"*/*"}}}},
		{"search with Accept: application/fhir+xml", Request{Path: "Patient?_id=" + patient, Header: http.Header{"Accept": {"application/fhir+xml"}}}},
		{"metadata with Accept: application/fhir+xml", Request{Path: "metadata", Header: http.Header{"Accept": {"application/fhir+xml"}}}},
	} {
		res := restRead(t, "Patient", patient, c.req)
		if res.Status == http.StatusOK && strings.Contains(res.Header.Get("Content-Type"), "xml") {
			continue // a server that speaks XML answers XML: that is fine too
		}
		restExpectError(t, c.what+": GET "+c.req.Path, res, http.StatusNotAcceptable)
	}
}

func checkContentType415(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	ident := restToken()
	body := restFlagBody(patient, ident, "")
	for _, ct := range []string{"text/plain", "application/xml", "application/x-www-form-urlencoded"} {
		res := restWrite(t, "Flag", patient, Request{Method: http.MethodPost, Path: "Flag", Body: body, ContentType: ct})
		restExpectError(t, "POST Flag with Content-Type "+ct, res, http.StatusUnsupportedMediaType)
	}
	// PUT too, on an existing Flag.
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	res := restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: restChange("Flag", flag), ContentType: "text/plain"})
	restExpectError(t, "PUT Flag/"+fid+" with Content-Type text/plain", res, http.StatusUnsupportedMediaType)
	if vid, _ := restMeta(restRead(t, "Flag", patient, Request{Path: "Flag/" + fid}).JSON()); vid != "1" {
		t.Errorf("Flag/%s is at version %q after a refused PUT; the refused body was stored", fid, vid)
	}
	restNothingStored(t, patient, "Flag", ident)
}

// restNothingStored fails the check if a resource with the identifier
// value ident exists in the patient's record.
func restNothingStored(t *T, patient, typ, ident string) {
	path := typ + "?patient=" + patient + "&identifier=" + restIDSystem + "|" + ident
	res := restRead(t, typ, patient, Request{Path: path})
	b, err := restBundleOf(res, "searchset")
	switch {
	case res.Status != http.StatusOK || err != nil:
		t.Errorf("GET %s: status %d, %v: %s", path, res.Status, err, Outcome(res))
	case len(b.refs("match")) > 0:
		t.Errorf("a refused request stored %v", b.refs("match"))
	}
}

func checkCharset(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	const text = "Allergi mot nøtter: blåbær og æbleskiver gir utslett (Ærlig Østgård, Åsgårdstrand)"
	for _, ct := range []string{"application/fhir+json; charset=utf-8", "application/fhir+json;charset=UTF-8", "application/fhir+json"} {
		body := restFlagBody(patient, restToken(), "")
		body["code"] = map[string]any{"text": text}
		res := restWrite(t, "Flag", patient, Request{Method: http.MethodPost, Path: "Flag", Body: body, ContentType: ct})
		if res.Status != http.StatusCreated {
			t.Errorf("POST Flag with Content-Type %q: status %d, want 201: %s", ct, res.Status, Outcome(res))
			continue
		}
		id, _ := res.JSON()["id"].(string)
		got := restRead(t, "Flag", patient, Request{Path: "Flag/" + id})
		code, _ := got.JSON()["code"].(map[string]any)
		if code["text"] != text {
			t.Errorf("Content-Type %q: Flag/%s reads back code.text %q, want %q", ct, id, code["text"], text)
		}
		if _, cs := restMediaType(got.Header.Get("Content-Type")); cs != "" && !strings.EqualFold(cs, "utf-8") {
			t.Errorf("GET Flag/%s: Content-Type %q declares charset %s", id, got.Header.Get("Content-Type"), cs)
		}
	}
	// The same text in ISO-8859-1: a server that read it as UTF-8 would
	// store the Norwegian letters as replacement characters.
	latin1 := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = append(b, byte(r))
		}
		return b
	}
	for _, c := range []struct{ ct, what string }{
		{"application/fhir+json; charset=iso-8859-1", "declared ISO-8859-1"},
		{"application/fhir+json; charset=utf-8", "declared UTF-8 but not valid UTF-8"},
		{"application/fhir+json", "undeclared and not valid UTF-8"},
	} {
		ident := restToken()
		raw := `{"resourceType":"Flag","identifier":[{"system":"` + restIDSystem + `","value":"` + ident + `"}],"status":"active",` +
			`"category":[{"coding":[{"system":"` + restKIType + `","code":"smitte"}]}],"code":{"text":"` + text + `"},` +
			`"subject":{"reference":"Patient/` + patient + `"},"period":{"start":"2024-01-15"}}`
		res := restWrite(t, "Flag", patient, Request{Method: http.MethodPost, Path: "Flag", Body: latin1(raw), ContentType: c.ct})
		restExpectError(t, "POST Flag "+c.what, res, http.StatusBadRequest, http.StatusUnsupportedMediaType)
		restNothingStored(t, patient, "Flag", ident)
	}
}
