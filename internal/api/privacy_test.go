package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

const (
	citizenPatient = "pas-citizen-demo" // the "citizen" persona's own record
	citizenPID     = "02898321285"
	doctorHPR      = "990018265" // the "hospital-doctor" persona
)

// addCitizen stores the citizen persona's own record.
func (s *secured) addCitizen(t *testing.T) {
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	body := bytes.Replace(patientJSON(t, 50, citizenPatient), []byte(personNumber(t, 50)), []byte(citizenPID), 1)
	body = bytes.Replace(body, []byte("565501872"), []byte(gpPersonaHPR), 1)
	s.put(t, codec, body)
	s.put(t, codec, clinical("Flag", citizenPatient, "cit-flag", "pacemaker"))
	s.put(t, codec, clinical("MedicationStatement", citizenPatient, "cit-med", "warfarin"))
}

func consent(kind privacy.Kind, active bool, since time.Time, sections []access.Section, hpr ...string) []byte {
	return privacy.Setting{Patient: citizenPatient, Kind: kind, Active: active, Since: since, Sections: sections, BlockedHPR: hpr}.Consent()
}

func withID(t *testing.T, body []byte, id string) []byte {
	return bytes.Replace(body, []byte(`{"resourceType":"Consent",`), []byte(fmt.Sprintf(`{"resourceType":"Consent","id":%q,`, id)), 1)
}

