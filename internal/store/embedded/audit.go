package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// The usage log and maintenance (store.AuditLog, store.Maintenance).
//
// AppendAudit is a Commit of a batch with usage-log entries only: entries
// are linked to the chain inside the group transaction, in the order the
// committer applies the requests, and the head (meta "audithead") moves in
// the same transaction. So concurrent requests' audit records share one
// fsync, are durable when AppendAudit returns, and a group whose
// transaction fails appends nothing and leaves the head where it was.

var (
	_ store.AuditLog    = (*Store)(nil)
	_ store.Maintenance = (*Store)(nil)
)

type purgeRequest struct {
	patient string
	types   []string
	// candidates are, per type, the ids whose current version belonged
	// to the patient when Purge scanned cur outside the committer.
	candidates map[string][]string
	// exact: the candidates are all (PurgeResources): no compartment
	// scan, no queue items.
	exact bool
}

func seqKey(seq int64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(seq))
	return k
}

// An index (audit_patient, audit_agent, audit_org) holds, per field value,
// posting lists: key field NUL seq of the list's first record (8 bytes
// BE), value the gaps to each following record as uvarints. A list takes
// new records until its value reaches maxPostings bytes; then the next
// record starts a new key. One key per record (16 bytes of bbolt's element
// header plus the field and the seq, 30-50 bytes) became 1-3 bytes per
// record; a store written when every record had a key of its own, with an
// empty value, reads as lists of one and is appended to as it is.
const maxPostings = 384

// auditIndexKey is field NUL seq: a field's lists are adjacent and in
// chain order.
func auditIndexKey(field string, seq int64) []byte {
	k := make([]byte, len(field)+9)
	copy(k, field)
	binary.BigEndian.PutUint64(k[len(field)+1:], uint64(seq))
	return k
}

// walkPostings calls fn with each seq of a list: the one in its key
// (after prefix), then one per gap in its value.
func walkPostings(k, v []byte, prefix int, fn func(int64)) error {
	if len(k) != prefix+8 {
		return fmt.Errorf("audit index key %q: %w", k, errCorrupt)
	}
	seq := int64(binary.BigEndian.Uint64(k[prefix:]))
	fn(seq)
	for len(v) > 0 {
		gap, n := binary.Uvarint(v)
		if n <= 0 || gap == 0 || gap > 1<<62 {
			return fmt.Errorf("audit index list %q: %w", k, errCorrupt)
		}
		seq += int64(gap)
		fn(seq)
		v = v[n:]
	}
	return nil
}

// postings decodes a list.
func postings(k, v []byte, prefix int) ([]int64, error) {
	out := make([]int64, 0, 1+len(v))
	err := walkPostings(k, v, prefix, func(seq int64) { out = append(out, seq) })
	return out, err
}

// lastPosting is the last seq of a list, read without building it.
func lastPosting(k, v []byte, prefix int) (int64, error) {
	var last int64
	err := walkPostings(k, v, prefix, func(seq int64) { last = seq })
	return last, err
}

// appendPostings adds seqs (ascending, above any the field has) to the
// field's last list, or to new ones.
func appendPostings(b *bolt.Bucket, field string, seqs []int64) error {
	prefix := append([]byte(field), 0)
	var key, val []byte
	var last int64
	if k, v := seekBefore(b.Cursor(), prefix, 0); k != nil && bytes.HasPrefix(k, prefix) {
		var err error
		if last, err = lastPosting(k, v, len(prefix)); err != nil {
			return err
		}
		// bbolt's bytes are only valid in the transaction and read-only.
		key, val = bytes.Clone(k), append(make([]byte, 0, len(v)+3*len(seqs)), v...)
	}
	for _, seq := range seqs {
		if key != nil && len(val) < maxPostings && seq > last {
			val = binary.AppendUvarint(val, uint64(seq-last))
			last = seq
			continue
		}
		if key != nil {
			if err := b.Put(key, val); err != nil {
				return err
			}
		}
		key, val, last = auditIndexKey(field, seq), make([]byte, 0, 3*len(seqs)), seq
	}
	if key == nil {
		return nil
	}
	return b.Put(key, val)
}

