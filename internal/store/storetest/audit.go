package storetest

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// auditTests exercise store.AuditLog and store.Maintenance. Run includes
// them; RunAudit runs them alone.
var auditTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"AuditEmpty", testAuditEmpty},
	{"AuditAppendLinksInOrder", testAuditAppendLinksInOrder},
	{"AuditConcurrentAppendersOneChain", testAuditConcurrentAppendersOneChain},
	{"AuditAppendAllOrNothing", testAuditAppendAllOrNothing},
	{"AuditScanFrom", testAuditScanFrom},
	{"AuditBothStoredForms", testAuditBothStoredForms},
	{"AuditSearch", testAuditSearch},
	{"AuditSearchPaging", testAuditSearchPaging},
	{"ScanType", testScanType},
	{"Purge", testPurge},
	{"PurgeResources", testPurgeResources},
	{"PurgeKeepsAuditLog", testPurgeKeepsAuditLog},
}

// RunAudit runs only the usage-log and maintenance part of the suite
// (Run includes it). open has the same duty as in Run.
func RunAudit(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tc := range auditTests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			require.NotNil(t, s, "open returned a nil store")
			tc.fn(t, s)
		})
	}
}

// auditT0 is a whole millisecond, so engines that keep Recorded to the
// millisecond (MongoDB dates) give it back exactly.
var auditT0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// auditBody is an unlinked AuditEvent. Every other one already has a root
// extension, so both ways of inserting the link are exercised.
func auditBody(id string) []byte {
	if len(id)%2 == 0 {
		return fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"extension":[{"url":"urn:x","valueString":"y"}],"outcome":"0"}`, id)
	}
	return fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"outcome":"0"}`, id)
}

func auditEntry(id, patient, hpr, org, outcome string, recorded time.Time) store.AuditEntry {
	return store.AuditEntry{Patient: patient, AgentHPR: hpr, Org: org, Recorded: recorded, Outcome: outcome, Body: auditBody(id)}
}

// eventID reads back the id auditBody put in a (linked) body.
func eventID(t *testing.T, body []byte) string {
	t.Helper()
	const key = `"id":"`
	i := strings.Index(string(body), key)
	require.GreaterOrEqual(t, i, 0, "no id in %s", body)
	rest := string(body[i+len(key):])
	return rest[:strings.IndexByte(rest, '"')]
}

func appendAudit(t *testing.T, s store.Store, entries ...store.AuditEntry) []store.AuditRecord {
	t.Helper()
	recs, err := s.AppendAudit(ctx, audit.Link, entries)
	require.NoError(t, err, "AppendAudit")
	require.Len(t, recs, len(entries))
	return recs
}

func scanAll(t *testing.T, s store.Store, from int64) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	require.NoError(t, s.ScanAudit(ctx, from, func(r store.AuditRecord) error {
		out = append(out, r)
		return nil
	}), "ScanAudit from %d", from)
	return out
}

func bodies(recs []store.AuditRecord) iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		for i, r := range recs {
			if !yield(i, r.Body) {
				return
			}
		}
	}
}

func seqs(recs []store.AuditRecord) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func sameRecord(t *testing.T, want, got store.AuditRecord) {
	t.Helper()
	assert.Equal(t, want.Seq, got.Seq, "Seq")
	assert.Equal(t, want.Patient, got.Patient, "Patient of %d", want.Seq)
	assert.Equal(t, want.AgentHPR, got.AgentHPR, "AgentHPR of %d", want.Seq)
	assert.Equal(t, want.Org, got.Org, "Org of %d", want.Seq)
	assert.Equal(t, want.Outcome, got.Outcome, "Outcome of %d", want.Seq)
	assert.True(t, want.Recorded.Equal(got.Recorded), "Recorded of %d: want %v, got %v", want.Seq, want.Recorded, got.Recorded)
	assert.Equal(t, want.Hash, got.Hash, "Hash of %d", want.Seq)
	assert.Equal(t, string(want.Body), string(got.Body), "Body of %d", want.Seq)
}

