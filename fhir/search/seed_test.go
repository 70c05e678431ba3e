package search

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/seed"
)

type seedRes struct {
	typ, id, patient string
	body             []byte
	idx              Index
	doc              map[string]any
}

// seedRecords extracts the generator's patients with a meta.lastUpdated,
// as the store would hold them.
func seedRecords(t testing.TB, r *Registry, n int) [][]seedRes {
	t.Helper()
	var out [][]seedRes
	stamp := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, rec := range seed.Generate(7, n) {
		var rs []seedRes
		for _, b := range append([][]byte{rec.Patient}, rec.Resources...) {
			var head struct{ ResourceType, ID string }
			if err := json.Unmarshal(b, &head); err != nil {
				t.Fatal(err)
			}
			stamp = stamp.Add(time.Second)
			body, err := fhir.WithMeta(b, 1, stamp)
			if err != nil {
				t.Fatal(err)
			}
			idx, err := r.Extract(head.ResourceType, body)
			if err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			var doc map[string]any
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			rs = append(rs, seedRes{head.ResourceType, head.ID, "", body, idx, doc})
		}
		pid := rs[0].id
		for i := range rs {
			rs[i].patient = pid
		}
		out = append(out, rs)
	}
	return out
}

func TestExtractSeed(t *testing.T) {
	r := testRegistry(t)
	perType := map[string]int{}
	for _, rs := range seedRecords(t, r, 300) {
		for _, s := range rs {
			perType[s.typ]++
			if s.idx.ID != s.id || s.idx.Type != s.typ {
				t.Fatalf("index of %s/%s names %s/%s", s.typ, s.id, s.idx.Type, s.idx.ID)
			}
			if len(s.idx.Values("_lastUpdated")) != 1 || len(s.idx.Values("_id")) != 1 {
				t.Errorf("%s/%s: no _id or _lastUpdated", s.typ, s.id)
			}
			if s.typ != "Patient" {
				if v := s.idx.Values("patient"); len(v) != 1 || v[0].Ref != "Patient/"+s.patient {
					t.Errorf("%s/%s: patient %+v", s.typ, s.id, v)
				}
			}
			want := map[string][]string{
				"Patient":             {"identifier", "name", "birthdate", "gender", "general-practitioner"},
				"AllergyIntolerance":  {"clinical-status", "verification-status", "category", "criticality", "code", "date", "type", "recorder"},
				"Flag":                {"status", "category", "code", "date", "author", "subject"},
				"MedicationStatement": {"status", "category", "code", "effective", "source", "subject"},
				"Encounter":           {"status", "class", "type", "date", "service-provider", "reason-code", "subject"},
			}[s.typ]
			for _, p := range want {
				if len(s.idx.Values(p)) == 0 {
					t.Errorf("%s/%s: nothing indexed for %s in %s", s.typ, s.id, p, s.body)
				}
			}
			// Both serialised forms give the index back.
			bin, err := s.idx.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back Index
			if err := back.UnmarshalBinary(bin); err != nil || !reflect.DeepEqual(back, s.idx) {
				t.Fatalf("binary round trip of %s/%s: %v\n%+v\n%+v", s.typ, s.id, err, back, s.idx)
			}
			js, _ := json.Marshal(s.idx)
			back = Index{}
			if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(back, s.idx) {
				t.Fatalf("JSON round trip of %s/%s: %v", s.typ, s.id, err)
			}
			if len(bin) > len(s.body) {
				t.Errorf("%s/%s: index of %d bytes for a body of %d", s.typ, s.id, len(bin), len(s.body))
			}
			for cut := range bin[:min(len(bin), 40)] {
				if err := new(Index).UnmarshalBinary(bin[:cut]); err == nil {
					t.Fatalf("%s/%s: truncated index (%d of %d bytes) decoded", s.typ, s.id, cut, len(bin))
				}
			}
		}
	}
	for _, typ := range testTypes {
		if typ == "Consent" {
			continue // privacy settings are the citizen's, never generated
		}
		if perType[typ] == 0 {
			t.Errorf("the seed made no %s", typ)
		}
	}
}

