package conformance_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/conformance"
)

// Against a server without the development clock (as every production
// server is) the clock group is skipped with the reason, not failed.
func TestClockChecksSkipWithoutDevClock(t *testing.T) {
	s := startStack(t, stackOptions{noDevClock: true})
	rep := runSuite(t, s.base, conformance.Config{Groups: []string{conformance.GroupClock}})
	require.Len(t, rep.Results, 2)
	for _, r := range rep.Results {
		assert.Equal(t, conformance.Skip, r.Status, "%s: %s", r.Check.ID, r.Message)
		assert.Contains(t, r.Message, "no development clock")
		assert.Contains(t, r.Message, "--dev-clock")
	}
}
