package privacy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Consent of scope adr or treatment is critical information (limits of
// life-prolonging treatment, treatment clarifications): reading a
// patient's privacy settings leaves it out instead of failing on it, and
// never takes it for a setting.
func TestParseAllSkipsCriticalConsent(t *testing.T) {
	critical := []byte(`{"resourceType":"Consent","status":"active",
	  "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"adr"}]},
	  "category":[{"coding":[{"system":"https://kjernejournal.example.no/fhir/CodeSystem/critical-info-type","code":"LimitsOfLifeProlongingTreatment"}]}],
	  "patient":{"reference":"Patient/p1"},"dateTime":"2025-01-02T10:00:00+01:00",
	  "provision":{"type":"deny","code":[{"text":"Ikke HLR"}]}}`)
	reservation := Setting{Patient: "p1", Kind: Reservation, Active: true, Since: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}.Consent()

	settings, err := ParseAll([][]byte{critical, reservation})
	require.NoError(t, err)
	require.Len(t, settings, 1)
	assert.Equal(t, Reservation, settings[0].Kind)

	settings, err = ParseAll([][]byte{critical})
	require.NoError(t, err)
	assert.Empty(t, settings)
}
