package conformance

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// The rules that count days, proven end to end with the development
// server's clock (kjernejournal serve --dev-clock: GET /_dev/clock tells
// the time, POST {"advance":"168h"} moves it forward and runs the purge
// job): the citizen sees the HP's name in the usage log after 7 days, and
// a reserved record is deleted 30 days after the server recorded the
// reservation, can be undone before that and not after. A server without
// the development clock (any production server) skips these checks; `make
// conformance` starts its server with it.
//
// The clock only moves forward, so this group runs last: every check
// before it sees the real time. Its scenarios run on fresh patients, each
// with a citizen token minted for that person with the development
// issuer's key, so the shared citizen persona's record is left alone.

const GroupClock = "clock"

// devClockPath is where kjernejournal's development server serves its
// clock (internal/devclock).
const devClockPath = "_dev/clock"

func init() {
	register(
		Check{GroupClock, "clock/usage-log-name-after-7-days", "usage log: the citizen sees the HP's organisation at once and the HP's name and HPR number only 7 days after the access (development clock)", checkClockNameAfter7Days},
		Check{GroupClock, "clock/reservation-purged-after-30-days", "rule 4: a reservation the client dates 31 days back is counted from when the server recorded it; it can be undone within 30 days, and 30 days after it was recorded the record is deleted and cannot be restored (development clock)", checkClockReservationPurge},
	)
}

// devClockState is what GET /_dev/clock answers.
type devClockState struct {
	Now           string   `json:"now"`
	Offset        string   `json:"offset"`
	OffsetSeconds int64    `json:"offsetSeconds"`
	Purged        []string `json:"purged"`
}

func (s devClockState) time(t *T) time.Time {
	at, err := time.Parse(time.RFC3339Nano, s.Now)
	if err != nil {
		t.Fatalf("the development clock's time %q is not RFC 3339: %v", s.Now, err)
	}
	return at
}

// devClock reads the server's development clock, and skips the check when
// the server offers none.
func devClock(t *T) devClockState {
	res := t.Do(Request{Path: devClockPath, Header: http.Header{"Accept": {"application/json"}}})
	var st devClockState
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &st) != nil || st.Now == "" {
		t.Skipf("the server offers no development clock (GET /%s: status %d), so days cannot pass during the run; "+
			"start kjernejournal with --dev-clock (loopback, development only) to prove the 7-day and 30-day rules", devClockPath, res.Status)
	}
	return st
}

// advanceClock moves the development clock d forward; the server runs
// its purge job before it answers.
func advanceClock(t *T, d time.Duration) devClockState {
	res := t.Do(Request{Method: http.MethodPost, Path: devClockPath, Body: map[string]string{"advance": d.String()},
		ContentType: "application/json", Header: http.Header{"Accept": {"application/json"}}})
	var st devClockState
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &st) != nil {
		t.Fatalf("POST /%s {\"advance\":%q}: status %d: %s", devClockPath, d, res.Status, Outcome(res))
	}
	return st
}

// citizenTokenFor mints a citizen token for the person (id, pid): the
// citizen persona's token with the person's claims, signed with the
// development issuer's key. The check is skipped without that key.
func citizenTokenFor(t *T, id, pid string) string {
	key, alg, ok := t.issuerKey()
	if !ok {
		t.Skipf("a citizen token for a fresh patient is minted with the development issuer's key, which the suite does not have for this server (--issuer-key)")
	}
	tok, _ := t.TokenResponse(PersonaCitizen, "", "")["access_token"].(string)
	hdr, claims, _, ok := jwtSegments(tok)
	if !ok {
		t.Fatalf("the citizen persona's access token is not a JWT")
	}
	c := freshClaims(claims)
	c["patient"], c["fhirUser"], c["helseid://claims/identity/pid"] = id, "Patient/"+id, pid
	c["name"] = "Konformanse Innbygger"
	typ, _ := hdr["typ"].(string)
	minted := signWith(t, key, alg, c, map[string]any{jws.TypeKey: typ})
	if res := t.Do(Request{Path: "Patient/" + id, Token: minted}); res.Status != http.StatusOK {
		t.Fatalf("control: the citizen token minted for Patient/%s reads the own Patient: status %d: %s", id, res.Status, Outcome(res))
	}
	return minted
}