// requireHead checks AuditHead and that the whole log verifies up to it.
func requireHead(t *testing.T, s store.Store, seq int64, hash string) {
	t.Helper()
	gotSeq, gotHash, err := s.AuditHead(ctx)
	require.NoError(t, err, "AuditHead")
	require.Equal(t, seq, gotSeq, "AuditHead seq")
	require.Equal(t, hash, gotHash, "AuditHead hash")
	all := scanAll(t, s, 0)
	require.Len(t, all, int(seq), "ScanAudit from 0 gives every record")
	for i, r := range all {
		require.Equal(t, int64(i+1), r.Seq, "Seqs are 1, 2, 3, ... without gaps")
	}
	head, err := audit.VerifyFrom("", bodies(all))
	require.NoError(t, err, "the stored chain verifies")
	require.Equal(t, hash, head, "the chain ends at AuditHead")
}

func testAuditEmpty(t *testing.T, s store.Store) {
	requireHead(t, s, 0, "")
	recs, err := s.AppendAudit(ctx, audit.Link, nil)
	require.NoError(t, err, "appending nothing is no error")
	assert.Empty(t, recs)
	requireHead(t, s, 0, "")
	got, err := s.SearchAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	assert.Empty(t, got)
}

func testAuditAppendLinksInOrder(t *testing.T, s store.Store) {
	batches := [][]store.AuditEntry{
		{
			auditEntry("a1", "p1", "hpr1", "org1", "0", auditT0),
			auditEntry("a22", "p2", "", "org1", "4", auditT0.Add(time.Millisecond)),
			auditEntry("a3", "", "hpr2", "", "8", auditT0.Add(2*time.Second)),
		},
		{auditEntry("a44", "p1", "hpr1", "org2", "0", auditT0.Add(time.Hour))},
		{
			auditEntry("a5", "p3", "hpr3", "org3", "0", auditT0.Add(2*time.Hour)),
			auditEntry("a66", "p3", "hpr3", "org3", "0", auditT0.Add(2*time.Hour)),
		},
	}
	var want []store.AuditRecord
	prev := ""
	for _, batch := range batches {
		originals := make([][]byte, len(batch))
		for i, e := range batch {
			originals[i] = slices.Clone(e.Body)
		}
		recs := appendAudit(t, s, batch...)
		for i, e := range batch {
			assert.Equal(t, string(originals[i]), string(e.Body), "AppendAudit must not change the caller's entries")
			linked, hash, err := audit.Link(prev, e.Body)
			require.NoError(t, err)
			w := store.AuditRecord{Seq: int64(len(want) + 1), AuditEntry: e, Hash: hash}
			w.Body = linked
			sameRecord(t, w, recs[i])
			want = append(want, w)
			prev = hash
		}
	}
	requireHead(t, s, int64(len(want)), prev)
	got := scanAll(t, s, 1)
	require.Len(t, got, len(want))
	for i := range want {
		sameRecord(t, want[i], got[i])
	}
}

func testAuditConcurrentAppendersOneChain(t *testing.T, s store.Store) {
	const goroutines, appends = 24, 8
	errBad := errors.New("refused by the link function")
	// Every third append of a goroutine carries an entry the link
	// function refuses: it must vanish without a trace while the requests
	// committed in the same group stay on one chain.
	link := func(prev string, body []byte) ([]byte, string, error) {
		if strings.Contains(string(body), `"bad-`) {
			return nil, "", errBad
		}
		return audit.Link(prev, body)
	}
	type call struct {
		ids  []string
		recs []store.AuditRecord
		bad  bool
		err  error
	}
	calls := make([][]call, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for a := range appends {
				c := call{bad: a%3 == 2}
				n := 1 + (g+a)%3
				var entries []store.AuditEntry
				for k := range n {
					id := fmt.Sprintf("g%d-a%d-%d", g, a, k)
					if c.bad && k == n-1 {
						id = "bad-" + id
					}
					c.ids = append(c.ids, id)
					entries = append(entries, auditEntry(id, fmt.Sprintf("p%d", g), "hpr", "org", "0", auditT0.Add(time.Duration(a)*time.Second)))
				}
				c.recs, c.err = s.AppendAudit(ctx, link, entries)
				calls[g] = append(calls[g], c)
			}
		})
	}
	wg.Wait()

	all := scanAll(t, s, 0)
	bySeq := map[int64]store.AuditRecord{}
	for _, r := range all {
		bySeq[r.Seq] = r
	}
	total := 0
	for g, cs := range calls {
		last := int64(0)
		for _, c := range cs {
			if c.bad {
				require.Error(t, c.err, "goroutine %d: an append with a refused entry fails", g)
				require.True(t, errors.Is(c.err, errBad), "the link function's error is returned (errors.Is): %v", c.err)
				assert.Empty(t, c.recs)
				continue
			}
			require.NoError(t, c.err, "goroutine %d", g)
			require.Len(t, c.recs, len(c.ids))
			for k, r := range c.recs {
				assert.Equal(t, c.ids[k], eventID(t, r.Body), "records come back in the order of the entries")
				if k > 0 {
					assert.Equal(t, c.recs[k-1].Seq+1, r.Seq, "one append's entries are consecutive in the chain")
				}
				assert.Greater(t, r.Seq, last, "a goroutine's appends are chained in the order they returned")
				last = r.Seq
				stored, ok := bySeq[r.Seq]
				require.True(t, ok, "returned record %d is stored", r.Seq)
				sameRecord(t, r, stored)
				total++
			}
		}
	}
	for _, r := range all {
		assert.NotContains(t, string(r.Body), `"bad-`, "no entry of a refused append is stored")
	}
	require.Len(t, all, total, "exactly the accepted entries are stored")
	var head string
	if len(all) > 0 {
		head = all[len(all)-1].Hash
	}
	requireHead(t, s, int64(total), head)
}

