// Package embedded is the default storage engine: a single bbolt file,
// pure Go, no server to run.
//
// Durability: Commit returns only after the bbolt transaction holding its
// writes has been fsynced. Throughput under concurrency comes from group
// commit: one committer goroutine takes every commit request that is queued
// when it becomes free and applies them all in one bbolt transaction, so N
// concurrent writers share one fsync. A lone writer pays one fsync and no
// timer, unlike bbolt's DB.Batch.
//
// A commit request carries a whole store.Batch: resource versions, queue
// items and usage-log entries are applied in the same bbolt transaction,
// so they are durable together or not at all.
package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kjernejournal/kjernejournal/internal/keylock"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

// Options configure Open.
type Options struct {
	// Path of the database file; its directory is created if missing.
	Path string
	// NoSync skips fsync. Only for tests that do not care about crashes:
	// with it, an acknowledged commit can be lost.
	NoSync bool
	// MaxGroup bounds how many commit requests share one transaction
	// (default 256). Larger groups amortise the fsync further but make the
	// transaction, and so every caller in it, wait longer.
	MaxGroup int
	// LockTimeout is how long Open waits for another process holding the
	// file (default 2s), so a second server on the same file fails instead
	// of hanging.
	LockTimeout time.Duration
	// MinFreeBytes is the free space the filesystem holding the file must
	// have for Ping to report the store ready (default DefaultMinFreeBytes;
	// negative: no check). Reporting unavailable while some room is left
	// lets a load balancer drain the server before commits start failing.
	MinFreeBytes int64
}

// DefaultMinFreeBytes is the default Options.MinFreeBytes. bbolt extends
// its file 16 MiB at a time once it is larger than that (its AllocSize),
// and one group commit of 256 requests with their usage-log records needs
// a few MiB of new pages; 64 MiB is room for several extensions, so Ping
// turns unavailable well before a commit would fail for want of space.
const DefaultMinFreeBytes = 64 << 20

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("embedded store: closed")

// Store implements store.Store on bbolt.
type Store struct {
	db   *bolt.DB
	path string
	now  func() time.Time

	// mu guards closed and the send side of reqs: Commit holds it shared
	// while enqueuing, so Close (exclusive) knows nobody sends on reqs
	// after it is closed.
	mu     sync.RWMutex
	closed bool
	reqs   chan *request
	done   chan struct{} // closed when the committer has exited

	groups, requests atomic.Uint64

	minFree int64
	// failMu guards failure: the error of the last group commit if it
	// failed for a storage reason (nil once one succeeds), which Ping
	// reports, and failGen, which tells a Ping probe whether it is still
	// about the same failure.
	failMu  sync.Mutex
	failure error
	failGen uint64

	// guards order the commits with a Batch.Precondition (guard.go).
	guards keylock.Striped
}

// Stats are counters for monitoring group commit.
type Stats struct {
	// Groups is the number of write transactions (and so fsyncs) made by
	// the committer; Requests the number of Commit calls they carried.
	// Requests/Groups is the average group size.
	Groups, Requests uint64
}

// Stats returns the counters since Open.
func (s *Store) Stats() Stats {
	return Stats{Groups: s.groups.Load(), Requests: s.requests.Load()}
}

var _ store.Store = (*Store)(nil)

// request is one unit of work for the committer: a Commit or an
// AppendAudit (batch) or a Purge (purge) or a ClaimOnce (once); exactly
// one is set.
type request struct {
	ctx   context.Context
	batch *store.Batch
	purge *purgeRequest
	once  *onceRequest
	resp  chan result
}

type result struct {
	versions []store.Version
	records  []store.AuditRecord
	purged   int
	claimed  bool
	err      error
}

