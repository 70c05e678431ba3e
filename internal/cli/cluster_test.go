package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/smart"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

// EnvBinary names a prebuilt kjernejournal binary for the multi-process
// test; without it the test builds one (the build cache makes that a link).
const EnvBinary = "KJ_TEST_BINARY"

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// kjernejournalBinary is the real program: the cluster test runs what an
// operator deploys, not this test binary.
func kjernejournalBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv(EnvBinary); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kj-cluster-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "kjernejournal")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/kjernejournal/kjernejournal/cmd/kjernejournal").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/kjernejournal: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return builtBin
}

// removeBuiltBinary removes the binary kjernejournalBinary built, once
// every test that may run it has ended (TestMain): the tests share it.
func removeBuiltBinary() {
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
}

// cluster is several kjernejournal processes on one MongoDB database,
// as behind a load balancer: every one has --base-url publicBase and the
// same signing key, clients and personas, so a token or DPoP proof made
// for publicBase fits all of them.
type cluster struct {
	t     *testing.T
	bin   string
	uri   string
	db    string
	procs []*child
	http  *http.Client
	ehr   *helseIDClient

	mu       sync.Mutex
	requests map[string]int // X-Request-Id -> index of the process that answered
}

func startCluster(t *testing.T, n int, extra ...string) *cluster {
	c := &cluster{t: t, bin: kjernejournalBinary(t), uri: mongotest.URI(t), db: mongotest.Database(t),
		http:     &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second},
		ehr:      newHelseIDClient(t),
		requests: map[string]int{}}
	keyFile, clientsFile, personasFile := smartFiles(t)
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--base-url", publicBase, "--log-level", "warn",
		"--mongo-uri", c.uri, "--mongo-database", c.db,
		"--auth-server", "--smart-key-file", keyFile, "--smart-clients", clientsFile, "--smart-personas", personasFile,
		// The test hammers from one address with many tokens.
		"--rate-failed-auth", "off", "--rate-auth-server", "off",
		// A short lease: when the process delivering notifications is
		// killed, another takes over within about this slot.
		"--notify-lease", "2s"}, extra...)
	for range n {
		c.procs = append(c.procs, c.start(args))
	}
	return c
}

func (c *cluster) start(args []string) *child {
	t := c.t
	p := startChild(t, exec.Command(c.bin, args...))
	res, err := http.Get(p.base + "/healthz")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "%s/healthz", p.base)
	return p
}

// kill ends process i with SIGKILL: no shutdown, nothing flushed.
func (c *cluster) kill(i int) {
	require.NoError(c.t, c.procs[i].cmd.Process.Signal(syscall.SIGKILL))
	<-c.procs[i].done
}