func testAuditAppendAllOrNothing(t *testing.T, s store.Store) {
	first := appendAudit(t, s, auditEntry("first", "p1", "hpr1", "org1", "0", auditT0))

	errBroken := errors.New("link function failed")
	calls := 0
	failSecond := func(prev string, body []byte) ([]byte, string, error) {
		calls++
		if strings.Contains(string(body), `"id":"second"`) {
			return nil, "", errBroken
		}
		return audit.Link(prev, body)
	}
	recs, err := s.AppendAudit(ctx, failSecond, []store.AuditEntry{
		auditEntry("one", "p1", "hpr1", "org1", "0", auditT0),
		auditEntry("second", "p1", "hpr1", "org1", "0", auditT0),
		auditEntry("three", "p1", "hpr1", "org1", "0", auditT0),
	})
	require.Error(t, err)
	assert.True(t, errors.Is(err, errBroken), "the link function's error is returned (errors.Is): %v", err)
	assert.Empty(t, recs)
	assert.GreaterOrEqual(t, calls, 2, "the link function was called")
	requireHead(t, s, 1, first[0].Hash)

	// A body audit.Link itself refuses (not a JSON object) is the same.
	bad := auditEntry("x", "p1", "hpr1", "org1", "0", auditT0)
	bad.Body = []byte(`not json`)
	_, err = s.AppendAudit(ctx, audit.Link, []store.AuditEntry{auditEntry("ok", "p1", "", "", "0", auditT0), bad})
	require.Error(t, err)
	requireHead(t, s, 1, first[0].Hash)
	got, err := s.SearchAudit(ctx, store.AuditQuery{Patient: "p1"})
	require.NoError(t, err)
	assert.Equal(t, []int64{1}, seqs(got), "a failed append leaves nothing in the indexes either")

	// The chain goes on from the head as if nothing had been tried.
	next := appendAudit(t, s, auditEntry("next", "p1", "hpr1", "org1", "0", auditT0))
	assert.Equal(t, int64(2), next[0].Seq)
	_, wantHash, err := audit.Link(first[0].Hash, auditBody("next"))
	require.NoError(t, err)
	assert.Equal(t, wantHash, next[0].Hash)
	requireHead(t, s, 2, next[0].Hash)
}

func testAuditScanFrom(t *testing.T, s store.Store) {
	var recs []store.AuditRecord
	for i := range 7 {
		recs = append(recs, appendAudit(t, s, auditEntry(fmt.Sprint("e", i), "p1", "", "", "0", auditT0))...)
	}
	for from := int64(0); from <= 8; from++ {
		got := scanAll(t, s, from)
		start := max(from, 1)
		want := []int64{}
		for q := start; q <= 7; q++ {
			want = append(want, q)
		}
		assert.Equal(t, want, seqs(got), "ScanAudit from %d", from)
		if from >= 2 && from <= 7 {
			// A segment verifies against the hash of the record before it.
			head, err := audit.VerifyFrom(recs[from-2].Hash, bodies(got))
			require.NoError(t, err, "segment from %d", from)
			assert.Equal(t, recs[6].Hash, head)
		}
	}
	errStop := errors.New("stop")
	n := 0
	err := s.ScanAudit(ctx, 1, func(store.AuditRecord) error {
		n++
		if n == 3 {
			return errStop
		}
		return nil
	})
	assert.True(t, errors.Is(err, errStop), "fn's error ends the scan and is returned: %v", err)
	assert.Equal(t, 3, n, "no call after fn's error")
}

