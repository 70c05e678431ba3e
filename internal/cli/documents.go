package cli

import (
	"crypto/rand"
	"fmt"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/source"
)

// docFlags configure the journal documents from the source hospitals and
// the lab results from the lab sources.
type docFlags struct {
	sources          *string
	defaultRegion    *string
	labWindowYears   *int
	labFollowsVisits *bool
}

func addDocFlags(fs *flagSet) docFlags {
	return docFlags{
		sources:       fs.String("sources", "", "sources of journal documents and lab results (JSON registry, e.g. testdata/sources/sources.json); empty: neither"),
		defaultRegion: fs.String("default-region", "", "health region of requesters whose organisation is not a known hospital (e.g. helse-sor-ost), for sources that share by region"),
		labWindowYears: fs.Int("lab-window-years", access.DefaultLabWindowYears(),
			"lab results older than this many years are not shown (the regulation's period for test results); 0 shows them whatever their age"),
		labFollowsVisits: fs.Bool("lab-follows-visit-history", false,
			"a patient who restricted the visit history has no lab results available either, whatever the access basis (as for documents)"),
	}
}

// setup builds the federation; nil when no sources are configured.
func (f docFlags) setup(base string) (*documents.Federation, *documents.Signer, func(string) string, error) {
	if *f.sources == "" {
		return nil, nil, nil, nil
	}
	srcs, err := documents.LoadSources(*f.sources)
	if err != nil {
		return nil, nil, nil, err
	}
	// The assertion key and the URL token key live as long as the process:
	// sources fetch the public key from /jwks, and document URLs are short-lived.
	signer, err := documents.GenerateSigner(base)
	if err != nil {
		return nil, nil, nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, nil, err
	}
	window := *f.labWindowYears
	switch {
	case window < 0:
		return nil, nil, nil, fmt.Errorf("--lab-window-years must be 0 (no window) or more, not %d", window)
	case window == 0:
		window = -1 // documents.Config: no window
	}
	fed, err := documents.New(documents.Config{Sources: srcs, Signer: signer, BaseURL: base, TokenKey: key, LabWindowYears: window})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--sources: %w", err)
	}
	regions := map[string]string{}
	for _, h := range source.Hospitals() {
		regions[h.Number] = documents.NormaliseRegion(h.Region)
	}
	for _, s := range srcs {
		regions[s.Organisation] = documents.NormaliseRegion(s.Region)
	}
	def := documents.NormaliseRegion(*f.defaultRegion)
	regionOf := func(org string) string {
		if r, ok := regions[org]; ok {
			return r
		}
		return def
	}
	return fed, signer, regionOf, nil
}
