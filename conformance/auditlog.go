package conformance

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Finding the AuditEvents a request left. Every access writes its
// AuditEvent(s) before the answer leaves the server (DOMAIN.md, "Usage
// log"), so a check can look them up right after the response, with no
// waiting: the server answers with its own request id in X-Request-Id and
// records it as the BALP request-id entity (BasicAuditEntityType#XrequestId);
// the check's own X-Request-Id is kept beside it as a correlation id only.
// The auditor's search finds the events by patient, agent or outcome.

// URLs of the usage log's layout that the checks read. They are this
// server's (internal/audit, doc.go); a foreign server that keeps the basis
// or reason elsewhere fails the checks that assert them, which is the
// point: they are the national layout.
const (
	extAuditAccess       = "https://kjernejournal.example.no/fhir/StructureDefinition/audit-access"
	extAuditOrganisation = "https://kjernejournal.example.no/fhir/StructureDefinition/audit-organisation"
	systemAccessReason   = "https://kjernejournal.example.no/fhir/CodeSystem/access-reason"
	systemAccessBasis    = "https://kjernejournal.example.no/fhir/CodeSystem/access-basis"
	systemUsageMarker    = "https://kjernejournal.example.no/fhir/CodeSystem/usage-log-marker"
	systemBALPEntity     = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	systemOrgNr          = "urn:oid:2.16.578.1.12.4.1.4.101"
)

// NewRequestID is a fresh X-Request-Id, named after the running check so
// that the server log and the usage log point back at it.
func (t *T) NewRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.check.ID)
	id := "conf-" + name + "-" + hex.EncodeToString(b[:])
	if len(id) > 100 {
		id = id[len(id)-100:]
	}
	return id
}

// DoAudited sends req with a fresh X-Request-Id of the check's and
// returns the response and the server's request id, to find the request's
// AuditEvents with AuditEventsOf. The server must answer with an id of its
// own (a caller cannot choose the usage log's request id), and its
// AuditEvents keep the check's id as their correlation id.
func (t *T) DoAudited(req Request) (*Response, string) {
	sent := t.NewRequestID()
	h := http.Header{}
	for k, vs := range req.Header {
		h[k] = slices.Clone(vs)
	}
	h.Set("X-Request-Id", sent)
	req.Header = h
	res := t.Do(req)
	got := res.Header.Get("X-Request-Id")
	switch {
	case got == "":
		t.Errorf("%s %s: the answer has no X-Request-Id; the usage log cannot be tied to the request", method(req), req.Path)
	case got == sent:
		t.Errorf("%s %s: the answer's X-Request-Id is the caller's own %q: the usage log's request id must be the server's", method(req), req.Path, got)
	}
	t.correlations.Store(got, sent)
	return res, got
}

// AuditEvent is one AuditEvent as the server returned it.
type AuditEvent map[string]any

// AuditEventsOf returns the AuditEvents carrying requestID, searched as
// the auditor with query (patient=, agent=, outcome=, ...). It fails the
// check when the search itself fails.
func (t *T) AuditEventsOf(requestID string, query url.Values) []AuditEvent {
	q := url.Values{}
	for k, vs := range query {
		q[k] = vs
	}
	if q.Get("_count") == "" {
		q.Set("_count", "200")
	}
	var out []AuditEvent
	for _, ev := range t.SearchAuditEvents(PersonaAuditor, q) {
		if ev.RequestID() == requestID {
			out = append(out, ev)
		}
	}
	return out
}

// SearchAuditEvents runs GET /AuditEvent?query as persona (auditor or
// citizen) and returns the events of the first page, in the server's
// order.
func (t *T) SearchAuditEvents(persona string, query url.Values) []AuditEvent {
	res := t.Do(Request{Path: "AuditEvent?" + query.Encode(), As: persona})
	if res.Status != http.StatusOK || res.ResourceType() != "Bundle" {
		t.Fatalf("GET /AuditEvent?%s as %s: status %d: %s", query.Encode(), persona, res.Status, Outcome(res))
	}
	return auditEventsIn(res)
}

func auditEventsIn(res *Response) []AuditEvent {
	var out []AuditEvent
	entries, _ := res.JSON()["entry"].([]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		r, _ := em["resource"].(map[string]any)
		if r["resourceType"] == "AuditEvent" {
			out = append(out, AuditEvent(r))
		}
	}
	return out
}

// WantAudit is what a check expects of the AuditEvent a request left.
// Empty fields are not checked.
type WantAudit struct {
	Patient  string // FHIR id of the patient entity; "" expects none to be checked
	Outcome  string // 0 success, 4 refused or client error, 8 server failure
	Basis    string // access basis (UNNTAK, SAMTYKKE, ...)
	Reason   string // access-reason code
	AgentHPR string // HPR number of the requesting agent
	Refused  *bool
	Opened   *bool // openedRestricted
	Emerg    *bool // emergency
	// Also runs further assertions on the event.
	Also func(AuditEvent)
}