// searchFixture appends a log with varied fields; Recorded is not in Seq
// order, as clocks of concurrent requests are not.
func searchFixture(t *testing.T, s store.Store) []store.AuditRecord {
	patients := []string{"p1", "p2", "p3", ""}
	hprs := []string{"hpr1", "hpr2", ""}
	orgs := []string{"org1", "org2"}
	outcomes := []string{"0", "0", "4", "8"}
	var all []store.AuditRecord
	for i := range 30 {
		e := auditEntry(fmt.Sprint("s", i), patients[i%4], hprs[i%3], orgs[(i/2)%2], outcomes[i%4],
			auditT0.Add(time.Duration((i*7)%30)*time.Hour))
		all = append(all, appendAudit(t, s, e)...)
	}
	return all
}

func matches(q store.AuditQuery, r store.AuditRecord) bool {
	return (q.Patient == "" || r.Patient == q.Patient) &&
		(q.AgentHPR == "" || r.AgentHPR == q.AgentHPR) &&
		(q.Org == "" || r.Org == q.Org) &&
		(q.Outcome == "" || r.Outcome == q.Outcome) &&
		(q.From.IsZero() || !r.Recorded.Before(q.From)) &&
		(q.To.IsZero() || !r.Recorded.After(q.To)) &&
		(q.Before == 0 || r.Seq < q.Before)
}

func expectSearch(all []store.AuditRecord, q store.AuditQuery) []int64 {
	want := []int64{}
	for i := len(all) - 1; i >= 0; i-- {
		if matches(q, all[i]) {
			want = append(want, all[i].Seq)
			if q.Count > 0 && len(want) == q.Count {
				break
			}
		}
	}
	return want
}

func testAuditSearch(t *testing.T, s store.Store) {
	all := searchFixture(t, s)
	at := func(h int) time.Time { return auditT0.Add(time.Duration(h) * time.Hour) }
	queries := map[string]store.AuditQuery{
		"all":                   {},
		"patient":               {Patient: "p1"},
		"patient p3":            {Patient: "p3"},
		"unknown patient":       {Patient: "nobody"},
		"patient prefix only":   {Patient: "p"},
		"agent":                 {AgentHPR: "hpr2"},
		"org":                   {Org: "org2"},
		"outcome refused":       {Outcome: "4"},
		"outcome failed":        {Outcome: "8"},
		"from":                  {From: at(20)},
		"to":                    {To: at(5)},
		"range inclusive":       {From: at(7), To: at(14)},
		"one instant":           {From: at(14), To: at(14)},
		"empty range":           {From: at(14), To: at(13)},
		"patient and outcome":   {Patient: "p3", Outcome: "4"},
		"patient and agent":     {Patient: "p1", AgentHPR: "hpr1"},
		"agent and org":         {AgentHPR: "hpr1", Org: "org1"},
		"org and range":         {Org: "org1", From: at(3), To: at(20)},
		"patient and range":     {Patient: "p2", From: at(10)},
		"count":                 {Count: 4},
		"patient count":         {Patient: "p2", Count: 3},
		"before":                {Before: 10},
		"patient before":        {Patient: "p1", Before: 14},
		"agent before count":    {AgentHPR: "hpr1", Before: 20, Count: 2},
		"org outcome before":    {Org: "org1", Outcome: "0", Before: 25},
		"before 1":              {Before: 1},
		"everything":            {Patient: "p2", AgentHPR: "hpr2", Org: "org2", Outcome: "0", From: at(0), To: at(29)},
		"count larger than all": {Patient: "p1", Count: 100},
	}
	for name, q := range queries {
		got, err := s.SearchAudit(ctx, q)
		require.NoError(t, err, name)
		assert.Equal(t, expectSearch(all, q), seqs(got), "%s: %+v", name, q)
		for _, r := range got {
			sameRecord(t, all[r.Seq-1], r)
		}
	}
	// A patient's own log, newest first, is what the citizen sees.
	got, err := s.SearchAudit(ctx, store.AuditQuery{Patient: "p1"})
	require.NoError(t, err)
	require.NotEmpty(t, got)
	assert.True(t, sort.SliceIsSorted(got, func(i, j int) bool { return got[i].Seq > got[j].Seq }), "newest first")
}

