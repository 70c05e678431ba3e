package conformance

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Versioning: the CapabilityStatement says versioned-update, so every
// write makes a version a client can name, read back and guard with
// If-Match.

func init() {
	register(
		Check{GroupREST, "rest/create-location", "a create answers 201 with Location [base]/Type/id/_history/1, ETag W/\"1\" and the stored resource's meta", checkCreateLocation},
		Check{GroupREST, "rest/update-version", "an update makes a new version: versionId and ETag go up by one, lastUpdated does not go back", checkUpdateVersion},
		Check{GroupREST, "rest/vread", "every version stays readable by vread with its own content; a version that never was is 404", checkVRead},
		Check{GroupREST, "rest/if-match", "If-Match with the current ETag updates; with a stale one it is 412 and nothing changes", checkIfMatch},
		Check{GroupREST, "rest/history", "the history of a resource is a Bundle of type history, newest first, with request and response on every entry, the delete included", checkHistory},
	)
}

func checkCreateLocation(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	res := restWrite(t, "Flag", patient, Request{Method: http.MethodPost, Path: "Flag", Body: restFlagBody(patient, restToken(), "")})
	if res.Status != http.StatusCreated {
		t.Fatalf("POST Flag as the gp: status %d, want 201: %s", res.Status, Outcome(res))
	}
	m := res.JSON()
	id, _ := m["id"].(string)
	vid, lu := restMeta(m)
	if id == "" || vid == "" || lu == "" {
		t.Fatalf("the created Flag lacks id, meta.versionId or meta.lastUpdated: id %q, versionId %q, lastUpdated %q", id, vid, lu)
	}
	loc := res.Header.Get("Location")
	want := t.URL("Flag/" + id + "/_history/" + vid)
	if loc != want {
		t.Errorf("Location %q, want %q", loc, want)
	}
	if got := res.Header.Get("ETag"); got != `W/"`+vid+`"` {
		t.Errorf("ETag %q on create, want W/%q", got, vid)
	}
	if vid != "1" {
		t.Errorf("a new resource is at version %q, want 1", vid)
	}
	if res.Header.Get("Last-Modified") == "" {
		t.Errorf("no Last-Modified on create")
	}
	// What Location names is there.
	got := restRead(t, "Flag", patient, Request{Path: loc})
	if v, _ := restMeta(got.JSON()); got.Status != http.StatusOK || v != vid {
		t.Errorf("GET %s (the Location): status %d, versionId %q: %s", loc, got.Status, v, Outcome(got))
	}
}

func checkUpdateVersion(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	_, lu1 := restMeta(flag)
	cur := flag
	for want := 2; want <= 3; want++ {
		res := restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: restChange("Flag", cur)})
		if res.Status != http.StatusOK {
			t.Fatalf("PUT Flag/%s (update %d): status %d, want 200: %s", fid, want-1, res.Status, Outcome(res))
		}
		cur = res.JSON()
		vid, lu := restMeta(cur)
		if vid != fmt.Sprint(want) {
			t.Errorf("after update %d Flag/%s has versionId %q, want %d", want-1, fid, vid, want)
		}
		if got := res.Header.Get("ETag"); got != fmt.Sprintf(`W/"%d"`, want) {
			t.Errorf("after update %d the ETag is %q, want W/\"%d\"", want-1, got, want)
		}
		before, err1 := time.Parse(time.RFC3339Nano, lu1)
		after, err2 := time.Parse(time.RFC3339Nano, lu)
		switch {
		case err1 != nil || err2 != nil:
			t.Errorf("meta.lastUpdated %q / %q is not a FHIR instant", lu1, lu)
		case after.Before(before):
			t.Errorf("meta.lastUpdated went back: %s after %s", lu, lu1)
		}
		lu1 = lu
	}
	got := restRead(t, "Flag", patient, Request{Path: "Flag/" + fid})
	if got.Header.Get("ETag") != `W/"3"` {
		t.Errorf("GET Flag/%s after two updates: ETag %q, want W/\"3\"", fid, got.Header.Get("ETag"))
	}
}

func checkVRead(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	res := restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: restChange("Flag", flag)})
	if res.Status != http.StatusOK {
		t.Fatalf("PUT Flag/%s: status %d: %s", fid, res.Status, Outcome(res))
	}
	for v, text := range map[string]string{"1": "Pacemaker", "2": "Pacemaker (oppdatert)"} {
		got := restRead(t, "Flag", patient, Request{Path: "Flag/" + fid + "/_history/" + v})
		if got.Status != http.StatusOK {
			t.Errorf("GET Flag/%s/_history/%s: status %d: %s", fid, v, got.Status, Outcome(got))
			continue
		}
		m := got.JSON()
		code, _ := m["code"].(map[string]any)
		if vid, _ := restMeta(m); vid != v || code["text"] != text {
			t.Errorf("GET Flag/%s/_history/%s: versionId %q, code.text %q; want %s and %q", fid, v, vid, code["text"], v, text)
		}
		if e := got.Header.Get("ETag"); e != `W/"`+v+`"` {
			t.Errorf("GET Flag/%s/_history/%s: ETag %q", fid, v, e)
		}
	}
	restExpectError(t, "GET Flag/"+fid+"/_history/3 (no such version)", restRead(t, "Flag", patient, Request{Path: "Flag/" + fid + "/_history/3"}), http.StatusNotFound)
}

