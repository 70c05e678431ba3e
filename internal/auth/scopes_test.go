package auth

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseScopes(t *testing.T) {
	cases := []struct {
		in     string
		ctx    Context
		rt     string
		in2    Interaction
		v1     bool
		cons   []Constraint
		errMsg string // non-empty: the scope must be dropped and reported
		opaque bool   // kept, but grants nothing
	}{
		// SMART v1
		{in: "patient/Flag.read", ctx: ContextPatient, rt: "Flag", in2: Read | Search, v1: true},
		{in: "user/*.write", ctx: ContextUser, rt: "*", in2: Create | Update | Delete, v1: true},
		{in: "user/*.*", ctx: ContextUser, rt: "*", in2: Create | Read | Update | Delete | Search, v1: true},
		{in: "system/Encounter.write", ctx: ContextSystem, rt: "Encounter", in2: Create | Update | Delete, v1: true},
		// SMART v2
		{in: "patient/Flag.rs", ctx: ContextPatient, rt: "Flag", in2: Read | Search},
		{in: "user/AllergyIntolerance.cruds", ctx: ContextUser, rt: "AllergyIntolerance", in2: Create | Read | Update | Delete | Search},
		{in: "system/Encounter.cu", ctx: ContextSystem, rt: "Encounter", in2: Create | Update},
		{in: "system/MedicationStatement.cud", ctx: ContextSystem, rt: "MedicationStatement", in2: Create | Update | Delete},
		{in: "patient/*.r", ctx: ContextPatient, rt: "*", in2: Read},
		{in: "user/Flag.s", ctx: ContextUser, rt: "Flag", in2: Search},
		{in: "user/Flag.d", ctx: ContextUser, rt: "Flag", in2: Delete},
		// granular
		{in: "patient/Flag.rs?category=http://terminology.hl7.org/CodeSystem/flag-category|clinical", ctx: ContextPatient, rt: "Flag", in2: Read | Search,
			cons: []Constraint{{"category", "http://terminology.hl7.org/CodeSystem/flag-category|clinical"}}},
		{in: "patient/Flag.rs?category=clinical", ctx: ContextPatient, rt: "Flag", in2: Read | Search, cons: []Constraint{{"category", "clinical"}}},
		{in: "user/AllergyIntolerance.rs?category=http%3A%2F%2Fhl7.org%2Ffhir%2Fallergy-intolerance-category%7Cmedication", ctx: ContextUser, rt: "AllergyIntolerance", in2: Read | Search,
			cons: []Constraint{{"category", "http://hl7.org/fhir/allergy-intolerance-category|medication"}}},
		{in: "patient/Flag.rs?category=clinical&status=active", ctx: ContextPatient, rt: "Flag", in2: Read | Search,
			cons: []Constraint{{"category", "clinical"}, {"status", "active"}}},
		// non-resource scopes, kept as-is
		{in: "openid", opaque: true},
		{in: "fhirUser", opaque: true},
		{in: "launch", opaque: true},
		{in: "launch/patient", opaque: true},
		{in: "offline_access", opaque: true},
		{in: "online_access", opaque: true},
		{in: "helseid://scopes/identity/pid", opaque: true},
		{in: "nhn:kjernejournal/api", opaque: true},
		// malformed: dropped and reported, never widened
		{in: "patient/Flag.rsx", errMsg: "invalid permissions"},
		{in: "patient/Flag.sr", errMsg: "invalid permissions"},
		{in: "patient/Flag.rrs", errMsg: "invalid permissions"},
		{in: "patient/Flag.", errMsg: "invalid permissions"},
		{in: "patient/Flag.READ", errMsg: "invalid permissions"},
		{in: "patient/Flag.readwrite", errMsg: "invalid permissions"},
		{in: "patient/Flag", errMsg: "missing permissions"},
		{in: "Patient/Flag.read", errMsg: "unknown context"},
		{in: "practitioner/Flag.read", errMsg: "unknown context"},
		{in: "*/Flag.read", errMsg: "unknown context"},
		{in: "*.*", errMsg: "without context"},
		{in: "Flag.read", errMsg: "without context"},
		{in: "launch/practitioner", errMsg: "unknown context"},
		{in: "patient/flag.read", errMsg: "invalid resource type"},
		{in: "patient/.rs", errMsg: "invalid resource type"},
		{in: "patient/Fl-ag.rs", errMsg: "invalid resource type"},
		{in: "patient/Flag.read?", errMsg: "granular parameters need SMART v2"},
		{in: "patient/Flag.rs?", errMsg: "empty granular query"},
		{in: "patient/Flag.rs?category", errMsg: "malformed granular parameter"},
		{in: "patient/Flag.rs?category=", errMsg: "malformed value"},
		{in: "patient/Flag.rs?category=a&", errMsg: "malformed granular parameter"},
		{in: "patient/Flag.rs?=a", errMsg: "malformed granular parameter"},
		{in: "patient/Flag.rs?patient=other", errMsg: "unsupported granular parameter"},
		{in: "patient/Flag.rs?category:not=a", errMsg: "unsupported granular parameter"},
		{in: "patient/Flag.rs?category=a,b", errMsg: "unsupported granular value"},
		{in: "patient/Flag.rs?category=a|b|c", errMsg: "unsupported granular value"},
		{in: "patient/Flag.rs?category=%zz", errMsg: "malformed value"},
		{in: "patient/Flag.rs?category=a%20b", errMsg: "unsupported character"},
		{in: "patient/Flag.read?category=a", errMsg: "granular parameters need SMART v2"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, errs := ParseScopes("  " + tc.in + "  ")
			if tc.errMsg != "" {
				assert.Empty(t, got)
				require.Len(t, errs, 1)
				assert.Equal(t, tc.in, errs[0].Scope)
				assert.Contains(t, errs[0].Reason, tc.errMsg)
				assert.Contains(t, errs[0].Error(), tc.in)
				return
			}
			require.Empty(t, errs)
			require.Len(t, got, 1)
			sc := got[0]
			assert.Equal(t, tc.in, sc.Raw)
			if tc.opaque {
				assert.False(t, sc.IsResource())
				assert.True(t, got.Has(tc.in))
				return
			}
			assert.Equal(t, tc.ctx, sc.Context)
			assert.Equal(t, tc.rt, sc.ResourceType)
			assert.Equal(t, tc.in2, sc.Interactions, "%s vs %s", tc.in2, sc.Interactions)
			assert.Equal(t, tc.v1, sc.V1)
			assert.Equal(t, tc.cons, sc.Constraints)
			assert.False(t, got.Has(tc.in), "Has is for non-resource scopes")
		})
	}
}