func testAuditSearchPaging(t *testing.T, s store.Store) {
	all := searchFixture(t, s)
	for _, q := range []store.AuditQuery{{}, {Patient: "p1"}, {Org: "org2"}, {AgentHPR: "hpr1", Outcome: "0"}} {
		want := expectSearch(all, q)
		var got []int64
		page := q
		page.Count = 3
		for range 40 {
			recs, err := s.SearchAudit(ctx, page)
			require.NoError(t, err)
			require.LessOrEqual(t, len(recs), 3)
			if len(recs) == 0 {
				break
			}
			got = append(got, seqs(recs)...)
			page.Before = recs[len(recs)-1].Seq
		}
		assert.Equal(t, want, got, "paging with Count and Before gives every match once: %+v", q)
	}
}

func scanType(t *testing.T, s store.Store, typ string) map[string]store.Version {
	t.Helper()
	out := map[string]store.Version{}
	require.NoError(t, s.ScanType(ctx, typ, func(v store.Version) error {
		_, dup := out[v.ID]
		assert.False(t, dup, "ScanType gives %s/%s twice", v.Type, v.ID)
		out[v.ID] = v
		return nil
	}), "ScanType %s", typ)
	return out
}

func testScanType(t *testing.T, s store.Store) {
	assert.Empty(t, scanType(t, s, "Observation"), "empty store")
	o1 := put(t, s, "Observation", "o1", "p1", "one")
	put(t, s, "Observation", "o2", "p1", "two v1")
	o2 := put(t, s, "Observation", "o2", "p2", "two v2")
	put(t, s, "Observation", "o3", "p1", "deleted")
	commit1(t, s, delW("Observation", "o3"))
	none := put(t, s, "Observation", "o4", "", "outside any record")
	put(t, s, "Observation2", "x", "p1", "a type whose name starts like another")
	put(t, s, "Condition", "c1", "p1", "other type")
	put(t, s, "Patient", "p1", "p1", "patient")

	got := scanType(t, s, "Observation")
	require.Len(t, got, 3, "current, not deleted versions of the type only")
	sameVersion(t, o1, got["o1"])
	sameVersion(t, o2, got["o2"])
	sameVersion(t, none, got["o4"])
	for id, v := range got {
		assert.Equal(t, "Observation", v.Type, id)
	}
	assert.Len(t, scanType(t, s, "Patient"), 1)
	assert.Empty(t, scanType(t, s, "Observatio"))
	assert.Empty(t, scanType(t, s, "Encounter"))

	errStop := errors.New("stop")
	n := 0
	err := s.ScanType(ctx, "Observation", func(store.Version) error {
		n++
		return errStop
	})
	assert.True(t, errors.Is(err, errStop), "fn's error ends the scan and is returned: %v", err)
	assert.Equal(t, 1, n)
}