func checkIfMatch(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	res := restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: restChange("Flag", flag),
		Header: http.Header{"If-Match": {`W/"1"`}}})
	if res.Status != http.StatusOK {
		t.Fatalf(`PUT Flag/%s with If-Match: W/"1" (the current version): status %d, want 200: %s`, fid, res.Status, Outcome(res))
	}
	stale := restClone(flag)
	delete(stale, "meta")
	stale["status"] = "inactive"
	res = restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: stale,
		Header: http.Header{"If-Match": {`W/"1"`}}})
	restExpectError(t, `PUT Flag/`+fid+` with If-Match: W/"1" (stale: it is at version 2)`, res, http.StatusPreconditionFailed)
	got := restRead(t, "Flag", patient, Request{Path: "Flag/" + fid})
	if vid, _ := restMeta(got.JSON()); got.Status != http.StatusOK || vid != "2" || got.JSON()["status"] != "active" {
		t.Errorf("Flag/%s after a stale If-Match: status %d, version %q, status %v; want version 2 and active", fid, got.Status, vid, got.JSON()["status"])
	}
	res = restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: stale,
		Header: http.Header{"If-Match": {got.Header.Get("ETag")}}})
	if vid, _ := restMeta(res.JSON()); res.Status != http.StatusOK || vid != "3" {
		t.Errorf("PUT Flag/%s with If-Match: %s (the ETag just read): status %d, version %q; want 200 and version 3: %s", fid, got.Header.Get("ETag"), res.Status, vid, Outcome(res))
	}
}

func checkHistory(t *T) {
	patient, _ := t.NewPatient(PatientSpec{})
	flag := restCreate(t, patient, restFlagBody(patient, restToken(), ""))
	fid, _ := flag["id"].(string)
	res := restWrite(t, "Flag", patient, Request{Method: http.MethodPut, Path: "Flag/" + fid, Body: restChange("Flag", flag)})
	if res.Status != http.StatusOK {
		t.Fatalf("PUT Flag/%s: status %d: %s", fid, res.Status, Outcome(res))
	}
	if res := restWrite(t, "Flag", patient, Request{Method: http.MethodDelete, Path: "Flag/" + fid}); res.Status/100 != 2 {
		t.Fatalf("DELETE Flag/%s: status %d: %s", fid, res.Status, Outcome(res))
	}
	b := restParseBundle(t, "GET Flag/"+fid+"/_history", restRead(t, "Flag", patient, Request{Path: "Flag/" + fid + "/_history"}), "history")
	if len(b.Entries) != 3 {
		t.Fatalf("the history of Flag/%s (created, updated, deleted) has %d entries, want 3", fid, len(b.Entries))
	}
	if b.Total != nil && *b.Total != 3 {
		t.Errorf("history Bundle.total %v, want 3", *b.Total)
	}
	want := []struct{ method, version string }{{"DELETE", "3"}, {"PUT", "2"}, {"POST", "1"}}
	for i, e := range b.Entries {
		m, _ := e.Request["method"].(string)
		status, _ := e.Response["status"].(string)
		if e.Request == nil || e.Response == nil || status == "" {
			t.Errorf("history entry %d has no request or response.status (R4 bdl-3, bdl-4)", i)
			continue
		}
		if m != want[i].method {
			t.Errorf("history entry %d: request.method %q, want %s (newest first)", i, m, want[i].method)
		}
		if etag, _ := e.Response["etag"].(string); etag != "" && etag != `W/"`+want[i].version+`"` {
			t.Errorf("history entry %d: response.etag %q, want W/\"%s\"", i, etag, want[i].version)
		}
		if m == "DELETE" {
			if e.Resource != nil {
				t.Errorf("history entry %d (the delete) carries a resource", i)
			}
			continue
		}
		if vid, _ := restMeta(e.Resource); vid != want[i].version {
			t.Errorf("history entry %d: resource versionId %q, want %s", i, vid, want[i].version)
		}
		if !strings.HasSuffix(e.FullURL, "/Flag/"+fid) {
			t.Errorf("history entry %d: fullUrl %q, want [base]/Flag/%s", i, e.FullURL, fid)
		}
	}
}
