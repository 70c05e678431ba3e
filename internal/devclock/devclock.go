// Package devclock is the development server's adjustable clock, so that
// the rules that count days can be tried and tested end to end without
// waiting: the citizen's usage log hides a health professional's name for
// 7 days, and a reserved record is deleted 30 days after the server
// recorded the reservation (DOMAIN.md rule 4 and "Usage log").
//
// The clock is the record's clock only: what the server writes as the
// time of an access or of a privacy setting, and what the 7-day and 30-day
// rules compare against. Security keeps the real time: token validation
// (exp, nbf, iat, the attest's age), DPoP proofs and their replay window,
// the tokens the built-in authorisation server issues, signed document
// links, the store's meta.lastUpdated and transaction leases, and HTTP
// deadlines. A clock moved forward therefore never makes a valid token look
// expired or an expired one valid, and a tester's clock cannot reach past
// the development server it runs in.
//
// The clock only moves forward: a setting or an access recorded at a
// shifted time must never be "in the future" of a later one, or the rules
// that compare them (a reservation lifted before it was made) would break.
//
// `serve` offers it on loopback addresses in development mode only (see
// internal/cli/devclock.go), never in a production configuration.
package devclock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

// Path is where the development server serves the clock.
const Path = "/_dev/clock"

// MaxStep bounds one move, so that a typo cannot put the clock centuries
// ahead (the rules count days; a year is plenty).
const MaxStep = 366 * 24 * time.Hour

// Clock is the real time plus an offset that only grows. The zero value
// is the real time.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
	// real is the underlying clock; nil means time.Now (tests inject one).
	real func() time.Time
}

// New returns a clock offset ahead of the real time; a negative offset is
// refused (the clock only moves forward from the real time).
func New(offset time.Duration) (*Clock, error) {
	if offset < 0 || offset > MaxStep {
		return nil, fmt.Errorf("the development clock offset must be between 0 and %s, not %s", MaxStep, offset)
	}
	return &Clock{offset: offset}, nil
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.real != nil {
		now = c.real
	}
	return now().Add(c.offset)
}

// Offset is how far the clock is ahead of the real time.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// Advance moves the clock d forward (0 < d <= MaxStep).
func (c *Clock) Advance(d time.Duration) error {
	if d <= 0 || d > MaxStep {
		return fmt.Errorf("advance must be more than 0 and at most %s, not %s", MaxStep, d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	return nil
}

// State is what the clock endpoint answers.
type State struct {
	Now    string `json:"now"`    // the clock's time, RFC 3339 with milliseconds
	Offset string `json:"offset"` // ahead of the real time, a Go duration
	// OffsetSeconds is Offset in whole seconds, for clients in other
	// languages.
	OffsetSeconds int64 `json:"offsetSeconds"`
	// Purged are the patients whose reserved record the purge run after
	// the move deleted (only after a move).
	Purged []string `json:"purged,omitempty"`
}

// Handler serves the clock: GET tells the time; POST with
// {"advance":"168h"} moves it forward and then runs afterAdvance (the
// purge job, so that what became due is done before the answer), whose
// result goes into Purged. It answers only requests from a loopback peer:
// the server offers it on loopback only anyway, and a proxy in front must
// not open it. Errors are FHIR OperationOutcomes with Norwegian text.
func Handler(c *Clock, afterAdvance func(ctx context.Context) ([]string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil || !loopback.Host(host) {
			outcome(w, http.StatusForbidden, "forbidden", "Utviklingsklokken kan bare brukes fra samme maskin (loopback).")
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			answer(w, c, nil)
		case http.MethodPost:
			var body struct {
				Advance string `json:"advance"`
			}
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				outcome(w, http.StatusBadRequest, "structure", `Forventet JSON som {"advance":"168h"}: `+err.Error())
				return
			}
			d, err := time.ParseDuration(body.Advance)
			if err != nil {
				outcome(w, http.StatusBadRequest, "value", fmt.Sprintf("advance %q er ikke en varighet (f.eks. 168h for 7 dager): %v", body.Advance, err))
				return
			}
			if err := c.Advance(d); err != nil {
				outcome(w, http.StatusBadRequest, "value", "Klokken går bare fremover, høyst ett år om gangen: "+err.Error())
				return
			}
			var purged []string
			if afterAdvance != nil {
				ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
				defer cancel()
				if purged, err = afterAdvance(ctx); err != nil && !errors.Is(err, context.Canceled) {
					outcome(w, http.StatusInternalServerError, "exception", "Klokken ble flyttet, men slettejobben feilet: "+err.Error())
					return
				}
			}
			answer(w, c, purged)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			outcome(w, http.StatusMethodNotAllowed, "not-supported", "Bruk GET for å lese klokken og POST for å flytte den.")
		}
	})
}

func answer(w http.ResponseWriter, c *Clock, purged []string) {
	off := c.Offset()
	st := State{Now: c.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), Offset: off.String(), OffsetSeconds: int64(off / time.Second), Purged: purged}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(st)
}

func outcome(w http.ResponseWriter, status int, code, text string) {
	b, _ := json.Marshal(map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []map[string]any{{"severity": "error", "code": code, "diagnostics": text}},
	})
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