func testPurge(t *testing.T, s store.Store) {
	// p1's record: several types, an updated resource, a deleted one,
	// identifiers; p2's record mirrors it and must stay untouched.
	for _, p := range []string{"p1", "p2"} {
		commit1(t, s, indexed("Patient", p, p, "patient "+p, nil, fnr+"|"+p))
		commit1(t, s, indexed("Consent", "c-"+p, p, "reservation", nil))
		commit1(t, s, indexed("Observation", "o1-"+p, p, "v1", []byte("ix"), "urn:obs|1-"+p))
		commit1(t, s, indexed("Observation", "o1-"+p, p, "v2", []byte("ix"), "urn:obs|1-"+p, "urn:shared|x"))
		put(t, s, "Observation", "o2-"+p, p, "deleted later")
		commit1(t, s, delW("Observation", "o2-"+p))
		commit1(t, s, indexed("Condition", "c1-"+p, p, "condition", nil, "urn:cond|"+p))
		put(t, s, "Flag", "f1-"+p, p, "flag")
	}
	put(t, s, "Observation", "free", "", "outside any record")
	resources := [][2]string{}
	for _, p := range []string{"p1", "p2"} {
		resources = append(resources, [][2]string{{"Patient", p}, {"Consent", "c-" + p}, {"Observation", "o1-" + p},
			{"Observation", "o2-" + p}, {"Condition", "c1-" + p}, {"Flag", "f1-" + p}}...)
	}
	resources = append(resources, [2]string{"Observation", "free"})
	types := []string{"Patient", "Consent", "Observation", "Condition", "Flag"}
	before := takeSnapshot(t, s, resources, []string{"p2"}, types)

	n, err := s.Purge(ctx, "p1", []string{"Observation", "Condition", "Flag"})
	require.NoError(t, err)
	assert.Equal(t, 4, n, "o1, the deleted o2, c1 and f1 are removed")

	for _, r := range [][2]string{{"Observation", "o1-p1"}, {"Observation", "o2-p1"}, {"Condition", "c1-p1"}, {"Flag", "f1-p1"}} {
		_, err := s.Read(ctx, r[0], r[1])
		requireNotFound(t, err, "Read "+r[0]+"/"+r[1])
		_, err = s.VRead(ctx, r[0], r[1], 1)
		requireNotFound(t, err, "VRead "+r[0]+"/"+r[1])
		_, err = s.History(ctx, r[0], r[1], store.HistoryQuery{})
		requireNotFound(t, err, "History "+r[0]+"/"+r[1])
	}
	for _, typ := range []string{"Observation", "Condition", "Flag"} {
		cs, err := s.Compartment(ctx, "p1", typ)
		require.NoError(t, err)
		assert.Empty(t, cs, "Compartment p1 %s", typ)
	}
	cs, err := s.Compartment(ctx, "p1", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"Consent/c-p1", "Patient/p1"}, ids(cs), "Patient and Consent are kept when not listed")
	assert.Empty(t, find(t, s, "Observation", "urn:obs|1-p1"))
	assert.Equal(t, []string{"o1-p2"}, find(t, s, "Observation", "urn:shared|x"), "the other patient's identifier stays")
	assert.Empty(t, find(t, s, "Condition", "urn:cond|p1"))
	assert.Equal(t, []string{"p1"}, find(t, s, "Patient", fnr+"|p1"))
	assert.Empty(t, scanType(t, s, "Flag")["f1-p1"], "ScanType no longer gives it")
	_, err = s.Read(ctx, "Observation", "free")
	require.NoError(t, err, "resources outside any record are untouched")

	after := takeSnapshot(t, s, resources, []string{"p2"}, types)
	for _, r := range resources {
		if strings.HasSuffix(r[1], "p1") {
			continue
		}
		key := r[0] + "/" + r[1]
		assert.Equal(t, before.reads[key], after.reads[key], "%s untouched", key)
		assert.Equal(t, before.histories[key], after.histories[key], "%s history untouched", key)
	}
	assert.Equal(t, before.compartment, after.compartment, "p2's compartment untouched")

	// Nothing is left over that a new resource with the same id could
	// run into: it starts again at version 1.
	w := putW("Observation", "o1-p1", "p1", "new")
	w.Create = true
	v := commit1(t, s, w)
	assert.Equal(t, int64(1), v.VersionID)

	// Purging again removes only what is there; the rest of the record
	// goes when its types are listed.
	n, err = s.Purge(ctx, "p1", []string{"Observation"})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = s.Purge(ctx, "p1", []string{"Observation", "Condition"})
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	n, err = s.Purge(ctx, "p1", nil)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "no types, nothing removed")
	n, err = s.Purge(ctx, "nobody", types)
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	n, err = s.Purge(ctx, "p1", []string{"Patient", "Consent"})
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	cs, err = s.Compartment(ctx, "p1", "")
	require.NoError(t, err)
	assert.Empty(t, cs)
	assert.Empty(t, find(t, s, "Patient", fnr+"|p1"))
	assert.Equal(t, []string{"p2"}, find(t, s, "Patient", fnr+"|p2"))
}