// do sends a request to process i and remembers which process answered
// it, by the server's X-Request-Id, so the usage log can be attributed.
// hdr are header name/value pairs.
func (c *cluster) do(i int, method, path, authz string, body []byte, hdr ...string) answer {
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.procs[i].base+path, bytes.NewReader(body))
	if err != nil {
		return answer{body: err.Error()}
	}
	req.Header.Set("Authorization", authz)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k := 0; k+1 < len(hdr); k += 2 {
		req.Header.Set(hdr[k], hdr[k+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		return answer{body: fmt.Sprintf("%s %s at process %d: %v", method, path, i+1, err)}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if id := res.Header.Get("X-Request-Id"); id != "" {
		c.mu.Lock()
		c.requests[id] = i
		c.mu.Unlock()
	}
	return answer{res.StatusCode, res.Header, string(b)}
}

func (c *cluster) token(req smart.TokenRequest) string { return "Bearer " + c.ehr.token(req) }

// newPatient feeds a Patient with a synthetic person number through
// process i and returns its id.
func (c *cluster) newPatient(i int, pid string) string {
	a := c.do(i, http.MethodPost, "/Patient", c.token(smart.TokenRequest{Persona: "feeder"}), patientBody(pid))
	require.Equal(c.t, http.StatusCreated, a.status, "feeding Patient %s: %s", pid, a.body)
	var m map[string]any
	require.NoError(c.t, json.Unmarshal([]byte(a.body), &m))
	return m["id"].(string)
}

// openStore opens the cluster's database as a reader, to count what the
// processes stored; it leaves unfinished transactions to the servers.
func (c *cluster) openStore() *mongodb.Store {
	st, err := mongodb.Open(c.t.Context(), mongodb.Options{URI: c.uri, Database: c.db, SkipRecovery: true, Link: audit.Link})
	require.NoError(c.t, err)
	c.t.Cleanup(func() { st.Close() })
	return st
}

// syntheticPID is a synthetic (month +80) person number; n keeps the
// numbers of one test apart.
func syntheticPID(t *testing.T, n int) string {
	pid, err := seed.PersonNumber(time.Date(1970+n%30, time.Month(1+n%12), 1+n%28, 0, 0, 0, 0, time.UTC), 100+2*n, true)
	require.NoError(t, err)
	return pid
}

func patientBody(pid string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Patient","identifier":[{"system":%q,"value":%q}],
	  "name":[{"family":"Klyngesen","given":["Kari"]}],"gender":"female","birthDate":"1980-01-01"}`, domain.SystemFNR, pid)
}

const ehrIdentifierSystem = "urn:oid:2.16.578.1.12.4.1.2.999"

func flagWithEHRIdentifier(patient, value string) []byte {
	return bytes.Replace(flagBody(patient, "reported by three processes"), []byte(`"status":"active"`),
		fmt.Appendf(nil, `"identifier":[{"system":%q,"value":%q}],"status":"active"`, ehrIdentifierSystem, value), 1)
}

// TestThreeProcessesOnOneDatabase runs three `kjernejournal serve`
// processes on one MongoDB database (embedded FerretDB on SQLite, or
// KJ_TEST_MONGO_URI) with the load spread over them, as behind a load
// balancer, and checks what must hold across processes: one resource per
// conditional create and one Patient per person number however the
// requests race, a DPoP proof usable once in the whole cluster, every
// acknowledged write kept when a process is killed, each notification
// delivered once per subscriber while a process dies, and one usage-log
// chain, intact, with the records of all three processes interleaved.
func TestThreeProcessesOnOneDatabase(t *testing.T) {
	c := startCluster(t, 3)
	feeder := c.token(smart.TokenRequest{Persona: "feeder"})

	t.Run("dpop proof used at one process is refused at the others", func(t *testing.T) {
		patient := c.newPatient(0, syntheticPID(t, 1))
		tok := c.ehr.token(smart.TokenRequest{Persona: "hospital-doctor", Patient: patient, DPoPJKT: c.ehr.jkt})
		path := "/Patient/" + patient
		proof := c.ehr.proof(path, tok)
		a := c.do(0, http.MethodGet, path, "DPoP "+tok, nil, "DPoP", proof, "nhn-access-basis", "SAMTYKKE")
		require.Equal(t, http.StatusOK, a.status, "a fresh proof at process 1: %s", a.body)
		for _, i := range []int{1, 2} {
			requireReplayRefused(t, c.do(i, http.MethodGet, path, "DPoP "+tok, nil, "DPoP", proof, "nhn-access-basis", "SAMTYKKE"),
				fmt.Sprintf("the proof used at process 1, replayed at process %d", i+1))
		}
		a = c.do(2, http.MethodGet, path, "DPoP "+tok, nil, "DPoP", c.ehr.proof(path, tok), "nhn-access-basis", "SAMTYKKE")
		assert.Equal(t, http.StatusOK, a.status, "a fresh proof at process 3: %s", a.body)
	})

	t.Run("racing conditional creates give one resource", func(t *testing.T) {
		patient := c.newPatient(1, syntheticPID(t, 2))
		doctor := c.token(smart.TokenRequest{Persona: "hospital-doctor", Patient: patient})
		const n = 24
		answers := make([]answer, n)
		var wg sync.WaitGroup
		for k := range n {
			wg.Go(func() {
				answers[k] = c.do(k%3, http.MethodPost, "/Flag", doctor, flagWithEHRIdentifier(patient, "ehr-cluster-1"),
					"nhn-access-basis", "UNNTAK", "If-None-Exist", "identifier="+ehrIdentifierSystem+"|ehr-cluster-1")
			})
		}
		wg.Wait()
		created, ids := 0, map[string]bool{}
		for k, a := range answers {
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, a.status, "request %d at process %d: %s", k, k%3+1, a.body)
			if a.status == http.StatusCreated {
				created++
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(a.body), &m), a.body)
			ids[fmt.Sprint(m["id"])] = true
		}
		assert.Equal(t, 1, created, "%d conditional creates of one identifier over three processes: one 201, the rest 200", n)
		assert.Len(t, ids, 1, "every answer names the same Flag: %v", ids)
		found, err := c.openStore().FindByIdentifier(t.Context(), "Flag", ingest.IdentifierKey(ehrIdentifierSystem, "ehr-cluster-1"))
		require.NoError(t, err)
		assert.Len(t, found, 1, "Flags stored with the identifier: %v", found)
	})

	t.Run("racing Patients with one person number give one Patient", func(t *testing.T) {
		pid := syntheticPID(t, 3)
		const n = 24
		answers := make([]answer, n)
		var wg sync.WaitGroup
		for k := range n {
			wg.Go(func() { answers[k] = c.do(k%3, http.MethodPost, "/Patient", feeder, patientBody(pid)) })
		}
		wg.Wait()
		created := 0
		for k, a := range answers {
			require.Contains(t, []int{http.StatusCreated, http.StatusConflict}, a.status, "request %d at process %d: %s", k, k%3+1, a.body)
			if a.status == http.StatusCreated {
				created++
			}
		}
		assert.Equal(t, 1, created, "%d Patients with person number %s over three processes: one 201, the rest 409", n, pid)
		found, err := c.openStore().FindByIdentifier(t.Context(), "Patient", ingest.IdentifierKey(domain.SystemFNR, pid))
		require.NoError(t, err)
		assert.Len(t, found, 1, "Patients stored with the person number: %v", found)
	})

	t.Run("notifications once per subscriber and acknowledged writes kept while a process is killed", func(t *testing.T) {
		patient := c.newPatient(0, syntheticPID(t, 4))
		doctor := c.token(smart.TokenRequest{Persona: "hospital-doctor", Patient: patient})
		subscriber := c.token(smart.TokenRequest{Persona: "hospital-doctor", Patient: patient,
			Scopes: append(personaScopes(t, "hospital-doctor"), "patient/Subscription.cr")})
		hooks := []*hookCounter{newHookCounter(t), newHookCounter(t)}
		for k, h := range hooks {
			a := c.do(k, http.MethodPost, "/Subscription", subscriber, subscriptionBody(patient, h.url), "nhn-access-basis", "UNNTAK")
			require.Equal(t, http.StatusCreated, a.status, "Subscription for %s: %s", h.url, a.body)
		}

		// Three writers, one per process. Process 3 is killed right after
		// its last acknowledged write, while the other two are half-way:
		// its notifications may still be queued, and its acknowledged
		// writes must be in the database.
		const each = 8
		acked := make([][]string, 3)
		half := make(chan struct{}, 2)
		killed := make(chan struct{})
		thirdDone := make(chan struct{})
		var wg sync.WaitGroup
		var failures sync.Map
		for i := range 3 {
			wg.Go(func() {
				if i == 2 {
					defer close(thirdDone)
				}
				for k := range each * 2 {
					if i == 2 && k == each {
						return
					}
					if i < 2 && k == each {
						half <- struct{}{}
						<-killed
					}
					a := c.do(i, http.MethodPost, "/Flag", doctor, flagBody(patient, fmt.Sprintf("process %d write %d", i+1, k)), "nhn-access-basis", "UNNTAK")
					if a.status != http.StatusCreated {
						failures.Store(fmt.Sprintf("process %d write %d", i+1, k), fmt.Sprintf("%d %s", a.status, a.body))
						continue
					}
					var m map[string]any
					if json.Unmarshal([]byte(a.body), &m) == nil {
						acked[i] = append(acked[i], fmt.Sprint(m["id"]))
					}
				}
			})
		}
		<-half
		<-half
		// Process 3's writer returns after its last acknowledgement; the
		// kill follows at once.
		<-thirdDone
		c.kill(2)
		close(killed)
		wg.Wait()
		failures.Range(func(k, v any) bool { t.Errorf("%s refused: %s", k, v); return true })
		require.Len(t, acked[2], each, "process 3 acknowledged its writes before the kill")

		var all []string
		for _, ids := range acked {
			all = append(all, ids...)
		}
		// Every acknowledged write, process 3's included, is there for
		// the processes still running.
		for k, id := range all {
			a := c.do(k%2, http.MethodGet, "/Flag/"+id, doctor, nil, "nhn-access-basis", "UNNTAK")
			assert.Equal(t, http.StatusOK, a.status, "acknowledged Flag/%s read at process %d after process 3 was killed: %s", id, k%2+1, a.body)
		}

		// A last write after all others: once its notification is in,
		// a duplicate of an earlier one would have had its chance.
		a := c.do(0, http.MethodPost, "/Flag", doctor, flagBody(patient, "last"), "nhn-access-basis", "UNNTAK")
		require.Equal(t, http.StatusCreated, a.status, a.body)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(a.body), &m))
		all = append(all, fmt.Sprint(m["id"]))
		for k, h := range hooks {
			missing := h.waitFor(t, all, 60*time.Second)
			assert.Empty(t, missing, "subscriber %d: notifications of these Flags never arrived (of %d written through three processes, process 3 killed)", k+1, len(all))
			focus, numbers := h.counts()
			for _, id := range all {
				assert.LessOrEqual(t, focus["Flag/"+id], 1, "subscriber %d: Flag/%s notified %d times", k+1, id, focus["Flag/"+id])
			}
			for n, times := range numbers {
				assert.Equal(t, 1, times, "subscriber %d: event-number %s delivered %d times", k+1, n, times)
			}
		}
	})

	t.Run("audit verify passes with the records of all three processes interleaved", func(t *testing.T) {
		// Reads through every process, in turn, add to the same chain.
		patient := c.newPatient(0, syntheticPID(t, 5))
		doctor := c.token(smart.TokenRequest{Persona: "hospital-doctor", Patient: patient})
		live := []int{0, 1}
		select {
		case <-c.procs[2].done:
		default:
			live = append(live, 2)
		}
		for k := range 12 {
			i := live[k%len(live)]
			a := c.do(i, http.MethodGet, "/Flag?patient="+patient, doctor, nil, "nhn-access-basis", "UNNTAK")
			require.Equal(t, http.StatusOK, a.status, a.body)
		}

		out, err := exec.CommandContext(t.Context(), c.bin, "audit", "verify", "--mongo-uri", c.uri, "--mongo-database", c.db).CombinedOutput()
		require.NoError(t, err, "kjernejournal audit verify: %s", out)
		assert.Contains(t, string(out), "usage log intact")
		t.Logf("kjernejournal audit verify: %s", strings.TrimSpace(string(out)))

		// Which process wrote each record, in chain order, by the request
		// ids the processes answered with.
		c.mu.Lock()
		ids := make(map[string]int, len(c.requests))
		for id, i := range c.requests {
			ids[id] = i
		}
		c.mu.Unlock()
		var order []int
		err = c.openStore().ScanAudit(t.Context(), 1, func(r store.AuditRecord) error {
			ev, err := audit.Render(r.Body)
			if err != nil {
				return fmt.Errorf("record %d: %w", r.Seq, err)
			}
			for _, id := range requestIDs(ev) {
				if i, ok := ids[id]; ok {
					order = append(order, i)
					return nil
				}
			}
			return nil
		})
		require.NoError(t, err)
		runs := [3]int{}
		var line strings.Builder
		for k, i := range order {
			if k == 0 || order[k-1] != i {
				runs[i]++
			}
			fmt.Fprint(&line, i+1)
		}
		t.Logf("the usage log in chain order, by process (1, 2, 3): %s", line.String())
		for i, r := range runs {
			assert.GreaterOrEqual(t, r, 2, "process %d's records form %d separate stretches of the chain: not interleaved with the others'", i+1, r)
		}
	})
}

// TestFailedAuthBudgetSharedByThreeProcesses: a brute force from one
// address spread over three processes on one database gets one
// failed-authentication budget, not one per process, and every refusal is
// in the usage log.
func TestFailedAuthBudgetSharedByThreeProcesses(t *testing.T) {
	const budget = 6
	// A day's window: the test does not straddle two windows (whose
	// budgets would add up) unless it runs across midnight UTC. Each
	// process's own bucket is 6 a day too: without the shared count the
	// three would let 18 through.
	c := startCluster(t, 3, "--rate-failed-auth", fmt.Sprintf("%d/24h", budget))
	patient := c.newPatient(0, syntheticPID(t, 11))
	tok := c.ehr.token(smart.TokenRequest{Persona: "hospital-doctor", Patient: patient})
	forged := "Bearer " + tok[:len(tok)-6] + "AAAAAA"
	path := "/Flag?patient=" + patient

	refusedIDs := map[string]bool{}
	answered := 0
	refusedBy := [3]int{}
	refuse := func(i int, a answer, what string) {
		if a.status != http.StatusTooManyRequests {
			return
		}
		refusedBy[i]++
		assert.NotEmpty(t, a.header.Get("Retry-After"), "%s: %s", what, a.body)
		refusedIDs[a.header.Get("X-Request-Id")] = true
	}
	const guesses = 30
	for k := range guesses {
		i := k % 3
		a := c.do(i, http.MethodGet, path, forged, nil, "nhn-access-basis", "UNNTAK")
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, a.status,
			"forged token %d at process %d: %s", k, i+1, a.body)
		if a.status == http.StatusUnauthorized {
			answered++
		}
		refuse(i, a, fmt.Sprintf("forged token %d at process %d", k, i+1))
	}
	t.Logf("%d forged tokens over three processes, budget %d: %d answered 401, refused 429 by process: %v", guesses, budget, answered, refusedBy)
	assert.GreaterOrEqual(t, answered, budget, "the budget itself is answered 401")
	assert.LessOrEqual(t, answered, budget+2,
		"%d forged tokens round-robin over three processes with a budget of %d: %d answered 401, not 429", guesses, budget, answered)
	for i, n := range refusedBy {
		assert.Positive(t, n, "process %d refused the brute force too", i+1)
	}

	// Every process now refuses the address at the token endpoint as
	// well, before the guess is checked.
	form := []byte(url.Values{"grant_type": {"authorization_code"}, "code": {"guess"}, "client_id": {"kj-demo-app"},
		"redirect_uri": {"http://127.0.0.1/callback.html"}}.Encode())
	for i := range 3 {
		a := c.do(i, http.MethodPost, "/auth/token", "", form, "Content-Type", "application/x-www-form-urlencoded")
		assert.Equal(t, http.StatusTooManyRequests, a.status, "a wrong code at process %d after the brute force: %s", i+1, a.body)
		refuse(i, a, fmt.Sprintf("token endpoint at process %d", i+1))
	}

	logged := 0
	err := c.openStore().ScanAudit(t.Context(), 1, func(r store.AuditRecord) error {
		ev, err := audit.Render(r.Body)
		if err != nil {
			return fmt.Errorf("record %d: %w", r.Seq, err)
		}
		if !bytes.Contains(ev, []byte(`"code":"rate-limited"`)) {
			return nil
		}
		for _, id := range requestIDs(ev) {
			if refusedIDs[id] {
				logged++
				return nil
			}
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, len(refusedIDs), logged, "every 429 of the three processes is in the usage log")
}

func personaScopes(t *testing.T, persona string) []string {
	_, _, personasFile := smartFiles(t)
	personas, err := smart.LoadPersonas(personasFile)
	require.NoError(t, err)
	for _, p := range personas {
		if p.ID == persona {
			return p.Scopes
		}
	}
	t.Fatalf("no persona %q in %s", persona, personasFile)
	return nil
}

// requestIDs are the X-Request-Id values an AuditEvent names (its BALP
// XrequestId entities).
func requestIDs(event []byte) []string {
	var ev struct {
		Entity []struct {
			What struct {
				Identifier struct {
					Value string `json:"value"`
				} `json:"identifier"`
			} `json:"what"`
			Type struct {
				Code string `json:"code"`
			} `json:"type"`
		} `json:"entity"`
	}
	if json.Unmarshal(event, &ev) != nil {
		return nil
	}
	var ids []string
	for _, e := range ev.Entity {
		if e.Type.Code == "XrequestId" {
			ids = append(ids, e.What.Identifier.Value)
		}
	}
	return ids
}

func subscriptionBody(patient, endpoint string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Subscription","status":"requested","reason":"the cluster test's EHR",
	  "criteria":"Flag?patient=%s","channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json",
	  "_payload":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content","valueCode":"id-only"}]}}}`,
		patient, endpoint)
}

