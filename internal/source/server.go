package source

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Faults makes the source misbehave on purpose, so kjernejournal's handling
// of slow and failing sources can be tested against real HTTP.
type Faults struct {
	// Latency is added before answering any request.
	Latency time.Duration
	// ErrorRate is the fraction (0-1) of requests answered 500.
	ErrorRate float64
	// DisconnectAfterBytes, when > 0, closes the connection after that many
	// bytes of a document's body (one shorter than Content-Length promised).
	DisconnectAfterBytes int64
	// Chunked sends documents without Content-Length (chunked transfer
	// encoding), as sources that stream from their archive do: a broken
	// transfer then shows only as a missing final chunk.
	Chunked bool
	// Down refuses every request with 503.
	Down bool
	// Garbage answers every successful document or lab search 200 with
	// Content-Type application/fhir+json and a body that is not FHIR JSON
	// (an HTML error page, as a misconfigured proxy sends). It wins over
	// HugeSearchBytes.
	Garbage bool
	// HugeSearchBytes, when > 0, pads every successful document or lab
	// search answer to at least that many bytes (meta.tag codings with
	// long displays: still a valid Bundle), so a client's size limit trips.
	// The answer is built in memory, hence the limit of MaxHugeSearchBytes.
	HugeSearchBytes int64
}

// MaxHugeSearchBytes bounds Faults.HugeSearchBytes.
const MaxHugeSearchBytes = 1 << 30

func (f Faults) validate() error {
	switch {
	case f.Latency < 0:
		return errors.New("latency must not be negative")
	case f.ErrorRate < 0 || f.ErrorRate > 1:
		return fmt.Errorf("error rate %v must lie in 0..1", f.ErrorRate)
	case f.DisconnectAfterBytes < 0:
		return errors.New("disconnect-after-bytes must not be negative")
	case f.HugeSearchBytes < 0 || f.HugeSearchBytes > MaxHugeSearchBytes:
		return fmt.Errorf("huge-search-bytes %d must lie in 0..%d", f.HugeSearchBytes, MaxHugeSearchBytes)
	}
	return nil
}