// testPurgeResources: the named resources of the patient go with every
// version and identifier; the others of the type stay, so do another
// patient's of the same id list, and the patient's queue items.
func testPurgeResources(t *testing.T, s store.Store) {
	for _, p := range []string{"p1", "p2"} {
		commit1(t, s, indexed("Consent", "keep-"+p, p, "privacy setting", nil))
		commit1(t, s, indexed("Consent", "adr-"+p, p, "v1", nil, "urn:adr|"+p))
		commit1(t, s, indexed("Consent", "adr-"+p, p, "v2", nil, "urn:adr|"+p))
	}
	_, err := s.Commit(ctx, store.Batch{Queue: []store.QueueOp{{Queue: "q", ID: "i1", Patient: "p1", Body: []byte("x")}}})
	require.NoError(t, err)

	n, err := s.PurgeResources(ctx, "p1", "Consent", []string{"adr-p1", "adr-p2", "missing"})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only p1's own named resource")
	_, err = s.Read(ctx, "Consent", "adr-p1")
	requireNotFound(t, err, "Read")
	_, err = s.VRead(ctx, "Consent", "adr-p1", 1)
	requireNotFound(t, err, "VRead of an older version")
	assert.Empty(t, find(t, s, "Consent", "urn:adr|p1"))
	cs, err := s.Compartment(ctx, "p1", "Consent")
	require.NoError(t, err)
	assert.Equal(t, []string{"Consent/keep-p1"}, ids(cs), "the rest of the type stays")
	for _, id := range []string{"adr-p2", "keep-p2"} {
		_, err = s.Read(ctx, "Consent", id)
		require.NoError(t, err, "another patient's %s stays", id)
	}
	var queued []string
	require.NoError(t, s.ScanQueue(ctx, "q", func(it store.QueueItem) error { queued = append(queued, it.ID); return nil }))
	assert.Equal(t, []string{"i1"}, queued, "queue items stay")

	n, err = s.PurgeResources(ctx, "p1", "Consent", []string{"adr-p1"})
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to remove")
	n, err = s.PurgeResources(ctx, "p1", "Consent", nil)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func testPurgeKeepsAuditLog(t *testing.T, s store.Store) {
	put(t, s, "Observation", "o1", "p1", "one")
	recs := appendAudit(t, s,
		auditEntry("r1", "p1", "hpr1", "org1", "0", auditT0),
		auditEntry("r22", "p1", "hpr1", "org1", "0", auditT0))
	n, err := s.Purge(ctx, "p1", []string{"Observation", "AuditEvent"})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	requireHead(t, s, 2, recs[1].Hash)
	got, err := s.SearchAudit(ctx, store.AuditQuery{Patient: "p1"})
	require.NoError(t, err)
	require.Len(t, got, 2, "the usage log outlives the record it describes")
	sameRecord(t, recs[1], got[0])
	sameRecord(t, recs[0], got[1])
}

// testAuditBothStoredForms: a log written in the JSON form (stores from
// before the compact form) goes on in the compact form; the engine keeps
// both byte for byte, the chain verifies across them, and every record
// renders as an AuditEvent.
func testAuditBothStoredForms(t *testing.T, s store.Store) {
	rec := func(i int) audit.Record {
		return audit.Record{ID: fmt.Sprintf("form-%d", i), Time: auditT0.Add(time.Duration(i) * time.Second), RequestID: fmt.Sprintf("req-%d", i),
			Interaction: audit.Read, ResourceType: "Flag", ResourceID: "f1", Patients: []string{"pat-forms"},
			User:    audit.User{Role: "practitioner", HPR: "990000123", Name: "Lege Lykke"},
			Outcome: audit.Outcome{Reason: "ok", Message: "access permitted", HTTPStatus: 200}}
	}
	entry := func(r audit.Record, body []byte) store.AuditEntry {
		return store.AuditEntry{Patient: r.Patients[0], AgentHPR: r.User.HPR, Recorded: r.Time, Outcome: r.Outcome.Code(), Body: body}
	}
	var all []store.AuditRecord
	for i := range 3 {
		all = append(all, appendAudit(t, s, entry(rec(i), audit.Events(rec(i))[0]))...)
	}
	for i := 3; i < 6; i++ {
		all = append(all, appendAudit(t, s, entry(rec(i), audit.Compact(rec(i))[0]))...)
	}
	got := scanAll(t, s, 1)
	require.Len(t, got, len(all))
	for i := range all {
		sameRecord(t, all[i], got[i])
		assert.Equal(t, i >= 3, audit.IsCompact(got[i].Body), "record %d's form", i+1)
		ev, err := audit.Render(got[i].Body)
		require.NoError(t, err, "render record %d", i+1)
		assert.Contains(t, string(ev), fmt.Sprintf(`"id":"form-%d"`, i), "record %d renders as its AuditEvent", i+1)
	}
	head, err := audit.VerifyFrom("", bodies(got))
	require.NoError(t, err, "the chain verifies across both forms")
	requireHead(t, s, all[len(all)-1].Seq, head)
	found, err := s.SearchAudit(ctx, store.AuditQuery{Patient: "pat-forms"})
	require.NoError(t, err)
	assert.Equal(t, []int64{6, 5, 4, 3, 2, 1}, seqs(found), "both forms are found by the indexes")
}
