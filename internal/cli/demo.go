package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// demoFileName is where `serve --demo-patients` lists the demo patients,
// inside --data-dir: a search across patients is refused by law, so this
// file is how a newcomer finds the others.
const demoFileName = "demo-patients.tsv"

// demoPatients makes sure the restricted demo patient's restriction is
// stored (a store seeded before it existed gets it on the next start) and
// returns every demo patient, the starting points first: the demo citizen
// (richDemoPatient) and the restricted one.
func demoPatients(ctx context.Context, st store.Store, codec *fhir.Codec, rs int64, n int) ([]seed.Summary, error) {
	restricted, ok := seed.RestrictedDemo(rs, n)
	var sum seed.Summary
	if ok {
		sum = seed.Summarize(restricted)
		r := demoRestriction(sum.ID)
		if _, err := st.Read(ctx, "Consent", r.ID); errors.Is(err, store.ErrNotFound) {
			if err := storeResource(ctx, st, codec, r.Consent()); err != nil {
				return nil, fmt.Errorf("restriction of demo patient %s: %w", sum.ID, err)
			}
		} else if err != nil {
			return nil, err
		}
		for _, sec := range r.Sections {
			sum.Restricted = append(sum.Restricted, string(sec))
		}
	}
	out := []seed.Summary{seed.Summarize(seed.CitizenRecord())}
	if ok {
		out = append(out, sum)
	}
	for _, rec := range seed.Generate(rs, n) {
		if s := seed.Summarize(rec); s.ID != sum.ID {
			out = append(out, s)
		}
	}
	return out, nil
}

// demoRestriction is the privacy setting the restricted demo patient
// has: her medications restricted (sperring), as she would set it, dated
// back from the seed's base date. The README shows that search coming back
// empty with one access basis and full with an elevated one. The id is
// fixed, so storing it twice is one resource.
func demoRestriction(patient string) privacy.Setting {
	return privacy.Setting{ID: patient + "-restriction", Patient: patient, Kind: privacy.Restriction, Active: true,
		Sections: []access.Section{access.Medications}, Since: seed.DefaultBase.AddDate(0, -2, -3).Add(19 * time.Hour)}
}

func storeResource(ctx context.Context, st store.Store, codec *fhir.Codec, body []byte) error {
	prep, err := preparer(codec)
	if err != nil {
		return err
	}
	res, err := codec.Parse(body)
	if err != nil {
		return err
	}
	w, err := prep.Write(res, 0, false)
	if err != nil {
		return err
	}
	_, err = st.Commit(ctx, store.Batch{Writes: []store.Write{w}})
	return err
}

// writeDemoFile lists the demo patients, one a line, tab-separated, with
// a header line; docs are the names of the source hospitals that hold
// their documents and labs those of the lab sources with their results
// (every demo patient has documents and results at each).
func writeDemoFile(path string, list []seed.Summary, docs, labs []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id\tperson_number\tname\tcritical_information\tmedications\tvisits\tdocuments_at\tlab_results_at\trestricted")
	orNone := func(names []string) string {
		if len(names) == 0 {
			return "-"
		}
		return strings.Join(names, ",")
	}
	for _, s := range list {
		restricted := strings.Join(s.Restricted, ",")
		if restricted == "" {
			restricted = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.ID, s.PersonNumber, s.Name, s.Critical, s.Medications, s.Visits, orNone(docs), orNone(labs), restricted)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// announceDemo names the file and prints the starting points and the
// commands to try next, with the address the server listens on.
func announceDemo(w io.Writer, list []seed.Summary, file string, docs, labs []string, addr string) {
	if file != "" {
		fmt.Fprintf(w, "demo patients: %d, every one listed in %s (id, person number, name, what the record holds)\n", len(list), file)
	} else {
		fmt.Fprintf(w, "demo patients: %d\n", len(list))
	}
	fmt.Fprintln(w, "good starting points:")
	for _, s := range list[:min(2, len(list))] {
		parts := []string{
			fmt.Sprintf("%d critical information", s.Critical),
			count(s.Medications, "medication", "medications"),
			count(s.Visits, "visit", "visits"),
		}
		if len(docs) > 0 {
			parts = append(parts, "documents at "+strings.Join(docs, ", "))
		}
		if len(labs) > 0 {
			parts = append(parts, "lab results at "+strings.Join(labs, ", "))
		}
		if len(s.Restricted) > 0 {
			parts = append(parts, "restricted: "+strings.Join(s.Restricted, ", "))
		}
		fmt.Fprintf(w, "  %s  %s, person number %s: %s\n", s.ID, s.Name, s.PersonNumber, strings.Join(parts, ", "))
	}
	prog := "kjernejournal"
	if filepath.Base(os.Args[0]) == prog {
		prog = os.Args[0]
	}
	at := ""
	if addr != defaultAddr {
		at = " --addr " + addr
	}
	first := list[0].ID
	fmt.Fprintf(w, "try (in another terminal):\n  TOKEN=$(%s token%s --as hospital-doctor --patient %s)\n", prog, at, first)
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $TOKEN\" -H \"nhn-access-basis: SAMTYKKE\" \"http://%s/MedicationStatement?patient=%s\"\n", addr, first)
}

// defaultAddr is where serve listens, and token's issuer points, unless
// told otherwise.
const defaultAddr = "127.0.0.1:8080"

// count is n with the noun in the number it takes.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
