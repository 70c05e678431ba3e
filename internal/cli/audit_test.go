package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

func accessRecord(i int) audit.Record {
	return audit.Record{ID: fmt.Sprintf("ev-%d", i), Time: time.Date(2026, 5, 1, 9, 0, i, 0, time.UTC), RequestID: fmt.Sprint("req-", i),
		Interaction: audit.Read, ResourceType: "Flag", ResourceID: fmt.Sprint("flag-", i), Patients: []string{"pas-1"},
		User:  audit.User{Role: access.Practitioner, HPR: "990018265", Name: "Borghild Thomassen", HPCategory: "LE"},
		Basis: access.Unntak, Server: "http://kj.test"}
}

// logAccesses appends n realistic usage-log records: the first three in
// the JSON form stores were written in before the compact form, the rest
// compact, so verify runs across both.
func logAccesses(t *testing.T, st store.AuditLog, n int) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	for i := range n {
		r := accessRecord(i)
		body := audit.Compact(r)[0]
		if i < 3 {
			body = audit.Events(r)[0]
		}
		recs, err := st.AppendAudit(context.Background(), audit.Link, []store.AuditEntry{{Patient: "pas-1", AgentHPR: "990018265", Recorded: r.Time, Outcome: "0", Body: body}})
		require.NoError(t, err)
		out = append(out, recs...)
	}
	return out
}

// forged is record i rewritten with another HP name under its old chain
// link, as someone with access to the disk could do.
func forged(t *testing.T, stored []byte, i int) []byte {
	t.Helper()
	require.True(t, audit.IsCompact(stored))
	r := accessRecord(i)
	r.User.Name = "Borghilf Thomassen"
	// The compact form's trailer is the record's hash, its last 32 bytes.
	return append(audit.Compact(r)[0], stored[len(stored)-32:]...)
}

func TestAuditVerifyEmbedded(t *testing.T) {
	dir := t.TempDir()
	st, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(dir, "kjernejournal.db")})
	require.NoError(t, err)
	recs := logAccesses(t, st, 6)
	require.NoError(t, st.Close())

	var out bytes.Buffer
	require.NoError(t, Audit(context.Background(), []string{"verify", "--data-dir", dir}, &out, &out))
	assert.Contains(t, out.String(), "intact: 6 records")

	// Someone with access to the disk changes record 4: the HP's name.
	db, err := bolt.Open(filepath.Join(dir, "kjernejournal.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		key := binary.BigEndian.AppendUint64(nil, 4)
		v := bytes.Clone(b.Get(key))
		body := recs[3].Body
		require.True(t, bytes.HasSuffix(v, body), "the record's value ends with its body")
		return b.Put(key, append(v[:len(v)-len(body)], forged(t, body, 3)...))
	}))
	require.NoError(t, db.Close())

	out.Reset()
	err = Audit(context.Background(), []string{"verify", "--data-dir", dir}, &out, &out)
	require.Error(t, err)
	assert.Contains(t, out.String(), "BROKEN after 3 good records")
	assert.Contains(t, err.Error(), "ev-3", "names the first broken link")
}

func TestAuditVerifyMongoDB(t *testing.T) {
	uri := mongotest.URI(t)
	db := fmt.Sprintf("kjverify_%d", time.Now().UnixNano())
	st, err := mongodb.Open(context.Background(), mongodb.Options{URI: uri, Database: db})
	require.NoError(t, err)
	recs := logAccesses(t, st, 6)
	n, err := verifyChain(context.Background(), st)
	require.NoError(t, err)
	assert.Equal(t, 6, n)
	require.NoError(t, st.Close())

	// alter record 4 directly in the collection
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	require.NoError(t, err)
	defer client.Disconnect(context.Background())
	coll := client.Database(db).Collection("audit")
	var doc struct {
		Body []byte `bson:"body"`
	}
	require.NoError(t, coll.FindOne(context.Background(), bson.D{{Key: "_id", Value: int64(4)}}).Decode(&doc))
	require.Equal(t, recs[3].Body, doc.Body)
	altered := forged(t, doc.Body, 3)
	_, err = coll.UpdateOne(context.Background(), bson.D{{Key: "_id", Value: int64(4)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "body", Value: altered}}}})
	require.NoError(t, err)

	var out bytes.Buffer
	err = Audit(context.Background(), []string{"verify", "--mongo-uri", uri, "--mongo-database", db}, &out, &out)
	require.Error(t, err)
	assert.Contains(t, out.String(), "BROKEN after 3 good records")
	assert.Contains(t, err.Error(), "ev-3")
}
