package conformance

import (
	"net/http"
	"strings"
)

// Rules 6 and 9 together: a Subscription is made under the rules of its
// time, and a block set afterwards stops its notifications. (A reserved
// patient's record takes no new data, so no change is announced; that a
// notification queued just before the reservation is not sent is proven
// by the server's own HTTP tests, as it cannot be timed from outside.)

func init() {
	register(Check{GroupRules, "rules/6-notifications-stop-for-blocked-hp",
		"rules 6 and 9: once citizen support blocks an HP, that HP's existing Subscription gets no further notifications (others' still do); lifted, it gets them again",
		checkNotificationsStopForBlockedHP})
}

func checkNotificationsStopForBlockedHP(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	gpHook, docHook := startReceiver(t), startReceiver(t)
	scope := personaScopes["practitioner"] + " patient/Subscription.cr"
	for _, s := range []struct{ persona, url string }{{PersonaGP, gpHook.url}, {PersonaHospitalDoctor, docHook.url}} {
		res := t.Do(Request{Method: http.MethodPost, Path: "Subscription", Token: t.TokenWithScope(s.persona, p, scope), Basis: "UNNTAK",
			Body: subscription(p, s.url, "id-only")})
		if res.Status == http.StatusUnprocessableEntity && strings.Contains(Outcome(res), "endpoint") {
			t.Skipf("the server does not send notifications to %s (a receiver on the suite's loopback): %s", s.url, Outcome(res))
		}
		wantStatus(t, "POST Subscription as "+s.persona, res, http.StatusCreated)
	}
	names := func(who string, body []byte, flag string) {
		if !strings.Contains(string(body), "Flag/"+flag) {
			t.Errorf("%s's next notification does not name Flag/%s: %.300s", who, flag, body)
		}
	}
	first := reportCritical(t, PersonaGP, p, "UNNTAK", rulesFlag(p, "Pacemaker"))
	names("the GP", gpHook.next(t), first)
	names("the hospital doctor", docHook.next(t), first)

	block := setPrivacy(t, PersonaSupport, p, privacyBlock, nil, []string{hprHospitalDoctor})
	during := reportCritical(t, PersonaGP, p, "UNNTAK", rulesFlag(p, "Insulinpumpe"))
	names("the GP (not blocked)", gpHook.next(t), during)

	// Lifted: the subscription was kept, and notifications come again. A
	// subscription's notifications go out in order, so the doctor's next
	// one names the Flag reported after the lifting if, and only if,
	// nothing was sent while the block was in force; no waiting is needed.
	block.lift(t)
	after := reportCritical(t, PersonaGP, p, "UNNTAK", rulesFlag(p, "Stent"))
	got := docHook.next(t)
	if strings.Contains(string(got), "Flag/"+during) {
		t.Errorf("the blocked hospital doctor was notified of Flag/%s, reported while the block was in force", during)
	} else {
		names("the hospital doctor (block lifted)", got, after)
	}
	names("the GP", gpHook.next(t), after)
}
