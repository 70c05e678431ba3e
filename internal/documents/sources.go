package documents

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

// Code systems of the contract.
const (
	// Blocked is the 9603 code of documents that are never shown.
	Blocked = "NORS"
)

// Regions are the four regional health authorities. A requester's region
// and a source's region and shares_with.regions use these codes; the
// written names ("Helse Sør-Øst", as internal/source spells them) are
// accepted too and normalised by NormaliseRegion.
var Regions = []string{"helse-sor-ost", "helse-vest", "helse-midt-norge", "helse-nord"}

var regionFold = strings.NewReplacer(" ", "-", "ø", "o", "Ø", "o", "å", "a", "Å", "a", "æ", "ae", "Æ", "ae")

// NormaliseRegion maps "Helse Sør-Øst" and "helse-sor-ost" to the code
// "helse-sor-ost"; other strings come back folded the same way (and are
// then not in Regions).
func NormaliseRegion(s string) string {
	return strings.ToLower(regionFold.Replace(strings.TrimSpace(s)))
}

// Groups lists the shown document groups in a stable order (the access
// rules decide which groups are shown, and for how long).
func Groups() []string { return access.DocumentGroups() }

// typeCodeRe is the shape of 9602 codes as used in production: a letter
// and two digits (A00 is a group, A01 a type) with an optional "-n" below
// it (A01-1, J01-2).
var typeCodeRe = regexp.MustCompile(`^[A-Z][0-9]{2}(-[0-9]{1,3})?$`)

// GroupOf returns the group of a 9602 code: its letter followed by "00"
// (A01-1 -> A00; a group is its own group). "" if code is not a 9602 code.
func GroupOf(code string) string {
	if !typeCodeRe.MatchString(code) {
		return ""
	}
	return code[:1] + "00"
}

// Kinds of source.
const (
	// KindDocuments is a source hospital's document endpoint (IHE MHD
	// style DocumentReference search and Binary retrieval).
	KindDocuments = "documents"
	// KindLab is a lab result service (prøvesvar: DiagnosticReport and
	// Observation searches for one patient, in the style of the national
	// service Pasientens prøvesvar).
	KindLab = "lab"
)

// Source is one source's endpoint and its sharing policy: a source
// hospital's documents, or a laboratory's results.
type Source struct {
	// Name identifies the source in configuration, tokens, outcomes and
	// logs: lower-case letters, digits and '-', at most 40 characters.
	Name string `json:"name"`
	// Kind is KindDocuments (the default) or KindLab.
	Kind string `json:"kind,omitempty"`
	// DisplayName is the hospital's name as shown to users.
	DisplayName string `json:"display_name,omitempty"`
	// Organisation is the hospital's organisation number (9 digits).
	Organisation string `json:"organisation"`
	// Region is one of Regions.
	Region string `json:"region"`
	// BaseURL is the FHIR base of the document endpoint. https, or http
	// on a loopback host (development).
	BaseURL string `json:"base_url"`
	// SharedTypes are the 9602 codes (A01-1) or whole groups (A00) a
	// document source shares. Must not be empty for a document source; a
	// lab source shares its results as a whole and has none.
	SharedTypes []string `json:"shared_types"`
	// SharesWith names who may see the shared documents.
	SharesWith SharesWith `json:"shares_with"`
}

// SharesWith lists organisation numbers and regions; at least one entry.
type SharesWith struct {
	Organisations []string `json:"organisations,omitempty"`
	Regions       []string `json:"regions,omitempty"`
}

// kind is Kind with its default.
func (s Source) kind() string { return cmp.Or(s.Kind, KindDocuments) }

// Label is how the source is named to users and in outcomes.
func (s Source) Label() string {
	if s.DisplayName != "" {
		return fmt.Sprintf("%s (%s)", s.DisplayName, s.Name)
	}
	return s.Name
}

// sharing is the source's policy as the access rules read it.
func (s Source) sharing() access.Sharing {
	return access.Sharing{Types: s.SharedTypes, Organisations: s.SharesWith.Organisations, Regions: s.SharesWith.Regions}
}

// SharesWithRequester reports whether the source shares documents with the
// requester's organisation or region.
func (s Source) SharesWithRequester(r Requester) bool {
	return s.sharing().SharesWith(r.Org, NormaliseRegion(r.Region))
}

// SharesType reports whether the source shares documents of the 9602 code.
func (s Source) SharesType(code string) bool { return s.sharing().SharesType(code, GroupOf(code)) }

type sourcesFile struct {
	Sources []Source `json:"sources"`
}

// LoadSources reads and validates the source registry, a JSON file
// {"sources": [ {name, display_name, organisation, region, base_url,
// shared_types, shares_with: {organisations, regions}} ]}. Unknown fields
// are errors (a misspelt "shares_with" must not silently share nothing or
// everything). Errors name the entry and the field.
func LoadSources(path string) ([]Source, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("documents: sources: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f sourcesFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("documents: sources %s: %w", path, err)
	}
	if err := ValidateSources(f.Sources); err != nil {
		return nil, fmt.Errorf("documents: sources %s: %w", path, err)
	}
	return normalise(f.Sources), nil
}

