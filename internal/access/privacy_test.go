package access

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

var setTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// TestDecidePrivacyChange: who may create, update, lift and reinstate
// which privacy setting, through Decide as every route asks it.
func TestDecidePrivacyChange(t *testing.T) {
	p := &Policy{}
	subjects := map[Role]Subject{
		Citizen:        {Role: Citizen, PID: pid, SecurityLevel: 4},
		CitizenSupport: {Role: CitizenSupport},
		Practitioner:   gp(),
		System:         {Role: System},
		Auditor:        {Role: Auditor},
		"":             {},
	}
	kinds := []PrivacyKind{KindReservation, KindRestriction, KindBlock, KindPortalAccess}
	// want[role][kind] is the reason for creating, updating and lifting a
	// (not automatic) setting; OK means allowed.
	want := map[Role]map[PrivacyKind]Reason{
		Citizen:        {KindReservation: OK, KindRestriction: OK, KindBlock: BlocksBySupportOnly, KindPortalAccess: OK},
		CitizenSupport: {KindReservation: PrivacyByCitizenOnly, KindRestriction: PrivacyByCitizenOnly, KindBlock: OK, KindPortalAccess: PrivacyByCitizenOnly},
		Practitioner:   {KindReservation: PrivacyByCitizenOnly, KindRestriction: PrivacyByCitizenOnly, KindBlock: PrivacyByCitizenOnly, KindPortalAccess: PrivacyByCitizenOnly},
		System:         {KindReservation: FeederWritesOwnFields, KindRestriction: FeederWritesOwnFields, KindBlock: FeederWritesOwnFields, KindPortalAccess: FeederWritesOwnFields},
		Auditor:        {KindReservation: RoleNotAllowed, KindRestriction: RoleNotAllowed, KindBlock: RoleNotAllowed, KindPortalAccess: RoleNotAllowed},
		"":             {KindReservation: RoleNotAllowed, KindRestriction: RoleNotAllowed, KindBlock: RoleNotAllowed, KindPortalAccess: RoleNotAllowed},
	}
	// Portal access is removed by the citizen and restored only by citizen
	// support (rule 8), so its answer depends on the change as well.
	portal := map[Role]map[string]Reason{
		Citizen:        {"create": OK, "update": OK, "lift": PortalRestoredBySupport, "put in force again": OK},
		CitizenSupport: {"create": PrivacyByCitizenOnly, "update": PrivacyByCitizenOnly, "lift": OK, "put in force again": PrivacyByCitizenOnly},
	}
	decide := func(s Subject, c PrivacyChange) Decision {
		in := Update
		if c.Previous == nil {
			in = Create
		}
		return p.Decide(s, Request{Interaction: in, ResourceType: "Consent", Patient: pat, Change: &c}, state())
	}
	for role, s := range subjects {
		for _, k := range kinds {
			cur := PrivacySetting{Kind: k, Active: true, Since: setTime}
			updated := cur
			updated.Since = cur.Since.Add(time.Hour)
			lifted := updated
			lifted.Active = false
			reinstated := lifted
			reinstated.Active, reinstated.Since = true, lifted.Since.Add(time.Hour)
			auto := cur
			auto.Automatic = true
			autoLifted := lifted
			autoLifted.Automatic = true

			name := string(role) + "/" + string(k)
			check := func(op string, c PrivacyChange, reason Reason) {
				if r, ok := portal[role][op]; ok && k == KindPortalAccess {
					reason = r
				}
				t.Run(name+"/"+op, func(t *testing.T) {
					d := decide(s, c)
					assert.Equal(t, reason, d.Reason, "%+v", d)
					assert.Equal(t, reason == OK, d.Allowed())
					assert.NotEmpty(t, d.Message)
				})
			}
			check("create", PrivacyChange{New: cur}, want[role][k])
			check("update", PrivacyChange{New: updated, Previous: &cur}, want[role][k])
			check("lift", PrivacyChange{New: lifted, Previous: &cur}, want[role][k])
			check("put in force again", PrivacyChange{New: reinstated, Previous: &lifted}, want[role][k])

			// Automatic settings are the server's: every role that may
			// change privacy settings at all is refused with
			// AutomaticLocked, the others keep their own reason.
			autoWant := want[role][k]
			if role == Citizen || role == CitizenSupport {
				autoWant = AutomaticLocked
			}
			check("create automatic", PrivacyChange{New: auto}, autoWant)
			check("lift automatic", PrivacyChange{New: autoLifted, Previous: &auto}, autoWant)
			check("drop the automatic marker", PrivacyChange{New: updated, Previous: &auto}, autoWant)
		}
	}
}

func TestDecidePrivacyChangeUpdates(t *testing.T) {
	p := &Policy{}
	at := func(k PrivacyKind, active bool, since time.Time) PrivacySetting {
		return PrivacySetting{Kind: k, Active: active, Since: since}
	}
	res := at(KindReservation, true, setTime)
	lifted := at(KindReservation, false, setTime.Add(time.Hour))
	cit := Subject{Role: Citizen, PID: pid, SecurityLevel: 4}
	support := Subject{Role: CitizenSupport}
	cases := []struct {
		name     string
		s        Subject
		new      PrivacySetting
		previous PrivacySetting
		reason   Reason
	}{
		{"reservation turned into restriction", cit, at(KindRestriction, true, setTime), res, KindChanged},
		{"restriction turned into portal removal", cit, at(KindPortalAccess, true, setTime), at(KindRestriction, true, setTime), KindChanged},
		{"block turned into reservation (support)", support, res, at(KindBlock, true, setTime), KindChanged},
		{"lift with an older dateTime", cit, at(KindReservation, false, setTime.Add(-time.Second)), res, StaleDateTime},
		{"lift with the same dateTime", cit, at(KindReservation, false, setTime), res, OK},
		{"reserve again under the lifted dateTime", cit, at(KindReservation, true, lifted.Since), lifted, StaleDateTime},
		{"reserve again with a new dateTime", cit, at(KindReservation, true, lifted.Since.Add(time.Second)), lifted, OK},
		{"change restricted sections", cit, at(KindRestriction, true, setTime), at(KindRestriction, true, setTime), OK},
		{"citizen changes another's reservation", Subject{Role: Citizen, PID: "17837054321", SecurityLevel: 4}, lifted, res, NotOwnRecord},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.s, Request{Interaction: Update, ResourceType: "Consent", Patient: pat,
				Change: &PrivacyChange{New: tc.new, Previous: &tc.previous}}, state())
			assert.Equal(t, tc.reason, d.Reason, "%+v", d)
		})
	}
}
