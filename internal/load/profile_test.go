package load

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/profile"
)

// The create scenario must be accepted by the server: its bodies follow
// kjernejournal's profiles for critical information.
func TestSyntheticBodiesFollowTheProfiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, typ := range []string{"Flag", "AllergyIntolerance"} {
		gen, err := SyntheticBodies(typ, []string{"pas-1", "pas-2"})
		require.NoError(t, err)
		for range 40 {
			body := gen(r)
			assert.Empty(t, profile.Check(typ, body), "%s", body)
		}
	}
}