// Audit record layout (value of audit[seq]), formats 1 and 2:
//
//	format(1), recorded unix seconds(8), recorded nanos(4),
//	lengths of patient, agent, org, outcome, hash (2 each),
//	patient, agent, org, outcome, hash, linked body
//
// Format 1 keeps the hash as its hex string; format 2 as the 32 bytes it
// stands for when it is a SHA-256 in hex (the chain's hashes always are).
// Format 3, written since, is for a linked body that ends in its own hash
// (the compact form's does): the hash is not stored twice, and the
// header's numbers are varints:
//
//	format(1), recorded unix nanos (varint), lengths of patient, agent,
//	org, outcome (uvarint each), patient, agent, org, outcome, linked body
//
// All three are read.
const (
	auditRecFormatHex  = 1
	auditRecFormatRaw  = 2
	auditRecFormatTail = 3
	auditHeaderLen     = 1 + 8 + 4 + 5*2
	maxAuditField      = maxNameLen
)

func encodeAudit(r *store.AuditRecord) []byte {
	format, hash := byte(auditRecFormatHex), r.Hash
	if raw, err := hex.DecodeString(r.Hash); err == nil && len(raw) == sha256.Size && hex.EncodeToString(raw) == r.Hash {
		if bytes.HasSuffix(r.Body, raw) {
			return encodeAuditTail(r)
		}
		format, hash = auditRecFormatRaw, string(raw)
	}
	return encodeAuditAs(r, format, hash)
}

func encodeAuditTail(r *store.AuditRecord) []byte {
	fields := [4]string{r.Patient, r.AgentHPR, r.Org, r.Outcome}
	n := 1 + binary.MaxVarintLen64 + 4*binary.MaxVarintLen16 + len(r.Body)
	for _, f := range fields {
		n += len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, auditRecFormatTail)
	b = binary.AppendVarint(b, r.Recorded.UnixNano())
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
	}
	for _, f := range fields {
		b = append(b, f...)
	}
	return append(b, r.Body...)
}

func encodeAuditAs(r *store.AuditRecord, format byte, hash string) []byte {
	fields := [5]string{r.Patient, r.AgentHPR, r.Org, r.Outcome, hash}
	n := auditHeaderLen + len(r.Body)
	for _, f := range fields {
		n += len(f)
	}
	b := make([]byte, n)
	b[0] = format
	binary.BigEndian.PutUint64(b[1:], uint64(r.Recorded.Unix()))
	binary.BigEndian.PutUint32(b[9:], uint32(r.Recorded.Nanosecond()))
	o := auditHeaderLen
	for i, f := range fields {
		binary.BigEndian.PutUint16(b[13+2*i:], uint16(len(f)))
		o += copy(b[o:], f)
	}
	copy(b[o:], r.Body)
	return b
}

// auditView is a decoded record whose fields alias the stored bytes.
type auditView struct {
	recorded time.Time
	fields   [5][]byte // patient, agent, org, outcome, hash
	rawHash  bool      // fields[4] holds the hash's bytes, not its hex
	body     []byte
}

func decodeAudit(b []byte) (auditView, error) {
	var v auditView
	if len(b) > 0 && b[0] == auditRecFormatTail {
		return decodeAuditTail(b)
	}
	if len(b) < auditHeaderLen || b[0] != auditRecFormatHex && b[0] != auditRecFormatRaw {
		return v, errCorrupt
	}
	v.rawHash = b[0] == auditRecFormatRaw
	v.recorded = time.Unix(int64(binary.BigEndian.Uint64(b[1:])), int64(binary.BigEndian.Uint32(b[9:]))).UTC()
	o := auditHeaderLen
	for i := range v.fields {
		l := int(binary.BigEndian.Uint16(b[13+2*i:]))
		if len(b) < o+l {
			return v, errCorrupt
		}
		v.fields[i] = b[o : o+l]
		o += l
	}
	v.body = b[o:]
	return v, nil
}

