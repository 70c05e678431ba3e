package conformance

import (
	"io"
	"net"
	"net/http"
	"strings"
)

// Rule 9: no automatic journaling. A notification of new critical
// information carries no health data; the HP fetches it with their own
// token and basis.

// hookReceiver is a notification endpoint on the loopback interface of
// the machine running the suite.
type hookReceiver struct {
	url string
	got chan []byte
	srv *http.Server
}

func startReceiver(t *T) *hookReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.1 for notifications: %v", err)
	}
	r := &hookReceiver{url: "http://" + ln.Addr().String() + "/hook", got: make(chan []byte, 16)}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		select {
		case r.got <- b:
		default: // a full buffer only drops extra notifications
		}
		w.WriteHeader(http.StatusOK)
	})}
	go r.srv.Serve(ln)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// next waits for the next notification, for as long as the check may run:
// a notification is queued and delivered after the write is answered, so
// there is no fixed moment to look.
func (r *hookReceiver) next(t *T) []byte {
	select {
	case b := <-r.got:
		return b
	case <-t.Context().Done():
		t.Fatalf("no notification reached %s before the check's time ran out", r.url)
	}
	return nil
}

func subscription(patient, endpoint, content string) map[string]any {
	return map[string]any{
		"resourceType": "Subscription",
		"status":       "requested",
		"reason":       "conformance: notify the EHR of changed critical information",
		"criteria":     "Flag?patient=" + patient,
		"channel": map[string]any{
			"type":     "rest-hook",
			"endpoint": endpoint,
			"payload":  "application/fhir+json",
			"_payload": map[string]any{"extension": []any{map[string]any{
				"url":       "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
				"valueCode": content,
			}}},
		},
	}
}

func checkNotificationsWithoutHealthData(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	hook := startReceiver(t)
	// The EHR asks for the right to subscribe besides reading.
	tok := t.TokenWithScope(PersonaGP, p, personaScopes["practitioner"]+" patient/Subscription.cr")

	// Full resources in notifications would be automatic journaling.
	res := t.Do(Request{Method: http.MethodPost, Path: "Subscription", Token: tok, Basis: "UNNTAK", Body: subscription(p, hook.url, "full-resource")})
	if res.Status/100 == 2 {
		t.Errorf("a Subscription with payload content full-resource: status %d, want a refusal (notifications carry no health data)", res.Status)
	}

	res = t.Do(Request{Method: http.MethodPost, Path: "Subscription", Token: tok, Basis: "UNNTAK", Body: subscription(p, hook.url, "id-only")})
	if res.Status == http.StatusUnprocessableEntity && strings.Contains(Outcome(res), "endpoint") {
		t.Skipf("the server does not send notifications to %s (a receiver on the suite's loopback): %s", hook.url, Outcome(res))
	}
	wantStatus(t, "POST Subscription (id-only, rest-hook to the suite's receiver)", res, http.StatusCreated)

	secret := "Konformanse-implantat " + t.NewRequestID()
	f := reportCritical(t, PersonaGP, p, "UNNTAK", rulesFlag(p, secret))
	body := hook.next(t)
	note := string(body)
	if strings.Contains(note, secret) || strings.Contains(note, "implantat") {
		t.Errorf("the notification carries the Flag's content (health data): %s", note)
	}
	if !strings.Contains(note, "Flag/"+f) {
		t.Errorf("the id-only notification does not name the changed Flag/%s: %s", f, note)
	}
	n := &Response{Body: body}
	for _, e := range alList(n.JSON()["entry"]) {
		if rt := alStr(alObj(e["resource"]), "resourceType"); rt != "" && rt != "Parameters" {
			t.Errorf("the notification Bundle carries a %s resource; only the SubscriptionStatus (Parameters) belongs there", rt)
		}
	}
	// The HP fetches it with their own token and basis, and that is logged.
	got := accessChecked(t, Request{Path: "Flag/" + f, As: PersonaGP, Patient: p, Basis: "UNNTAK"},
		http.StatusOK, WantAudit{Patient: p, AgentHPR: GPHPR, Reason: "ok"})
	if !strings.Contains(string(got.Body), secret) {
		t.Errorf("GET Flag/%s: the HP's own read does not return the reported text", f)
	}
}
