package interaction

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTranslateCriticalInfoType(t *testing.T) {
	sys := "https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type|"
	for _, c := range []struct {
		typ  string
		in   url.Values
		want url.Values
	}{
		{"AllergyIntolerance", url.Values{"patient": {"p"}, "criticalInfoType": {"DrugReaction"}}, url.Values{"patient": {"p"}, "criticalInfoType": {"medication"}}},
		{"AllergyIntolerance", url.Values{"criticalInfoType": {"OtherAllergen"}}, url.Values{"criticalInfoType": {"food,environment,biologic"}}},
		{"AllergyIntolerance", url.Values{"criticalInfoType:not": {sys + "DrugReaction"}}, url.Values{"criticalInfoType:not": {"medication"}}},
		{"AllergyIntolerance", url.Values{"criticalInfoType": {"DrugReaction,food"}}, url.Values{"criticalInfoType": {"medication,food"}}},
		{"Flag", url.Values{"criticalInfoType": {"ChangedTreatmentRoutines"}}, url.Values{"criticalInfoType": {"endret-behandlingsrutine"}}},
		// Condition carries the national code itself.
		{"Condition", url.Values{"criticalInfoType": {"Infection"}}, url.Values{"criticalInfoType": {"Infection"}}},
		{"AllergyIntolerance", url.Values{"criticalInfoType": {"Nonsense"}}, url.Values{"criticalInfoType": {"Nonsense"}}},
	} {
		in := url.Values{}
		for k, v := range c.in {
			in[k] = append([]string(nil), v...)
		}
		assert.Equal(t, c.want, translateCriticalInfoType(c.typ, c.in), "%s %v", c.typ, c.in)
		assert.Equal(t, in, c.in, "the caller's values are left alone")
	}
}