// Open opens or creates the store at opts.Path.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("embedded store: open: Options.Path is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded store: open %s: %w", opts.Path, err)
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 256
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = DefaultMinFreeBytes
	}
	if dir := filepath.Dir(opts.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("embedded store: open %s: %w", opts.Path, err)
		}
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		NoSync:  opts.NoSync,
		// The freelist is rebuilt on open instead of written on every
		// commit: fewer pages per fsync on the hot path.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, lockedError(opts.Path)
		}
		return nil, fmt.Errorf("embedded store: open %s: %w", opts.Path, err)
	}
	writeHolder(opts.Path)
	// bbolt fsyncs the file but not the directory entry of a file it just
	// created; without this a crash soon after the first commits could
	// lose the whole file.
	if err := syncDir(filepath.Dir(opts.Path)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("embedded store: open %s: %w", opts.Path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketCur, bucketHist, bucketComp, bucketIdent, bucketMeta,
			bucketAudit, bucketAuditPatient, bucketAuditAgent, bucketAuditOrg, bucketQueue, bucketQueuePatient} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch f := meta.Get(keyFormat); {
		case f == nil, len(f) == 1 && f[0] >= 1 && f[0] < formatVersion:
			// New file, or an older format: its records stay readable as
			// they are (see formatVersion).
			return meta.Put(keyFormat, []byte{formatVersion})
		case len(f) != 1 || f[0] != formatVersion:
			return fmt.Errorf("unsupported data format %v (this build reads %d)", f, formatVersion)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("embedded store: open %s: %w", opts.Path, err)
	}
	s := &Store{
		db:   db,
		path: opts.Path,
		now:  time.Now,
		reqs: make(chan *request, opts.MaxGroup),
		done: make(chan struct{}),

		minFree: opts.MinFreeBytes,
	}
	go s.committer(opts.MaxGroup)
	return s, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close waits for queued commits to finish and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.done
	removeHolder(s.path)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded store: close %s: %w", s.path, err)
	}
	return nil
}

// Ping reports whether the store can serve reads and take a write now:
// the file is open and readable, the filesystem holding it has at least
// Options.MinFreeBytes free, and the last group commit did not fail for
// a storage reason (disk full, quota, I/O error). Every such refusal wraps
// store.ErrUnavailable.
//
// After a failed commit, Ping writes and removes a scratch file of
// probeBytes beside the database to see whether there is room again (a
// quota is not visible in the free space): a server that its readiness
// check took out of service comes back by itself once space is freed,
// without waiting for a commit that would never be sent to it.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketCur) == nil {
			return errors.New("bucket cur missing")
		}
		return nil
	}, func() string { return "ping" })
	if err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	if s.minFree > 0 {
		free, known, err := freeBytes(filepath.Dir(s.path))
		if err != nil {
			return fmt.Errorf("%w: embedded store: free space beside %s: %w", store.ErrUnavailable, s.path, err)
		}
		if known && free < uint64(s.minFree) {
			return fmt.Errorf("%w: embedded store: %d bytes free beside %s, less than the %d it keeps in reserve (Options.MinFreeBytes)",
				store.ErrUnavailable, free, s.path, s.minFree)
		}
	}
	s.failMu.Lock()
	failure, gen := s.failure, s.failGen
	s.failMu.Unlock()
	if failure == nil {
		return nil
	}
	if err := probe(ctx, filepath.Dir(s.path), filepath.Base(s.path)+".probe-*"); err != nil {
		return fmt.Errorf("%w: embedded store: the last commit failed (%v) and there is no room yet: %w", store.ErrUnavailable, failure, err)
	}
	s.failMu.Lock()
	if s.failGen == gen {
		s.failure = nil
	}
	s.failMu.Unlock()
	return nil
}

// probeBytes is what Ping writes to see whether the filesystem takes new
// blocks from this process again after a failed commit: more than a small
// group commit needs, little enough to cost nothing while checks repeat.
const probeBytes = 1 << 20

// probe writes probeBytes to a new file in dir (named after pattern, so
// that concurrent Pings do not share one) and removes it.
func probe(ctx context.Context, dir, pattern string) (err error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, f.Close(), os.Remove(f.Name()))
	}()
	chunk := make([]byte, 64<<10)
	for n := 0; n < probeBytes; n += len(chunk) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.Write(chunk); err != nil {
			return err
		}
	}
	// Without the sync a filesystem may accept the data into its cache
	// and find it has no room only when writing it back.
	return f.Sync()
}

// noteGroup records how the last group commit ended, for Ping.
func (s *Store) noteGroup(err error) {
	s.failMu.Lock()
	s.failure = err
	s.failGen++
	s.failMu.Unlock()
}

// isNoSpace reports whether err means the filesystem has no room for the
// file (or the process's quota is used up). bbolt formats some errors
// with %s (growing the file), so the message is matched as well.
func isNoSpace(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EDQUOT.Error())
}

