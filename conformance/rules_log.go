package conformance

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
)

// The usage log (DOMAIN.md, "Usage log"): written for every access,
// allowed or refused, never changed through the API, shown to the citizen
// with the HP's name held back for 7 days, and searched by the auditor.

func checkAuditImmutable(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	req := Request{Path: "Patient/" + p, As: PersonaGP, Patient: p, Basis: "UNNTAK"}
	_, rid := t.DoAudited(req)
	want := WantAudit{Patient: p, AgentHPR: GPHPR, Outcome: "0", Reason: "ok"}
	ev := t.ExpectAudit(describeRequest(req), rid, want)

	forged := map[string]any{}
	for k, v := range ev {
		forged[k] = v
	}
	forged["outcome"] = "4"
	fresh := map[string]any{}
	for k, v := range forged {
		if k != "id" {
			fresh[k] = v
		}
	}
	for _, as := range []Request{{As: PersonaAuditor}, {As: PersonaGP, Patient: p, Basis: "UNNTAK"}, {As: PersonaCitizen}} {
		for _, r := range []Request{
			{Method: http.MethodPost, Path: "AuditEvent", Body: fresh},
			{Method: http.MethodPut, Path: "AuditEvent/" + ev.ID(), Body: forged},
			{Method: http.MethodDelete, Path: "AuditEvent/" + ev.ID()},
		} {
			r.As, r.Patient, r.Basis = as.As, as.Patient, as.Basis
			res := t.Do(r)
			if res.Status != http.StatusMethodNotAllowed {
				t.Errorf("%s: status %d, want 405 (the usage log is written by the server only): %s", describeRequest(r), res.Status, Outcome(res))
			} else if res.ResourceType() != "OperationOutcome" {
				t.Errorf("%s: the 405 is a %q, want an OperationOutcome", describeRequest(r), res.ResourceType())
			}
		}
	}
	after := t.ExpectAudit(describeRequest(req)+" (after the attempts to change it)", rid, want)
	if !reflect.DeepEqual(map[string]any(ev), map[string]any(after)) {
		t.Errorf("AuditEvent/%s changed after attempts to write it through the API", ev.ID())
	}
}

func checkRefusalsRecorded(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	// No token at all: refused before anyone is known, still logged.
	req := Request{Path: "Patient/" + p}
	res, rid := t.DoAudited(req)
	if res.Status != http.StatusUnauthorized {
		t.Fatalf("%s: status %d, want 401: %s", describeRequest(req), res.Status, Outcome(res))
	}
	t.ExpectAuditLater(describeRequest(req), rid, WantAudit{Outcome: "4", Refused: alBool(true)})

	// The scopes: a token granted reading only does not report.
	readOnly := t.TokenWithScope(PersonaNurse, p, "launch openid fhirUser patient/*.rs")
	accessChecked(t, Request{Method: http.MethodPost, Path: "Flag", Token: readOnly, Basis: "UNNTAK", Body: rulesFlag(p, "Pacemaker")},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: hprNurse, Refused: alBool(true)}, "insufficient-scope")
	// The rules: a write without a basis.
	accessChecked(t, Request{Method: http.MethodPost, Path: "Flag", As: PersonaGP, Patient: p, Body: rulesFlag(p, "Pacemaker")},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: GPHPR, Refused: alBool(true)}, "access-basis-missing")
	// Neither refused write stored anything.
	res = t.Do(Request{Path: "Flag?patient=" + p, As: PersonaGP, Patient: p, Basis: "UNNTAK"})
	if refs := matchRefs(res); res.Status != http.StatusOK || len(refs) != 0 {
		t.Errorf("Flag?patient= after two refused reports: status %d, matches %v, want 200 and none", res.Status, refs)
	}
	// The patient's log shows every refusal as such.
	n := 0
	for _, ev := range t.SearchAuditEvents(PersonaAuditor, url.Values{"patient": {p}, "outcome": {"4"}}) {
		n++
		if ev.Outcome() != "4" {
			t.Errorf("outcome=4 returned %s", ev)
		}
		if ev.Reason() == "" || ev.Reason() == "ok" {
			t.Errorf("the refusal %s is logged without its reason code", ev)
		}
	}
	if n < 2 {
		t.Errorf("GET /AuditEvent?patient=%s&outcome=4: %d refusals, want the 2 refused reports", p, n)
	}
}