// Config configures a source.
type Config struct {
	// Org is the hospital the source speaks for; its organisation number
	// is accepted as assertion audience.
	Org Organisation
	// BaseURL is the source's public base URL, e.g. http://127.0.0.1:8091
	// (a path such as /fhir is allowed). It is the other accepted audience
	// and the prefix of attachment URLs. Empty means "whatever scheme and
	// Host the request came with": convenient with httptest, but then the
	// Host header decides the audience, so real deployments set it.
	BaseURL string
	// Issuer is kjernejournal's base URL, the assertions' iss.
	Issuer string
	// JWKSURL is where kjernejournal publishes its assertion keys.
	JWKSURL string
	// JWKSClient fetches the JWKS; nil uses jwx's default client.
	JWKSClient *http.Client
	// Documents the source serves; see Generate and LargeDocument.
	Documents []Document
	// LabResults the source's lab result service serves under
	// BaseURL/lab; see GenerateLab.
	LabResults []LabReport
	// Faults to inject from the start; SetFaults changes them later.
	Faults Faults
	// Log receives one JSON line per lookup; nil means os.Stderr.
	Log io.Writer
	// Now is the clock for assertion checks; nil means time.Now.
	Now func() time.Time
	// Sleep waits out the injected latency; nil uses a timer that stops
	// early when the request is cancelled. Tests can record the wait here.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Stats counts what the source did, so tests can assert that a fault was
// applied without measuring time.
type Stats struct {
	Requests       int64         // every request received
	LatencyApplied int64         // requests delayed by Faults.Latency
	LatencyTotal   time.Duration // the delay added, summed
	InjectedErrors int64         // answered 500 by Faults.ErrorRate
	RefusedDown    int64         // answered 503 by Faults.Down
	Disconnects    int64         // bodies cut by Faults.DisconnectAfterBytes
	GarbageAnswers int64         // searches answered with Faults.Garbage
	PaddedAnswers  int64         // searches padded by Faults.HugeSearchBytes
	// Abandoned are requests whose client went away while the source was
	// still delaying them (Faults.Latency): the client cancelled its work.
	Abandoned int64
}

// Lookup is one entry of the source's own log of who looked up what.
type Lookup struct {
	Time      time.Time  `json:"time"`
	Source    string     `json:"source"`  // this source's organisation number
	Action    string     `json:"action"`  // "search", "retrieve" or "lab-search"
	Outcome   string     `json:"outcome"` // "allowed" or "refused"
	Status    int        `json:"status"`
	Reason    string     `json:"reason,omitempty"`
	Resource  string     `json:"resource,omitempty"` // lab-search: DiagnosticReport or Observation
	Query     string     `json:"query,omitempty"`    // the search's query string
	Document  string     `json:"document,omitempty"` // the document retrieved
	Results   int        `json:"results"`            // documents listed or served, lab match entries
	Assertion *Assertion `json:"assertion,omitempty"`
}

// maxLookups bounds the in-memory log; the JSON lines are the full record.
const maxLookups = 10000

// Server is a source hospital's document endpoint. It is an http.Handler.
type Server struct {
	cfg      Config
	prefix   string // path of BaseURL
	verifier *verifier
	byID     map[string]*Document
	byPerson map[string][]*Document // newest first

	labByID     map[string]*LabReport
	labByPerson map[string][]*LabReport // newest first, ties by id
	obsByPerson map[string][]labObs     // newest first, ties by id

	mu      sync.Mutex
	faults  Faults
	stats   Stats
	lookups []Lookup
	logMu   sync.Mutex
}

// New checks cfg and returns a ready source. Close releases the JWKS
// cache's background fetcher.
func New(cfg Config) (*Server, error) {
	if cfg.Org.Number == "" {
		return nil, errors.New("source: the organisation number is required")
	}
	if cfg.Issuer == "" {
		return nil, errors.New("source: the kjernejournal issuer is required")
	}
	if u, err := url.Parse(cfg.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("source: JWKS URL %q must be an absolute http(s) URL", cfg.JWKSURL)
	}
	s := &Server{cfg: cfg, faults: cfg.Faults, byID: map[string]*Document{}, byPerson: map[string][]*Document{},
		labByID: map[string]*LabReport{}, labByPerson: map[string][]*LabReport{}, obsByPerson: map[string][]labObs{}}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("source: base URL %q must be an absolute http(s) URL without query", cfg.BaseURL)
		}
		s.cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
		s.prefix = strings.TrimSuffix(u.Path, "/")
	}
	if err := cfg.Faults.validate(); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if s.cfg.Log == nil {
		s.cfg.Log = os.Stderr
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	if s.cfg.Sleep == nil {
		s.cfg.Sleep = sleep
	}
	for i := range cfg.Documents {
		d := &cfg.Documents[i]
		if d.ID == "" || strings.ContainsAny(d.ID, "/?#") {
			return nil, fmt.Errorf("source: document id %q is not usable in a URL path", d.ID)
		}
		if _, dup := s.byID[d.ID]; dup {
			return nil, fmt.Errorf("source: document id %q appears twice", d.ID)
		}
		s.byID[d.ID] = d
		s.byPerson[d.PersonNumber] = append(s.byPerson[d.PersonNumber], d)
	}
	for _, docs := range s.byPerson {
		slices.SortStableFunc(docs, func(a, b *Document) int { return b.Date.Compare(a.Date) })
	}
	// A copy, so the caller's slice can change without changing answers.
	if err := s.indexLab(slices.Clone(cfg.LabResults)); err != nil {
		return nil, err
	}
	v, err := newVerifier(cfg.Issuer, cfg.JWKSURL, cfg.Org.Number, cfg.JWKSClient, s.cfg.Now)
	if err != nil {
		return nil, err
	}
	s.verifier = v
	return s, nil
}

// Close stops the background JWKS refresh.
func (s *Server) Close() { s.verifier.close() }

// SetFaults replaces the injected faults, e.g. to take a running source down.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
	return nil
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Lookups returns the source's log of lookups, oldest first (at most the
// last 10 000).
func (s *Server) Lookups() []Lookup {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lookups)
}

