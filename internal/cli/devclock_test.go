package cli

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDevClockOnlyInDevelopment: the development clock is refused unless
// the server listens on loopback with development tokens only.
func TestDevClockOnlyInDevelopment(t *testing.T) {
	b := func(v bool) *bool { return &v }
	s := func(v string) *string { return &v }
	d := func(v time.Duration) *time.Duration { return &v }
	cases := []struct {
		name    string
		addr    string
		flags   devClockFlags
		auth    authFlags
		on      bool
		call    bool
		refused string
	}{
		{"off by default", "0.0.0.0:8080", devClockFlags{b(false), d(0)}, authFlags{builtin: b(false), noAuth: b(false), trusted: s("")}, false, false, ""},
		{"loopback with the built-in authorisation server", "127.0.0.1:0", devClockFlags{b(true), d(0)}, authFlags{builtin: b(true), noAuth: b(false), trusted: s("")}, true, true, ""},
		{"fixed offset on loopback without auth", "[::1]:0", devClockFlags{b(false), d(720 * time.Hour)}, authFlags{builtin: b(false), noAuth: b(true), trusted: s("")}, true, false, ""},
		{"the call that moves it needs the built-in authorisation server", "127.0.0.1:0", devClockFlags{b(true), d(0)}, authFlags{builtin: b(false), noAuth: b(true), trusted: s("")}, false, false, "--auth-server"},
		{"an offset alone is refused off loopback too", "0.0.0.0:8080", devClockFlags{b(false), d(time.Hour)}, authFlags{builtin: b(true), noAuth: b(false), trusted: s("")}, false, false, "loopback"},
		{"not on loopback", "10.0.0.5:8080", devClockFlags{b(true), d(0)}, authFlags{builtin: b(true), noAuth: b(false), trusted: s("")}, false, false, "loopback"},
		{"production tokens", "127.0.0.1:0", devClockFlags{b(false), d(time.Hour)}, authFlags{builtin: b(false), noAuth: b(false), trusted: s("")}, false, false, "--auth-server"},
		{"a real issuer beside the built-in one", "127.0.0.1:0", devClockFlags{b(true), d(0)}, authFlags{builtin: b(true), noAuth: b(false), trusted: s("https://helseid|https://helseid/jwks")}, false, false, "--trusted-issuers"},
		{"negative offset", "127.0.0.1:0", devClockFlags{b(true), d(-time.Hour)}, authFlags{builtin: b(true), noAuth: b(false), trusted: s("")}, false, false, "offset"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock, call, err := c.flags.setup(c.addr, c.auth)
			if c.refused != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.refused)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.on, clock != nil)
			assert.Equal(t, c.call, call)
			if clock != nil {
				assert.WithinDuration(t, time.Now().Add(*c.flags.offset), clock.Now(), time.Minute)
			}
		})
	}
}
