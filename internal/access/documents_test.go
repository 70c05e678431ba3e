package access

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestDocumentShown: rule 7's periods per document group, and NORS.
func TestDocumentShown(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		group   string
		blocked bool
		date    time.Time
		want    bool
	}{
		{"discharge summary of 1990", "A00", false, now.AddDate(-36, 0, 0), true},
		{"discharge summary without a date", "A00", false, time.Time{}, true},
		{"test result of last month", "C00", false, now.AddDate(0, -1, 0), true},
		{"test result of two years ago", "C00", false, now.AddDate(-2, 0, 0), false},
		{"correspondence just over a year old", "I00", false, now.AddDate(-1, 0, -1), false},
		{"imaging of four years ago", "E00", false, now.AddDate(-4, 0, 0), true},
		{"organ function of six years ago", "D00", false, now.AddDate(-6, 0, 0), false},
		{"test result without a date", "C00", false, time.Time{}, false},
		{"NORS is never shown", "A00", true, now, false},
		{"a group outside the regulation", "J00", false, now, false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, DocumentShown(tc.group, tc.blocked, tc.date, now), tc.name)
	}
	assert.Equal(t, []string{"A00", "C00", "D00", "E00", "I00"}, DocumentGroups())
}

func TestSharing(t *testing.T) {
	s := Sharing{Types: []string{"A00", "C01-1"}, Organisations: []string{"300010008"}, Regions: []string{"helse-nord"}}
	assert.True(t, s.SharesWith("300010008", ""))
	assert.True(t, s.SharesWith("", "helse-nord"))
	assert.False(t, s.SharesWith("300099999", "helse-vest"))
	assert.False(t, s.SharesWith("", ""))
	assert.True(t, s.SharesType("A01-2", "A00"), "a whole group")
	assert.True(t, s.SharesType("C01-1", "C00"), "one type")
	assert.False(t, s.SharesType("C02", "C00"))
	assert.False(t, s.SharesType("x", ""))
}
