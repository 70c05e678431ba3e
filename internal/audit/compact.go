package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

// The compact stored form.
//
// A usage-log record is stored as the facts of the access, not as the
// AuditEvent: the BALP JSON (about 3.5 KB) is rendered from them when the
// log is read (Render), by the same build that wrote it before. The
// stored bytes are
//
//	0xA7 0x03 field... hash
//
// The fields are in a fixed order (encodeFields): a string as uvarint
// length and bytes, a number as uvarint, the time as varint Unix
// nanoseconds, the flags as one byte; fixed order and no optional parts
// make one Record give one byte string. (Compressing them with DEFLATE
// and a preset dictionary halved them again, to 472 bytes of database per
// record, but cost more CPU per audited request than the smaller pages
// saved: 163 → 176 µs per audited search, so they are stored as they are.)
// The chain link follows, raw rather than hex, as the last 32 bytes:
// this record's hash = SHA-256(previous hash || the bytes before the
// link), the same rule as for the JSON form (chain.go), so the hash
// covers the stored bytes and no re-encoding can break the chain.
//
// The previous hash is not stored: verification walks the log in order
// and has it from the record before, and because the hash covers it, a
// record removed, inserted or reordered still breaks the chain. What is
// lost is only telling that apart from an altered record, which both show
// as a hash that does not match (BrokenLinkError "hash or previous").
// Versions 1 and 2 stored it, and their trailer is
//
//	previous-hash hash n
//
// with n (last, so that the link is found from the end) the previous
// hash's length: 0 for the first record, else 32.
//
// The first byte tells the two forms apart: a JSON event starts with '{',
// so stores written before the compact form verify and read unchanged,
// record by record, and go on in the compact form.
const (
	compactMagic = 0xA7
	// compactVersion is what Compact writes. Version 1 stored every field
	// as a string; version 2 stores a value of the fixed vocabularies as
	// its position in compactWords; version 3 drops the previous hash from
	// the trailer, stores the issuer as a word and not at all when it is
	// the server; version 4 adds the source system (nhn-source-system),
	// flagged, after the documents. All four are read.
	compactVersion = 4
)

// flag bits of the compact form.
const (
	flagRefused = 1 << iota
	flagOpenedRestricted
	flagEmergency
	flagClaimed
	// flagRequestID: the event id is the request id, "-" and the stored
	// suffix (the REST layer's ids are), not stored whole.
	flagRequestID
	// flagIssuerIsServer (version 3): the token issuer is this server, as
	// for every token of its own SMART server, and is not stored twice.
	flagIssuerIsServer
	// flagSourceSystem (version 4): the record names the requesting
	// system's source system, stored as the last field. Unflagged, none
	// is stored, so a record without one costs no byte more than in
	// version 3.
	flagSourceSystem
)

// knownFlags are the flag bits a version may set; any other is refused, so
// that no bit can hide in a record or change its meaning in a later build.
func knownFlags(version byte) byte {
	const v2 = flagRefused | flagOpenedRestricted | flagEmergency | flagClaimed | flagRequestID
	switch {
	case version >= 4:
		return v2 | flagIssuerIsServer | flagSourceSystem
	case version == 3:
		return v2 | flagIssuerIsServer
	}
	return v2
}

// hasPrevious reports whether records of a version store the previous
// hash in their trailer.
func hasPrevious(version byte) bool { return version == 1 || version == 2 }

// Compact encodes the record for storage: one stored form per patient, as
// Events renders one AuditEvent per patient. The ids follow Events.
func Compact(r Record) [][]byte {
	ps := uniquePatients(r.Patients)
	if len(ps) <= 1 {
		return [][]byte{encodeCompact(&r, first(ps), eventID(r.ID, 0))}
	}
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = encodeCompact(&r, p, eventID(r.ID, i))
	}
	return out
}

func first(ps []string) string {
	if len(ps) == 0 {
		return ""
	}
	return ps[0]
}

func encodeCompact(r *Record, patient, id string) []byte {
	return encodeFields(append(make([]byte, 0, 400+len(r.Query)+len(r.Outcome.Message)+len(r.Documents)*64),
		compactMagic, compactVersion), r, patient, id)
}

// encodeFields appends the fields in their fixed order to b.
func encodeFields(b []byte, r *Record, patient, id string) []byte {
	return encodeFieldsAs(b, r, patient, id, compactVersion)
}