// TestSeedSearch runs patient-bound searches over generated records and
// compares them with answers computed straight from the JSON by a
// different route (plain Go over the decoded resource).
func TestSeedSearch(t *testing.T) {
	r := testRegistry(t)
	dig := func(v any, path ...string) any {
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		}
		return v
	}
	codings := func(v any) (out []string) { // "system|code"
		for _, c := range asList(dig(v, "coding")) {
			out = append(out, fmt.Sprint(dig(c, "system"))+"|"+fmt.Sprint(dig(c, "code")))
		}
		return out
	}
	type check struct {
		typ   string
		query func(s seedRes) string // built from one of the patient's resources
		want  func(s, other seedRes) bool
	}
	checks := []check{
		{"AllergyIntolerance", func(s seedRes) string { return "clinical-status=" + codings(s.doc["clinicalStatus"])[0] },
			func(s, o seedRes) bool {
				return slices.Contains(codings(o.doc["clinicalStatus"]), codings(s.doc["clinicalStatus"])[0])
			}},
		{"AllergyIntolerance", func(s seedRes) string { return "code=" + strings.Split(codings(s.doc["code"])[0], "|")[1] },
			func(s, o seedRes) bool {
				return slices.Contains(codings(o.doc["code"]), codings(s.doc["code"])[0])
			}},
		{"AllergyIntolerance", func(s seedRes) string { return "criticality:not=" + s.doc["criticality"].(string) },
			func(s, o seedRes) bool { return o.doc["criticality"] != s.doc["criticality"] }},
		{"MedicationStatement", func(s seedRes) string { return "code=" + codings(s.doc["medicationCodeableConcept"])[0] },
			func(s, o seedRes) bool {
				return slices.Contains(codings(o.doc["medicationCodeableConcept"]), codings(s.doc["medicationCodeableConcept"])[0])
			}},
		{"MedicationStatement", func(s seedRes) string { return "status=" + s.doc["status"].(string) + ",entered-in-error" },
			func(s, o seedRes) bool { return o.doc["status"] == s.doc["status"] }},
		{"MedicationStatement", func(s seedRes) string {
			return "effective=ge" + dig(s.doc, "effectivePeriod", "start").(string)
		}, func(s, o seedRes) bool {
			// ge a day: the period ends after that day or lies within it;
			// an open period always qualifies.
			end, _ := dig(o.doc, "effectivePeriod", "end").(string)
			start := dig(s.doc, "effectivePeriod", "start").(string)
			return end == "" || end >= start
		}},
		{"Encounter", func(s seedRes) string {
			return "date=" + dig(s.doc, "period", "start").(string)[:7] + "&class=" + dig(s.doc, "class", "code").(string)
		}, func(s, o seedRes) bool {
			month := dig(s.doc, "period", "start").(string)[:7]
			return dig(o.doc, "class", "code") == dig(s.doc, "class", "code") &&
				strings.HasPrefix(dig(o.doc, "period", "start").(string), month) &&
				strings.HasPrefix(dig(o.doc, "period", "end").(string), month)
		}},
		{"Encounter", func(s seedRes) string {
			return "reason-code:text=" + firstWord(dig(s.doc, "reasonCode").([]any)[0].(map[string]any)["text"].(string))
		},
			func(s, o seedRes) bool {
				w := Fold(firstWord(dig(s.doc, "reasonCode").([]any)[0].(map[string]any)["text"].(string)))
				for _, rc := range asList(o.doc["reasonCode"]) {
					for _, f := range strings.Fields(Fold(fmt.Sprint(dig(rc, "text")))) {
						if strings.HasPrefix(f, w) {
							return true
						}
					}
					for _, c := range asList(dig(rc, "coding")) {
						for _, f := range strings.FieldsFunc(Fold(fmt.Sprint(dig(c, "display"))), func(r rune) bool { return strings.ContainsRune(" -/(,", r) }) {
							if strings.HasPrefix(f, w) {
								return true
							}
						}
					}
				}
				return false
			}},
		{"Flag", func(s seedRes) string {
			return "category=" + codings(asList(s.doc["category"])[0])[0] + "&status=active"
		},
			func(s, o seedRes) bool {
				return o.doc["status"] == "active" && slices.Contains(codings(asList(o.doc["category"])[0]), codings(asList(s.doc["category"])[0])[0])
			}},
		{"Patient", func(s seedRes) string {
			return "identifier=urn:oid:2.16.578.1.12.4.1.4.1|" + dig(asList(s.doc["identifier"])[0], "value").(string)
		}, func(s, o seedRes) bool { return o.id == s.id }},
		{"Patient", func(s seedRes) string {
			return "family=" + strings.ToUpper(dig(asList(s.doc["name"])[0], "family").(string))
		},
			func(s, o seedRes) bool { return o.id == s.id }},
	}
	ran := map[int]int{}
	for _, rs := range seedRecords(t, r, 400) {
		for ci, c := range checks {
			var mine []seedRes
			for _, s := range rs {
				if s.typ == c.typ {
					mine = append(mine, s)
				}
			}
			if len(mine) == 0 {
				continue
			}
			s := mine[0]
			raw := c.query(s)
			if c.typ != "Patient" {
				raw += "&patient=" + s.patient
			}
			vs, _ := url.ParseQuery(raw)
			q, _, err := r.ParseQuery(c.typ, vs, false)
			if err != nil {
				t.Fatalf("%s?%s: %v", c.typ, raw, err)
			}
			if ids, ok := q.PatientBinding(); c.typ != "Patient" && (!ok || len(ids) != 1 || ids[0] != s.patient) {
				t.Fatalf("%s?%s: binding %v", c.typ, raw, ids)
			}
			for _, o := range mine {
				if got, want := q.Match(o.idx), c.want(s, o); got != want {
					t.Errorf("%s?%s on %s: match %v, want %v", c.typ, raw, o.body, got, want)
				}
			}
			ran[ci]++
		}
	}
	for ci := range checks {
		if ran[ci] == 0 {
			t.Errorf("check %d (%s) never ran", ci, checks[ci].typ)
		}
	}
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