// hookCounter is a subscriber's notification endpoint (a real HTTP server
// on loopback) that counts what arrives: how often each changed resource
// was named and each event number delivered.
type hookCounter struct {
	url string

	mu      sync.Mutex
	focus   map[string]int // "Flag/<id>" -> times notified
	numbers map[string]int // event-number -> times delivered
	arrived chan struct{}  // a notification came (buffered, one pending)
}

func newHookCounter(t *testing.T) *hookCounter {
	h := &hookCounter{focus: map[string]int{}, numbers: map[string]int{}, arrived: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		h.record(b)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hook"
	return h
}

type parameter struct {
	Name           string `json:"name"`
	ValueString    string `json:"valueString"`
	ValueReference struct {
		Reference string `json:"reference"`
	} `json:"valueReference"`
	Part []parameter `json:"part"`
}

func (h *hookCounter) record(body []byte) {
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string      `json:"resourceType"`
				Parameter    []parameter `json:"parameter"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &b) != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range b.Entry {
		if e.Resource.ResourceType != "Parameters" {
			continue
		}
		for _, p := range e.Resource.Parameter {
			if p.Name != "notification-event" {
				continue
			}
			for _, part := range p.Part {
				switch part.Name {
				case "event-number":
					h.numbers[part.ValueString]++
				case "focus":
					// References may be absolute (publicBase/Flag/id).
					ref := part.ValueReference.Reference
					if k := strings.LastIndex(ref, "Flag/"); k >= 0 {
						ref = ref[k:]
					}
					h.focus[ref]++
				}
			}
		}
	}
	select {
	case h.arrived <- struct{}{}:
	default:
	}
}

func (h *hookCounter) counts() (focus, numbers map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	focus, numbers = map[string]int{}, map[string]int{}
	for k, v := range h.focus {
		focus[k] = v
	}
	for k, v := range h.numbers {
		numbers[k] = v
	}
	return focus, numbers
}

// waitFor waits until a notification named each Flag of ids, or until
// patience runs out (delivery is asynchronous: there is no moment to look
// at), and returns the ids still missing.
func (h *hookCounter) waitFor(t *testing.T, ids []string, patience time.Duration) []string {
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	for {
		focus, _ := h.counts()
		var missing []string
		for _, id := range ids {
			if focus["Flag/"+id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-h.arrived:
		case <-deadline.C:
			return missing
		case <-t.Context().Done():
			return missing
		}
	}
}