func checkCitizenView(t *T) {
	cit, _ := t.CitizenPatient()
	// A hospital doctor reads the record (allowed), then the legevakt
	// doctor claims an exemption they do not have (refused).
	_, read := t.DoAudited(Request{Path: "Patient/" + cit, As: PersonaHospitalDoctor, Patient: cit, Basis: "UNNTAK"})
	refusedReq := Request{Path: "AllergyIntolerance?patient=" + cit, As: PersonaEmergency, Patient: cit, Basis: "UNNTAK"}
	res, refused := t.DoAudited(refusedReq)
	wantRefusal(t, describeRequest(refusedReq), res, http.StatusForbidden, "unntak-not-supported")

	logRes := t.Do(Request{Path: "AuditEvent?" + url.Values{"patient": {cit}, "_count": {"100"}}.Encode(), As: PersonaCitizen})
	wantStatus(t, "GET /AuditEvent?patient=<own> as the citizen", logRes, http.StatusOK)
	if strings.Contains(string(logRes.Body), nameHospitalDoctor) || strings.Contains(string(logRes.Body), hprHospitalDoctor) {
		t.Errorf("the citizen's log names the hospital doctor (name or HPR number) within 7 days of the access")
	}
	evs := auditEventsIn(logRes)
	var readAt, refusedAt = -1, -1
	for i, ev := range evs {
		if i > 0 && ev.Recorded().After(evs[i-1].Recorded()) {
			t.Errorf("the citizen's log is not newest first: %s (recorded %s) follows %s (recorded %s)",
				ev, ev.Recorded(), evs[i-1], evs[i-1].Recorded())
		}
		switch ev.RequestID() {
		case read:
			readAt = i
			if ev.AgentHPR() != "" || alStr(ev.Requestor(), "name") != "" {
				t.Errorf("the citizen's log shows the HP's HPR number or name within 7 days: %v", ev.Requestor())
			}
			if !slices.Contains(ev.Tags(), "name-delayed") {
				t.Errorf("the citizen's log does not mark the HP's name as shown later (name-delayed): tags %v", ev.Tags())
			}
			if nr, name := ev.AgentOrganisation(); nr != orgHospitalDoctor {
				t.Errorf("the citizen's log does not show the organisation at once: legal entity %q %q, want %s", nr, name, orgHospitalDoctor)
			}
			if !strings.Contains(ev.OutcomeDesc(), orgNameHospitalDoctor) {
				t.Errorf("the citizen's log sentence does not name the organisation %q: %q", orgNameHospitalDoctor, ev.OutcomeDesc())
			}
		case refused:
			refusedAt = i
			if ev.Outcome() != "4" || !slices.Contains(ev.Tags(), "refused") {
				t.Errorf("the citizen's log shows another's refused access with outcome %s and tags %v, want 4 and the refused marker", ev.Outcome(), ev.Tags())
			}
		}
	}
	switch {
	case readAt < 0:
		t.Errorf("the citizen's log does not show the hospital doctor's read (request id %s)", read)
	case refusedAt < 0:
		t.Errorf("the citizen's log does not show the legevakt doctor's refused access (request id %s)", refused)
	case refusedAt > readAt:
		t.Errorf("the citizen's log lists the earlier read before the later refusal: not newest first")
	}
}