// encodeFieldsAs writes the fields of a version: compactVersion, or an
// earlier one for tests of the reader.
func encodeFieldsAs(b []byte, r *Record, patient, id string, version byte) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	// word is a field of a fixed vocabulary: 2i+1 for compactWords[i],
	// else 2 × length and the bytes.
	words := wordsIn(version)
	word := func(s string) {
		if words == 0 {
			str(s)
			return
		}
		if i, ok := compactWordIndex[s]; ok && i < words {
			b = binary.AppendUvarint(b, uint64(2*i+1))
			return
		}
		b = binary.AppendUvarint(b, uint64(2*len(s)))
		b = append(b, s...)
	}
	var flags byte
	if suffix, ok := strings.CutPrefix(id, r.RequestID+"-"); ok && r.RequestID != "" {
		flags |= flagRequestID
		id = suffix
	}
	str(id)
	b = binary.AppendVarint(b, r.Time.UnixNano())
	str(r.RequestID)
	str(r.CorrelationID)
	str(r.Request)
	word(string(r.Interaction))
	word(r.ResourceType)
	str(r.ResourceID)
	str(r.VersionID)
	str(r.Operation)
	str(r.Query)
	str(patient)
	if r.Outcome.Refused {
		flags |= flagRefused
	}
	if r.OpenedRestricted {
		flags |= flagOpenedRestricted
	}
	if r.Emergency {
		flags |= flagEmergency
	}
	if r.Claimed != nil {
		flags |= flagClaimed
	}
	// With no server, an empty issuer is stored (one byte) and not
	// flagged: either would do, and one record has one byte string.
	issuerIsServer := version >= 3 && r.Issuer == r.Server && r.Issuer != ""
	if issuerIsServer {
		flags |= flagIssuerIsServer
	}
	// Versions before 4 have no place for a source system: a test that
	// writes one of them loses it, as those builds did.
	if version >= 4 && r.SourceSystem != "" {
		flags |= flagSourceSystem
	}
	b = append(b, flags)
	word(string(r.Outcome.Reason))
	word(r.Outcome.Message)
	b = binary.AppendUvarint(b, uint64(max(r.Outcome.HTTPStatus, 0)))
	word(string(r.User.Role))
	str(r.User.HPR)
	str(r.User.PID)
	str(r.User.Name)
	word(r.User.HPCategory)
	str(r.Org.LegalEntity)
	str(r.Org.LegalEntityName)
	str(r.Org.PointOfCare)
	str(r.Org.PointOfCareName)
	if r.Claimed != nil {
		str(r.Claimed.Subject)
		str(r.Claimed.ClientID)
		str(r.Claimed.Issuer)
		str(r.Claimed.HPR)
	}
	str(r.ClientID)
	switch {
	case version < 3:
		str(r.Issuer)
	case !issuerIsServer:
		word(r.Issuer)
	}
	word(r.PurposeOfUse)
	word(string(r.Basis))
	str(r.Server)
	b = binary.AppendUvarint(b, uint64(len(r.Documents)))
	for _, d := range r.Documents {
		str(d.ID)
		str(d.Source)
		str(d.SourceName)
	}
	if flags&flagSourceSystem != 0 {
		str(r.SourceSystem)
	}
	return b
}

// compactReader reads the fields in order; the first error sticks.
type compactReader struct {
	b     []byte
	i     int
	err   error
	words int // wordsIn of the record's version: how many words it knows
}

func newCompactReader(b []byte, version byte) *compactReader {
	return &compactReader{b: b, words: wordsIn(version)}
}

func (c *compactReader) fail(what string) {
	if c.err == nil {
		c.err = fmt.Errorf("audit: compact record: cannot read %s at byte %d", what, c.i)
	}
}

func (c *compactReader) uvarint(what string) uint64 {
	if c.err != nil {
		return 0
	}
	v, n := binary.Uvarint(c.b[c.i:])
	if n <= 0 {
		c.fail(what)
		return 0
	}
	c.i += n
	return v
}

func (c *compactReader) varint(what string) int64 {
	if c.err != nil {
		return 0
	}
	v, n := binary.Varint(c.b[c.i:])
	if n <= 0 {
		c.fail(what)
		return 0
	}
	c.i += n
	return v
}

func (c *compactReader) str(what string) string {
	n := c.uvarint(what)
	if c.err != nil {
		return ""
	}
	return c.take(n, what)
}

// take reads the n bytes of a string whose length was just read.
func (c *compactReader) take(n uint64, what string) string {
	if n > uint64(len(c.b)-c.i) {
		c.fail(what)
		return ""
	}
	s := string(c.b[c.i : c.i+int(n)])
	c.i += int(n)
	return s
}

