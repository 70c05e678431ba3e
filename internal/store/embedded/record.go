package embedded

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/kjernejournal/kjernejournal/internal/store"
)

// On-disk layout. Keys are built so that bbolt's byte order gives the
// orders the contract asks for without sorting:
//
//	cur   "Type/id"                       -> record of the current version
//	hist  "Type/id/" + 8-byte BE version  -> record of a superseded version
//	comp  "patient\x00Type\x00id"          -> empty (compartment index)
//	ident "Type\x00system|value\x00id"     -> empty (identifier index)
//	meta  "format"                        -> formatVersion
//	meta  "audithead"                     -> 8-byte BE seq + hash (hex)
//	audit 8-byte BE seq                   -> audit record (audit.go)
//	audit_patient "patient\x00" + 8-byte BE seq -> posting list (audit.go)
//	audit_agent   "hpr\x00" + 8-byte BE seq     -> posting list
//	audit_org     "org\x00" + 8-byte BE seq     -> posting list
//	queue         "queue/id"                   -> patient length(2), patient, body
//	queue_patient "patient\x00queue\x00id"      -> empty (Purge finds a patient's items)
//
// The current version is in cur only, so that a Read is one B+tree
// lookup and a live body is on disk once; a write moves the version it
// supersedes to hist, without its index and identifiers (only the current
// version is searched). Files written before also hold the current
// version in hist; readers skip it there, and the next write replaces it.
// comp and ident list only current, not deleted versions, and are changed
// in the same transaction as cur. The usage log (audit and its three
// indexes) is append-only and independent of the resources: Purge never
// touches it. Queue items (queue and queue_patient) keep no history: a
// put replaces the item, a removal deletes it. All these buckets are
// created on Open in files of either format, which needs no format
// change: older builds ignore them.
var (
	bucketCur   = []byte("cur")
	bucketHist  = []byte("hist")
	bucketComp  = []byte("comp")
	bucketIdent = []byte("ident")
	bucketMeta  = []byte("meta")
	keyFormat   = []byte("format")

	bucketAudit        = []byte("audit")
	bucketAuditPatient = []byte("audit_patient")
	bucketAuditAgent   = []byte("audit_agent")
	bucketAuditOrg     = []byte("audit_org")
	keyAuditHead       = []byte("audithead")

	bucketQueue        = []byte("queue")
	bucketQueuePatient = []byte("queue_patient")
)

// formatVersion is the data format of the file. 2 added the search index
// and identifiers to the record and the ident bucket. 3 added compressed
// bodies (flagPacked), the usage log's posting lists and tail-hash records
// (audit.go) and hist without the current version. A file of an older
// format is upgraded at Open: its records stay as they are and remain
// readable (a format-1 record without index), new ones are written in the
// current form; a build of an older format refuses the upgraded file
// rather than misread it. Resources
// not written since the upgrade have no ident entries, so FindByIdentifier
// does not find them until they are written again (re-running the seed, or
// any update, does that).
const formatVersion = 3

// Record layouts. Both start with format(1) flags(1) version(8)
// lastUpdated unix nanos(8) patient length(2); fixed-width fields keep
// decoding branch-free on the read path.
//
//	format 1: header, patient, body
//	format 2: header, identifiers length(4), index length(4), patient,
//	          identifiers (joined by NUL), index, body
const (
	recFormat1  = 1
	recFormat2  = 2
	flagDeleted = 1 << 0
	// flagPacked: the body is compressed with S2 and bodyDict.
	flagPacked    = 1 << 1
	headerLen1    = 1 + 1 + 8 + 8 + 2
	headerLen2    = headerLen1 + 4 + 4
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

func compKey(patient, typ, id string) []byte { return nulKey(patient, typ, id) }

func identKey(typ, identifier, id string) []byte { return nulKey(typ, identifier, id) }

// nulKey joins three names with NUL, which none of them holds (validName,
// validate), so "a\x00b\x00" prefixes exactly the keys under a and b.
func nulKey(a, b, c string) []byte {
	k := make([]byte, 0, len(a)+len(b)+len(c)+2)
	k = append(k, a...)
	k = append(k, 0)
	k = append(k, b...)
	k = append(k, 0)
	return append(k, c...)
}

// queueKey is queue/id: the name has no '/', so "queue/" prefixes exactly
// that queue's items.
func queueKey(queue, id string) []byte {
	k := make([]byte, 0, len(queue)+1+len(id))
	k = append(k, queue...)
	k = append(k, '/')
	return append(k, id...)
}

func queuePatientKey(patient, queue, id string) []byte { return nulKey(patient, queue, id) }

func encodeQueueItem(patient string, body []byte) []byte {
	b := make([]byte, 2+len(patient)+len(body))
	binary.BigEndian.PutUint16(b, uint16(len(patient)))
	copy(b[2:], patient)
	copy(b[2+len(patient):], body)
	return b
}

// decodeQueueItem returns the patient (copied) and the body (aliasing b).
func decodeQueueItem(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, errCorrupt
	}
	pl := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+pl {
		return "", nil, errCorrupt
	}
	return string(b[2 : 2+pl]), b[2+pl:], nil
}