func checkAuditorSearch(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	_, gpRead := t.DoAudited(Request{Path: "Patient/" + p, As: PersonaGP, Patient: p, Basis: "UNNTAK"})
	_, docRead := t.DoAudited(Request{Path: "Patient/" + p, As: PersonaHospitalDoctor, Patient: p, Basis: "UNNTAK"})
	_, gpRefused := t.DoAudited(Request{Path: "Patient/" + p, As: PersonaGP, Patient: p})

	ids := func(evs []AuditEvent) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.RequestID())
		}
		return out
	}
	search := func(what string, q url.Values, want, not []string, each func(AuditEvent) bool) []AuditEvent {
		q.Set("_count", "200")
		evs := t.SearchAuditEvents(PersonaAuditor, q)
		got := ids(evs)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("auditor search by %s (%s): request %s is not found", what, q.Encode(), w)
			}
		}
		for _, n := range not {
			if slices.Contains(got, n) {
				t.Errorf("auditor search by %s (%s): request %s is found but does not match", what, q.Encode(), n)
			}
		}
		for _, ev := range evs {
			if !each(ev) {
				t.Errorf("auditor search by %s (%s) returned %s, which does not match", what, q.Encode(), ev)
			}
		}
		return evs
	}
	forP := func(ev AuditEvent) bool { return ev.Patient() == p }
	byPatient := search("patient", url.Values{"patient": {p}}, []string{gpRead, docRead, gpRefused}, nil, forP)
	search("agent HPR number", url.Values{"agent": {SystemHPR + "|" + GPHPR}}, []string{gpRead, gpRefused}, []string{docRead},
		func(ev AuditEvent) bool { return ev.AgentHPR() == GPHPR })
	search("organisation", url.Values{"organization": {systemOrgNr + "|" + orgHospitalDoctor}, "patient": {p}}, []string{docRead}, []string{gpRead, gpRefused},
		func(ev AuditEvent) bool { nr, _ := ev.AgentOrganisation(); return nr == orgHospitalDoctor && forP(ev) })
	search("outcome", url.Values{"outcome": {"4"}, "patient": {p}}, []string{gpRefused}, []string{gpRead, docRead},
		func(ev AuditEvent) bool { return ev.Outcome() == "4" && forP(ev) })

	// Dates from the server's own clock: the day of the events, and a
	// day long before them.
	var first AuditEvent
	for _, ev := range byPatient {
		if ev.RequestID() == gpRead {
			first = ev
		}
	}
	if first == nil {
		t.Fatalf("the GP's read of Patient/%s is not in the log", p)
	}
	day := first.Recorded().UTC().Format("2006-01-02")
	search("date", url.Values{"date": {"ge" + day}, "patient": {p}}, []string{gpRead, docRead, gpRefused}, nil,
		func(ev AuditEvent) bool { return ev.Recorded().UTC().Format("2006-01-02") >= day && forP(ev) })
	search("date", url.Values{"date": {"le2001-01-01"}, "patient": {p}}, nil, []string{gpRead, docRead, gpRefused},
		func(ev AuditEvent) bool { return false })

	// The auditor's own searches are logged too.
	_, own := t.DoAudited(Request{Path: "AuditEvent?patient=" + p, As: PersonaAuditor})
	ev := t.ExpectAudit("the auditor's search of the usage log", own, WantAudit{Patient: p, Outcome: "0"})
	if hasUserRole(ev, "auditor") == false {
		t.Errorf("the auditor's own search is logged without the auditor role: requestor %v", ev.Requestor())
	}

	// Health personnel do not read the usage log.
	accessChecked(t, Request{Path: "AuditEvent?patient=" + p, As: PersonaGP, Patient: p, Basis: "UNNTAK"},
		http.StatusForbidden, WantAudit{Patient: p, AgentHPR: GPHPR, Refused: alBool(true)}, "role-not-allowed", "insufficient-scope")
}

// hasUserRole reports whether the requesting agent has role code.
func hasUserRole(ev AuditEvent, code string) bool {
	for _, r := range alList(ev.Requestor()["role"]) {
		for _, c := range alList(r["coding"]) {
			if alStr(c, "code") == code {
				return true
			}
		}
	}
	return false
}