func decodeAuditTail(b []byte) (auditView, error) {
	v := auditView{rawHash: true}
	o := 1
	nanos, n := binary.Varint(b[o:])
	if n <= 0 {
		return v, errCorrupt
	}
	o += n
	var lens [4]uint64
	for i := range lens {
		if lens[i], n = binary.Uvarint(b[o:]); n <= 0 || lens[i] > maxAuditField {
			return v, errCorrupt
		}
		o += n
	}
	for i, l := range lens {
		if uint64(len(b)-o) < l {
			return v, errCorrupt
		}
		v.fields[i] = b[o : o+int(l)]
		o += int(l)
	}
	if len(b)-o < sha256.Size {
		return v, errCorrupt
	}
	v.recorded = time.Unix(0, nanos).UTC()
	v.body = b[o:]
	v.fields[4] = b[len(b)-sha256.Size:]
	return v, nil
}

// record copies the view into a record the caller owns.
func (v *auditView) record(seq int64) store.AuditRecord {
	return store.AuditRecord{
		Seq: seq,
		AuditEntry: store.AuditEntry{
			Patient:  string(v.fields[0]),
			AgentHPR: string(v.fields[1]),
			Org:      string(v.fields[2]),
			Recorded: v.recorded,
			Outcome:  string(v.fields[3]),
			Body:     bytes.Clone(v.body),
		},
		Hash: v.hash(),
	}
}

func (v *auditView) hash() string {
	if v.rawHash {
		return hex.EncodeToString(v.fields[4])
	}
	return string(v.fields[4])
}

func (v *auditView) matches(q *store.AuditQuery) bool {
	return (q.Patient == "" || string(v.fields[0]) == q.Patient) &&
		(q.AgentHPR == "" || string(v.fields[1]) == q.AgentHPR) &&
		(q.Org == "" || string(v.fields[2]) == q.Org) &&
		(q.Outcome == "" || string(v.fields[3]) == q.Outcome) &&
		(q.From.IsZero() || !v.recorded.Before(q.From)) &&
		(q.To.IsZero() || !v.recorded.After(q.To))
}

func readHead(meta *bolt.Bucket) (int64, string, error) {
	h := meta.Get(keyAuditHead)
	if h == nil {
		return 0, "", nil
	}
	if len(h) < 8 {
		return 0, "", fmt.Errorf("audit head: %w", errCorrupt)
	}
	return int64(binary.BigEndian.Uint64(h)), string(h[8:]), nil
}

// auditChain is the log as one group transaction sees and extends it.
type auditChain struct {
	log, byPatient, byAgent, byOrg, meta *bolt.Bucket
	seq, saved                           int64
	hash                                 string
}

func openChain(tx *bolt.Tx) (*auditChain, error) {
	c := &auditChain{
		log: tx.Bucket(bucketAudit), byPatient: tx.Bucket(bucketAuditPatient),
		byAgent: tx.Bucket(bucketAuditAgent), byOrg: tx.Bucket(bucketAuditOrg), meta: tx.Bucket(bucketMeta),
	}
	// The log only ever grows at its end: full pages, not the half-full
	// ones bbolt leaves for inserts in the middle.
	c.log.FillPercent = 1.0
	c.byAgent.FillPercent, c.byOrg.FillPercent = 1.0, 1.0
	var err error
	if c.seq, c.hash, err = readHead(c.meta); err != nil {
		return nil, storageError{err}
	}
	c.saved = c.seq
	// The head and the last record must agree, or new records would
	// overwrite old ones or leave a gap: refuse to append (fail closed).
	last := int64(0)
	if k, _ := c.log.Cursor().Last(); k != nil {
		last = int64(binary.BigEndian.Uint64(k))
	}
	if last != c.seq {
		return nil, storageError{fmt.Errorf("audit head is at %d but the last record is %d: %w", c.seq, last, errCorrupt)}
	}
	return c, nil
}

