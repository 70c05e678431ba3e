package interaction

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/profile"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// recorderRole is the contained PractitionerRole (id recorderRef) of the
// national critical-information profiles, from the token: the HP by HPR
// number, the point of care (or else the legal entity) by organisation
// number, the HP's category from the attest. It replaces whatever the
// client put in contained, since a client's own contained resources would
// otherwise let it say who recorded the information. ref is the
// Reference to it, as JSON arrays or objects ready to append.
func recorderRole(p *auth.Principal) (role, ref []byte, err error) {
	type identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	type party struct {
		Identifier identifier `json:"identifier"`
		Display    string     `json:"display,omitempty"`
	}
	type coding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	type concept struct {
		Coding []coding `json:"coding"`
	}
	r := struct {
		ResourceType string    `json:"resourceType"`
		ID           string    `json:"id"`
		Practitioner party     `json:"practitioner"`
		Organization *party    `json:"organization,omitempty"`
		Code         []concept `json:"code,omitempty"`
	}{ResourceType: "PractitionerRole", ID: domain.RecorderRef, Practitioner: party{identifier{domain.SystemHPR, p.HPR}, p.Name}}
	if org := p.OrgChild; org != "" || p.OrgParent != "" {
		if org == "" {
			org = p.OrgParent
		}
		r.Organization = &party{Identifier: identifier{domain.SystemOrgNr, org}}
	}
	if p.HPCategory != "" {
		r.Code = []concept{{[]coding{{domain.SystemHPCategory, p.HPCategory}}}}
	}
	if role, err = json.Marshal([]any{r}); err != nil {
		return nil, nil, err
	}
	reference := map[string]string{"reference": "#" + domain.RecorderRef}
	if p.Name != "" {
		reference["display"] = p.Name
	}
	if ref, err = json.Marshal(reference); err != nil {
		return nil, nil, err
	}
	return role, ref, nil
}

// criticalVersion reports whether a stored version is a Consent that is
// critical information (scope adr or treatment) rather than a privacy
// setting; profile.CriticalConsent is the one place that tells them apart.
func criticalVersion(v store.Version) bool {
	return v.Type == "Consent" && !v.Deleted && profile.CriticalConsent(v.Body)
}

// criticalConsentSearch decides which kind of Consent a search is for.
// Health personnel never see privacy settings: theirs is for critical
// information. Citizen support manages privacy settings only: theirs is for
// those. The citizen sees both in their own record, one kind per search:
// the critical information when the query asks for it (scope adr or
// treatment, or criticalInfoType), the privacy settings otherwise, as the
// citizen portal expects. A search never mixes the two.
func criticalConsentSearch(req *Request, params url.Values) bool {
	p := req.Principal
	switch {
	case p == nil:
		// Access rules off: as the citizen.
	case p.Kind() == auth.KindPractitioner:
		return true
	case p.Kind() != auth.KindCitizen:
		return false
	}
	for key, vs := range params {
		name, _, _ := strings.Cut(key, ":")
		if name == "criticalInfoType" {
			return true
		}
		if name != "scope" {
			continue
		}
		for _, v := range vs {
			for _, one := range strings.Split(v, ",") {
				_, code, found := strings.Cut(one, "|")
				if !found {
					code = one
				}
				if code == "adr" || code == "treatment" {
					return true
				}
			}
		}
	}
	return false
}

// checkConsentKind refuses an update that would turn a privacy setting
// into critical information or back: the two are kept apart for their
// whole history, so that neither is ever read as the other.
func checkConsentKind(prev *store.Version, critical bool) error {
	if prev == nil || prev.Deleted || prev.Type != "Consent" || criticalVersion(*prev) == critical {
		return nil
	}
	if critical {
		return invalid("Consent.scope", "Consent/%s is a privacy setting; critical information (scope adr or treatment) is reported as a new Consent", prev.ID)
	}
	return invalid("Consent.scope", "Consent/%s is critical information (scope adr or treatment); its scope cannot change to a privacy setting", prev.ID)
}

// criticalChange reports whether a pending write changes critical
// information, which Subscriptions watch. A Consent written without a
// privacy change is critical information (prepare decides with
// profile.CriticalConsent); Consents are never deleted.
func criticalChange(p *pending) bool {
	typ := p.write.Type
	return domain.IsCriticalType(typ) || typ == "Consent" && p.res != nil && p.change == nil
}

// criticalInfoCategories are, for the types whose category is not the
// national type of critical information, the categories each national
// type stands for: the national API's criticalInfoType search is
// translated to them (the criticalInfoType-category SearchParameter
// indexes the category).
var criticalInfoCategories = map[string]map[string][]string{
	"AllergyIntolerance": {
		domain.DrugReaction:  {"medication"},
		domain.OtherAllergen: {"food", "environment", "biologic"},
	},
	"Flag": {
		domain.ChangedTreatmentRoutines:         {"endret-behandlingsrutine"},
		domain.OtherAnesthesiaProblem:           {"anestesikomplikasjon"},
		domain.IntubationProblem:                {"anestesikomplikasjon"},
		domain.CriticalMedicalCondition:         {"kritisk-tilstand"},
		domain.OngoingTreatment:                 {"pagaende-behandling"},
		domain.TransplantsAndOtherForeignBodies: {"implantat"},
		domain.Infection:                        {"smitte"},
	},
}

// translateCriticalInfoType rewrites criticalInfoType values of a search
// of typ from the national codes (DrugReaction, with or without the
// critical-info-type system) to the categories they stand for. Other
// values pass unchanged, for the parser to judge.
func translateCriticalInfoType(typ string, params url.Values) url.Values {
	m, ok := criticalInfoCategories[typ]
	if !ok {
		return params
	}
	var out url.Values
	for key, vs := range params {
		name, _, _ := strings.Cut(key, ":")
		if name != "criticalInfoType" {
			continue
		}
		if out == nil {
			out = make(url.Values, len(params))
			for k, v := range params {
				out[k] = v
			}
		}
		nv := make([]string, len(vs))
		for i, v := range vs {
			var parts []string
			for _, one := range strings.Split(v, ",") {
				code := one
				if sys, c, found := strings.Cut(one, "|"); found && (sys == domain.SystemCriticalInfoTypeNational || sys == "") {
					code = c
				}
				if cats, ok := m[code]; ok {
					parts = append(parts, cats...)
				} else {
					parts = append(parts, one)
				}
			}
			nv[i] = strings.Join(parts, ",")
		}
		out[key] = nv
	}
	if out == nil {
		return params
	}
	return out
}
