package source

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/seed"
)

// Listing is a JSON listing of a source's documents: what
// testdata/sources holds, so that a reader can see what the development
// sources serve without running them.
type Listing struct {
	Comment        string       `json:"comment"`
	Source         Organisation `json:"source"`
	Seed           int64        `json:"seed"`
	Patients       int          `json:"patients"`
	DocsPerPatient int          `json:"docsPerPatient"`
	Base           time.Time    `json:"base"`
	Documents      []Document   `json:"documents"`
}

// SampleSources are the two sources `make run` starts: one hospital in
// Helse Sør-Øst and one in Helse Nord, so that documents cross regions.
var SampleSources = []string{"Oslo universitetssykehus HF", "Nordlandssykehuset HF"}

// Sample sizes: a few documents per region keep the listings small.
const (
	sampleSeed     = 1
	samplePatients = 2
	sampleDocs     = 6
)

// SampleListings generates the listings of testdata/sources, keyed by file
// name (the region's, e.g. helse-nord.json).
func SampleListings() (map[string][]byte, error) {
	patients, err := SeedPatients(sampleSeed, samplePatients)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, name := range SampleSources {
		org, ok := HospitalByName(name)
		if !ok {
			return nil, fmt.Errorf("source: no hospital %q in the seed", name)
		}
		l := Listing{
			Comment:        "Synthetic documents for the first demo patients of the seed and the demo citizen (seed.CitizenPatientID); regenerate with `go generate ./internal/source` (kjsource generate).",
			Source:         org,
			Seed:           sampleSeed,
			Patients:       samplePatients,
			DocsPerPatient: sampleDocs,
			Base:           seed.DefaultBase,
			Documents:      GenerateAt(seed.DefaultBase, sampleSeed, patients, org, sampleDocs),
		}
		b, err := json.MarshalIndent(l, "", "  ")
		if err != nil {
			return nil, err
		}
		out[slug(org.Region)+".json"] = append(b, '\n')
	}
	return out, nil
}

// WriteSamples writes SampleListings into dir.
func WriteSamples(dir string) ([]string, error) {
	files, err := SampleListings()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

// slug turns a region name into a file name: "Helse Sør-Øst" -> "helse-sor-ost".
func slug(s string) string {
	return strings.NewReplacer(" ", "-", "ø", "o", "å", "a", "æ", "ae").Replace(strings.ToLower(s))
}
