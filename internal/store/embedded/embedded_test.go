package embedded

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/storetest"
)

// crashChildEnv makes the test binary act as the writer the crash test
// kills; its value is the database path.
const crashChildEnv = "KJ_EMBEDDED_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "kj.db")})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func note(typ, id, text string) store.RenderFunc {
	return func(v int64, at time.Time) ([]byte, error) {
		return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d","lastUpdated":%q},"note":%q}`,
			typ, id, v, at.Format(time.RFC3339Nano), text), nil
	}
}

func put(typ, id, patient, text string) store.Write {
	return store.Write{Type: typ, ID: id, Op: store.OpPut, Patient: patient, Render: note(typ, id, text)}
}

// dump is everything a client can observe about the given resources.
func dump(t *testing.T, s store.Store, resources [][2]string, patients []string) string {
	t.Helper()
	ctx := context.Background()
	var sb strings.Builder
	for _, r := range resources {
		h, err := s.History(ctx, r[0], r[1], store.HistoryQuery{})
		require.NoError(t, err)
		cur, err := s.Read(ctx, r[0], r[1])
		require.NoError(t, err)
		fmt.Fprintf(&sb, "read %s/%s v%d %s deleted=%v patient=%s %s\n", cur.Type, cur.ID, cur.VersionID,
			cur.LastUpdated.Format(time.RFC3339Nano), cur.Deleted, cur.Patient, cur.Body)
		for _, v := range h {
			fmt.Fprintf(&sb, "  hist v%d %s deleted=%v patient=%s %s\n", v.VersionID,
				v.LastUpdated.Format(time.RFC3339Nano), v.Deleted, v.Patient, v.Body)
		}
	}
	for _, p := range patients {
		for _, typ := range []string{"", "Flag", "AllergyIntolerance", "Patient"} {
			cs, err := s.Compartment(ctx, p, typ)
			require.NoError(t, err)
			fmt.Fprintf(&sb, "compartment %s %q:", p, typ)
			for _, v := range cs {
				fmt.Fprintf(&sb, " %s/%s/v%d", v.Type, v.ID, v.VersionID)
			}
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "dir", "kj.db")
	s, err := Open(ctx, Options{Path: path})
	require.NoError(t, err)

	commit := func(ws ...store.Write) {
		t.Helper()
		_, err := s.Commit(ctx, store.Batch{Writes: ws})
		require.NoError(t, err)
	}
	commit(put("Patient", "p1", "p1", "Kari Nordmann"), put("Patient", "p2", "p2", "Ola Nordmann"))
	commit(put("Flag", "f1", "p1", "anaesthesia complication"))
	commit(put("Flag", "f1", "p2", "moved to the right patient"))
	commit(put("AllergyIntolerance", "a1", "p1", "penicillin"))
	commit(put("AllergyIntolerance", "a2", "p1", "nuts"))
	commit(store.Write{Type: "AllergyIntolerance", ID: "a2", Op: store.OpDelete})
	commit(put("Flag", "f2", "", "outside any record"))

	resources := [][2]string{{"Patient", "p1"}, {"Patient", "p2"}, {"Flag", "f1"}, {"Flag", "f2"},
		{"AllergyIntolerance", "a1"}, {"AllergyIntolerance", "a2"}}
	patients := []string{"p1", "p2"}
	before := dump(t, s, resources, patients)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close is harmless")

	_, err = s.Read(ctx, "Flag", "f1")
	assert.ErrorIs(t, err, ErrClosed)
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "f3", "p1", "after close")}})
	assert.ErrorIs(t, err, ErrClosed)

	s, err = Open(ctx, Options{Path: path})
	require.NoError(t, err)
	after := dump(t, s, resources, patients)
	assert.Equal(t, before, after)
	assert.Contains(t, after, "compartment p2 \"Flag\": Flag/f1/v2\n")
	assert.Contains(t, after, "compartment p1 \"\": AllergyIntolerance/a1/v1 Patient/p1/v1\n")

	// Versions continue where they left off.
	vs, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "f1", "p2", "third")}})
	require.NoError(t, err)
	assert.Equal(t, int64(3), vs[0].VersionID)
	require.NoError(t, s.Close())
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Open(ctx, Options{})
	require.Error(t, err)

	path := filepath.Join(t.TempDir(), "kj.db")
	s, err := Open(ctx, Options{Path: path})
	require.NoError(t, err)
	defer s.Close()
	// The file is locked by the first store: a second server on the same
	// file must fail, naming the file, rather than corrupt it.
	_, err = Open(ctx, Options{Path: path, LockTimeout: 50 * time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	// ... and say who holds it (here this very process).
	var locked *LockedError
	require.ErrorAs(t, err, &locked)
	assert.Equal(t, os.Getpid(), locked.PID)
	assert.Contains(t, err.Error(), fmt.Sprintf("process %d", os.Getpid()))

	notDB := filepath.Join(t.TempDir(), "garbage.db")
	require.NoError(t, os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 1000)), 0o600))
	_, err = Open(ctx, Options{Path: notDB})
	require.Error(t, err)
	assert.Contains(t, err.Error(), notDB)
}