func alBool(b bool) *bool { return &b }

// auditQuery is how the auditor finds the event want describes: by
// patient; without a patient, by agent HPR number, else by outcome.
func auditQuery(want WantAudit) url.Values {
	q := url.Values{}
	switch {
	case want.Patient != "":
		q.Set("patient", want.Patient)
	case want.AgentHPR != "":
		q.Set("agent", SystemHPR+"|"+want.AgentHPR)
	case want.Outcome != "":
		q.Set("outcome", want.Outcome)
	}
	return q
}

// ExpectAudit finds the one AuditEvent requestID left (see auditQuery)
// and checks it against want now. It returns the event for further
// checks, and ends the check when there is not exactly one.
func (t *T) ExpectAudit(what, requestID string, want WantAudit) AuditEvent {
	q := auditQuery(want)
	ev, ok := t.checkAudit(what, requestID, want, q, t.AuditEventsOf(requestID, q))
	if !ok {
		t.Fatalf("%s: no single AuditEvent to check", what)
	}
	return ev
}

// ExpectAuditLater is ExpectAudit when the check ends: the expectations
// of one check are looked up with one search per patient (or agent)
// instead of one per request, which matters on engines slow at searching.
// The events are already durable (written before the answer), so waiting
// changes nothing but the number of searches.
func (t *T) ExpectAuditLater(what, requestID string, want WantAudit) {
	v, loaded := auditBatches.LoadOrStore(t, &auditBatch{})
	b := v.(*auditBatch)
	if !loaded {
		t.Cleanup(func() {
			auditBatches.Delete(t)
			t.flushAudits(b)
		})
	}
	b.items = append(b.items, pendingAudit{what, requestID, want})
}

type pendingAudit struct {
	what, requestID string
	want            WantAudit
}

type auditBatch struct{ items []pendingAudit }

// auditBatches holds each running check's pending expectations.
var auditBatches sync.Map // *T -> *auditBatch

func (t *T) flushAudits(b *auditBatch) {
	found := map[string][]AuditEvent{}
	for _, it := range b.items {
		q := auditQuery(it.want)
		key := q.Encode()
		evs, ok := found[key]
		if !ok {
			q.Set("_count", "500")
			evs = t.SearchAuditEvents(PersonaAuditor, q)
			found[key] = evs
		}
		var mine []AuditEvent
		for _, ev := range evs {
			if ev.RequestID() == it.requestID {
				mine = append(mine, ev)
			}
		}
		t.checkAudit(it.what, it.requestID, it.want, auditQuery(it.want), mine)
	}
}

// checkAudit checks the events a request left (evs, found with q) against
// want, recording failures; ok is false when there is not exactly one.
func (t *T) checkAudit(what, requestID string, want WantAudit, q url.Values, evs []AuditEvent) (AuditEvent, bool) {
	if len(evs) != 1 {
		t.Errorf("%s: the usage log has %d AuditEvents with request id %s (searched %s), want exactly 1: every access is logged once per patient", what, len(evs), requestID, q.Encode())
		return nil, false
	}
	ev := evs[0]
	check := func(field, got, want string) {
		if want != "" && got != want {
			t.Errorf("%s: AuditEvent/%s %s is %q, want %q (outcomeDesc: %s)", what, ev.ID(), field, got, want, ev.OutcomeDesc())
		}
	}
	check("entity patient", ev.Patient(), want.Patient)
	check("outcome", ev.Outcome(), want.Outcome)
	check("access basis", ev.Basis(), want.Basis)
	check("reason code", ev.Reason(), want.Reason)
	check("requesting agent's HPR number", ev.AgentHPR(), want.AgentHPR)
	flag := func(field string, got bool, want *bool) {
		if want != nil && got != *want {
			t.Errorf("%s: AuditEvent/%s %s is %t, want %t", what, ev.ID(), field, got, *want)
		}
	}
	flag("refused", ev.Flag("refused"), want.Refused)
	flag("openedRestricted", ev.Flag("openedRestricted"), want.Opened)
	flag("emergency", ev.Flag("emergency"), want.Emerg)
	if want.Reason != "" && want.Outcome != "0" && !strings.Contains(ev.OutcomeDesc(), want.Reason) {
		t.Errorf("%s: AuditEvent/%s outcomeDesc %q does not name the reason %s", what, ev.ID(), ev.OutcomeDesc(), want.Reason)
	}
	if sent, ok := t.correlations.Load(requestID); ok {
		check("correlation id (the caller's X-Request-Id)", ev.CorrelationID(), sent.(string))
	}
	if want.Also != nil {
		want.Also(ev)
	}
	return ev, true
}

func (e AuditEvent) str(k string) string { s, _ := e[k].(string); return s }

// ID is the AuditEvent's id.
func (e AuditEvent) ID() string { return e.str("id") }

