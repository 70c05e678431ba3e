package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// On-disk layout. Keys are built so that bbolt's byte order gives the
// orders the contract asks for without sorting:
//
//	cur  "Type/id"                     -> record of the current version
//	hist "Type/id/" + 8-byte BE version -> record of that version
//	comp "patient\x00Type\x00id"        -> empty (compartment index)
//	meta "format"                      -> formatVersion
//
// The current record is kept in both cur and hist so that a Read is one
// B+tree lookup; the price is one extra copy of each live body on disk.
var (
	bucketCur  = []byte("cur")
	bucketHist = []byte("hist")
	bucketComp = []byte("comp")
	bucketMeta = []byte("meta")
	keyFormat  = []byte("format")
)

const formatVersion = 1

// Record header: format(1) flags(1) version(8) lastUpdated unix nanos(8)
// patient length(2), then patient, then body. Fixed-width fields keep
// decoding branch-free on the read path.
const (
	recFormat     = 1
	flagDeleted   = 1 << 0
	headerLen     = 1 + 1 + 8 + 8 + 2
	maxPatientLen = math.MaxUint16
)

var errCorrupt = errors.New("corrupt record")

func curKey(typ, id string) []byte {
	k := make([]byte, 0, len(typ)+1+len(id)+9)
	k = append(k, typ...)
	k = append(k, '/')
	return append(k, id...)
}

// histPrefix is curKey plus a separator, so that the history of "a" never
// runs into the history of "a1".
func histPrefix(typ, id string) []byte {
	return append(curKey(typ, id), '/')
}

func histKey(prefix []byte, version int64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], uint64(version))
	return k
}

func compKey(patient, typ, id string) []byte {
	k := make([]byte, 0, len(patient)+len(typ)+len(id)+2)
	k = append(k, patient...)
	k = append(k, 0)
	k = append(k, typ...)
	k = append(k, 0)
	return append(k, id...)
}

type header struct {
	version     int64
	lastUpdated int64
	deleted     bool
	patient     string
}

func encodeRecord(h header, body []byte) []byte {
	b := make([]byte, headerLen+len(h.patient)+len(body))
	b[0] = recFormat
	if h.deleted {
		b[1] = flagDeleted
	}
	binary.BigEndian.PutUint64(b[2:], uint64(h.version))
	binary.BigEndian.PutUint64(b[10:], uint64(h.lastUpdated))
	binary.BigEndian.PutUint16(b[18:], uint16(len(h.patient)))
	copy(b[headerLen:], h.patient)
	copy(b[headerLen+len(h.patient):], body)
	return b
}

// decodeHeader reads the header without copying the body; the patient is
// copied (string conversion) so the result outlives the transaction.
func decodeHeader(b []byte) (header, []byte, error) {
	if len(b) < headerLen || b[0] != recFormat {
		return header{}, nil, errCorrupt
	}
	pl := int(binary.BigEndian.Uint16(b[18:]))
	if len(b) < headerLen+pl {
		return header{}, nil, errCorrupt
	}
	return header{
		version:     int64(binary.BigEndian.Uint64(b[2:])),
		lastUpdated: int64(binary.BigEndian.Uint64(b[10:])),
		deleted:     b[1]&flagDeleted != 0,
		patient:     string(b[headerLen : headerLen+pl]),
	}, b[headerLen+pl:], nil
}

// decodeVersion turns a record into a Version whose bytes are all owned by
// the caller: bbolt values live in the mmap and are invalid after the tx.
func decodeVersion(typ, id string, b []byte) (store.Version, error) {
	h, body, err := decodeHeader(b)
	if err != nil {
		return store.Version{}, fmt.Errorf("embedded store: %s/%s: %w", typ, id, err)
	}
	v := store.Version{
		Type:        typ,
		ID:          id,
		VersionID:   h.version,
		LastUpdated: time.Unix(0, h.lastUpdated).UTC(),
		Deleted:     h.deleted,
		Patient:     h.patient,
	}
	if !h.deleted {
		v.Body = append(make([]byte, 0, len(body)), body...)
	}
	return v, nil
}