func TestPrivacySettingsOverHTTP(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		s.addCitizen(t)
		now := time.Now().UTC().Truncate(time.Second)
		doc, gp := s.token("hospital-doctor", citizenPatient), s.token("gp", citizenPatient)
		citizen, support := s.token("citizen", ""), s.token("citizen-support", "")

		require.Equal(t, http.StatusOK, s.as_(doc, "UNNTAK", "GET", "/MedicationStatement/cit-med", nil).status)

		// The citizen reads their own record without any access basis, and
		// no one else's.
		r := s.as_(citizen, "", "GET", "/MedicationStatement/cit-med", nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Equal(t, http.StatusForbidden, s.as_(citizen, "", "GET", "/Flag/sec-flag-0", nil).status)

		// Restriction (sperring) of the medications, set by the citizen.
		r = s.as_(citizen, "", "POST", "/Consent", consent(privacy.Restriction, true, now, []access.Section{access.Medications}))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		restriction := r.json(t)["id"].(string)
		assert.Equal(t, "section-restricted", reasonOf(t, s.as_(doc, "UNNTAK", "GET", "/MedicationStatement/cit-med", nil)))
		r = s.as_(doc, "UNNTAK", "GET", "/MedicationStatement?patient="+citizenPatient, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.NotContains(t, string(r.body), "warfarin")
		assert.Contains(t, string(r.body), "ok-restricted-hidden", "the Bundle says restricted information exists")
		assert.Contains(t, string(r.body), `"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"REDACTED"`)
		validR4(t, r.body)
		r = s.as_(doc, "FORHOYET_SAMTYKKE", "GET", "/MedicationStatement/cit-med", nil)
		require.Equal(t, http.StatusOK, r.status, "an elevated basis opens it")
		assert.Contains(t, string(r.body), "warfarin")
		assert.Equal(t, http.StatusOK, s.as_(doc, "UNNTAK", "GET", "/Flag/cit-flag", nil).status, "other sections stay open")
		// _revinclude and history follow the same rule
		r = s.as_(doc, "UNNTAK", "GET", "/Patient?_id="+citizenPatient+"&_revinclude=MedicationStatement:patient&_revinclude=Flag:patient", nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.NotContains(t, string(r.body), "warfarin", "a restricted section is not included")
		assert.Contains(t, string(r.body), "pacemaker", "an open section is")
		assert.Equal(t, "section-restricted", reasonOf(t, s.as_(doc, "UNNTAK", "GET", "/MedicationStatement/cit-med/_history", nil)))
		// The citizen still sees their own restricted part.
		assert.Equal(t, http.StatusOK, s.as_(citizen, "", "GET", "/MedicationStatement/cit-med", nil).status)
		// Lifting the restriction opens it again.
		r = s.as_(citizen, "", "PUT", "/Consent/"+restriction, withID(t, consent(privacy.Restriction, false, now.Add(time.Second), []access.Section{access.Medications}), restriction))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Equal(t, http.StatusOK, s.as_(doc, "UNNTAK", "GET", "/MedicationStatement/cit-med", nil).status)

		// Blocks: only the citizen-support role sets them; they hold in emergencies.
		assert.Equal(t, "blocks-by-support-only", reasonOf(t, s.as_(citizen, "", "POST", "/Consent", consent(privacy.Block, true, now, nil, doctorHPR))))
		r = s.as_(support, "", "POST", "/Consent", consent(privacy.Block, true, now, nil, doctorHPR))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		assert.Equal(t, "hp-blocked", reasonOf(t, s.as_(doc, "FORHOYET_SAMTYKKE", "GET", "/Flag/cit-flag", nil)))
		assert.Equal(t, "hp-blocked", reasonOf(t, s.as_(doc, "UNNTAK", "GET", "/Patient/"+citizenPatient+"/Flag", nil)))
		assert.Equal(t, http.StatusOK, s.as_(gp, "UNNTAK", "GET", "/Flag/cit-flag", nil).status, "other HP are not blocked")
		// support reads no health data; HP never change or read privacy settings
		assert.Equal(t, http.StatusForbidden, s.as_(support, "", "GET", "/Flag/cit-flag", nil).status)
		assert.Equal(t, http.StatusForbidden, s.as_(gp, "UNNTAK", "POST", "/Consent", consent(privacy.Reservation, true, now, nil)).status)
		// An HP's Consent search is for the critical information kept as
		// Consent (scope adr or treatment), never the privacy settings.
		r = s.as_(gp, "UNNTAK", "GET", "/Consent?patient="+citizenPatient, nil)
		assert.Equal(t, http.StatusOK, r.status)
		assert.NotContains(t, string(r.body), "patient-privacy")

		// Reservation: the record disappears for HP, as if it did not exist,
		// and no new data is accepted; undo brings everything back.
		r = s.as_(citizen, "", "POST", "/Consent", consent(privacy.Reservation, true, now, nil))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		reservation := r.json(t)["id"].(string)
		outcome(t, s.as_(gp, "UNNTAK", "GET", "/Flag/cit-flag", nil), http.StatusNotFound)
		outcome(t, s.as_(gp, "UNNTAK", "GET", "/Patient/"+citizenPatient, nil), http.StatusNotFound)
		outcome(t, s.as_(gp, "UNNTAK", "GET", "/Flag?patient="+citizenPatient, nil), http.StatusNotFound)
		outcome(t, s.as_(gp, "", "GET", "/Patient/"+citizenPatient+"/$kj-status", nil), http.StatusNotFound)
		// An HP's write is answered as for a patient not held here (no
		// answer tells a reservation from no record); the log keeps why.
		reserved := s.as_(gp, "UNNTAK", "POST", "/Flag", clinical("Flag", citizenPatient, "", "new"))
		unknown := s.as_(gp, "UNNTAK", "POST", "/Flag", clinical("Flag", "no-such-patient", "", "new"))
		outcome(t, reserved, http.StatusBadRequest)
		assert.Equal(t, strings.ReplaceAll(string(unknown.body), "no-such-patient", citizenPatient), string(reserved.body))
		assert.Contains(t, fmt.Sprint(lastAuditOf(t, st, citizenPatient)), "reserved-no-new-data")
		feeder := s.token("feeder", "")
		assert.Equal(t, "reserved-no-new-data", reasonOf(t, s.as_(feeder, "", "POST", "/MedicationStatement", clinical("MedicationStatement", citizenPatient, "", "new"))))
		r = s.as_(citizen, "", "PUT", "/Consent/"+reservation, withID(t, consent(privacy.Reservation, false, now.Add(2*time.Second), nil), reservation))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Equal(t, http.StatusOK, s.as_(gp, "UNNTAK", "GET", "/Flag/cit-flag", nil).status, "undo restores the record")

		// The citizen removes their own portal access.
		r = s.as_(citizen, "", "POST", "/Consent", consent(privacy.PortalAccessRemoved, true, now, nil))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		assert.Equal(t, "portal-access-removed", reasonOf(t, s.as_(citizen, "", "GET", "/Flag/cit-flag", nil)))
		portal, _ := r.json(t)["id"].(string)
		restored := withID(t, consent(privacy.PortalAccessRemoved, false, now.Add(3*time.Second), nil), portal)
		// Rule 8: it comes back only on request, through citizen support —
		// not by the citizen online, neither directly nor in a Bundle.
		assert.Equal(t, "portal-restored-by-support", reasonOf(t, s.as_(citizen, "", "PUT", "/Consent/"+portal, restored)))
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"` + s.base + `/Consent/` + portal +
			`","resource":` + string(restored) + `,"request":{"method":"PUT","url":"Consent/` + portal + `"}}]}`
		r = s.as_(citizen, "", "POST", "/", []byte(tx))
		assert.Equal(t, http.StatusForbidden, r.status, "body: %s", r.body)
		assert.Contains(t, string(r.body), "portal-restored-by-support")
		assert.Equal(t, "portal-access-removed", reasonOf(t, s.as_(citizen, "", "GET", "/Flag/cit-flag", nil)), "still removed")
		r = s.as_(support, "", "PUT", "/Consent/"+portal, restored)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Equal(t, http.StatusOK, s.as_(citizen, "", "GET", "/Flag/cit-flag", nil).status, "citizen support restored access")

		// An invalid privacy setting is refused by the profile.
		bad := bytes.Replace(consent(privacy.Restriction, true, now, []access.Section{access.Medications}), []byte("medications"), []byte("everything"), 1)
		r = s.as_(support, "", "POST", "/Consent", bad)
		assert.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, r.status, "body: %s", r.body)
	})
}