// view runs fn in a read transaction and gives errors the store's prefix,
// leaving ErrNotFound bare so callers can compare it cheaply. what names
// the operation lazily: building the label on every read would cost an
// allocation on the hot path for the rare error.
func (s *Store) view(fn func(tx *bolt.Tx) error, what func() string) error {
	err := s.db.View(fn)
	switch {
	case err == nil, err == store.ErrNotFound:
		return err
	case errors.Is(err, bolt.ErrDatabaseNotOpen):
		return ErrClosed
	case strings.HasPrefix(err.Error(), "embedded store:"):
		return err
	default:
		return fmt.Errorf("embedded store: %s: %w", what(), err)
	}
}

// Read returns the current version of typ/id.
func (s *Store) Read(ctx context.Context, typ, id string) (store.Version, error) {
	if err := ctx.Err(); err != nil {
		return store.Version{}, err
	}
	var v store.Version
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCur).Get(curKey(typ, id))
		if b == nil {
			return store.ErrNotFound
		}
		var err error
		v, err = decodeVersion(typ, id, b)
		return err
	}, func() string { return "read " + typ + "/" + id })
	return v, err
}

// VRead returns one version of typ/id.
func (s *Store) VRead(ctx context.Context, typ, id string, versionID int64) (store.Version, error) {
	if err := ctx.Err(); err != nil {
		return store.Version{}, err
	}
	if versionID <= 0 {
		return store.Version{}, store.ErrNotFound
	}
	var v store.Version
	err := s.view(func(tx *bolt.Tx) error {
		// The current version is in cur only (see record.go); hist has the
		// versions it superseded.
		b := tx.Bucket(bucketCur).Get(curKey(typ, id))
		if b == nil {
			return store.ErrNotFound
		}
		h, _, err := decodeHeader(b)
		if err != nil {
			return fmt.Errorf("embedded store: %s/%s: %w", typ, id, err)
		}
		if versionID > h.version {
			return store.ErrNotFound
		}
		if versionID < h.version {
			if b = tx.Bucket(bucketHist).Get(histKey(histPrefix(typ, id), versionID)); b == nil {
				return store.ErrNotFound
			}
		}
		v, err = decodeVersion(typ, id, b)
		return err
	}, func() string { return fmt.Sprintf("vread %s/%s/_history/%d", typ, id, versionID) })
	return v, err
}

// History returns the versions of typ/id, newest first.
func (s *Store) History(ctx context.Context, typ, id string, q store.HistoryQuery) ([]store.Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.Version
	err := s.view(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketCur).Get(curKey(typ, id))
		if cur == nil {
			return store.ErrNotFound
		}
		h, _, err := decodeHeader(cur)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", typ, id, err)
		}
		// visit adds one version; false when nothing older can qualify.
		visit := func(b []byte) (bool, error) {
			rh, _, err := decodeHeader(b)
			if err != nil {
				return false, fmt.Errorf("%s/%s: %w", typ, id, err)
			}
			if !q.Since.IsZero() && time.Unix(0, rh.lastUpdated).Before(q.Since) {
				// lastUpdated never decreases along a resource's versions
				// (commit enforces it), so nothing older can qualify.
				return false, nil
			}
			v, err := decodeVersion(typ, id, b)
			if err != nil {
				return false, err
			}
			out = append(out, v)
			return q.Count <= 0 || len(out) < q.Count, nil
		}
		if more, err := visit(cur); !more || err != nil {
			return err
		}
		// The current version is in cur; hist has the older ones (and, in
		// files written before, the current one again). The key below the
		// current version's is the newest older one; walking back from it
		// visits exactly this resource's.
		prefix := histPrefix(typ, id)
		c := tx.Bucket(bucketHist).Cursor()
		k, b := c.Seek(histKey(prefix, h.version))
		if k == nil {
			k, b = c.Last()
		} else {
			k, b = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, b = c.Prev() {
			if more, err := visit(b); !more || err != nil {
				return err
			}
		}
		return nil
	}, func() string { return "history " + typ + "/" + id })
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.Version{}
	}
	return out, nil
}

