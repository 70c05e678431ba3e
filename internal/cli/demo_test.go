package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
)

// TestDemoRestriction: the restricted demo patient's setting is a valid
// privacy Consent restricting her medications (the README shows them
// hidden with SAMTYKKE and opened with FORHOYET_SAMTYKKE), with the fixed
// id that keeps a second start from storing it twice.
func TestDemoRestriction(t *testing.T) {
	r := demoRestriction("pas-1d0b14e4db018fed")
	got, err := privacy.Parse(r.Consent())
	require.NoError(t, err)
	assert.Equal(t, privacy.Restriction, got.Kind)
	assert.True(t, got.Active)
	assert.Equal(t, "pas-1d0b14e4db018fed", got.Patient)
	assert.Equal(t, "pas-1d0b14e4db018fed-restriction", got.ID)
	assert.Equal(t, []access.Section{access.Medications}, got.Sections)
}