// normalise returns copies with trimmed base URLs and region codes.
func normalise(list []Source) []Source {
	out := make([]Source, len(list))
	for i, s := range list {
		s.BaseURL = strings.TrimRight(s.BaseURL, "/")
		s.Region = NormaliseRegion(s.Region)
		regions := make([]string, len(s.SharesWith.Regions))
		for j, r := range s.SharesWith.Regions {
			regions[j] = NormaliseRegion(r)
		}
		s.SharesWith.Regions = regions
		s.SharedTypes = slices.Clone(s.SharedTypes)
		s.SharesWith.Organisations = slices.Clone(s.SharesWith.Organisations)
		out[i] = s
	}
	return out
}

var (
	nameRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	orgNoRe = regexp.MustCompile(`^[0-9]{9}$`)
)

// ValidateSources checks a registry; all problems are reported at once,
// each naming the entry and field.
func ValidateSources(list []Source) error {
	var errs []error
	if len(list) == 0 {
		errs = append(errs, errors.New("sources: the list is empty"))
	}
	names := map[string]int{}
	bases := map[string]int{}
	for i, s := range list {
		at := fmt.Sprintf("sources[%d]", i)
		if s.Name != "" {
			at = fmt.Sprintf("sources[%d] (%s)", i, s.Name)
		}
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s.%s: %s", at, field, fmt.Sprintf(format, args...)))
		}
		switch {
		case s.Name == "":
			bad("name", "missing")
		case !nameRe.MatchString(s.Name):
			bad("name", "%q: use lower-case letters, digits and '-', at most 40 characters", s.Name)
		default:
			if j, dup := names[s.Name]; dup {
				bad("name", "%q is also the name of sources[%d]", s.Name, j)
			} else {
				names[s.Name] = i
			}
		}
		if !orgNoRe.MatchString(s.Organisation) {
			bad("organisation", "%q is not an organisation number (9 digits)", s.Organisation)
		}
		if !slices.Contains(Regions, NormaliseRegion(s.Region)) {
			bad("region", "%q is not a health region (one of %s)", s.Region, strings.Join(Regions, ", "))
		}
		if err := checkBaseURL(s.BaseURL); err != nil {
			bad("base_url", "%v", err)
		} else {
			b := strings.TrimRight(s.BaseURL, "/")
			if j, dup := bases[b]; dup {
				bad("base_url", "%s is also the base URL of sources[%d]", b, j)
			} else {
				bases[b] = i
			}
		}
		switch s.kind() {
		case KindDocuments:
			if len(s.SharedTypes) == 0 {
				bad("shared_types", "empty: list the 9602 codes or groups the source shares (e.g. \"A00\")")
			}
		case KindLab:
			if len(s.SharedTypes) > 0 {
				bad("shared_types", "a lab source shares its results as a whole: shared_types names document types, leave it out")
			}
		default:
			bad("kind", "%q is not a kind of source (%s or %s)", s.Kind, KindDocuments, KindLab)
		}
		for j, t := range s.SharedTypes {
			g := GroupOf(t)
			switch {
			case g == "":
				bad(fmt.Sprintf("shared_types[%d]", j), "%q is not a 9602 code (e.g. A01-1, or the group A00)", t)
			case !slices.Contains(Groups(), g):
				bad(fmt.Sprintf("shared_types[%d]", j), "%q: unknown document group %s (kjernejournal shows the groups %s)", t, g, strings.Join(Groups(), ", "))
			}
		}
		if len(s.SharesWith.Organisations) == 0 && len(s.SharesWith.Regions) == 0 {
			bad("shares_with", "empty: name at least one organisation number or region")
		}
		for j, o := range s.SharesWith.Organisations {
			if !orgNoRe.MatchString(o) {
				bad(fmt.Sprintf("shares_with.organisations[%d]", j), "%q is not an organisation number (9 digits)", o)
			}
		}
		for j, r := range s.SharesWith.Regions {
			if !slices.Contains(Regions, NormaliseRegion(r)) {
				bad(fmt.Sprintf("shares_with.regions[%d]", j), "%q is not a health region (one of %s)", r, strings.Join(Regions, ", "))
			}
		}
	}
	return errors.Join(errs...)
}

// checkBaseURL accepts an absolute https URL, or http on a loopback host:
// the assertion and the health data travel on this connection, so plain
// http is for development only.
func checkBaseURL(raw string) error {
	if raw == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %v", raw, err)
	}
	if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: no user info, query or fragment in a base URL", raw)
	}
	if u.Scheme == "http" && !loopback.Host(u.Hostname()) {
		return fmt.Errorf("%q: plain http only on a loopback host (development); use https", raw)
	}
	return nil
}

// durationOr returns d, or def when d is not positive.
func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