// Compartment returns the current, not deleted versions of typ in
// patient's record, ordered by type and id. An empty typ lists every type.
func (s *Store) Compartment(ctx context.Context, patient, typ string) ([]store.Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if strings.IndexByte(patient, 0) >= 0 || strings.IndexByte(typ, 0) >= 0 {
		return []store.Version{}, nil
	}
	prefix := make([]byte, 0, len(patient)+len(typ)+2)
	prefix = append(append(prefix, patient...), 0)
	if typ != "" {
		prefix = append(append(prefix, typ...), 0)
	}
	out := []store.Version{}
	err := s.view(func(tx *bolt.Tx) error {
		curB := tx.Bucket(bucketCur)
		c := tx.Bucket(bucketComp).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rt, rid := typ, string(k[len(prefix):])
			if typ == "" {
				i := strings.IndexByte(rid, 0)
				if i < 0 {
					return fmt.Errorf("compartment index key %q: %w", k, errCorrupt)
				}
				rt, rid = rid[:i], rid[i+1:]
			}
			b := curB.Get(curKey(rt, rid))
			if b == nil {
				return fmt.Errorf("compartment index lists missing %s/%s: %w", rt, rid, errCorrupt)
			}
			v, err := decodeVersion(rt, rid, b)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	}, func() string { return "compartment " + patient + " " + typ })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FindByIdentifier returns the ids of the current, not deleted resources of
// typ that carry identifier, sorted (the ident bucket's key order).
func (s *Store) FindByIdentifier(ctx context.Context, typ, identifier string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []string{}
	if typ == "" || identifier == "" || strings.IndexByte(typ, 0) >= 0 || strings.IndexByte(identifier, 0) >= 0 {
		return out, nil
	}
	prefix := identKey(typ, identifier, "")
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketIdent).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, string(k[len(prefix):]))
		}
		return nil
	}, func() string { return "find " + typ + " by identifier" })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// maxNameLen keeps keys far below bbolt's 32 KiB key limit, so a Put can
// not fail halfway through a group for a reason we could have checked.
const maxNameLen = 1024

// maxIdentifierLen keeps ident keys below bbolt's key limit together with
// type and id; maxIndexLen keeps the length in the record's 4 bytes.
const (
	maxIdentifierLen = 8 << 10
	maxIndexLen      = 1 << 30
)

func validName(s string) bool {
	return s != "" && len(s) <= maxNameLen && strings.IndexByte(s, '/') < 0 && strings.IndexByte(s, 0) < 0
}

// validate refuses what can be refused without the database, so a bad
// request never occupies the committer.
func validate(b *store.Batch) error {
	seen := make(map[string]int, len(b.Writes))
	for i, w := range b.Writes {
		if !validName(w.Type) || !validName(w.ID) {
			return fmt.Errorf("embedded store: write %d: invalid type or id %q/%q", i, w.Type, w.ID)
		}
		if len(w.Patient) > maxNameLen || strings.IndexByte(w.Patient, 0) >= 0 {
			return fmt.Errorf("embedded store: write %d (%s/%s): invalid patient %q", i, w.Type, w.ID, w.Patient)
		}
		switch w.Op {
		case store.OpPut:
			if w.Render == nil {
				return fmt.Errorf("embedded store: write %d (%s/%s): put without Render", i, w.Type, w.ID)
			}
			if len(w.Index) > maxIndexLen {
				return fmt.Errorf("embedded store: write %d (%s/%s): search index of %d bytes is too large", i, w.Type, w.ID, len(w.Index))
			}
			for _, x := range w.Identifiers {
				if x == "" || len(x) > maxIdentifierLen || strings.IndexByte(x, 0) >= 0 {
					return fmt.Errorf("embedded store: write %d (%s/%s): invalid identifier %.80q", i, w.Type, w.ID, x)
				}
			}
			for _, u := range w.Unique {
				if !slices.Contains(w.Identifiers, u) {
					return fmt.Errorf("embedded store: write %d (%s/%s): unique identifier %.80q is not among its Identifiers", i, w.Type, w.ID, u)
				}
			}
		case store.OpDelete:
		default:
			return fmt.Errorf("embedded store: write %d (%s/%s): unknown op %d", i, w.Type, w.ID, w.Op)
		}
		key := w.Type + "/" + w.ID
		if j, dup := seen[key]; dup {
			return fmt.Errorf("embedded store: writes %d and %d both change %s in one commit", j, i, key)
		}
		seen[key] = i
	}
	items := make(map[string]int, len(b.Queue))
	for i, q := range b.Queue {
		if !validName(q.Queue) || !validName(q.ID) {
			return fmt.Errorf("embedded store: queue op %d: invalid queue or id %q/%q", i, q.Queue, q.ID)
		}
		if len(q.Patient) > maxNameLen || strings.IndexByte(q.Patient, 0) >= 0 {
			return fmt.Errorf("embedded store: queue op %d (%s/%s): invalid patient %q", i, q.Queue, q.ID, q.Patient)
		}
		key := q.Queue + "/" + q.ID
		if j, dup := items[key]; dup {
			return fmt.Errorf("embedded store: queue ops %d and %d both change item %s in one commit", j, i, key)
		}
		items[key] = i
	}
	if len(b.Audit) > 0 && b.Link == nil {
		return errors.New("embedded store: usage-log entries without a link function")
	}
	for i, e := range b.Audit {
		if !validAuditField(e.Patient) || !validAuditField(e.AgentHPR) || !validAuditField(e.Org) || !validAuditField(e.Outcome) {
			return fmt.Errorf("embedded store: usage-log entry %d: patient, agent, organisation or outcome too long or with a NUL byte", i)
		}
	}
	return nil
}