func checkClockNameAfter7Days(t *T) {
	devClock(t)
	p, pid := t.NewPatient(PatientSpec{})
	cit := citizenTokenFor(t, p, pid)
	_, read := t.DoAudited(Request{Path: "Patient/" + p, As: PersonaHospitalDoctor, Patient: p, Basis: "UNNTAK"})

	// The citizen's own view of the hospital doctor's read.
	event := func(when string) (AuditEvent, string) {
		res := t.Do(Request{Path: "AuditEvent?" + url.Values{"patient": {p}, "_count": {"200"}}.Encode(), Token: cit})
		wantStatus(t, "GET /AuditEvent?patient=<own> as the citizen "+when, res, http.StatusOK)
		for _, ev := range auditEventsIn(res) {
			if ev.RequestID() == read {
				raw, _ := json.Marshal(ev)
				return ev, string(raw)
			}
		}
		t.Fatalf("the citizen's log %s does not show the hospital doctor's read (request id %s)", when, read)
		return nil, ""
	}
	hidden := func(when string) {
		ev, raw := event(when)
		if ev.AgentHPR() != "" || strings.Contains(raw, nameHospitalDoctor) || strings.Contains(raw, hprHospitalDoctor) {
			t.Errorf("the citizen's log %s names the HP (name or HPR number); it must be hidden for 7 days", when)
		}
		if !slices.Contains(ev.Tags(), "name-delayed") {
			t.Errorf("the citizen's log %s does not mark the name as shown later (name-delayed): tags %v", when, ev.Tags())
		}
		if nr, _ := ev.AgentOrganisation(); nr != orgHospitalDoctor {
			t.Errorf("the citizen's log %s does not show the organisation: %q, want %s", when, nr, orgHospitalDoctor)
		}
	}
	hidden("right after the access")
	advanceClock(t, 7*24*time.Hour-time.Hour)
	hidden("6 days and 23 hours after the access")
	advanceClock(t, 2*time.Hour)
	ev, raw := event("7 days and 1 hour after the access")
	if ev.AgentHPR() != hprHospitalDoctor || !strings.Contains(raw, nameHospitalDoctor) {
		t.Errorf("the citizen's log 7 days after the access does not name the HP: HPR %q, name %q shown: %v, want %s and %q",
			ev.AgentHPR(), nameHospitalDoctor, strings.Contains(raw, nameHospitalDoctor), hprHospitalDoctor, nameHospitalDoctor)
	}
	if slices.Contains(ev.Tags(), "name-delayed") {
		t.Errorf("the citizen's log 7 days after the access still marks the name as delayed")
	}
}

func checkClockReservationPurge(t *T) {
	now := devClock(t).time(t)
	p, pid := t.NewPatient(PatientSpec{})
	cit := citizenTokenFor(t, p, pid)
	med, _ := t.Feed(rulesMedication(p, "Warfarin 2,5 mg etter INR"))["id"].(string)
	read := Request{Path: "MedicationStatement/" + med, As: PersonaHospitalDoctor, Patient: p, Basis: "UNNTAK"}
	wantStatus(t, "GET MedicationStatement/"+med+" before the reservation", t.Do(read), http.StatusOK)

	// The client dates its reservation 31 days back; the server records
	// its own time.
	res := t.Do(Request{Method: http.MethodPost, Path: "Consent", Token: cit,
		Body: privacyConsent(p, privacyReservation, true, now.Add(-31*24*time.Hour), nil, nil)})
	wantStatus(t, "the citizen reserves (POST Consent dated 31 days back)", res, http.StatusCreated)
	id, _ := res.JSON()["id"].(string)
	recorded, err := time.Parse(time.RFC3339Nano, alStr(res.JSON(), "dateTime"))
	if err != nil || recorded.Before(now.Add(-time.Minute)) {
		t.Errorf("the stored reservation's dateTime is %q: want the server's time (about %s), not the client's 31 days back", alStr(res.JSON(), "dateTime"), now.Format(time.RFC3339))
	}
	setReservation := func(active bool, what string) {
		body := privacyConsent(p, privacyReservation, active, now.Add(-31*24*time.Hour), nil, nil)
		body["id"] = id
		wantStatus(t, what, t.Do(Request{Method: http.MethodPut, Path: "Consent/" + id, Token: cit, Body: body}), http.StatusOK)
	}
	t.Cleanup(func() { setReservation(false, "cleanup: the citizen lifts the reservation") })
	if r := t.Do(read); r.Status != http.StatusNotFound {
		t.Errorf("the reserved record answers %d, want 404: %s", r.Status, Outcome(r))
	}

	// 29 days later the record is still there, and the undo brings it all
	// back (were the client's date counted, it would be 60 days old).
	st := advanceClock(t, 29*24*time.Hour)
	if slices.Contains(st.Purged, p) {
		t.Errorf("the record was deleted 29 days after the server recorded the reservation: the client's dateTime was counted")
	}
	setReservation(false, "the citizen undoes the reservation after 29 days")
	wantStatus(t, "GET MedicationStatement/"+med+" after the undo within 30 days", t.Do(read), http.StatusOK)

	// Reserved again: a new 30 days from now; once they have run, the
	// record is deleted.
	setReservation(true, "the citizen reserves again")
	st = advanceClock(t, 30*24*time.Hour+time.Hour)
	if !slices.Contains(st.Purged, p) {
		t.Errorf("30 days after the reservation the purge run did not delete Patient/%s's record (purged %v)", p, st.Purged)
	}
	// Undo after 30 days: a later wish for a record starts a new, empty one.
	setReservation(false, "the citizen lifts the reservation after 30 days")
	if r := t.Do(read); r.Status != http.StatusNotFound && r.Status != http.StatusGone {
		t.Errorf("GET MedicationStatement/%s after the deletion and the undo: status %d, want 404 or 410: nothing can be restored", med, r.Status)
	}
	r := t.Do(Request{Path: "MedicationStatement?patient=" + p, As: PersonaHospitalDoctor, Patient: p, Basis: "UNNTAK"})
	wantStatus(t, "MedicationStatement?patient= after the deletion and the undo", r, http.StatusOK)
	if refs := matchRefs(r); len(refs) != 0 {
		t.Errorf("the record after the deletion and the undo still holds %v: nothing may be restored", refs)
	}
	wantStatus(t, "GET Patient after the undo (a new, empty record)", t.Do(Request{Path: "Patient/" + p, As: PersonaHospitalDoctor, Patient: p, Basis: "UNNTAK"}), http.StatusOK)
}