// link links one request's entries after the current head without
// storing anything: a link error leaves no trace. store must follow
// before the next request is linked.
func (c *auditChain) link(link store.LinkFunc, entries []store.AuditEntry) ([]store.AuditRecord, error) {
	recs := make([]store.AuditRecord, len(entries))
	prev := c.hash
	for i, e := range entries {
		linked, hash, err := safeLink(link, prev, e.Body)
		if err != nil {
			return nil, fmt.Errorf("embedded store: link audit entry %d: %w", i, err)
		}
		e.Body = linked
		e.Recorded = time.Unix(e.Recorded.Unix(), int64(e.Recorded.Nanosecond())).UTC()
		recs[i] = store.AuditRecord{Seq: c.seq + int64(i) + 1, AuditEntry: e, Hash: hash}
		prev = hash
	}
	return recs, nil
}

// store writes records that link returned and moves the head past them; a
// storage error fails the group.
func (c *auditChain) store(recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	for i := range recs {
		r := &recs[i]
		if err := c.log.Put(seqKey(r.Seq), encodeAudit(r)); err != nil {
			return storageError{fmt.Errorf("audit record %d: %w", r.Seq, err)}
		}
	}
	for _, ix := range [...]struct {
		b     *bolt.Bucket
		field func(*store.AuditRecord) string
	}{
		{c.byPatient, func(r *store.AuditRecord) string { return r.Patient }},
		{c.byAgent, func(r *store.AuditRecord) string { return r.AgentHPR }},
		{c.byOrg, func(r *store.AuditRecord) string { return r.Org }},
	} {
		// One read and one write per field value and group, in the
		// order the values first appear.
		var order []string
		seqs := map[string][]int64{}
		for i := range recs {
			f := ix.field(&recs[i])
			if f == "" {
				continue
			}
			if _, ok := seqs[f]; !ok {
				order = append(order, f)
			}
			seqs[f] = append(seqs[f], recs[i].Seq)
		}
		for _, f := range order {
			if err := appendPostings(ix.b, f, seqs[f]); err != nil {
				return storageError{fmt.Errorf("audit index %q of records %v: %w", f, seqs[f], err)}
			}
		}
	}
	c.seq = recs[len(recs)-1].Seq
	c.hash = recs[len(recs)-1].Hash
	return nil
}

func (c *auditChain) saveHead() error {
	if c.seq == c.saved {
		return nil
	}
	v := make([]byte, 8+len(c.hash))
	binary.BigEndian.PutUint64(v, uint64(c.seq))
	copy(v[8:], c.hash)
	if err := c.meta.Put(keyAuditHead, v); err != nil {
		return storageError{fmt.Errorf("audit head: %w", err)}
	}
	return nil
}

// safeLink runs the caller's LinkFunc on the committer goroutine; a panic
// must fail that one request, not the server.
func safeLink(link store.LinkFunc, prev string, body []byte) (linked []byte, hash string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("link panicked: %v", p)
		}
	}()
	linked, hash, err = link(prev, body)
	if err == nil && (len(hash) == 0 || len(hash) > maxAuditField) {
		err = fmt.Errorf("link returned a hash of %d bytes", len(hash))
	}
	return linked, hash, err
}

func validAuditField(s string) bool {
	return len(s) <= maxAuditField && strings.IndexByte(s, 0) < 0
}