// Commit applies the batch atomically and durably: its writes, queue ops
// and usage-log entries go into one group transaction or none. An error
// caused by a full disk (or a used-up quota) wraps store.ErrUnavailable;
// such a commit was not applied.
func (s *Store) Commit(ctx context.Context, b store.Batch) ([]store.Version, error) {
	if err := validate(&b); err != nil {
		return nil, err
	}
	if b.Precondition != nil {
		release, err := runPrecondition(ctx, &s.guards, &b)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	if len(b.Writes) == 0 && len(b.Queue) == 0 && len(b.Audit) == 0 {
		return []store.Version{}, nil
	}
	res := s.submit(&request{ctx: ctx, batch: &b})
	return res.versions, res.err
}

// submit hands r to the committer and waits for its result.
func (s *Store) submit(r *request) result {
	r.resp = make(chan result, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return result{err: ErrClosed}
	}
	select {
	case s.reqs <- r:
	case <-r.ctx.Done():
		s.mu.RUnlock()
		return result{err: r.ctx.Err()}
	}
	s.mu.RUnlock()
	// Once queued the request is waited for even if ctx ends: returning
	// early could report failure for a commit that then becomes durable.
	// The committer itself skips requests whose ctx ended before their turn.
	return <-r.resp
}

func (s *Store) committer(maxGroup int) {
	defer close(s.done)
	group := make([]*request, 0, maxGroup)
	for first := range s.reqs {
		group = append(group[:0], first)
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		s.commitGroup(group)
		groupSize.Observe(float64(len(group)))
		s.groups.Add(1)
		s.requests.Add(uint64(len(group)))
		clear(group)
	}
}

// groupSize is the group commit's size, for monitoring.
var groupSize = telemetry.CommitGroup.WithLabelValues("embedded")

// commitGroup applies a group of requests in one transaction. Each request
// is all-or-nothing on its own: its preconditions, renders and links are
// checked before it mutates anything, so a refused request leaves no trace
// while the others in the group commit. Audit entries are linked here, in
// the order the requests are applied, each request after the one before it
// in the group; the chain head moves in the same transaction, so a group
// that fails leaves it where it was.
func (s *Store) commitGroup(group []*request) {
	results := make([]result, len(group))
	now := s.now().UnixNano()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := buckets{cur: tx.Bucket(bucketCur), hist: tx.Bucket(bucketHist), comp: tx.Bucket(bucketComp), ident: tx.Bucket(bucketIdent),
			queue: tx.Bucket(bucketQueue), queuePatient: tx.Bucket(bucketQueuePatient)}
		var chain *auditChain
		for i, r := range group {
			if err := r.ctx.Err(); err != nil {
				results[i].err = err
				continue
			}
			var res result
			if r.purge != nil {
				res.purged, res.err = b.purge(r.purge)
			} else if r.once != nil {
				res.claimed, res.err = claimOnce(tx, r.once)
			} else {
				if len(r.batch.Audit) > 0 && chain == nil {
					var err error
					if chain, err = openChain(tx); err != nil {
						return err
					}
				}
				res.versions, res.records, res.err = b.commit(r.batch, chain, now)
			}
			if res.err != nil && isStorageError(res.err) {
				// A failed Put may have left part of this request in the
				// transaction: the whole group has to go.
				return res.err
			}
			results[i] = res
		}
		if chain != nil {
			return chain.saveHead()
		}
		return nil
	})
	s.noteGroup(err)
	if err != nil {
		if isNoSpace(err) {
			err = fmt.Errorf("embedded store: commit to %s: %w: %w", s.path, store.ErrUnavailable, err)
		} else {
			err = fmt.Errorf("embedded store: commit to %s: %w", s.path, err)
		}
		for i := range results {
			results[i] = result{err: err}
		}
	}
	for i, r := range group {
		r.resp <- results[i]
	}
}

