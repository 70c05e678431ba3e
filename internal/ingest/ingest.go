// Package ingest turns a validated resource into the store.Write that
// stores it. It is the one place that decides what a stored version
// carries besides its JSON: the patient it belongs to, its search index
// (extracted here, once, at write time) and its business identifiers
// (which the store keeps looked up for FindByIdentifier). The REST layer
// and the bulk loader both write through it, so a resource stored either
// way is indexed the same way.
package ingest

import (
	"errors"
	"fmt"
	"github.com/kjernejournal/kjernejournal/fhir/fhirpath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/profile"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Preparer builds writes. Both fields are required; it is safe for
// concurrent use.
type Preparer struct {
	Codec  *fhir.Codec
	Search *search.Registry
}

// Write returns the put of res (already parsed, validated and given its
// id): the JSON as fhir.Codec.Marshal prints it, stamped with
// meta.versionId and meta.lastUpdated by fhir.WithMeta inside the commit;
// Patient from res; Index, the binary search index extracted from that
// JSON (without meta.lastUpdated, which the store only decides in the
// commit: readers add it from Version.LastUpdated with
// search.Index.SetLastUpdated); and Identifiers from the resource's
// identifier element.
func (p *Preparer) Write(res *fhir.Resource, ifMatch int64, create bool) (store.Write, error) {
	if p == nil || p.Codec == nil || p.Search == nil {
		return store.Write{}, errors.New("ingest: Preparer needs a Codec and a search Registry")
	}
	// A type with a kjernejournal profile declares it, whoever wrote it.
	// Where the profile follows from the content (which Condition, and
	// whether a Consent is critical information), the printed JSON says
	// which, and is printed again with it.
	var stored []byte
	var err error
	switch res.Type {
	case "Condition", "Consent":
		if stored, err = p.Codec.Marshal(res); err != nil {
			return store.Write{}, fmt.Errorf("ingest: print %s/%s: %w", res.Type, res.ID, err)
		}
		if want, ok := profile.URLOf(res.Type, stored); ok {
			profile.DeclareAs(res, want)
			stored = nil
		}
	default:
		if _, ok := profile.URL(res.Type); ok {
			if err := profile.Declare(res); err != nil {
				return store.Write{}, fmt.Errorf("ingest: profile of %s/%s: %w", res.Type, res.ID, err)
			}
		}
	}
	if stored == nil {
		if stored, err = p.Codec.Marshal(res); err != nil {
			return store.Write{}, fmt.Errorf("ingest: print %s/%s: %w", res.Type, res.ID, err)
		}
	}
	return p.write(res, stored, ifMatch, create)
}

// WritePrinted is Write for a resource whose JSON the caller already has
// exactly as Codec.Marshal prints it (resourceType and id first, then the
// members in alphabetical order, no HTML escaping): the seed generator
// writes its JSON that way (TestSeedJSONIsPrinted holds it to Write), and
// skipping the second print spares a bulk load a fifth of its CPU. A type
// that declares a kjernejournal profile goes through Write all the same:
// its stored JSON names the profile, which printed does not.
func (p *Preparer) WritePrinted(res *fhir.Resource, printed []byte, ifMatch int64, create bool) (store.Write, error) {
	if _, ok := profile.URL(res.Type); ok || res.Type == "Condition" || res.Type == "Consent" {
		return p.Write(res, ifMatch, create)
	}
	if p == nil || p.Codec == nil || p.Search == nil {
		return store.Write{}, errors.New("ingest: Preparer needs a Codec and a search Registry")
	}
	return p.write(res, printed, ifMatch, create)
}

// write is the put of res whose printed JSON is stored.
func (p *Preparer) write(res *fhir.Resource, stored []byte, ifMatch int64, create bool) (store.Write, error) {
	// Decoded once for the index and the identifiers (every write).
	root, err := fhirpath.DecodeJSON(stored)
	if err != nil {
		return store.Write{}, fmt.Errorf("ingest: read %s/%s back: %w", res.Type, res.ID, err)
	}
	idx, err := p.Search.ExtractDecoded(res.Type, root)
	if err != nil {
		return store.Write{}, fmt.Errorf("ingest: index %s/%s: %w", res.Type, res.ID, err)
	}
	bin, err := idx.MarshalBinary()
	if err != nil {
		return store.Write{}, fmt.Errorf("ingest: index %s/%s: %w", res.Type, res.ID, err)
	}
	idents, err := identifiersOf(root["identifier"])
	if err != nil {
		return store.Write{}, fmt.Errorf("ingest: identifiers of %s/%s: %w", res.Type, res.ID, err)
	}
	return store.Write{
		Type: res.Type, ID: res.ID, Op: store.OpPut, Patient: res.Patient,
		IfMatch: ifMatch, Create: create,
		Render:      func(v int64, t time.Time) ([]byte, error) { return fhir.WithMeta(stored, v, t) },
		Index:       bin,
		Identifiers: idents,
	}, nil
}

// IdentifierKey is the form the store keeps an identifier in, and looks
// it up by: "system|value", "|value" for an identifier without a system.
func IdentifierKey(system, value string) string { return system + "|" + value }

// Identifiers returns the keys (IdentifierKey) of the identifier element
// at the top of a resource's JSON (a list, or for the few types where it
// is single, one object), sorted and without duplicates. An identifier
// without a value is left out, and so is one no search could name: longer
// than search.MaxValueLength or holding control characters, which the
// query parser refuses anyway.
func Identifiers(resourceJSON []byte) ([]string, error) {
	root, err := fhirpath.DecodeJSON(resourceJSON)
	if err != nil {
		return nil, err
	}
	return identifiersOf(root["identifier"])
}

// identifiersOf is Identifiers of the identifier element of a resource
// decoded with fhirpath.DecodeJSON (an object or a list of them).
func identifiersOf(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok && v != nil {
		list = []any{v}
	}
	var out []string
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("an identifier is a JSON %T, not an object", e)
		}
		value, _ := m["value"].(string)
		if value == "" {
			continue
		}
		system, _ := m["system"].(string)
		if k := IdentifierKey(system, value); len(k) <= search.MaxValueLength && strings.IndexFunc(k, unicode.IsControl) < 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
