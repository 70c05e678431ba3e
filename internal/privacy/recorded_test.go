package privacy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/privacy"
)

func TestStampSince(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	back := now.Add(-31 * 24 * time.Hour)
	set := func(active bool, since time.Time) []byte {
		return privacy.Setting{ID: "c1", Patient: "p1", Kind: privacy.Reservation, Active: active, Since: since}.Consent()
	}
	noDate := []byte(`{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]}}`)
	cases := []struct {
		name string
		body []byte
		prev []byte
		want time.Time
	}{
		{"new setting: the client's date is replaced", set(true, back), nil, now},
		{"new setting without dateTime gets one", noDate, nil, now},
		{"same state again keeps the recorded time", set(true, back), set(true, now.Add(-time.Hour)), now.Add(-time.Hour)},
		{"lifted: now", set(false, back), set(true, now.Add(-time.Hour)), now},
		{"put in force again: now", set(true, back), set(false, now.Add(-time.Hour)), now},
		{"clock behind the stored time: one millisecond later", set(false, back), set(true, now.Add(time.Hour)), now.Add(time.Hour + time.Millisecond)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := privacy.StampSince(c.body, c.prev, now)
			if c.body[0] == '{' && len(c.body) == len(noDate) {
				assert.Contains(t, string(out), `"dateTime":"2026-03-01T12:00:00.000Z"`)
				return
			}
			s, err := privacy.Parse(out)
			require.NoError(t, err)
			assert.True(t, s.Since.Equal(c.want), "got %s, want %s", s.Since, c.want)
		})
	}
	assert.True(t, privacy.IsSetting(set(true, now)))
	assert.False(t, privacy.IsSetting([]byte(`{"resourceType":"Consent","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"adr"}]}}`)))
	assert.Equal(t, "not json", string(privacy.StampSince([]byte("not json"), nil, now)))
}
