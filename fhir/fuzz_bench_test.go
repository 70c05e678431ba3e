package fhir_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
)

func seedBodies(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"resourceType":"Flag",`, `{"resourceType":"Bogus"}`,
		`{"resourceType":"Patient","active":"yes"}`,
		`{"resourceType":"Flag","status":"bogus","code":{"text":"x"},"subject":{"reference":"Patient/1"}}`,
		`{"resourceType":"AllergyIntolerance","patient":{"reference":"Practitioner/1"}}`,
		`{"resourceType":"AllergyIntolerance","patient":{"reference":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}}`,
		`{"resourceType":"Patient","id":"a","meta":{"versionId":"1","lastUpdated":"2024-01-01T00:00:00Z","tag":[{"code":"x"}]}}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o"}],"managingOrganization":{"reference":"#o"}}`,
		`{"resourceType":"Patient","name":[{"text":"\u0000\"\\"}]}`,
	} {
		f.Add([]byte(s))
	}
}

func FuzzParse(f *testing.F) {
	seedBodies(f)
	c, err := fhir.NewCodec(recordTypes...)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := c.Parse(body)
		if err != nil {
			var ve *fhir.ValidationError
			if !errors.As(err, &ve) || len(ve.Issues) == 0 {
				t.Fatalf("error is not a ValidationError with issues: %T %v", err, err)
			}
			if oo := fhir.Outcome(ve.Issues...); !json.Valid(oo) {
				t.Fatalf("invalid OperationOutcome JSON: %s", oo)
			}
			return
		}
		stored, err := c.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		full, err := fhir.WithMeta(stored, 1, time.Unix(1700000000, 0))
		if err != nil || !json.Valid(full) {
			t.Fatalf("WithMeta: %v %s", err, full)
		}
		r2, err := c.Parse(full)
		if err != nil {
			t.Fatalf("stored form does not re-parse: %v\n%s", err, full)
		}
		if r2.Type != r.Type || r2.ID != r.ID || r2.Patient != r.Patient {
			t.Fatalf("round trip changed identity: %+v vs %+v", r, r2)
		}
	})
}

func FuzzWithMeta(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := fhir.WithMeta(body, 42, time.Unix(1700000000, 0))
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil || obj == nil {
			return // not an object: either outcome is acceptable
		}
		if _, ok := obj["meta"]; ok {
			var meta map[string]json.RawMessage
			if json.Unmarshal(obj["meta"], &meta) != nil {
				return // meta not an object (or null): may be refused
			}
		}
		if err != nil {
			t.Fatalf("valid object refused: %v", err)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("invalid output %s: %v", out, err)
		}
		var meta struct{ VersionID string }
		if err := json.Unmarshal(got["meta"], &meta); err != nil || meta.VersionID != "42" {
			t.Fatalf("meta not set: %s", out)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	c := newCodec(b)
	body := readTestdata(b, "allergyintolerance.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	c := newCodec(b)
	r, err := c.Parse(readTestdata(b, "allergyintolerance.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWithMeta(b *testing.B) {
	c := newCodec(b)
	r, err := c.Parse(readTestdata(b, "allergyintolerance.json"))
	if err != nil {
		b.Fatal(err)
	}
	stored, err := c.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	stored, err = fhir.WithMeta(stored, 1, time.Now()) // the usual case: meta already there
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.SetBytes(int64(len(stored)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fhir.WithMeta(stored, 2, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBundle(b *testing.B) {
	c := newCodec(b)
	r, err := c.Parse(readTestdata(b, "flag.json"))
	if err != nil {
		b.Fatal(err)
	}
	stored, _ := c.Marshal(r)
	entries := make([]fhir.BundleEntry, 50)
	for i := range entries {
		entries[i] = fhir.BundleEntry{FullURL: "https://kj.example.no/fhir/Flag/x", Resource: stored, SearchMode: "match"}
	}
	total := 50
	b.ReportAllocs()
	for b.Loop() {
		fhir.Bundle(fhir.BundleOptions{Type: "searchset", Total: &total}, entries)
	}
}

// BenchmarkBaseIssues is the base-rule walk every write pays after the
// parse (Resource.BaseIssues).
func BenchmarkBaseIssues(b *testing.B) {
	c := newCodec(b)
	r, err := c.Parse(readTestdata(b, "allergyintolerance.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if is := r.BaseIssues(); len(is) != 0 {
			b.Fatal(is)
		}
	}
}