type header struct {
	version     int64
	lastUpdated int64
	deleted     bool
	packed      bool // the stored body is compressed (flagPacked)
	patient     string
	// identifiers and index alias the record (bbolt's mmap or the
	// encoding buffer): valid only as long as it is.
	identifiers []byte // joined by NUL
	index       []byte
}

// identifierList splits the NUL-joined identifiers of a header.
func (h *header) identifierList() []string {
	if len(h.identifiers) == 0 {
		return nil
	}
	return strings.Split(string(h.identifiers), "\x00")
}

// Bodies are stored compressed with S2 (klauspost/compress) and a fixed
// dictionary of typical stored resources, bodydict1.s2dict: 795 bytes of
// JSON became about 165, in 2 µs to compress inside the commit and under
// 1 µs to expand on read, so a resource takes under half the pages it
// did. The dictionary is part of the data format: records refer to it by
// the flag alone, so it never changes; another would need a flag of its
// own.
//
//go:embed bodydict1.s2dict
var bodyDictBytes []byte

var bodyDict = s2.NewDict(bodyDictBytes)

// maxBody bounds the length a compressed body claims, so that a damaged
// record cannot make a read allocate gigabytes: far above any resource
// the API accepts.
const maxBody = 256 << 20

// packMin is the size below which a body is stored as it is: too short to
// gain from compression.
const packMin = 64

// encodeRecord encodes a new version, compressing its body.
func encodeRecord(h header, body []byte) []byte {
	h.packed = false
	if len(body) >= packMin {
		if c := bodyDict.Encode(nil, body); len(c) < len(body) {
			body, h.packed = c, true
		}
	}
	return encodeStored(h, body)
}

// encodeStored encodes a record whose body is as stored (compressed if
// h.packed).
func encodeStored(h header, body []byte) []byte {
	pl, il, xl := len(h.patient), len(h.identifiers), len(h.index)
	b := make([]byte, headerLen2+pl+il+xl+len(body))
	b[0] = recFormat2
	if h.deleted {
		b[1] = flagDeleted
	}
	if h.packed {
		b[1] |= flagPacked
	}
	binary.BigEndian.PutUint64(b[2:], uint64(h.version))
	binary.BigEndian.PutUint64(b[10:], uint64(h.lastUpdated))
	binary.BigEndian.PutUint16(b[18:], uint16(pl))
	binary.BigEndian.PutUint32(b[20:], uint32(il))
	binary.BigEndian.PutUint32(b[24:], uint32(xl))
	o := headerLen2
	o += copy(b[o:], h.patient)
	o += copy(b[o:], h.identifiers)
	o += copy(b[o:], h.index)
	copy(b[o:], body)
	return b
}

// decodeHeader reads the header without copying the body, identifiers or
// index; the patient is copied (string conversion) so the result outlives
// the transaction. It reads format-1 and format-2 records.
func decodeHeader(b []byte) (header, []byte, error) {
	if len(b) < headerLen1 || (b[0] != recFormat1 && b[0] != recFormat2) {
		return header{}, nil, errCorrupt
	}
	h := header{
		version:     int64(binary.BigEndian.Uint64(b[2:])),
		lastUpdated: int64(binary.BigEndian.Uint64(b[10:])),
		deleted:     b[1]&flagDeleted != 0,
		packed:      b[1]&flagPacked != 0,
	}
	if b[1]&^(flagDeleted|flagPacked) != 0 || h.packed && b[0] == recFormat1 {
		return header{}, nil, errCorrupt
	}
	pl := int(binary.BigEndian.Uint16(b[18:]))
	if b[0] == recFormat1 {
		if len(b) < headerLen1+pl {
			return header{}, nil, errCorrupt
		}
		h.patient = string(b[headerLen1 : headerLen1+pl])
		return h, b[headerLen1+pl:], nil
	}
	if len(b) < headerLen2 {
		return header{}, nil, errCorrupt
	}
	il := uint64(binary.BigEndian.Uint32(b[20:]))
	xl := uint64(binary.BigEndian.Uint32(b[24:]))
	if uint64(len(b)) < uint64(headerLen2)+uint64(pl)+il+xl {
		return header{}, nil, errCorrupt
	}
	o := headerLen2
	h.patient = string(b[o : o+pl])
	o += pl
	h.identifiers = b[o : o+int(il)]
	o += int(il)
	h.index = b[o : o+int(xl)]
	o += int(xl)
	return h, b[o:], nil
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
		// One allocation for body and index together.
		n := len(body)
		if h.packed {
			if n, err = s2.DecodedLen(body); err != nil || n > maxBody {
				return store.Version{}, fmt.Errorf("embedded store: %s/%s: body: %w", typ, id, errCorrupt)
			}
		}
		buf := make([]byte, n+len(h.index))
		if !h.packed {
			copy(buf, body)
		} else if out, err := bodyDict.Decode(buf[:n], body); err != nil || len(out) != n || &out[0] != &buf[0] {
			return store.Version{}, fmt.Errorf("embedded store: %s/%s: body: %w", typ, id, errCorrupt)
		}
		copy(buf[n:], h.index)
		v.Body = buf[:n:n]
		if len(h.index) > 0 {
			v.Index = buf[n:]
		}
	}
	return v, nil
}