func TestParseScopesMixed(t *testing.T) {
	got, errs := ParseScopes("openid fhirUser patient/Flag.rs patient/Flag.sr Patient/Flag.read user/AllergyIntolerance.cruds\tlaunch/patient")
	assert.Equal(t, "openid fhirUser patient/Flag.rs user/AllergyIntolerance.cruds launch/patient", got.String())
	require.Len(t, errs, 2)
	assert.Equal(t, "patient/Flag.sr", errs[0].Scope)
	assert.Equal(t, "Patient/Flag.read", errs[1].Scope)
	assert.Equal(t, map[Context]bool{ContextPatient: true, ContextUser: true}, got.Contexts())
}

func TestPermits(t *testing.T) {
	clinical := Constraint{"category", "http://terminology.hl7.org/CodeSystem/flag-category|clinical"}
	scopes, errs := ParseScopes("patient/Flag.rs?category=" + clinical.Value +
		" patient/AllergyIntolerance.read user/*.s system/Encounter.cu system/MedicationStatement.write patient/Flag.rsx")
	require.Len(t, errs, 1)

	cases := []struct {
		name        string
		ctx         Context
		rt          string
		in          Interaction
		allowed     bool
		constrained bool
	}{
		{"granular flag read", ContextPatient, "Flag", Read, true, true},
		{"granular flag search", ContextPatient, "Flag", Search, true, true},
		{"flag create not granted (rsx dropped)", ContextPatient, "Flag", Create, false, false},
		{"v1 read covers read", ContextPatient, "AllergyIntolerance", Read, true, false},
		{"v1 read covers search", ContextPatient, "AllergyIntolerance", Search, true, false},
		{"v1 read is not write", ContextPatient, "AllergyIntolerance", Update, false, false},
		{"user wildcard search", ContextUser, "Flag", Search, true, false},
		{"user wildcard no read", ContextUser, "Flag", Read, false, false},
		{"patient scope not for user context", ContextUser, "AllergyIntolerance", Read, false, false},
		{"system create encounter", ContextSystem, "Encounter", Create, true, false},
		{"system update encounter", ContextSystem, "Encounter", Update, true, false},
		{"system cannot read encounter", ContextSystem, "Encounter", Read, false, false},
		{"system cannot delete encounter", ContextSystem, "Encounter", Delete, false, false},
		{"v1 write covers delete", ContextSystem, "MedicationStatement", Delete, true, false},
		{"v1 write no search", ContextSystem, "MedicationStatement", Search, false, false},
		{"other type", ContextPatient, "Encounter", Read, false, false},
		{"combined interactions refused", ContextPatient, "AllergyIntolerance", Read | Search, false, false},
		{"zero interaction refused", ContextPatient, "AllergyIntolerance", 0, false, false},
		{"wildcard resource type asked", ContextUser, "*", Search, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := scopes.Permits(tc.ctx, tc.rt, tc.in)
			assert.Equal(t, tc.allowed, d.Allowed)
			assert.Equal(t, tc.constrained, d.Constrained())
			if !tc.allowed {
				assert.False(t, d.Admits(func(Constraint) bool { return true }))
			}
		})
	}

	// Admits: a constrained decision passes only resources matching a grant.
	d := scopes.Permits(ContextPatient, "Flag", Read)
	category := func(sys, code string) func(Constraint) bool {
		return func(c Constraint) bool {
			if c.Param != "category" {
				return false
			}
			s, k, hasSys := c.Token()
			return k == code && (!hasSys || s == sys)
		}
	}
	assert.True(t, d.Admits(category("http://terminology.hl7.org/CodeSystem/flag-category", "clinical")))
	assert.False(t, d.Admits(category("http://terminology.hl7.org/CodeSystem/flag-category", "admin")))
	assert.False(t, d.Admits(category("http://other", "clinical")))
	assert.False(t, d.Admits(func(Constraint) bool { return false }))

	// An unconstrained grant alongside a constrained one admits everything.
	both, _ := ParseScopes("patient/Flag.rs?category=clinical patient/Flag.r")
	d = both.Permits(ContextPatient, "Flag", Read)
	assert.False(t, d.Constrained())
	assert.True(t, d.Admits(func(Constraint) bool { return false }))
	// ...but only for the interactions that grant covers.
	d = both.Permits(ContextPatient, "Flag", Search)
	assert.True(t, d.Constrained())
	assert.Len(t, d.Grants, 1)

	// AND within one scope, OR across scopes.
	and, _ := ParseScopes("patient/Flag.rs?category=clinical&status=active patient/Flag.rs?category=safety")
	d = and.Permits(ContextPatient, "Flag", Search)
	match := func(cat, status string) func(Constraint) bool {
		return func(c Constraint) bool {
			switch c.Param {
			case "category":
				return c.Value == cat
			case "status":
				return c.Value == status
			}
			return false
		}
	}
	assert.True(t, d.Admits(match("clinical", "active")))
	assert.False(t, d.Admits(match("clinical", "inactive")))
	assert.True(t, d.Admits(match("safety", "inactive")))
}

func TestConstraintToken(t *testing.T) {
	for v, want := range map[string][3]any{
		"sys|code": {"sys", "code", true},
		"code":     {"", "code", false},
		"|code":    {"", "code", true},
		"sys|":     {"sys", "", true},
	} {
		s, c, h := Constraint{"category", v}.Token()
		assert.Equal(t, want, [3]any{s, c, h}, v)
	}
}

func TestInteractionString(t *testing.T) {
	assert.Equal(t, "cruds", (Create | Read | Update | Delete | Search).String())
	assert.Equal(t, "rs", (Read | Search).String())
	assert.Equal(t, "", Interaction(0).String())
}
