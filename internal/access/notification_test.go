package access

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDecideNotification(t *testing.T) {
	p := &Policy{}
	cases := []struct {
		name   string
		hpr    string
		st     PatientState
		effect Effect
		reason Reason
	}{
		{"subscriber treats an ordinary record", docHPR, state(), Permit, OK},
		{"restricted critical information still announces a change", docHPR, state(func(s *PatientState) { s.Restricted = []Section{Critical} }), Permit, OK},
		{"another HP is blocked", docHPR, state(func(s *PatientState) { s.BlockedHPR = []string{gpHPR} }), Permit, OK},
		{"subscriber blocked (rule 6)", docHPR, state(func(s *PatientState) { s.BlockedHPR = []string{gpHPR, docHPR} }), Deny, HPBlocked},
		{"patient reserved (rule 4)", docHPR, state(func(s *PatientState) { s.Reserved = true }), Deny, NoRecord},
		{"secret address reserves (rule 4)", docHPR, state(func(s *PatientState) { s.SecretAddress = true }), Deny, NoRecord},
		{"reserved and blocked answers as reserved", docHPR, state(func(s *PatientState) { s.Reserved, s.BlockedHPR = true, []string{docHPR} }), Deny, NoRecord},
		{"record gone", docHPR, PatientState{}, Deny, NoRecord},
		{"subscriber not recorded: fail closed", "", state(), Deny, SubscriberUnknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.DecideNotification(c.hpr, c.st)
			assert.Equal(t, c.effect, d.Effect)
			assert.Equal(t, c.reason, d.Reason)
			assert.NotEmpty(t, d.Message)
		})
	}
}