func TestCompartmentAllTypes(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		put("Flag", "b", "p1", "flag b"), put("Flag", "a", "p1", "flag a"),
		put("AllergyIntolerance", "z", "p1", "allergy"), put("Patient", "p1", "p1", "patient"),
		put("Flag", "c", "p11", "other patient"),
	}})

	require.NoError(t, err)
	cs, err := s.Compartment(ctx, "p1", "")
	require.NoError(t, err)
	var got []string
	for _, v := range cs {
		got = append(got, v.Type+"/"+v.ID)
	}
	assert.Equal(t, []string{"AllergyIntolerance/z", "Flag/a", "Flag/b", "Patient/p1"}, got)
}

func TestRefusedRequestsInAGroupLeaveNoTrace(t *testing.T) {
	// Many goroutines commit at once so that requests share transactions;
	// every odd request is doomed (stale IfMatch on its second write) and
	// must vanish completely while its neighbours commit.
	s := openTemp(t)
	ctx := context.Background()
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "anchor", "p1", "v1"), put("Flag", "anchor2", "p1", "v1")}})
	require.NoError(t, err)
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "anchor", "p1", "v2")}})
	require.NoError(t, err)

	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			second := put("Flag", "anchor", "p1", "never")
			second.IfMatch = 1 // stale: anchor is at 2
			if i%2 == 0 {
				second = put("AllergyIntolerance", fmt.Sprintf("ok%d", i), "p2", "fine")
			}
			_, errs[i] = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", fmt.Sprintf("r%d", i), "p2", "x"), second}})
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		_, rerr := s.Read(ctx, "Flag", fmt.Sprintf("r%d", i))
		if i%2 == 0 {
			assert.NoError(t, errs[i])
			assert.NoError(t, rerr)
		} else {
			var ce *store.ConflictError
			require.ErrorAs(t, errs[i], &ce)
			assert.Equal(t, 1, ce.Index)
			assert.ErrorIs(t, rerr, store.ErrNotFound, "refused request %d left Flag/r%d behind", i, i)
		}
	}
	cs, err := s.Compartment(ctx, "p2", "Flag")
	require.NoError(t, err)
	assert.Len(t, cs, n/2)
	v, err := s.Read(ctx, "Flag", "anchor")
	require.NoError(t, err)
	assert.Equal(t, int64(2), v.VersionID)
}

func TestRenderPanicFailsOnlyThatCommit(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{
		put("Flag", "ok", "p1", "fine"),
		{Type: "Flag", ID: "bad", Op: store.OpPut, Render: func(int64, time.Time) ([]byte, error) { panic("boom") }},
	}})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "boom")
	_, err = s.Read(ctx, "Flag", "ok")
	assert.ErrorIs(t, err, store.ErrNotFound)
	// The committer survived.
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "ok", "p1", "fine")}})
	require.NoError(t, err)
}