func TestSecretAddressIsReservedAutomatically(t *testing.T) {
	s := newSecured(t, engines()[0].open(t))
	codec, err := fhir.NewCodec(domain.RecordTypes()...)
	require.NoError(t, err)
	body := patientJSON(t, 60, "secret-1")
	body = bytes.Replace(body, []byte(`"gender"`), []byte(`"extension":[{"url":"https://kjernejournal.example.no/fhir/StructureDefinition/secret-address","valueBoolean":true}],"gender"`), 1)
	s.put(t, codec, body)
	s.put(t, codec, clinical("Flag", "secret-1", "secret-flag", "x"))
	emerg := s.token("emergency", "secret-1")
	outcome(t, s.as_(emerg, "AKUTT", "GET", "/Flag/secret-flag", nil), http.StatusNotFound)
	_ = context.Background()
}

// TestReservationPurgeAfter30Days: the record of a reserved patient is
// deleted by the purge job 30 days after the reservation, not before; a
// reservation lifted in time deletes nothing; the usage log outlives the
// record. The clock is injected; nothing sleeps.
func TestReservationPurgeAfter30Days(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		s.addCitizen(t)
		ctx := context.Background()
		citizen, gp := s.token("citizen", ""), s.token("gp", citizenPatient)
		require.Equal(t, http.StatusOK, s.as_(gp, "UNNTAK", "GET", "/Flag/cit-flag", nil).status)
		r := s.as_(citizen, "", "POST", "/Consent", consent(privacy.Reservation, true, time.Now().UTC().Truncate(time.Second), nil))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		reservation := r.json(t)["id"].(string)
		// The 30 days run from the time the server recorded (dateTime as stored).
		reservedAt, err := time.Parse(time.RFC3339Nano, r.json(t)["dateTime"].(string))
		require.NoError(t, err)

		job := func(at time.Time) []string {
			p := &privacy.Purger{Store: st, Now: func() time.Time { return at }}
			purged, err := p.RunOnce(ctx)
			require.NoError(t, err)
			return purged
		}
		// 29 days 23 hours: nothing is deleted, and undo would still restore it
		assert.Empty(t, job(reservedAt.Add(30*24*time.Hour-time.Hour)))
		_, err = st.Read(ctx, "Flag", "cit-flag")
		require.NoError(t, err)

		// Another patient reserves and lifts the reservation in time: never purged.
		other := s.patients[1]
		lifted := privacy.Setting{Patient: other, Kind: privacy.Reservation, Active: false, Since: reservedAt.Add(time.Hour)}
		codec, err := fhir.NewCodec(domain.RecordTypes()...)
		require.NoError(t, err)
		s.put(t, codec, withID(t, lifted.Consent(), "lifted-1"))

		// 30 days: a new run of the job (as after a restart) deletes the record.
		assert.Equal(t, []string{citizenPatient}, job(reservedAt.Add(30*24*time.Hour)))
		for _, k := range [][2]string{{"Flag", "cit-flag"}, {"MedicationStatement", "cit-med"}} {
			_, err := st.Read(ctx, k[0], k[1])
			assert.ErrorIs(t, err, store.ErrNotFound, "%s/%s", k[0], k[1])
			_, err = st.History(ctx, k[0], k[1], store.HistoryQuery{})
			assert.ErrorIs(t, err, store.ErrNotFound, "no history left of %s/%s", k[0], k[1])
		}
		_, err = st.Read(ctx, "Flag", "sec-flag-1")
		assert.NoError(t, err, "the patient who lifted the reservation keeps the record")
		// The person stays reserved; the usage log outlives the record.
		outcome(t, s.as_(gp, "UNNTAK", "GET", "/Flag/cit-flag", nil), http.StatusNotFound)
		recs, err := st.SearchAudit(ctx, store.AuditQuery{Patient: citizenPatient})
		require.NoError(t, err)
		assert.NotEmpty(t, recs)
		// Lifting the reservation now brings back an empty record.
		r = s.as_(citizen, "", "PUT", "/Consent/"+reservation, withID(t, consent(privacy.Reservation, false, reservedAt.Add(31*24*time.Hour), nil), reservation))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		r = s.as_(gp, "UNNTAK", "GET", "/Flag?patient="+citizenPatient, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.EqualValues(t, 0, r.json(t)["total"])
		// running again purges nothing more
		assert.Empty(t, job(reservedAt.Add(40*24*time.Hour)))
	})
}