// Outcome is AuditEvent.outcome (0, 4, 8, 12).
func (e AuditEvent) Outcome() string { return e.str("outcome") }

// OutcomeDesc is AuditEvent.outcomeDesc.
func (e AuditEvent) OutcomeDesc() string { return e.str("outcomeDesc") }

// Recorded is AuditEvent.recorded (zero when unreadable).
func (e AuditEvent) Recorded() time.Time {
	at, _ := time.Parse(time.RFC3339Nano, e.str("recorded"))
	return at
}

func alList(v any) []map[string]any {
	a, _ := v.([]any)
	out := make([]map[string]any, 0, len(a))
	for _, x := range a {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func alObj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func alStr(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// access returns the sub-extensions of the audit-access extension.
func (e AuditEvent) access() []map[string]any {
	for _, x := range alList(e["extension"]) {
		if alStr(x, "url") == extAuditAccess {
			return alList(x["extension"])
		}
	}
	return nil
}

// Basis is the access basis code recorded.
func (e AuditEvent) Basis() string {
	for _, s := range e.access() {
		if alStr(s, "url") == "basis" {
			c := alObj(s["valueCoding"])
			if alStr(c, "system") == systemAccessBasis {
				return alStr(c, "code")
			}
		}
	}
	return ""
}

// Reason is the access-reason code recorded.
func (e AuditEvent) Reason() string {
	for _, s := range e.access() {
		if alStr(s, "url") == "reason" {
			c := alObj(s["valueCoding"])
			if alStr(c, "system") == systemAccessReason {
				return alStr(c, "code")
			}
		}
	}
	return ""
}

// CorrelationID is the X-Request-Id the caller sent, kept by the access
// extension, or "".
func (e AuditEvent) CorrelationID() string {
	for _, s := range e.access() {
		if alStr(s, "url") == "correlationId" {
			return alStr(s, "valueString")
		}
	}
	return ""
}

// Flag is a boolean sub-extension of the access extension (refused,
// openedRestricted, emergency); absent is false.
func (e AuditEvent) Flag(name string) bool {
	for _, s := range e.access() {
		if alStr(s, "url") == name {
			return s["valueBoolean"] == true
		}
	}
	return false
}

// Requestor is the agent with requestor true (the user, or the client when
// no person is behind the token).
func (e AuditEvent) Requestor() map[string]any {
	for _, a := range alList(e["agent"]) {
		if a["requestor"] == true {
			return a
		}
	}
	return nil
}

// AgentHPR is the requesting agent's HPR number, or "".
func (e AuditEvent) AgentHPR() string {
	id := alObj(alObj(e.Requestor()["who"])["identifier"])
	if alStr(id, "system") == SystemHPR {
		return alStr(id, "value")
	}
	return ""
}

// AgentOrganisation is the requesting agent's legal entity: its
// organisation number and name, from the audit-organisation extension.
func (e AuditEvent) AgentOrganisation() (number, name string) {
	for _, x := range alList(e.Requestor()["extension"]) {
		if alStr(x, "url") != extAuditOrganisation {
			continue
		}
		for _, s := range alList(x["extension"]) {
			if alStr(s, "url") != "legalEntity" {
				continue
			}
			ref := alObj(s["valueReference"])
			id := alObj(ref["identifier"])
			if alStr(id, "system") == systemOrgNr {
				number = alStr(id, "value")
			}
			name = alStr(ref, "display")
		}
	}
	return number, name
}

// Patient is the id of the patient entity (object role 1), or "".
func (e AuditEvent) Patient() string {
	for _, en := range alList(e["entity"]) {
		role := alObj(en["role"])
		if alStr(role, "code") != "1" {
			continue
		}
		if id, ok := strings.CutPrefix(alStr(alObj(en["what"]), "reference"), "Patient/"); ok {
			return id
		}
	}
	return ""
}

// RequestID is the value of the BALP request-id entity, or "".
func (e AuditEvent) RequestID() string {
	for _, en := range alList(e["entity"]) {
		typ := alObj(en["type"])
		if alStr(typ, "system") == systemBALPEntity && alStr(typ, "code") == "XrequestId" {
			return alStr(alObj(alObj(en["what"])["identifier"]), "value")
		}
	}
	return ""
}

// Tags are the meta.tag codes of the usage-log-marker system (the
// citizen's view marks refusals, openings of restricted parts, ...).
func (e AuditEvent) Tags() []string {
	var out []string
	for _, tag := range alList(alObj(e["meta"])["tag"]) {
		if alStr(tag, "system") == systemUsageMarker {
			out = append(out, alStr(tag, "code"))
		}
	}
	return out
}

// String names the event for messages.
func (e AuditEvent) String() string {
	return fmt.Sprintf("AuditEvent/%s (outcome %s, reason %s, basis %s)", e.ID(), e.Outcome(), e.Reason(), e.Basis())
}