// word reads a field of a fixed vocabulary: from version 2 on its position
// in the version's words, or the string where it is none of them (a
// string that is one of them is not the canonical form, and refused); in
// version 1 a plain string.
func (c *compactReader) word(what string) string {
	if c.words == 0 {
		return c.str(what)
	}
	v := c.uvarint(what)
	if c.err != nil {
		return ""
	}
	if v&1 == 1 {
		if v>>1 >= uint64(c.words) {
			c.fail(what + " (no such word)")
			return ""
		}
		return compactWords[v>>1]
	}
	s := c.take(v>>1, what)
	if c.err != nil {
		return ""
	}
	if i, known := compactWordIndex[s]; known && i < c.words {
		c.fail(what + " (a known word spelled out)")
		return ""
	}
	return s
}

func (c *compactReader) byte1(what string) byte {
	if c.err != nil {
		return 0
	}
	if c.i >= len(c.b) {
		c.fail(what)
		return 0
	}
	v := c.b[c.i]
	c.i++
	return v
}

// decodeCompact reads an unlinked compact record (header and fields) and
// returns the record (its one patient in Patients) and the event id.
func decodeCompact(b []byte) (Record, string, error) {
	if len(b) < 2 || b[0] != compactMagic {
		return Record{}, "", errors.New("audit: not a compact record")
	}
	if b[1] < 1 || b[1] > compactVersion {
		return Record{}, "", fmt.Errorf("audit: compact record version %d is unknown", b[1])
	}
	return decodeFieldsOf(b[2:], b[1])
}

// decodeFields reads the fields of the current version; they must end
// exactly where b ends.
func decodeFields(b []byte) (Record, string, error) {
	return decodeFieldsOf(b, compactVersion)
}

// decodeFieldsOf reads the fields of a record of the given version.
func decodeFieldsOf(b []byte, version byte) (Record, string, error) {
	c := newCompactReader(b, version)
	var r Record
	id := c.str("id")
	r.ID = id
	r.Time = time.Unix(0, c.varint("time")).UTC()
	r.RequestID = c.str("request id")
	r.CorrelationID = c.str("correlation id")
	r.Request = c.str("request")
	r.Interaction = Interaction(c.word("interaction"))
	r.ResourceType = c.word("resource type")
	r.ResourceID = c.str("resource id")
	r.VersionID = c.str("version")
	r.Operation = c.str("operation")
	r.Query = c.str("query")
	if p := c.str("patient"); p != "" {
		r.Patients = []string{p}
	}
	flags := c.byte1("flags")
	if flags&flagRequestID != 0 {
		if r.RequestID == "" {
			c.fail("id (a suffix of no request id)")
		}
		id = r.RequestID + "-" + id
		r.ID = id
	}
	r.Outcome.Refused = flags&flagRefused != 0
	r.OpenedRestricted = flags&flagOpenedRestricted != 0
	r.Emergency = flags&flagEmergency != 0
	r.Outcome.Reason = access.Reason(c.word("reason"))
	r.Outcome.Message = c.word("message")
	r.Outcome.HTTPStatus = int(c.uvarint("status"))
	r.User = User{Role: access.Role(c.word("role")), HPR: c.str("HPR number"), PID: c.str("person number"),
		Name: c.str("name"), HPCategory: c.word("HP category")}
	r.Org = Organisation{LegalEntity: c.str("legal entity"), LegalEntityName: c.str("legal entity name"),
		PointOfCare: c.str("point of care"), PointOfCareName: c.str("point of care name")}
	if flags&flagClaimed != 0 {
		r.Claimed = &Claimed{Subject: c.str("claimed subject"), ClientID: c.str("claimed client"),
			Issuer: c.str("claimed issuer"), HPR: c.str("claimed HPR number")}
	}
	r.ClientID = c.str("client id")
	switch {
	case version < 3:
		r.Issuer = c.str("issuer")
	case flags&flagIssuerIsServer == 0:
		r.Issuer = c.word("issuer")
	}
	r.PurposeOfUse = c.word("purpose of use")
	r.Basis = access.Basis(c.word("basis"))
	r.Server = c.str("server")
	// The flag and an issuer stored equal to the server would be two byte
	// strings for one record: only the one encodeFieldsAs writes is read.
	if version >= 3 && flags&flagIssuerIsServer != 0 {
		if r.Server == "" {
			c.fail("issuer (said to be the server, which has no name)")
		}
		r.Issuer = r.Server
	} else if version >= 3 && r.Issuer != "" && r.Issuer == r.Server {
		c.fail("issuer (the server's name stored again, not flagged)")
	}
	n := c.uvarint("document count")
	if c.err == nil && n > uint64(len(b)) {
		c.fail("document count")
	}
	for k := uint64(0); k < n && c.err == nil; k++ {
		r.Documents = append(r.Documents, Document{ID: c.str("document id"), Source: c.str("document source"),
			SourceName: c.str("document source name")})
	}
	if version >= 4 && flags&flagSourceSystem != 0 {
		// Flagged and empty would be a second byte string for a record
		// without one: only the one encodeFieldsAs writes is read.
		if r.SourceSystem = c.str("source system"); r.SourceSystem == "" {
			c.fail("source system (flagged, but empty)")
		}
	}
	if flags&^knownFlags(version) != 0 {
		c.fail("flags (unknown bits)")
	}
	if c.err == nil && c.i != len(b) {
		c.fail("the end (bytes after the last field)")
	}
	return r, id, c.err
}