// AppendAudit links entries to the chain in order and returns when they
// are durable; all or none of them are appended.
func (s *Store) AppendAudit(ctx context.Context, link store.LinkFunc, entries []store.AuditEntry) ([]store.AuditRecord, error) {
	if link == nil {
		return nil, errors.New("embedded store: append audit: no link function")
	}
	b := store.Batch{Audit: entries, Link: link}
	if err := validate(&b); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return []store.AuditRecord{}, nil
	}
	res := s.submit(&request{ctx: ctx, batch: &b})
	return res.records, res.err
}

// AuditHead returns the last record's Seq and hash.
func (s *Store) AuditHead(ctx context.Context) (seq int64, hash string, err error) {
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	err = s.view(func(tx *bolt.Tx) error {
		var err error
		seq, hash, err = readHead(tx.Bucket(bucketMeta))
		return err
	}, func() string { return "audit head" })
	return seq, hash, err
}

// scanChunk bounds how many records one read transaction collects: a long
// read transaction keeps bbolt from remapping a growing file, which would
// stall the committer.
const scanChunk = 512

// ScanAudit calls fn for every record with Seq >= from, in chain order,
// outside any transaction.
func (s *Store) ScanAudit(ctx context.Context, from int64, fn func(store.AuditRecord) error) error {
	next := max(from, 1)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := make([]store.AuditRecord, 0, scanChunk)
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketAudit).Cursor()
			for k, b := c.Seek(seqKey(next)); k != nil && len(chunk) < scanChunk; k, b = c.Next() {
				seq := int64(binary.BigEndian.Uint64(k))
				v, err := decodeAudit(b)
				if err != nil {
					return fmt.Errorf("audit record %d: %w", seq, err)
				}
				chunk = append(chunk, v.record(seq))
			}
			return nil
		}, func() string { return "scan audit" })
		if err != nil {
			return err
		}
		for _, r := range chunk {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(chunk) < scanChunk {
			return nil
		}
		next = chunk[len(chunk)-1].Seq + 1
	}
}

// SearchAudit returns the records matching q, newest first. A query by
// patient, agent or organisation walks that field's index backwards from
// Before; one by outcome or date alone walks the log backwards.
func (s *Store) SearchAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []store.AuditRecord{}
	if q.Before < 0 || !validAuditField(q.Patient) || !validAuditField(q.AgentHPR) || !validAuditField(q.Org) ||
		(!q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From)) {
		return out, nil
	}
	full := func() bool { return q.Count > 0 && len(out) >= q.Count }
	err := s.view(func(tx *bolt.Tx) error {
		log := tx.Bucket(bucketAudit)
		var index *bolt.Bucket
		var field string
		switch {
		case q.Patient != "":
			index, field = tx.Bucket(bucketAuditPatient), q.Patient
		case q.AgentHPR != "":
			index, field = tx.Bucket(bucketAuditAgent), q.AgentHPR
		case q.Org != "":
			index, field = tx.Bucket(bucketAuditOrg), q.Org
		}
		visit := func(seq int64, b []byte) error {
			if b == nil {
				return fmt.Errorf("audit index lists missing record %d: %w", seq, errCorrupt)
			}
			v, err := decodeAudit(b)
			if err != nil {
				return fmt.Errorf("audit record %d: %w", seq, err)
			}
			if v.matches(&q) {
				out = append(out, v.record(seq))
			}
			return nil
		}
		if index == nil {
			c := log.Cursor()
			k, b := seekBefore(c, nil, q.Before)
			for ; k != nil && !full(); k, b = c.Prev() {
				if err := visit(int64(binary.BigEndian.Uint64(k)), b); err != nil {
					return err
				}
			}
			return nil
		}
		prefix := append([]byte(field), 0)
		c := index.Cursor()
		k, v := seekBefore(c, prefix, q.Before)
		for ; k != nil && bytes.HasPrefix(k, prefix) && !full(); k, v = c.Prev() {
			seqs, err := postings(k, v, len(prefix))
			if err != nil {
				return err
			}
			for i := len(seqs) - 1; i >= 0 && !full(); i-- {
				if q.Before > 0 && seqs[i] >= q.Before {
					continue
				}
				if err := visit(seqs[i], log.Get(seqKey(seqs[i]))); err != nil {
					return err
				}
			}
		}
		return nil
	}, func() string { return "search audit" })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// seekBefore positions c on the last key under prefix whose Seq suffix is