// Document returns the document with the id.
func (s *Server) Document(id string) (Document, bool) {
	d, ok := s.byID[id]
	if !ok {
		return Document{}, false
	}
	return *d, true
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP routes the document endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	f := s.faults
	s.mu.Unlock()

	if f.Down {
		s.count(func(st *Stats) { st.RefusedDown++ })
		w.Header().Set("Retry-After", "30")
		writeOutcome(w, http.StatusServiceUnavailable, "transient", "source is down (fault injection)")
		return
	}
	if f.Latency > 0 {
		err := s.cfg.Sleep(r.Context(), f.Latency)
		s.count(func(st *Stats) { st.LatencyApplied++; st.LatencyTotal += f.Latency })
		if err != nil {
			s.count(func(st *Stats) { st.Abandoned++ })
			return // the client gave up waiting
		}
	}
	if f.ErrorRate > 0 && mrand.Float64() < f.ErrorRate {
		s.count(func(st *Stats) { st.InjectedErrors++ })
		writeOutcome(w, http.StatusInternalServerError, "exception", "internal error (fault injection)")
		return
	}

	path, ok := strings.CutPrefix(r.URL.Path, s.prefix)
	if !ok {
		writeOutcome(w, http.StatusNotFound, "not-found", "no such endpoint")
		return
	}
	var route func(http.ResponseWriter, *http.Request, string)
	var arg string
	switch {
	case path == "/healthz", path == labPath+"/healthz":
		route = func(w http.ResponseWriter, _ *http.Request, _ string) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "ok\n")
		}
	case path == labPath+"/DiagnosticReport", path == labPath+"/Observation":
		route, arg = s.labSearch, path[len(labPath+"/"):]
	case path == "/DocumentReference":
		route = s.search
	case strings.HasPrefix(path, "/Binary/") && len(path) > len("/Binary/") && !strings.Contains(path[len("/Binary/"):], "/"):
		route, arg = s.retrieve, path[len("/Binary/"):]
	default:
		writeOutcome(w, http.StatusNotFound, "not-found", "no such endpoint; this source answers GET /DocumentReference, GET /Binary/<id>, GET /lab/DiagnosticReport and GET /lab/Observation")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeOutcome(w, http.StatusMethodNotAllowed, "not-supported", "only GET is supported")
		return
	}
	route(w, r, arg)
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// base is the URL prefix for this request's links.
func (s *Server) base(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// authenticate verifies the bearer assertion, which must be addressed to
// aud (the document endpoint's base URL or the lab service's) or to the
// organisation number. On failure it answers and logs the refusal and
// returns nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, entry *Lookup, aud string) *Assertion {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = ""
	}
	a, err := s.verifier.verify(r.Context(), strings.TrimSpace(token), aud)
	if err != nil {
		var refusal *errAssertion
		if errors.As(err, &refusal) {
			s.unauthorized(w, entry, refusal.msg)
		} else {
			// Cannot fetch kjernejournal's keys: our problem, not the
			// caller's, so not a 401.
			entry.Outcome, entry.Status, entry.Reason = "refused", http.StatusServiceUnavailable, err.Error()
			s.record(*entry)
			writeOutcome(w, http.StatusServiceUnavailable, "transient", "cannot verify assertions now: "+err.Error())
		}
		return nil
	}
	entry.Assertion = a
	return a
}

