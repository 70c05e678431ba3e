package cli

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
	"github.com/kjernejournal/kjernejournal/internal/smart"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// richDemoPatient is the demo patient with the richest record (critical
// information, medications, visits, documents, a restriction), offered
// first on the development login and EHR pages.
const richDemoPatient = seed.CitizenPatientID

// maxChoices bounds the patients the development pages list: they are for
// trying the server, not for browsing a national register.
const maxChoices = 100

var errEnough = errors.New("enough patients listed")

// patientChoices lists patients for the development login and EHR pages:
// id, name and person number, the demo patient first.
func patientChoices(st store.Store) func(ctx context.Context) []smart.PatientChoice {
	m, ok := st.(store.Maintenance)
	if !ok {
		return nil
	}
	return func(ctx context.Context) []smart.PatientChoice {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var out []smart.PatientChoice
		if v, err := st.Read(ctx, "Patient", richDemoPatient); err == nil && !v.Deleted {
			out = append(out, patientChoice(v))
		}
		_ = m.ScanType(ctx, "Patient", func(v store.Version) error {
			if v.ID == richDemoPatient {
				return nil
			}
			out = append(out, patientChoice(v))
			if len(out) == maxChoices {
				return errEnough
			}
			return nil
		})
		if len(out) > 1 {
			rest := out[1:]
			if out[0].ID != richDemoPatient {
				rest = out
			}
			sort.Slice(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
		}
		return out
	}
}

func patientChoice(v store.Version) smart.PatientChoice {
	var p struct {
		Name []struct {
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	c := smart.PatientChoice{ID: v.ID}
	if json.Unmarshal(v.Body, &p) != nil {
		return c
	}
	if len(p.Name) > 0 {
		c.Name = strings.TrimSpace(strings.Join(p.Name[0].Given, " ") + " " + p.Name[0].Family)
	}
	for _, id := range p.Identifier {
		if id.System == domain.SystemFNR || id.System == domain.SystemDNR {
			c.PID = id.Value
		}
	}
	return c
}
