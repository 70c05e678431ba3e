package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

// stored links the events of records as the store keeps them.
func stored(t *testing.T, rs ...Record) [][]byte {
	t.Helper()
	c := NewChain("")
	var out [][]byte
	for _, r := range rs {
		for _, ev := range Events(r) {
			linked, _, err := c.Next(ev)
			require.NoError(t, err)
			out = append(out, linked)
		}
	}
	return out
}

func tags(m map[string]any) []string {
	var out []string
	for _, tg := range arr(get(m, "meta", "tag")) {
		if get(tg, "system") == CodeSystemMarker {
			out = append(out, get(tg, "code").(string))
		}
	}
	return out
}

func english(m map[string]any) string {
	s, _ := get(m, "_outcomeDesc", "extension", 0, "extension", 1, "valueString").(string)
	return s
}

func TestCitizenViewNameDelay(t *testing.T) {
	read := with(doctor(), func(r *Record) { r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1" })
	ev := stored(t, read)[0]
	cases := []struct {
		name   string
		now    time.Time
		hidden bool
	}{
		{"just after", t0.Add(time.Minute), true},
		{"6 days 23 hours", t0.Add(6*24*time.Hour + 23*time.Hour), true},
		{"one nanosecond before 7 days", t0.Add(NameDelay - time.Nanosecond), true},
		{"exactly 7 days", t0.Add(NameDelay), false},
		{"7 days and a bit", t0.Add(7*24*time.Hour + time.Hour), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := CitizenEvent(ev, tc.now)
			require.NoError(t, err)
			validate(t, out)
			m := decode(t, out)
			u := userAgentOf(m)
			// The organisation shows at once.
			assert.Equal(t, "Akuttmottaket", get(u, "extension", 0, "extension", 1, "valueReference", "display"))
			assert.Contains(t, m["outcomeDesc"], "Akuttmottaket (Testsykehuset HF)")
			assert.Contains(t, m["outcomeDesc"], "så på kritisk informasjon")
			assert.Contains(t, english(m), "looked at critical information")
			if tc.hidden {
				assert.NotContains(t, string(out), "Lege Testesen")
				assert.NotContains(t, string(out), hprDoctor, "the HPR number would name the person")
				assert.Nil(t, u["name"])
				assert.Contains(t, get(u, "who", "display"), "Helsepersonell (navnet vises fra ")
				assert.Contains(t, tags(m), MarkerNameDelayed)
				assert.Contains(t, m["outcomeDesc"], "Navnet på helsepersonellet vises fra")
			} else {
				assert.Equal(t, "Lege Testesen", u["name"])
				assert.Equal(t, hprDoctor, get(u, "who", "identifier", "value"))
				assert.NotContains(t, tags(m), MarkerNameDelayed)
				assert.True(t, strings.HasPrefix(m["outcomeDesc"].(string), "Lege Testesen, Akuttmottaket"))
			}
			assert.NotContains(t, string(out), ExtChain, "the view is a copy, not the chained record")
			assert.Nil(t, get(m, "meta", "profile"))
			assert.Equal(t, "nb", m["language"])
		})
	}
}

func TestCitizenViewVariants(t *testing.T) {
	later := t0.Add(30 * 24 * time.Hour)
	cases := []struct {
		name    string
		r       Record
		tags    []string
		no, en  string // substrings of outcomeDesc and its English translation
		absent  []string
		persons int // entities of role Report left (documents)
	}{
		{"document retrieval hides which", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = DocumentRead, "Binary", "doc-secret-1"
			r.Documents = []Document{{ID: "doc-secret-1", Source: "990000007", SourceName: "Kildesykehuset HF"}}
		}), []string{MarkerDocumentsViewed}, "åpnet journaldokumenter (hvilke vises ikke)", "opened journal documents",
			[]string{"doc-secret-1", "990000007", "Kildesykehuset"}, 1},
		{"document search hides which and the query", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.Query = DocumentSearch, "DocumentReference", "patient=pas-1&type=PSYK-42"
			r.Documents = []Document{{ID: "doc-a", Source: orgHosp}, {ID: "doc-b", Source: orgHosp}}
		}), []string{MarkerDocumentsViewed}, "søkte etter journaldokumenter", "searched for journal documents",
			[]string{"doc-a", "doc-b", "PSYK", "cGF0aWVud"}, 1},
		{"emergency opening of restricted parts", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.Query = Search, "MedicationStatement", "patient=pas-1"
			r.Basis, r.OpenedRestricted = access.ForhoyetAkutt, true
			r.Outcome = Outcome{Reason: access.OKRestrictedOpened, HTTPStatus: 200}
		}), []string{MarkerRestrictedOpened, MarkerEmergency}, "Opplysninger du har sperret, ble åpnet", "Emergency access was used",
			[]string{"cGF0aWVud"}, 0},
		{"someone else's refusal is included and marked", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Encounter", "e1"
			r.Outcome = Outcome{Refused: true, Reason: access.HPBlocked, Message: "blocked", HTTPStatus: 403}
		}), []string{MarkerRefused}, "forsøkte å se besøkshistorikken. Tilgangen ble avvist.", "tried to look at the visit history. Access was refused.",
			nil, 0},
		{"server failure is not a refusal", with(doctor(), func(r *Record) {
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
			r.Outcome = Outcome{HTTPStatus: 503, Message: "storage down"}
		}), nil, "Forespørselen mislyktes", "The request failed", nil, 0},
		{"own access", Record{ID: "ae-own", Time: t0, Interaction: Read, ResourceType: "Patient", ResourceID: patient, Patients: []string{patient},
			User: User{Role: access.Citizen, PID: pidCitizen, Name: "Kari Testperson"}, Outcome: Outcome{Reason: access.OK, HTTPStatus: 200}},
			nil, "Du så på personopplysningene", "You looked at the personal details", nil, 0},
		{"support staff never shows a person number", Record{ID: "ae-sup", Time: t0, Interaction: PrivacyChange, ResourceType: "Consent", ResourceID: "b1",
			Patients: []string{patient}, User: User{Role: access.CitizenSupport, PID: pidSupport, Name: "Saksbehandler Test"},
			Org: Organisation{LegalEntity: "990000005"}, Outcome: Outcome{Reason: access.OK, HTTPStatus: 200}},
			nil, "endret personverninnstillingene", "changed the privacy settings", []string{pidSupport}, 0},
		{"feeder system", Record{ID: "ae-feed", Time: t0, Interaction: Create, ResourceType: "MedicationStatement", ResourceID: "m1",
			Patients: []string{patient}, User: User{Role: access.System}, ClientID: "reseptformidleren",
			Org: Organisation{LegalEntity: "990000009", LegalEntityName: "Reseptformidleren"}, Outcome: Outcome{Reason: access.OK, HTTPStatus: 201}},
			nil, "Reseptformidleren registrerte legemiddellisten", "Reseptformidleren recorded the medication list", nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, now := range []time.Time{t0.Add(time.Hour), later} {
				out, err := CitizenEvent(stored(t, tc.r)[0], now)
				require.NoError(t, err)
				validate(t, out)
				m := decode(t, out)
				got := tags(m)
				if now.Equal(later) || tc.r.User.Role == access.Citizen || tc.r.User.Role == access.System {
					assert.ElementsMatch(t, tc.tags, got)
				}
				assert.Contains(t, m["outcomeDesc"], tc.no)
				assert.Contains(t, english(m), tc.en)
				for _, a := range tc.absent {
					assert.NotContains(t, string(out), a)
				}
				assert.Len(t, entityByRole(m, "3"), tc.persons)
				for _, e := range get(m, "entity").([]any) {
					assert.Nil(t, get(e, "query"), "no raw queries for the citizen")
				}
				assert.Equal(t, "Patient/"+patient, get(entityByRole(m, "1")[0], "what", "reference"))
			}
		})
	}
}

func TestCitizenViewNewestFirst(t *testing.T) {
	mk := func(id string, at time.Time) Record {
		return with(doctor(), func(r *Record) {
			r.ID, r.Time = id, at
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
		})
	}
	evs := stored(t,
		mk("old", t0),
		mk("newest", t0.Add(48*time.Hour)),
		mk("tie-first-stored", t0.Add(time.Hour)),
		mk("tie-last-stored", t0.Add(time.Hour)),
	)
	view, err := CitizenView(evs, t0.Add(10*24*time.Hour))
	require.NoError(t, err)
	var ids []string
	for _, v := range view {
		ids = append(ids, decode(t, v)["id"].(string))
	}
	assert.Equal(t, []string{"newest", "tie-last-stored", "tie-first-stored", "old"}, ids)

	_, err = CitizenView([][]byte{evs[0], []byte(`{"resourceType":"Flag"}`)}, t0)
	assert.Error(t, err, "an event that cannot be filtered is never shown")
	_, err = CitizenEvent([]byte(`{"resourceType":"AuditEvent","recorded":"yesterday"}`), t0)
	assert.Error(t, err)
	assert.Error(t, NewestFirst([][]byte{[]byte(`nope`)}))
}
