package search

import (
	"errors"
	"net/url"
	"testing"
)

// FuzzParseQuery feeds raw query strings to the parser: it must never
// panic, must answer either a query or an *Error, and a query it accepts
// must be safe to match, sort and page.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"patient=p1&clinical-status=active",
		"patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|02816401618",
		"date=ge2024-03-05T10:30:00%2B01:00&date=lt2025",
		"date=ap2024&_sort=-date,_id&_count=3",
		"code:text=bj%C3%B8rk&code:not=a,b,c&code:missing=true",
		"%24where=1", "code=%7B%22%24gt%22%3A%22%22%7D", "name=.*(a|b)+$",
		"_cursor=AQAAAAAAAQE", "_include=AllergyIntolerance:recorder:Practitioner",
		"recorder:identifier=a\\|b\\,c", "code=\\", "date=2024-02-29T23:59:59.9999999999Z",
	} {
		f.Add("AllergyIntolerance", s)
	}
	f.Add("Patient", "name:contains=%C3%B8&birthdate=1964&_id=p1")
	f.Add("Flag", "subject:Patient=p1&date=sa2020")
	r := testRegistry(f)
	idxs := map[string][]Index{}
	for typ := range fixtures {
		idxs[typ] = fixtureIndexes(f, r, typ)
	}
	f.Fuzz(func(t *testing.T, typ, raw string) {
		vs, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		for _, lenient := range []bool{false, true} {
			q, _, err := r.ParseQuery(typ, vs, lenient)
			if err != nil {
				var se *Error
				if !errors.As(err, &se) || q != nil || len(se.Issues) == 0 {
					t.Fatalf("error %v (%T) with query %v", err, err, q)
				}
				continue
			}
			var cs []Candidate
			for i := range idxs[typ] {
				if q.Match(idxs[typ][i]) {
					cs = append(cs, Candidate{Index: &idxs[typ][i]})
				}
			}
			q.PatientBinding()
			q.Page(cs)
		}
	})
}

func benchRecord(b *testing.B, r *Registry) (string, []seedRes) {
	// The first generated patient with a full record: ~10 per type is the
	// load the issue sets, so the patient's lists are padded to 10 by
	// repeating its resources under new ids.
	for _, rs := range seedRecords(b, r, 200) {
		var ms []seedRes
		for _, s := range rs {
			if s.typ == "MedicationStatement" {
				ms = append(ms, s)
			}
		}
		if len(ms) >= 3 {
			var out []seedRes
			for i := 0; len(out) < 10; i++ {
				s := ms[i%len(ms)]
				s.idx.ID = s.idx.ID + "-" + string(rune('a'+i))
				out = append(out, s)
			}
			return rs[0].id, out
		}
	}
	b.Fatal("no patient with medications")
	return "", nil
}

func BenchmarkExtract(b *testing.B) {
	r := testRegistry(b)
	_, ms := benchRecord(b, r)
	body := ms[0].body
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Extract("MedicationStatement", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseQuery(b *testing.B) {
	r := testRegistry(b)
	vs, _ := url.ParseQuery("patient=pas-0123456789abcdef&status=active,completed&code=http://www.whocc.no/atc|C10AA05&effective=ge2020-01-01&_sort=-effective&_count=20")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.ParseQuery("MedicationStatement", vs, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatch is a whole patient-bound search evaluation over stored
// indexes: parse, bind, match ten resources, sort and page.
func BenchmarkMatch(b *testing.B) {
	r := testRegistry(b)
	pid, ms := benchRecord(b, r)
	vs := url.Values{"patient": {pid}, "status": {"active,completed,stopped"}, "effective": {"ge2000"}, "_sort": {"-effective"}, "_count": {"5"}}
	b.ReportAllocs()
	for b.Loop() {
		q, _, err := r.ParseQuery("MedicationStatement", vs, false)
		if err != nil {
			b.Fatal(err)
		}
		if ids, ok := q.PatientBinding(); !ok || len(ids) != 1 {
			b.Fatal("unbound")
		}
		cs := make([]Candidate, 0, len(ms))
		for i := range ms {
			if q.Match(ms[i].idx) {
				cs = append(cs, Candidate{Index: &ms[i].idx, Body: ms[i].body})
			}
		}
		if page, _, _ := q.Page(cs); len(page) == 0 {
			b.Fatal("no match")
		}
	}
}
