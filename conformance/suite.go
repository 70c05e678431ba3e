// Package conformance is a black-box test of a kjernejournal endpoint. Every
// check talks to the server through its public HTTP interface only (FHIR
// REST, the SMART endpoints, the document proxy), so the same suite checks
// our own embedded server in `make test`, the server on the MongoDB engine,
// and an installation at a hospital or in the national test environment.
//
// Checks are grouped (FHIR REST, resource validity, SMART, the Norwegian
// access rules, documents); each has a stable id such as "rest/etag-read"
// that reports and CI logs name, so a regression points at one behaviour.
package conformance

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Group names, in the order the suite runs them. Validity runs last: it
// validates every resource the other groups were served.
const (
	GroupREST      = "rest"
	GroupSMART     = "smart"
	GroupRules     = "rules"
	GroupDocuments = "documents"
	GroupLab       = "lab"
	GroupValidity  = "validity"
)

// Groups lists the groups in run order, with the title reports give them.
var Groups = []struct{ Name, Title string }{
	{GroupREST, "FHIR REST"},
	{GroupSMART, "SMART App Launch 2.2"},
	{GroupRules, "Norwegian access rules"},
	{GroupDocuments, "Documents"},
	{GroupLab, "Lab results"},
	{GroupValidity, "Resource validity"},
	// Last: it moves the development clock forward (clock.go).
	{GroupClock, "Days that pass (development clock)"},
}

// Status is a check's outcome.
type Status string

const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Check is one named behaviour.
type Check struct {
	Group string
	ID    string // "<group>/<name>", stable across releases
	Title string // one line a vendor understands
	Run   func(t *T)
}

var (
	registryMu sync.Mutex
	registry   []Check
)

// register adds checks; each group's file calls it from init.
func register(cs ...Check) {
	registryMu.Lock()
	defer registryMu.Unlock()
	for _, c := range cs {
		if !strings.HasPrefix(c.ID, c.Group+"/") {
			panic("conformance: check id " + c.ID + " must start with its group " + c.Group)
		}
		for _, have := range registry {
			if have.ID == c.ID {
				panic("conformance: check id " + c.ID + " registered twice")
			}
		}
		registry = append(registry, c)
	}
}

// Checks returns every check in run order: by group, then as registered.
func Checks() []Check {
	registryMu.Lock()
	defer registryMu.Unlock()
	out := slices.Clone(registry)
	slices.SortStableFunc(out, func(a, b Check) int { return groupIndex(a.Group) - groupIndex(b.Group) })
	return out
}

func groupIndex(name string) int {
	for i, g := range Groups {
		if g.Name == name {
			return i
		}
	}
	return len(Groups)
}

// Result is one check's outcome.
type Result struct {
	Check   Check
	Status  Status
	Message string // why it failed or was skipped; empty on pass
	// Note is what a passing check measured (Notef), for the report.
	Note    string
	Elapsed time.Duration
}

// Report is the outcome of one run.
type Report struct {
	BaseURL string
	Started time.Time
	Elapsed time.Duration
	Results []Result
}

// Count returns how many results have status s, in group g ("" for all).
func (r *Report) Count(g string, s Status) int {
	n := 0
	for _, res := range r.Results {
		if res.Status == s && (g == "" || res.Check.Group == g) {
			n++
		}
	}
	return n
}

// Result returns the result of the check with the given id.
func (r *Report) Result(id string) (Result, bool) {
	for _, res := range r.Results {
		if res.Check.ID == id {
			return res, true
		}
	}
	return Result{}, false
}

// Run runs the selected checks one after another against cfg.BaseURL.
// Checks run sequentially: several change one patient's privacy settings,
// and a report is easier to read when the server log follows it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	e, err := newEnv(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var match *regexp.Regexp
	if cfg.Run != "" {
		if match, err = regexp.Compile(cfg.Run); err != nil {
			return nil, fmt.Errorf("conformance: --run %q: %w", cfg.Run, err)
		}
	}
	rep := &Report{BaseURL: e.base, Started: time.Now()}
	for _, c := range Checks() {
		if len(cfg.Groups) > 0 && !slices.Contains(cfg.Groups, c.Group) {
			continue
		}
		if match != nil && !match.MatchString(c.ID) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		res := e.run(ctx, c)
		rep.Results = append(rep.Results, res)
		if cfg.Progress != nil {
			line := fmt.Sprintf("%-4s %s (%s)", strings.ToUpper(string(res.Status)), c.ID, res.Elapsed.Round(time.Millisecond))
			if res.Message != "" {
				line += ": " + firstLine(res.Message)
			} else if res.Note != "" {
				line += ": " + firstLine(res.Note)
			}
			fmt.Fprintln(cfg.Progress, line)
		}
	}
	rep.Elapsed = time.Since(rep.Started)
	return rep, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// stop unwinds a check after Fatalf or Skipf.
type stop struct{}

// T is what a check gets: the server, tokens, fixtures and the verdict.
type T struct {
	// correlations maps the server's request ids to the X-Request-Id the
	// check sent (DoAudited).
	correlations sync.Map
	ctx          context.Context
	env          *env
	check        Check
	msgs         []string
	notes        []string
	failed       bool
	skipped      bool
	cleanup      []func()
}

func (e *env) run(ctx context.Context, c Check) (res Result) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.checkTimeout())
	defer cancel()
	t := &T{ctx: ctx, env: e, check: c}
	start := time.Now()
	func() {
		defer func() {
			if v := recover(); v != nil {
				if _, ok := v.(stop); !ok {
					t.failed = true
					t.msgs = append(t.msgs, fmt.Sprintf("check panicked: %v", v))
				}
			}
		}()
		defer t.runCleanup()
		c.Run(t)
	}()
	res = Result{Check: c, Status: Pass, Elapsed: time.Since(start)}
	switch {
	case t.failed:
		res.Status = Fail
	case t.skipped:
		res.Status = Skip
	}
	if res.Status != Pass {
		res.Message = strings.Join(t.msgs, "\n")
	}
	res.Note = strings.Join(t.notes, "\n")
	return res
}

func (t *T) runCleanup() {
	for i := len(t.cleanup) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if v := recover(); v != nil {
					if _, ok := v.(stop); !ok {
						panic(v)
					}
				}
			}()
			t.cleanup[i]()
		}()
	}
}

// Context is cancelled when the check's time is up.
func (t *T) Context() context.Context { return t.ctx }

// ID is the running check's id.
func (t *T) ID() string { return t.check.ID }

// Cleanup registers f to run when the check ends, last registered first
// (to undo a privacy setting, for instance).
func (t *T) Cleanup(f func()) { t.cleanup = append(t.cleanup, f) }

// Errorf records a failure and lets the check go on.
func (t *T) Errorf(format string, args ...any) {
	t.failed = true
	t.msgs = append(t.msgs, fmt.Sprintf(format, args...))
}

// Notef records a figure the check measured (an agreement rate, say),
// which the report shows whatever the outcome.
func (t *T) Notef(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// Fatalf records a failure and ends the check.
func (t *T) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	panic(stop{})
}

// Skipf ends the check as skipped, with the reason (a foreign server
// without the built-in authorisation server, say).
func (t *T) Skipf(format string, args ...any) {
	t.skipped = true
	t.msgs = append(t.msgs, fmt.Sprintf(format, args...))
	panic(stop{})
}