// below before (no bound when before is 0). The caller checks the prefix.
func seekBefore(c *bolt.Cursor, prefix []byte, before int64) ([]byte, []byte) {
	var upper []byte
	switch {
	case before > 0:
		upper = append(slices.Clip(prefix), seqKey(before)...)
	case len(prefix) > 0:
		// prefix ends in NUL: the same field followed by 0x01 is above
		// all of its keys.
		upper = append(slices.Clone(prefix[:len(prefix)-1]), 1)
	default:
		return c.Last()
	}
	if k, _ := c.Seek(upper); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// ScanType calls fn with the current, not deleted version of every
// resource of typ, in id order, outside any transaction.
func (s *Store) ScanType(ctx context.Context, typ string, fn func(store.Version) error) error {
	if !validName(typ) {
		return ctx.Err()
	}
	prefix := curKey(typ, "")
	return scanPrefix(ctx, s, bucketCur, prefix, scanChunk, func() string { return "scan " + typ },
		func(k, b []byte) (store.Version, bool, error) {
			if len(b) > 1 && b[1]&flagDeleted != 0 {
				return store.Version{}, false, nil
			}
			v, err := decodeVersion(typ, string(k[len(prefix):]), b)
			return v, err == nil && !v.Deleted, err
		}, fn)
}

// scanPrefix calls fn, outside any transaction, with every item decode
// keeps of the keys under prefix in bucket, in key order. It reads per
// keys to a read transaction (see scanChunk) and resumes after the last
// key read, so keys written meanwhile ahead of it are seen and none twice.
func scanPrefix[T any](ctx context.Context, s *Store, bucket, prefix []byte, per int, what func() string,
	decode func(k, v []byte) (T, bool, error), fn func(T) error) error {
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := make([]T, 0, per)
		var last []byte
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			k, v := c.Seek(prefix)
			if after != nil {
				k, v = c.Seek(after)
				if bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			n := 0
			for ; k != nil && bytes.HasPrefix(k, prefix) && n < per; k, v = c.Next() {
				n++
				last = k
				item, keep, err := decode(k, v)
				if err != nil {
					return err
				}
				if keep {
					chunk = append(chunk, item)
				}
			}
			if n < per {
				last = nil
			} else {
				last = bytes.Clone(last)
			}
			return nil
		}, what)
		if err != nil {
			return err
		}
		for _, item := range chunk {
			if err := fn(item); err != nil {
				return err
			}
		}
		if last == nil {
			return nil
		}
		after = last
	}
}

// Purge removes every version of the resources of types whose current
// version (deleted or not) belongs to patient, and every queue item about
// the patient. The scan of cur that finds the resources runs in read
// transactions first, so the committer's transaction only deletes;
// resources that join the compartment meanwhile are found through the
// compartment index there. Versions that belonged to patient before the
// resource moved to another record are kept with the resource.
func (s *Store) Purge(ctx context.Context, patient string, types []string) (int, error) {
	if patient == "" || len(patient) > maxNameLen || strings.IndexByte(patient, 0) >= 0 {
		return 0, fmt.Errorf("embedded store: purge: invalid patient %q", patient)
	}
	p := &purgeRequest{patient: patient, candidates: map[string][]string{}}
	for _, typ := range types {
		if !validName(typ) || slices.Contains(p.types, typ) {
			continue
		}
		p.types = append(p.types, typ)
		ids, err := s.ownedBy(ctx, patient, typ)
		if err != nil {
			return 0, err
		}
		p.candidates[typ] = ids
	}
	res := s.submit(&request{ctx: ctx, purge: p})
	return res.purged, res.err
}