// TestSecretAddressPatientAndItsDataInOneTransaction: a transaction that
// records a person with a secret address and clinical data for them is
// refused as it would be once the Patient is stored (a secret address
// reserves the record: no new data), and nothing of it is stored; the
// same transaction for a person without one is accepted.
func TestSecretAddressPatientAndItsDataInOneTransaction(t *testing.T) {
	forEachEngine(t, func(t *testing.T, _ *client, st store.Store) {
		s := newSecured(t, st)
		feeder := s.token("feeder", "")
		tx := func(n int, secret bool) []byte {
			p := patientJSON(t, n, "")
			if secret {
				p = bytes.Replace(p, []byte(`"gender"`), []byte(`"extension":[{"url":"`+domain.SecretAddressExtension+`","valueBoolean":true}],"gender"`), 1)
			}
			ms := bytes.Replace(clinical("MedicationStatement", "X", "", "from e-resept"), []byte(`"Patient/X"`), []byte(`"urn:uuid:8f0e8e8a-0b5e-4a38-9f6e-3f7a2f1c0a01"`), 1)
			return []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` +
				`{"fullUrl":"urn:uuid:8f0e8e8a-0b5e-4a38-9f6e-3f7a2f1c0a01","resource":` + string(p) + `,"request":{"method":"POST","url":"Patient"}},` +
				`{"resource":` + string(ms) + `,"request":{"method":"POST","url":"MedicationStatement"}}]}`)
		}
		r := s.as_(feeder, "", "POST", "/", tx(71, true))
		assert.Equal(t, "reserved-no-new-data", reasonOf(t, r), "body: %s", r.body)
		found, err := st.FindByIdentifier(context.Background(), "Patient", domain.SystemFNR+"|"+fnrOf(t, patientJSON(t, 71, "")))
		require.NoError(t, err)
		assert.Empty(t, found, "nothing of the refused transaction is stored")

		r = s.as_(feeder, "", "POST", "/", tx(72, false))
		assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	})
}

// fnrOf is the person number of a Patient's JSON.
func fnrOf(t *testing.T, patient []byte) string {
	t.Helper()
	var p struct {
		Identifier []struct{ System, Value string }
	}
	require.NoError(t, json.Unmarshal(patient, &p))
	for _, id := range p.Identifier {
		if id.System == domain.SystemFNR {
			return id.Value
		}
	}
	t.Fatalf("no person number in %s", patient)
	return ""
}
