package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/devclock"
	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

// devClockFlags switch on the development clock (package devclock): the
// record's time moved ahead, so that the 7-day and 30-day rules can be
// tried without waiting.
type devClockFlags struct {
	on     *bool
	offset *time.Duration
}

func addDevClockFlags(fs *flagSet) devClockFlags {
	return devClockFlags{
		on: fs.Bool("dev-clock", false, "development only: an adjustable clock for the usage log's 7 days and the 30 days of a reservation; "+
			"GET "+devclock.Path+" tells the time, POST "+devclock.Path+` {"advance":"168h"} moves it forward and runs the purge job. `+
			"loopback addresses with --auth-server only; tokens keep the real time"),
		offset: fs.Duration("dev-clock-offset", 0, "development only: run the record's clock this far ahead of the real time (e.g. 720h), on loopback addresses with --auth-server or --insecure-no-auth; "+
			"with --dev-clock it can then be moved further"),
	}
}

// setup returns the development clock (nil when it is off) and whether
// the server offers the call that moves it. It is a development tool and
// refused in anything like a production configuration: the listen address
// must be a loopback one (as for --insecure-no-auth), and the tokens must
// be development ones (the built-in authorisation server's, or none):
// with a real issuer (--trusted-issuers) real people's records could be
// there, and their reservations must not be deletable by moving a clock.
// The call that moves the clock (--dev-clock) needs the built-in
// authorisation server besides: it is the development setup the
// conformance suite drives.
func (f devClockFlags) setup(addr string, af authFlags) (*devclock.Clock, bool, error) {
	if !*f.on && *f.offset == 0 {
		return nil, false, nil
	}
	name := "--dev-clock-offset"
	if *f.on {
		name = "--dev-clock"
	}
	if !loopback.Addr(addr) {
		return nil, false, fmt.Errorf("%s is allowed on loopback addresses only, not %s", name, addr)
	}
	switch {
	case *f.on && !*af.builtin:
		return nil, false, errors.New("--dev-clock is for development servers only: it needs --auth-server (a fixed --dev-clock-offset also works with --insecure-no-auth)")
	case !*af.builtin && !*af.noAuth:
		return nil, false, errors.New("--dev-clock-offset is for development servers only: it needs --auth-server or --insecure-no-auth")
	}
	if strings.TrimSpace(*af.trusted) != "" {
		return nil, false, fmt.Errorf("%s is refused together with --trusted-issuers: with real tokens the records may be real", name)
	}
	c, err := devclock.New(*f.offset)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", name, err)
	}
	return c, *f.on, nil
}