// PurgeResources removes the named resources of typ that belong to
// patient (store.Maintenance).
func (s *Store) PurgeResources(ctx context.Context, patient, typ string, ids []string) (int, error) {
	if patient == "" || len(patient) > maxNameLen || strings.IndexByte(patient, 0) >= 0 || !validName(typ) {
		return 0, fmt.Errorf("embedded store: purge: invalid patient %q or type %q", patient, typ)
	}
	var valid []string
	for _, id := range ids {
		if validName(id) {
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return 0, ctx.Err()
	}
	p := &purgeRequest{patient: patient, types: []string{typ}, candidates: map[string][]string{typ: valid}, exact: true}
	res := s.submit(&request{ctx: ctx, purge: p})
	return res.purged, res.err
}

// ownedBy lists the resources of typ whose current version, deleted or
// not, belongs to patient. The compartment index lists only those not
// deleted, and one deleted between this scan and the purge would be out of
// it by then; the committer re-checks every candidate.
func (s *Store) ownedBy(ctx context.Context, patient, typ string) ([]string, error) {
	prefix := curKey(typ, "")
	var ids []string
	err := scanPrefix(ctx, s, bucketCur, prefix, 8*scanChunk, func() string { return "purge scan " + typ },
		func(k, b []byte) (string, bool, error) {
			if len(b) < headerLen1 {
				return "", false, nil
			}
			pl := int(binary.BigEndian.Uint16(b[18:]))
			start := headerLen1
			if b[0] == recFormat2 {
				start = headerLen2
			}
			if len(b) < start+pl || string(b[start:start+pl]) != patient {
				return "", false, nil
			}
			return string(k[len(prefix):]), true, nil
		},
		func(id string) error {
			ids = append(ids, id)
			return nil
		})
	return ids, err
}

// purge runs in the committer: it removes the patient's resources of the
// listed types, re-checking each against its current record, and the
// patient's queue items.
func (b buckets) purge(p *purgeRequest) (int, error) {
	if !p.exact {
		if err := b.purgeQueue(p.patient); err != nil {
			return 0, storageError{fmt.Errorf("purge queue items of %s: %w", p.patient, err)}
		}
	}
	n := 0
	for _, typ := range p.types {
		ids := slices.Clone(p.candidates[typ])
		prefix := compKey(p.patient, typ, "")
		c := b.comp.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && !p.exact; k, _ = c.Next() {
			ids = append(ids, string(k[len(prefix):]))
		}
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) {
			removed, err := b.remove(p.patient, typ, id)
			if err != nil {
				return 0, storageError{fmt.Errorf("purge %s/%s: %w", typ, id, err)}
			}
			if removed {
				n++
			}
		}
	}
	return n, nil
}

// remove deletes every trace of typ/id if its current version belongs to
// patient.
func (b buckets) remove(patient, typ, id string) (bool, error) {
	key := curKey(typ, id)
	raw := b.cur.Get(key)
	if raw == nil {
		return false, nil
	}
	h, _, err := decodeHeader(raw)
	if err != nil {
		return false, err
	}
	if h.patient != patient {
		return false, nil
	}
	var idents []string
	if !h.deleted {
		idents = h.identifierList()
	}
	var hist [][]byte
	prefix := histPrefix(typ, id)
	c := b.hist.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		hist = append(hist, bytes.Clone(k))
	}
	for _, k := range hist {
		if err := b.hist.Delete(k); err != nil {
			return false, err
		}
	}
	if err := b.cur.Delete(key); err != nil {
		return false, err
	}
	if err := b.comp.Delete(compKey(patient, typ, id)); err != nil {
		return false, err
	}
	for _, x := range idents {
		if err := b.ident.Delete(identKey(typ, x, id)); err != nil {
			return false, err
		}
	}
	return true, nil
}
