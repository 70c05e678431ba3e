package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Keys used once (store.Once), for the DPoP replay check. Bucket once maps
// a key to its expiry (8 bytes, Unix nanoseconds, big-endian); once_exp
// holds expiry+key with no value, in expiry order, so that expired keys
// are found without scanning the live ones. Both are created by the first
// claim, which needs no format change: older builds ignore them.
//
// A claim goes through the committer like a Commit: it must be durable
// before the proof is accepted (else a crash right after could let the
// proof be replayed), and concurrent claims share one fsync. Being applied
// inside the committer's single write transaction is also what makes
// "insert if absent" atomic: two claims of one key in one group see each
// other.
var (
	bucketOnce    = []byte("once")
	bucketOnceExp = []byte("once_exp")
)

// onceSweep bounds the expired keys one group removes, so a long pause in
// traffic does not make the next request wait for a large sweep; every
// group that claims sweeps, so the backlog drains at the claim rate.
const onceSweep = 256

var _ store.Once = (*Store)(nil)

type onceRequest struct {
	key          string
	now, expires time.Time
}

// ClaimOnce implements store.Once. ctx bounds the wait for the committer;
// once the claim is queued it is waited for (as a Commit), so a true
// result is never lost to a deadline.
func (s *Store) ClaimOnce(ctx context.Context, key string, now, expires time.Time) (bool, error) {
	if !store.ValidOnceKey(key) {
		return false, errors.New("embedded store: claim once: invalid key")
	}
	res := s.submit(&request{ctx: ctx, once: &onceRequest{key: key, now: now, expires: expires}})
	return res.claimed, res.err
}

func onceExpKey(exp int64, key string) []byte {
	k := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(k, uint64(exp))
	return append(k, key...)
}

// claimOnce applies one claim in the group's transaction, judging expiry
// by the caller's clock (one process holds the file, so one clock). Every
// error is a storage error: a failed Put may leave part of it behind.
func claimOnce(tx *bolt.Tx, r *onceRequest) (bool, error) {
	now := r.now.UnixNano()
	b, err := tx.CreateBucketIfNotExists(bucketOnce)
	if err != nil {
		return false, storageError{fmt.Errorf("claim once: %w", err)}
	}
	x, err := tx.CreateBucketIfNotExists(bucketOnceExp)
	if err != nil {
		return false, storageError{fmt.Errorf("claim once: %w", err)}
	}
	if err := sweepOnce(b, x, now); err != nil {
		return false, err
	}
	key := []byte(r.key)
	if old := b.Get(key); len(old) == 8 {
		exp := int64(binary.BigEndian.Uint64(old))
		if exp > now {
			return false, nil
		}
		if err := x.Delete(onceExpKey(exp, r.key)); err != nil {
			return false, storageError{fmt.Errorf("claim once: %w", err)}
		}
	}
	exp := r.expires.UnixNano()
	val := make([]byte, 8)
	binary.BigEndian.PutUint64(val, uint64(exp))
	if err := b.Put(key, val); err != nil {
		return false, storageError{fmt.Errorf("claim once: %w", err)}
	}
	if err := x.Put(onceExpKey(exp, r.key), []byte{}); err != nil {
		return false, storageError{fmt.Errorf("claim once: %w", err)}
	}
	return true, nil
}

// sweepOnce removes up to onceSweep keys that expired at or before now.
func sweepOnce(b, x *bolt.Bucket, now int64) error {
	var dead [][]byte
	c := x.Cursor()
	for k, _ := c.First(); k != nil && len(dead) < onceSweep; k, _ = c.Next() {
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k[:8])) > now {
			break
		}
		dead = append(dead, append([]byte(nil), k...))
	}
	for _, k := range dead {
		// The key may have been claimed again with a later expiry: its
		// current entry then belongs to that claim.
		if v := b.Get(k[8:]); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) == int64(binary.BigEndian.Uint64(k[:8])) {
			if err := b.Delete(k[8:]); err != nil {
				return storageError{fmt.Errorf("claim once: sweep: %w", err)}
			}
		}
		if err := x.Delete(k); err != nil {
			return storageError{fmt.Errorf("claim once: sweep: %w", err)}
		}
	}
	return nil
}