// commit applies one request's batch: it plans the writes (preconditions,
// renders, unique identifiers) and links the usage-log entries, all
// without changing anything, and only then writes. Earlier requests of
// the group are already in the transaction, so they count for the checks.
func (b buckets) commit(batch *store.Batch, chain *auditChain, now int64) ([]store.Version, []store.AuditRecord, error) {
	plans, err := b.plan(batch.Writes, now)
	if err != nil {
		return nil, nil, err
	}
	var recs []store.AuditRecord
	if len(batch.Audit) > 0 {
		if recs, err = chain.link(batch.Link, batch.Audit); err != nil {
			return nil, nil, err
		}
	}
	out := make([]store.Version, len(plans))
	for i := range plans {
		p := &plans[i]
		out[i] = p.version
		if p.noop {
			continue
		}
		if err := b.put(p); err != nil {
			return nil, nil, storageError{fmt.Errorf("%s/%s: %w", p.w.Type, p.w.ID, err)}
		}
	}
	if err := b.applyQueue(batch.Queue); err != nil {
		return nil, nil, err
	}
	if err := chain.store(recs); err != nil {
		return nil, nil, err
	}
	return out, recs, nil
}

type buckets struct{ cur, hist, comp, ident, queue, queuePatient *bolt.Bucket }

// storageError marks a failure of bbolt itself, as opposed to a refusal
// of the request.
type storageError struct{ err error }

func (e storageError) Error() string { return e.err.Error() }
func (e storageError) Unwrap() error { return e.err }

func isStorageError(err error) bool {
	var se storageError
	return errors.As(err, &se)
}

type planned struct {
	w      store.Write
	key    []byte
	old    header
	exists bool
	// oldIdents are the identifiers of the current version (none if it
	// is deleted), newIdents those of the new one, each sorted and
	// without duplicates.
	oldIdents, newIdents []string
	noop                 bool // delete of an already deleted resource
	version              store.Version
	record               []byte
	// superseded is the version the write replaces, as hist keeps it:
	// without index and identifiers, which only the current version
	// needs. Copied out of bbolt's memory when planned.
	superseded []byte
}

// plan checks every write of one request and renders its new versions,
// writing nothing.
func (b buckets) plan(writes []store.Write, now int64) ([]planned, error) {
	plans := make([]planned, len(writes))
	for i, w := range writes {
		p := &plans[i]
		p.w = w
		p.key = curKey(w.Type, w.ID)
		if raw := b.cur.Get(p.key); raw != nil {
			h, body, err := decodeHeader(raw)
			if err != nil {
				return nil, fmt.Errorf("embedded store: %s/%s: %w", w.Type, w.ID, err)
			}
			p.old, p.exists = h, true
			if !h.deleted {
				// Copied: the record is bbolt's memory.
				p.oldIdents = h.identifierList()
			}
			p.superseded = encodeStored(header{version: h.version, lastUpdated: h.lastUpdated, deleted: h.deleted,
				patient: h.patient, packed: h.packed}, body)
			p.old.identifiers, p.old.index = nil, nil
		}
		if w.Create && p.exists {
			return nil, &store.ConflictError{Index: i, Type: w.Type, ID: w.ID, Reason: store.ConflictExists, Current: p.old.version}
		}
		if w.IfMatch != 0 && w.IfMatch != p.old.version {
			return nil, &store.ConflictError{Index: i, Type: w.Type, ID: w.ID, Reason: store.ConflictVersion, Current: p.old.version}
		}
		at := now
		if p.exists && at < p.old.lastUpdated {
			// A clock step backwards must not make a newer version look
			// older: History's Since relies on the order.
			at = p.old.lastUpdated
		}
		lastUpdated := time.Unix(0, at).UTC()
		p.version = store.Version{Type: w.Type, ID: w.ID, VersionID: p.old.version + 1, LastUpdated: lastUpdated}
		switch w.Op {
		case store.OpDelete:
			if !p.exists {
				return nil, &store.NotFoundError{Index: i, Type: w.Type, ID: w.ID}
			}
			if p.old.deleted {
				p.noop = true
				p.version = store.Version{Type: w.Type, ID: w.ID, VersionID: p.old.version,
					LastUpdated: time.Unix(0, p.old.lastUpdated).UTC(), Deleted: true, Patient: p.old.patient}
				continue
			}
			// The deleted version stays in the record it was deleted from.
			p.version.Deleted = true
			p.version.Patient = p.old.patient
			p.record = encodeRecord(header{version: p.version.VersionID, lastUpdated: at, deleted: true, patient: p.old.patient}, nil)
		case store.OpPut:
			body, err := safeRender(w.Render, p.version.VersionID, lastUpdated)
			if err != nil {
				return nil, fmt.Errorf("embedded store: render %s/%s version %d: %w", w.Type, w.ID, p.version.VersionID, err)
			}
			p.version.Patient = w.Patient
			p.version.Body = body
			if len(w.Index) > 0 {
				p.version.Index = w.Index
			}
			p.newIdents = slices.Compact(slices.Sorted(slices.Values(w.Identifiers)))
			p.record = encodeRecord(header{version: p.version.VersionID, lastUpdated: at, patient: w.Patient,
				identifiers: []byte(strings.Join(p.newIdents, "\x00")), index: w.Index}, body)
		}
	}
	if err := b.checkUnique(plans); err != nil {
		return nil, err
	}
	return plans, nil
}