func (s *Server) unauthorized(w http.ResponseWriter, entry *Lookup, reason string) {
	entry.Outcome, entry.Status, entry.Reason = "refused", http.StatusUnauthorized, reason
	s.record(*entry)
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description=`+strconv.Quote(reason))
	writeOutcome(w, http.StatusUnauthorized, "login", reason)
}

func (s *Server) badRequest(w http.ResponseWriter, entry *Lookup, reason string) {
	entry.Outcome, entry.Status, entry.Reason = "refused", http.StatusBadRequest, reason
	s.record(*entry)
	writeOutcome(w, http.StatusBadRequest, "invalid", reason)
}

func (s *Server) forbidden(w http.ResponseWriter, entry *Lookup, reason string) {
	entry.Outcome, entry.Status, entry.Reason = "refused", http.StatusForbidden, reason
	s.record(*entry)
	writeOutcome(w, http.StatusForbidden, "forbidden", reason)
}

// spend uses up the assertion's jti, answering 401 on a replay.
func (s *Server) spend(w http.ResponseWriter, a *Assertion, entry *Lookup) bool {
	if !s.verifier.spend(a) {
		s.unauthorized(w, entry, "assertion replayed: jti "+strconv.Quote(a.JTI)+" was used before")
		return false
	}
	return true
}

// healthPersonnel refuses a citizen's assertion on the document endpoint:
// the hospital shares its documents with health personnel, and citizens
// read them in its own patient portal. It answers and logs the refusal.
func (s *Server) healthPersonnel(w http.ResponseWriter, a *Assertion, entry *Lookup) bool {
	if a.Role != "citizen" {
		return true
	}
	s.forbidden(w, entry, "documents are shared with health personnel; a citizen's assertion opens lab results only")
	return false
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, _ string) {
	entry := Lookup{Action: "search", Query: r.URL.RawQuery}
	a := s.authenticate(w, r, &entry, s.base(r))
	if a == nil || !s.healthPersonnel(w, a, &entry) {
		return
	}
	q, err := parseSearch(r.URL.RawQuery)
	if err != nil {
		s.badRequest(w, &entry, err.Error())
		return
	}
	if q.person != a.Patient {
		s.unauthorized(w, &entry, "assertion is for another patient than the one searched")
		return
	}
	if !s.spend(w, a, &entry) {
		return
	}
	var matches []*Document
	for _, d := range s.byPerson[q.person] {
		if q.match(d) {
			matches = append(matches, d)
		}
	}
	base := s.base(r)
	b := fBundle{
		ResourceType: "Bundle",
		ID:           rand.Text(),
		Meta:         fMeta{LastUpdated: s.cfg.Now().UTC().Format(time.RFC3339)},
		Type:         "searchset",
		Total:        len(matches),
		Link:         []fLink{{Relation: "self", URL: base + "/DocumentReference?" + r.URL.RawQuery}},
	}
	shown := matches
	if q.count >= 0 && q.count < len(shown) {
		shown = shown[:q.count]
	}
	for _, d := range shown {
		b.Entry = append(b.Entry, fEntry{
			FullURL:  base + "/DocumentReference/" + d.ID,
			Resource: d.documentReference(base),
			Search:   fSearch{Mode: "match"},
		})
	}
	entry.Outcome, entry.Status, entry.Results = "allowed", http.StatusOK, len(shown)
	s.record(entry)
	s.writeSearch(w, b)
}

// garbagePage is what Faults.Garbage answers searches with: the error page
// of a proxy in front of the source, labelled as FHIR.
const garbagePage = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n" +
	"<body><h1>Bad Gateway</h1><p>The proxy server received an invalid response from an upstream server.</p></body></html>\n"

// paddingSystem names the meta.tag codings of Faults.HugeSearchBytes.
const paddingSystem = "urn:kjsource:fault:huge-search-bytes"

// maxPaddingDisplay keeps each padding string under FHIR's 1 MiB limit
// on strings, so the padded Bundle stays valid FHIR.
const maxPaddingDisplay = 512 << 10

// writeSearch answers a search with b, spoilt as the faults say.
func (s *Server) writeSearch(w http.ResponseWriter, b fBundle) {
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	if f.Garbage {
		s.count(func(st *Stats) { st.GarbageAnswers++ })
		h := w.Header()
		h.Set("Content-Type", "application/fhir+json; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, garbagePage)
		return
	}
	if f.HugeSearchBytes > 0 {
		if body, err := json.Marshal(b); err == nil && int64(len(body)) < f.HugeSearchBytes {
			s.count(func(st *Stats) { st.PaddedAnswers++ })
			pad(&b, f.HugeSearchBytes-int64(len(body)))
		}
	}
	writeJSON(w, http.StatusOK, b)
}

// pad adds meta.tag codings to b that make its JSON at least need bytes
// longer. Displays are ASCII, so characters are bytes.
func pad(b *fBundle, need int64) {
	const filler = "padding to trip a size limit (fault injection) "
	tag := fCoding{System: paddingSystem, Code: "padding", Display: "x"}
	one, _ := json.Marshal(tag)
	per := int64(len(one)) - 1 // a coding but its display's characters
	if need <= 0 {
		return
	}
	// The tag list comes with its first coding, so there is at least one.
	need -= int64(len(`,"tag":[]`))
	for sep := int64(0); ; sep = 1 { // a comma before every coding but the first
		n := max(1, min(need-per-sep, maxPaddingDisplay))
		tag.Display = strings.Repeat(filler, int(n)/len(filler)+1)[:n]
		b.Meta.Tag = append(b.Meta.Tag, tag)
		if need -= sep + per + n; need <= 0 {
			return
		}
	}
}

// errCut ends a body early on purpose.
var errCut = errors.New("source: body cut by fault injection")

// cutWriter passes on the first left bytes, then fails.
type cutWriter struct {
	w    io.Writer
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= c.left {
		n, err := c.w.Write(p)
		c.left -= int64(n)
		return n, err
	}
	n, err := c.w.Write(p[:c.left])
	c.left -= int64(n)
	if err == nil {
		err = errCut
	}
	return n, err
}

func (s *Server) retrieve(w http.ResponseWriter, r *http.Request, id string) {
	entry := Lookup{Action: "retrieve", Document: id}
	if len(r.URL.RawQuery) > 0 {
		// Bytes only: a Binary read takes no parameters here.
		s.badRequest(w, &entry, "Binary reads take no parameters")
		return
	}
	a := s.authenticate(w, r, &entry, s.base(r))
	if a == nil || !s.healthPersonnel(w, a, &entry) {
		return
	}
	if a.Document != id {
		s.unauthorized(w, &entry, "assertion is for another document than the one requested")
		return
	}
	d, ok := s.byID[id]
	if !ok {
		entry.Outcome, entry.Status, entry.Reason = "refused", http.StatusNotFound, "no such document"
		s.record(entry)
		writeOutcome(w, http.StatusNotFound, "not-found", "no document "+strconv.Quote(id))
		return
	}
	if d.PersonNumber != a.Patient {
		s.unauthorized(w, &entry, "assertion is for another patient than the document's")
		return
	}
	if !s.spend(w, a, &entry) {
		return
	}
	// The lookup is logged before any byte leaves, as kjernejournal's own
	// audit log is.
	entry.Outcome, entry.Status, entry.Results = "allowed", http.StatusOK, 1
	s.record(entry)

	h := w.Header()
	h.Set("Content-Type", d.ContentType)
	s.mu.Lock()
	chunked := s.faults.Chunked
	s.mu.Unlock()
	if !chunked {
		h.Set("Content-Length", strconv.FormatInt(d.Size, 10))
	}
	ext := ".pdf"
	if d.ContentType == "application/xml" {
		ext = ".xml"
	}
	h.Set("Content-Disposition", `inline; filename="`+d.ID+ext+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	s.mu.Lock()
	cut := s.faults.DisconnectAfterBytes
	s.mu.Unlock()
	var out io.Writer = w
	if cut > 0 && cut < d.Size {
		out = &cutWriter{w: w, left: cut}
	}
	if _, err := d.WriteBody(out); errors.Is(err, errCut) {
		s.count(func(st *Stats) { st.Disconnects++ })
		// Send what was written, then drop the connection, so the client
		// sees a body shorter than Content-Length: an unexpected EOF.
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		if conn, _, err := rc.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
		panic(http.ErrAbortHandler) // HTTP/2: resets the stream instead
	}
}

// record appends to the in-memory log and writes the JSON line.
func (s *Server) record(e Lookup) {
	e.Time = s.cfg.Now().UTC()
	e.Source = s.cfg.Org.Number
	s.mu.Lock()
	if len(s.lookups) >= maxLookups {
		s.lookups = slices.Delete(s.lookups, 0, len(s.lookups)-maxLookups+1)
	}
	s.lookups = append(s.lookups, e)
	s.mu.Unlock()
	line, err := json.Marshal(struct {
		Msg string `json:"msg"`
		Lookup
	}{"lookup", e})
	if err != nil {
		return
	}
	s.logMu.Lock()
	_, _ = s.cfg.Log.Write(append(line, '\n'))
	s.logMu.Unlock()
}