func TestCancelledCommitIsNotApplied(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "f1", "p1", "x")}})
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Read(context.Background(), "Flag", "f1")
	assert.ErrorIs(t, err, store.ErrNotFound)
}

func TestInvalidWritesRefused(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	for _, w := range []store.Write{
		put("", "x", "p1", "no type"),
		put("Flag", "", "p1", "no id"),
		put("Flag", "a/b", "p1", "slash in id"),
		put("Flag", "a\x00b", "p1", "nul in id"),
		put("Flag", "x", "p\x001", "nul in patient"),
		{Type: "Flag", ID: "x", Op: store.Op(7), Render: note("Flag", "x", "bad op")},
		{Type: "Flag", ID: "x", Op: store.OpPut, Render: note("Flag", "x", "nul"), Identifiers: []string{"urn:a|b\x00c"}},
		{Type: "Flag", ID: "x", Op: store.OpPut, Render: note("Flag", "x", "empty"), Identifiers: []string{""}},
	} {
		_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
		assert.Error(t, err, "%+v", w)
	}
	vs, err := s.Commit(ctx, store.Batch{Writes: nil})
	require.NoError(t, err)
	assert.Empty(t, vs)
}

// crashChild commits in a loop from several goroutines and prints every
// acknowledged commit. Each commit updates Flag/g<g> and creates
// AllergyIntolerance/g<g>-<version> together, so after a crash both or
// neither must exist.
func crashChild(path string) {
	s, err := Open(context.Background(), Options{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			id := fmt.Sprintf("g%d", g)
			for v := int64(1); ; v++ {
				w := put("Flag", id, "p1", fmt.Sprintf("%s v%d", id, v))
				w.IfMatch = v - 1
				if v == 1 {
					w.Create = true
				}
				aid := fmt.Sprintf("%s-%d", id, v)
				_, err := s.Commit(context.Background(), store.Batch{Writes: []store.Write{w, put("AllergyIntolerance", aid, "p1", aid)}})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Printf("ack %s %d\n", id, v)
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
}

func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kj.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	acked := map[string]int64{} // Flag id -> highest acknowledged version
	total := 0
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		require.Len(t, f, 3, "child output %q", sc.Text())
		v, err := strconv.ParseInt(f[2], 10, 64)
		require.NoError(t, err)
		require.Equal(t, acked[f[1]]+1, v, "acks of %s out of order", f[1])
		acked[f[1]] = v
		total++
		// Kill mid-stream, then keep reading: lines already in the pipe
		// were acknowledged before the kill and count too.
		if total == 300 && !killed {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	require.True(t, killed, "child exited before it was killed")
	werr := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, werr, &ee)
	require.Equal(t, "signal: killed", ee.Error())

	s, err := Open(context.Background(), Options{Path: path})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	for id, last := range acked {
		cur, err := s.Read(ctx, "Flag", id)
		require.NoError(t, err, "Flag/%s acknowledged up to v%d is missing", id, last)
		// The child may have committed one more version whose ack it had
		// no time to print; never fewer.
		require.GreaterOrEqual(t, cur.VersionID, last, "Flag/%s lost acknowledged versions", id)
		for v := int64(1); v <= cur.VersionID; v++ {
			fv, err := s.VRead(ctx, "Flag", id, v)
			require.NoError(t, err, "Flag/%s v%d", id, v)
			assert.Contains(t, string(fv.Body), fmt.Sprintf(`"note":"%s v%d"`, id, v))
			aid := fmt.Sprintf("%s-%d", id, v)
			_, err = s.Read(ctx, "AllergyIntolerance", aid)
			assert.NoError(t, err, "half a commit survived: Flag/%s v%d without AllergyIntolerance/%s", id, v, aid)
		}
		aid := fmt.Sprintf("%s-%d", id, cur.VersionID+1)
		_, err = s.Read(ctx, "AllergyIntolerance", aid)
		assert.True(t, errors.Is(err, store.ErrNotFound), "half a commit survived: AllergyIntolerance/%s without its Flag version", aid)
	}
	t.Logf("%d acknowledged commits from %d writers survived SIGKILL", total, len(acked))
}

// TestReadsFormat1: a file written by format 1 (records without index or
// identifiers) opens, is marked format 2, serves its old records and takes
// new versions in the new format.
func TestReadsFormat1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kj.db")
	s, err := Open(ctx, Options{Path: path})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Write what a format-1 build wrote: header, patient, body.
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"resourceType":"Patient","id":"p1"}`)
	rec := make([]byte, headerLen1, headerLen1+2+len(body))
	rec[0] = recFormat1
	binary.BigEndian.PutUint64(rec[2:], 1)
	binary.BigEndian.PutUint64(rec[10:], uint64(at.UnixNano()))
	binary.BigEndian.PutUint16(rec[18:], 2)
	rec = append(append(rec, "p1"...), body...)
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		key := curKey("Patient", "p1")
		return errors.Join(
			tx.Bucket(bucketMeta).Put(keyFormat, []byte{1}),
			tx.Bucket(bucketCur).Put(key, rec),
			tx.Bucket(bucketHist).Put(histKey(append(key, '/'), 1), rec),
			tx.Bucket(bucketComp).Put(compKey("p1", "Patient", "p1"), []byte{}),
		)
	}))
	require.NoError(t, db.Close())

	s, err = Open(ctx, Options{Path: path})
	require.NoError(t, err)
	defer s.Close()
	v, err := s.Read(ctx, "Patient", "p1")
	require.NoError(t, err)
	assert.Equal(t, string(body), string(v.Body))
	assert.Equal(t, "p1", v.Patient)
	assert.True(t, at.Equal(v.LastUpdated))
	assert.Empty(t, v.Index)
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		assert.Equal(t, []byte{formatVersion}, tx.Bucket(bucketMeta).Get(keyFormat))
		return nil
	}))

	w := put("Patient", "p1", "p1", "v2")
	w.Index, w.Identifiers = []byte{9, 9}, []string{"urn:x|1"}
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
	require.NoError(t, err)
	ids, err := s.FindByIdentifier(ctx, "Patient", "urn:x|1")
	require.NoError(t, err)
	assert.Equal(t, []string{"p1"}, ids)
	old, err := s.VRead(ctx, "Patient", "p1", 1)
	require.NoError(t, err)
	assert.Equal(t, string(body), string(old.Body))
	cur, err := s.Read(ctx, "Patient", "p1")
	require.NoError(t, err)
	assert.Equal(t, []byte{9, 9}, cur.Index)
}

// TestHistoryKeepsCurrentOnce: the current version is in cur only, and
// hist has the versions it superseded, without their index; a file written
// before, whose hist also holds the current version, shows every version
// once as well, and goes on in the new layout.
func TestHistoryKeepsCurrentOnce(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "kj.db"), NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	for i := 1; i <= 3; i++ {
		w := put("Flag", "f", "p1", fmt.Sprint("v", i))
		w.Index = []byte{byte(i)}
		_, err := s.Commit(ctx, store.Batch{Writes: []store.Write{w}})
		require.NoError(t, err)
	}
	histOf := func() (keys int, indexed int) {
		require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketHist).ForEach(func(_, v []byte) error {
				h, _, err := decodeHeader(v)
				require.NoError(t, err)
				keys++
				if len(h.index) > 0 {
					indexed++
				}
				return nil
			})
		}))
		return
	}
	keys, indexed := histOf()
	assert.Equal(t, 2, keys, "hist holds the two superseded versions")
	assert.Zero(t, indexed, "without their index")

	notes := func() []string {
		h, err := s.History(ctx, "Flag", "f", store.HistoryQuery{})
		require.NoError(t, err)
		var out []string
		for _, v := range h {
			out = append(out, fmt.Sprintf("%d %s", v.VersionID, v.Body[bytes.Index(v.Body, []byte(`"note"`)):]))
			one, err := s.VRead(ctx, "Flag", "f", v.VersionID)
			require.NoError(t, err)
			assert.Equal(t, string(v.Body), string(one.Body))
		}
		return out
	}
	assert.Equal(t, []string{`3 "note":"v3"}`, `2 "note":"v2"}`, `1 "note":"v1"}`}, notes())
	_, err = s.VRead(ctx, "Flag", "f", 4)
	assert.ErrorIs(t, err, store.ErrNotFound)

	// The layout of files from before: the current version in hist too.
	require.NoError(t, s.db.Update(func(tx *bolt.Tx) error {
		key := curKey("Flag", "f")
		return tx.Bucket(bucketHist).Put(histKey(append(key, '/'), 3), bytes.Clone(tx.Bucket(bucketCur).Get(key)))
	}))
	assert.Equal(t, []string{`3 "note":"v3"}`, `2 "note":"v2"}`, `1 "note":"v1"}`}, notes())
	h, err := s.History(ctx, "Flag", "f", store.HistoryQuery{Count: 2})
	require.NoError(t, err)
	assert.Len(t, h, 2)
	_, err = s.Commit(ctx, store.Batch{Writes: []store.Write{put("Flag", "f", "p1", "v4")}})
	require.NoError(t, err)
	assert.Equal(t, []string{`4 "note":"v4"}`, `3 "note":"v3"}`, `2 "note":"v2"}`, `1 "note":"v1"}`}, notes())
	keys, indexed = histOf()
	assert.Equal(t, 3, keys)
	assert.Zero(t, indexed)
}

// TestBodiesStoredCompressed: a body is stored compressed with the fixed
// dictionary, read back exactly; a short one as it is; a damaged
// compressed body, or a flag this build does not know, is an error, not a
// panic or a wrong body.
func TestBodiesStoredCompressed(t *testing.T) {
	body := []byte(`{"resourceType":"MedicationStatement","id":"pas-1-ms1","meta":{"versionId":"1","lastUpdated":"2026-12-04T02:25:18.777Z","profile":["https://kjernejournal.example.no/fhir/StructureDefinition/KjMedicationStatement"]},"status":"active","medicationCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":"N06BA04","display":"metylfenidat"}]},"subject":{"reference":"Patient/pas-1"}}`)
	h := header{version: 1, lastUpdated: 5, patient: "pas-1", index: []byte{1, 2, 3}}
	rec := encodeRecord(h, body)
	assert.NotZero(t, rec[1]&flagPacked)
	assert.Less(t, len(rec), headerLen2+len("pas-1")+3+len(body)/2, "compressed to less than half")
	v, err := decodeVersion("MedicationStatement", "pas-1-ms1", rec)
	require.NoError(t, err)
	assert.Equal(t, string(body), string(v.Body))
	assert.Equal(t, []byte{1, 2, 3}, v.Index)

	short := encodeRecord(h, []byte(`{"a":1}`))
	assert.Zero(t, short[1]&flagPacked, "a short body is stored as it is")
	v, err = decodeVersion("Flag", "f", short)
	require.NoError(t, err)
	assert.Equal(t, `{"a":1}`, string(v.Body))

	for i := headerLen2 + len("pas-1") + 3; i < len(rec); i++ {
		bad := bytes.Clone(rec)
		bad[i] ^= 0xff
		if v, err := decodeVersion("MedicationStatement", "pas-1-ms1", bad); err == nil {
			assert.NotEqual(t, string(body), string(v.Body), "byte %d damaged", i)
		}
	}
	for cut := headerLen2 + len("pas-1") + 3; cut < len(rec); cut++ {
		_, err := decodeVersion("MedicationStatement", "pas-1-ms1", rec[:cut])
		assert.ErrorIs(t, err, errCorrupt, "cut at %d", cut)
	}
	unknown := bytes.Clone(rec)
	unknown[1] |= 1 << 5
	_, err = decodeVersion("MedicationStatement", "pas-1-ms1", unknown)
	assert.ErrorIs(t, err, errCorrupt, "an unknown flag")
}