// checkUnique refuses a write whose Unique identifier another current, not
// deleted resource of its type would carry after the request: one already
// stored that this request does not change (or changes keeping the
// identifier), or another write of the request. Stored entries come from
// the ident bucket, which the transaction keeps current, so a clash with
// an earlier request of the same group is seen too.
func (b buckets) checkUnique(plans []planned) error {
	var byKey map[string]int
	for i := range plans {
		p := &plans[i]
		if p.w.Op != store.OpPut || len(p.w.Unique) == 0 {
			continue
		}
		if byKey == nil {
			byKey = make(map[string]int, len(plans))
			for j := range plans {
				byKey[plans[j].w.Type+"/"+plans[j].w.ID] = j
			}
		}
		clash := func(u, other string) error {
			return &store.ConflictError{Index: i, Type: p.w.Type, ID: p.w.ID, Reason: store.ConflictUnique,
				Current: p.old.version, Identifier: u, Other: other}
		}
		for _, u := range p.w.Unique {
			for j := range plans {
				q := &plans[j]
				if j != i && q.w.Type == p.w.Type && q.w.Op == store.OpPut && slices.Contains(q.newIdents, u) {
					return clash(u, "")
				}
			}
			prefix := identKey(p.w.Type, u, "")
			c := b.ident.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				other := string(k[len(prefix):])
				if other == p.w.ID {
					continue
				}
				if _, rewritten := byKey[p.w.Type+"/"+other]; rewritten {
					// Its new version decides; the loop above saw it.
					continue
				}
				return clash(u, other)
			}
		}
	}
	return nil
}

func (b buckets) put(p *planned) error {
	if err := b.cur.Put(p.key, p.record); err != nil {
		return err
	}
	if p.superseded != nil {
		if err := b.hist.Put(histKey(append(p.key, '/'), p.old.version), p.superseded); err != nil {
			return err
		}
	}
	if p.exists && !p.old.deleted && p.old.patient != "" {
		if err := b.comp.Delete(compKey(p.old.patient, p.w.Type, p.w.ID)); err != nil {
			return err
		}
	}
	if !p.version.Deleted && p.version.Patient != "" {
		if err := b.comp.Put(compKey(p.version.Patient, p.w.Type, p.w.ID), []byte{}); err != nil {
			return err
		}
	}
	// newIdents is empty for a delete, so a deleted resource leaves
	// every identifier it had.
	for _, x := range p.oldIdents {
		if _, keep := slices.BinarySearch(p.newIdents, x); !keep {
			if err := b.ident.Delete(identKey(p.w.Type, x, p.w.ID)); err != nil {
				return err
			}
		}
	}
	for _, x := range p.newIdents {
		if _, had := slices.BinarySearch(p.oldIdents, x); !had {
			if err := b.ident.Put(identKey(p.w.Type, x, p.w.ID), []byte{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// safeRender runs a caller's Render on the committer goroutine; a panic
// there must fail that one commit, not take the server down.
func safeRender(r store.RenderFunc, version int64, at time.Time) (body []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("render panicked: %v", p)
		}
	}()
	return r(version, at)
}
