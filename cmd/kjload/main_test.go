package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kjernejournal/kjernejournal/internal/load"
)

// fhirServer is a real loopback server standing in for kjernejournal: it
// answers reads and compartment searches with 200, creates with 201, and
// Patient/missing with 404.
func fhirServer(t *testing.T) (*httptest.Server, *sync.Map, *atomic.Int64) {
	t.Helper()
	var seen sync.Map
	var total atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		total.Add(1)
		seen.Store(r.Method+" "+r.URL.Path, true)
		w.Header().Set("Content-Type", load.FHIRJSON)
		switch {
		case r.Method == http.MethodPost:
			var v map[string]any
			if err := json.NewDecoder(r.Body).Decode(&v); err != nil || "/"+v["resourceType"].(string) != r.URL.Path {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
		case r.URL.Path == "/Patient/missing":
			w.WriteHeader(http.StatusNotFound)
		case strings.Count(r.URL.Path, "/") == 3:
			io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","entry":[]}`)
		default:
			io.WriteString(w, `{"resourceType":"Patient","id":"1"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &seen, &total
}

func writeIDs(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestScenariosEndToEnd(t *testing.T) {
	srv, seen, total := fhirServer(t)
	cases := []struct {
		name string
		ids  []string
		args []string
		want []string // method + path the server must have seen
	}{
		{"read", []string{"# comment", "Patient/1", "", "/Flag/2"}, nil, []string{"GET /Patient/1", "GET /Flag/2"}},
		{"compartment", []string{"1", "Patient/2"}, []string{"-types", "Flag, Encounter"},
			[]string{"GET /Patient/1/Flag", "GET /Patient/2/Encounter"}},
		{"create", []string{"1"}, []string{"-create-type", "AllergyIntolerance"}, []string{"POST /AllergyIntolerance"}},
		{"create", []string{"1"}, nil, []string{"POST /Flag"}},
	}
	for _, c := range cases {
		before := total.Load()
		args := append([]string{"-url", srv.URL, "-scenario", c.name, "-ids", writeIDs(t, c.ids...), "-c", "4", "-n", "200", "-d", "1m",
			"-pid", strconv.Itoa(os.Getpid()), "-markdown"}, c.args...)
		code, out, errOut := runArgs(args...)
		if code != exitOK {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", c.name, code, out, errOut)
		}
		if got := total.Load() - before; got != 200 {
			t.Errorf("%s: server saw %d requests, want 200", c.name, got)
		}
		for _, w := range c.want {
			if _, ok := seen.Load(w); !ok {
				t.Errorf("%s: server never saw %s", c.name, w)
			}
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], c.name+" c=4") || !strings.Contains(lines[0], "200 req") ||
			!strings.Contains(lines[0], "peak RSS") || !strings.HasPrefix(lines[3], "| "+c.name+" | 4 | 200 | 0 |") {
			t.Errorf("%s: output:\n%s", c.name, out)
		}
	}
}

func TestJSONOutputAndErrorExit(t *testing.T) {
	srv, _, _ := fhirServer(t)
	code, out, errOut := runArgs("-url", srv.URL, "-ids", writeIDs(t, "Patient/1", "Patient/missing"), "-n", "100", "-c", "2", "-json")
	if code != exitFailed {
		t.Fatalf("exit %d with 404s, want %d", code, exitFailed)
	}
	var j load.JSONReport
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if j.Requests != 100 || j.StatusErrors == 0 || j.StatusErrors != j.Statuses["404"] || j.Name != "read" {
		t.Errorf("report %+v", j)
	}
	if !strings.Contains(errOut, "error sample: GET /Patient/missing: status 404") {
		t.Errorf("stderr lacks error samples: %s", errOut)
	}
}

func TestBadInput(t *testing.T) {
	ids := writeIDs(t, "Patient/1")
	for _, args := range [][]string{
		{"-ids", ids, "-n", "-1"},
		{"-ids", ids, "-c", "0"},
		{"-ids", ids, "-d", "0s"},
		{"-ids", ids, "-scenario", "delete"},
		{"-scenario", "read"}, // no -ids
		{"-ids", writeIDs(t, "# nothing")},
		{"-ids", writeIDs(t, "Flag/1"), "-scenario", "compartment"},
		{"-ids", ids, "-scenario", "create", "-create-type", "Observation"},
		{"-ids", ids, "-H", "no colon"},
		{"-ids", ids, "stray"},
		{"-ids", ids, "-pid", "-5"},
	} {
		if code, _, errOut := runArgs(args...); code != exitUsage || !strings.Contains(errOut, "kjload") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
	}
	code, _, errOut := runArgs("-url", "http://10.1.1.1:8080", "-ids", ids)
	if code != exitUsage || !strings.Contains(errOut, "non-loopback") {
		t.Errorf("remote URL: exit %d, %s", code, errOut)
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	code, out, errOut := runArgs("--help")
	if code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	help := out + errOut
	newFlagSet(&options{header: http.Header{}}, io.Discard).VisitAll(func(f *flag.Flag) {
		if len(f.Usage) < 10 || !strings.Contains(help, "  -"+f.Name+" ") && !strings.Contains(help, "  -"+f.Name+"\n") {
			t.Errorf("flag -%s not explained in help", f.Name)
		}
	})
	for _, s := range []string{"read", "compartment", "create", "loopback", "Exit status"} {
		if !strings.Contains(help, s) {
			t.Errorf("help does not mention %q", s)
		}
	}
}