// linkCompact appends the chain trailer to an unlinked compact record:
// the one of the record's version, so that verification, which links a
// stored record's bytes again to compare, finds older records canonical.
func linkCompact(prevRaw []byte, rec []byte) ([]byte, string) {
	sum := digest(prevRaw, rec)
	if len(rec) < 2 || !hasPrevious(rec[1]) {
		out := make([]byte, 0, len(rec)+sha256.Size)
		out = append(out, rec...)
		return append(out, sum[:]...), hex.EncodeToString(sum[:])
	}
	out := make([]byte, 0, len(rec)+len(prevRaw)+sha256.Size+1)
	out = append(out, rec...)
	out = append(out, prevRaw...)
	out = append(out, sum[:]...)
	out = append(out, byte(len(prevRaw)))
	return out, hex.EncodeToString(sum[:])
}

// readCompactLink splits a stored compact record into its record and its
// link; the trailer must be exactly what linkCompact writes. A record of
// version 3 has no previous hash to give (link.prevUnknown).
func readCompactLink(stored []byte) (Record, string, link, error) {
	if len(stored) >= 2 && !hasPrevious(stored[1]) {
		end := len(stored) - sha256.Size
		if end < 2 {
			return Record{}, "", link{}, errors.New("no chain link")
		}
		r, id, err := decodeCompact(stored[:end])
		if err != nil {
			return r, id, link{}, err
		}
		return r, id, link{hash: hex.EncodeToString(stored[end:]), canonical: stored[:end], prevUnknown: true}, nil
	}
	if len(stored) < 3+sha256.Size {
		return Record{}, "", link{}, errors.New("no chain link")
	}
	n := int(stored[len(stored)-1])
	end := len(stored) - 1 - sha256.Size - n
	if n != 0 && n != sha256.Size || end < 2 {
		return Record{}, "", link{}, errors.New("the chain link is not in its canonical form")
	}
	r, id, err := decodeCompact(stored[:end])
	if err != nil {
		return r, id, link{}, err
	}
	l := link{hash: hex.EncodeToString(stored[end+n : len(stored)-1]), canonical: stored[:end]}
	if n > 0 {
		l.prev = hex.EncodeToString(stored[end : end+n])
	}
	return r, id, l, nil
}

// IsCompact reports whether a stored record is in the compact form.
func IsCompact(stored []byte) bool { return len(stored) > 0 && stored[0] == compactMagic }

// Render returns the AuditEvent of a stored record: a compact record is
// rendered (BALP, with its chain link as the ExtChain extension, exactly
// as the JSON form stores it), a JSON record is returned as it is. A
// record of version 3 does not store the previous hash, so its extension
// carries only "hash", no "previous": the event names the record's hash,
// and `audit verify` checks the chain over the stored form, where that
// hash covers the previous one.
func Render(stored []byte) ([]byte, error) {
	if !IsCompact(stored) {
		return stored, nil
	}
	r, id, l, err := readCompactLink(stored)
	if err != nil {
		return nil, err
	}
	ev := build(&r, r.Patients, id)
	loc, err := locate(ev)
	if err != nil {
		return nil, err
	}
	return insertLink(ev, loc, l.prev, l.hash), nil
}

// storedID is the AuditEvent id of a stored record of either form.
func storedID(stored []byte) string {
	if IsCompact(stored) {
		_, id, _, _ := readCompactLink(stored)
		return id
	}
	return EventID(stored)
}
