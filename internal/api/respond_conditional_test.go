package api

import (
	"net/http"
	"testing"
	"time"
)

func TestNotModifiedSince(t *testing.T) {
	last := time.Date(2026, 5, 1, 12, 0, 0, 480e6, time.UTC) // lastUpdated has milliseconds, HTTP dates do not
	at := func(d time.Duration) string { return last.Add(d).Format(http.TimeFormat) }
	for _, c := range []struct {
		h    string
		want bool
	}{
		{"", false},
		{"yesterday", false},
		{at(0), true},             // the same second
		{at(time.Hour), true},     // later
		{at(-time.Second), false}, // the resource is newer
	} {
		if got := notModifiedSince(c.h, last); got != c.want {
			t.Errorf("notModifiedSince(%q) = %v, want %v", c.h, got, c.want)
		}
	}
}

func TestFHIRVersionR4(t *testing.T) {
	for v, want := range map[string]bool{"4.0": true, "4.0.1": true, "3.0": false, "4.3": false, "5.0": false} {
		if got := fhirVersionR4(map[string]string{"fhirversion": v}); got != want {
			t.Errorf("fhirVersion=%s: %v, want %v", v, got, want)
		}
	}
	if !fhirVersionR4(map[string]string{}) {
		t.Error("no fhirVersion parameter must be acceptable")
	}
}