func firstWord(s string) string {
	return strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" -/(,", r) })[0]
}

// TestExtractBeforeMeta: an index extracted at write time, from the JSON
// before the store stamps meta, plus SetLastUpdated with the version's time,
// equals the index of the stored JSON, and survives the binary encoding.
func TestExtractBeforeMeta(t *testing.T) {
	r := testRegistry(t)
	at := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.UTC) // finer than ms: meta keeps ms
	for _, rec := range seed.Generate(3, 50) {
		for _, b := range append([][]byte{rec.Patient}, rec.Resources...) {
			var head struct{ ResourceType string }
			if err := json.Unmarshal(b, &head); err != nil {
				t.Fatal(err)
			}
			early, err := r.Extract(head.ResourceType, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(early.Values("_lastUpdated")) != 0 {
				t.Fatalf("JSON without meta.lastUpdated gave _lastUpdated: %s", b)
			}
			bin, err := early.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Index
			if err := got.UnmarshalBinary(bin); err != nil {
				t.Fatal(err)
			}
			got.SetLastUpdated(at)
			body, err := fhir.WithMeta(b, 4, at)
			if err != nil {
				t.Fatal(err)
			}
			want, err := r.Extract(head.ResourceType, body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("index differs for %s:\n got %+v\nwant %+v", body, got, want)
			}
			got.SetLastUpdated(at.Add(time.Hour)) // replaces, does not add
			if n := len(got.Values("_lastUpdated")); n != 1 || len(got.Entries) != len(want.Entries) {
				t.Fatalf("SetLastUpdated twice: %d values, %d entries", n, len(got.Entries))
			}
		}
	}
}
