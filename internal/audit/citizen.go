package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"

	"github.com/kjernejournal/kjernejournal/fhir"
)

// NameDelay is how long the health professional's name is hidden from the
// citizen after the access: the organisation shows at once, the person only
// after a week.
const NameDelay = 7 * 24 * time.Hour

// Markers the citizen's view tags events with (meta.tag, system
// CodeSystemMarker), so that a portal can highlight them without reading
// extensions.
const (
	MarkerRefused          = "refused"
	MarkerRestrictedOpened = "restricted-opened"
	MarkerEmergency        = "emergency"
	MarkerDocumentsViewed  = "documents-viewed"
	MarkerLabResultsViewed = "lab-results-viewed"
	MarkerNameDelayed      = "name-delayed"
)

var markerDisplay = map[string]string{
	MarkerRefused:          "Tilgang avvist",
	MarkerRestrictedOpened: "Sperrede opplysninger ble åpnet",
	MarkerEmergency:        "Akutt tilgang",
	MarkerDocumentsViewed:  "Journaldokumenter ble sett",
	MarkerLabResultsViewed: "Prøvesvar ble sett",
	MarkerNameDelayed:      "Navnet vises etter 7 dager",
}

const extTranslation = "http://hl7.org/fhir/StructureDefinition/translation"

var oslo = func() *time.Location {
	if l, err := time.LoadLocation("Europe/Oslo"); err == nil {
		return l
	}
	return time.UTC
}()

// CitizenView turns stored AuditEvents into the citizen's "Logg over bruk",
// newest first. It fails rather than return an event it could not filter.
func CitizenView(events [][]byte, now time.Time) ([][]byte, error) {
	out := make([][]byte, len(events))
	for i, ev := range events {
		v, err := CitizenEvent(ev, now)
		if err != nil {
			return nil, fmt.Errorf("audit: event %d: %w", i, err)
		}
		out[i] = v
	}
	if err := NewestFirst(out); err != nil {
		return nil, err
	}
	return out, nil
}

// NewestFirst sorts events by recorded, newest first. Events recorded at
// the same instant keep the reverse of their given (storage) order, so the
// later-stored one comes first.
func NewestFirst(events [][]byte) error {
	type timed struct {
		at time.Time
		ev []byte
	}
	ts := make([]timed, len(events))
	for i, ev := range events {
		t, err := Recorded(ev)
		if err != nil {
			return fmt.Errorf("audit: event %d: %w", i, err)
		}
		ts[len(events)-1-i] = timed{t, ev}
	}
	slices.SortStableFunc(ts, func(a, b timed) int { return b.at.Compare(a.at) })
	for i, t := range ts {
		events[i] = t.ev
	}
	return nil
}

// Recorded reads an event's recorded instant.
func Recorded(event []byte) (time.Time, error) {
	var h struct {
		Recorded string `json:"recorded"`
	}
	if err := json.Unmarshal(event, &h); err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, h.Recorded)
	if err != nil {
		return time.Time{}, fmt.Errorf("recorded: %w", err)
	}
	return t, nil
}

type obj = map[string]any

// CitizenEvent transforms one stored AuditEvent for the citizen:
//   - the name and identifier of a health professional are hidden until
//     NameDelay after recorded; the organisation shows at once; another
//     person's national identity number is never shown;
//   - document searches and retrievals say that documents were viewed,
//     not which (document entities and the query are removed);
//   - raw queries and the hash chain are removed (the view is a derived
//     copy, not the record, and BALP profiles no longer apply);
//   - refusals, openings of restricted parts and emergency access are
//     tagged (meta.tag) and explained in outcomeDesc, in Norwegian with an
//     English translation.
func CitizenEvent(event []byte, now time.Time) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	var m obj
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m["resourceType"] != "AuditEvent" {
		return nil, errors.New("not an AuditEvent")
	}
	recorded, err := Recorded(event)
	if err != nil {
		return nil, err
	}
	hide := now.Before(recorded.Add(NameDelay))
	showFrom := recorded.Add(NameDelay).In(oslo).Format("02.01.2006 kl. 15:04")

	f := facts{interaction: interactionOf(m), outcome: str(m["outcome"])}
	// Root extensions: keep the access facts, drop the chain link.
	var exts []any
	for _, x := range arr(m["extension"]) {
		xm, _ := x.(obj)
		switch str(xm["url"]) {
		case ExtChain:
			continue
		case ExtAccess:
			// What a refused token claimed and the raw request line are
			// for the auditor: they may name someone falsely or carry
			// anything a caller typed.
			var keep []any
			for _, sub := range arr(xm["extension"]) {
				sm, _ := sub.(obj)
				switch u := str(sm["url"]); {
				case u == "request" || strings.HasPrefix(u, "claimed"):
					continue
				}
				keep = append(keep, sub)
			}
			xm["extension"] = keep
			for _, sub := range keep {
				sm, _ := sub.(obj)
				switch str(sm["url"]) {
				case "refused":
					f.refused = sm["valueBoolean"] == true
				case "openedRestricted":
					f.opened = sm["valueBoolean"] == true
				case "emergency":
					f.emergency = sm["valueBoolean"] == true
				}
			}
		}
		exts = append(exts, x)
	}
	setOrDelete(m, "extension", exts)
	f.failed = !f.refused && f.outcome != "0"

	for _, a := range arr(m["agent"]) {
		am, _ := a.(obj)
		delete(am, "network")
		code := typeCode(am["type"])
		if code == "110153" || code == "110152" {
			if am["requestor"] == true {
				f.actorOrg = orgText(am)
			}
			continue
		}
		if am["requestor"] != true {
			continue
		}
		f.actorOrg = orgText(am)
		if code == "PAT" {
			f.self = true
			continue
		}
		who, _ := am["who"].(obj)
		if who != nil {
			if id, _ := who["identifier"].(obj); id != nil {
				if s := str(id["system"]); s == domain.SystemFNR || s == domain.SystemDNR {
					delete(who, "identifier")
				}
			}
		}
		name := str(am["name"])
		if hide {
			who := "Helsepersonell"
			if !hasRole(am, "practitioner") {
				who = "Saksbehandler"
			}
			delete(am, "name")
			am["who"] = obj{"display": who + " (navnet vises fra " + showFrom + ")"}
			f.nameHidden = true
		} else {
			f.actorName = name
			if len(who) == 0 {
				delete(am, "who")
			}
		}
	}

	docs := f.interaction == string(DocumentRead) || f.interaction == string(DocumentSearch)
	// Like documents, lab results show that they were viewed, not which.
	lab := f.interaction == string(LabSearch)
	var ents []any
	for _, en := range arr(m["entity"]) {
		em, _ := en.(obj)
		t, _ := em["type"].(obj)
		r, _ := em["role"].(obj)
		isDoc := str(t["system"]) == sysResourceTypes && str(t["code"]) == "DocumentReference"
		isQuery := str(r["system"]) == sysObjectRole && str(r["code"]) == "24"
		if str(r["code"]) == "4" && f.resourceType == "" {
			f.resourceType = typeFromRef(em["what"])
		}
		if isQuery && f.resourceType == "" && f.interaction != string(Operation) {
			f.resourceType = str(em["description"])
		}
		isLab := str(t["system"]) == sysResourceTypes && (str(t["code"]) == "DiagnosticReport" || str(t["code"]) == "Observation")
		if docs && (isDoc || isQuery) || lab && (isLab || isQuery) {
			continue
		}
		delete(em, "query")
		ents = append(ents, em)
	}
	if docs {
		f.resourceType = "DocumentReference"
		ents = append(ents, obj{
			"type":        obj{"system": sysResourceTypes, "code": "DocumentReference", "display": "DocumentReference"},
			"role":        obj{"system": sysObjectRole, "code": "3", "display": "Report"},
			"description": "Journaldokumenter (hvilke dokumenter vises ikke)",
		})
	}
	if lab {
		if f.resourceType != "Observation" {
			f.resourceType = "DiagnosticReport"
		}
		ents = append(ents, obj{
			"type":        obj{"system": sysResourceTypes, "code": f.resourceType, "display": f.resourceType},
			"role":        obj{"system": sysObjectRole, "code": "3", "display": "Report"},
			"description": "Prøvesvar (hvilke prøvesvar vises ikke)",
		})
	}
	setOrDelete(m, "entity", ents)

	meta, _ := m["meta"].(obj)
	if meta == nil {
		meta = obj{}
	}
	delete(meta, "profile")
	var tags []any
	tag := func(code string, on bool) {
		if on {
			tags = append(tags, obj{"system": CodeSystemMarker, "code": code, "display": markerDisplay[code]})
		}
	}
	tag(MarkerRefused, f.refused)
	tag(MarkerRestrictedOpened, f.opened)
	tag(MarkerEmergency, f.emergency)
	tag(MarkerDocumentsViewed, docs)
	tag(MarkerLabResultsViewed, lab)
	tag(MarkerNameDelayed, f.nameHidden)
	if len(tags) > 0 {
		meta["tag"] = tags
	}
	setOrDelete(m, "meta", meta)

	no, en := f.describe(showFrom)
	m["language"] = "nb"
	m["outcomeDesc"] = no
	m["_outcomeDesc"] = obj{"extension": []any{obj{
		"url": extTranslation,
		"extension": []any{
			obj{"url": "lang", "valueCode": "en"},
			obj{"url": "content", "valueString": en},
		},
	}}}

	return fhir.JSON(m)
}

// facts is what the citizen's sentence is made from.
type facts struct {
	interaction, outcome, resourceType string
	actorOrg                           [2]string // Norwegian, English
	actorName                          string
	self, nameHidden                   bool
	refused, failed, opened, emergency bool
}

func (f *facts) describe(showFrom string) (no, en string) {
	var sb, se strings.Builder
	switch {
	case f.self:
		sb.WriteString("Du")
		se.WriteString("You")
	case f.actorName != "":
		sb.WriteString(f.actorName + ", " + f.actorOrg[0] + ",")
		se.WriteString(f.actorName + ", " + f.actorOrg[1] + ",")
	default:
		sb.WriteString(upperFirst(f.actorOrg[0]))
		se.WriteString(upperFirst(f.actorOrg[1]))
	}
	secNo, secEn := sectionText(f.resourceType)
	vNo, vEn := verb(f.interaction, f.refused)
	switch Interaction(f.interaction) {
	case DocumentRead:
		secNo, secEn = "journaldokumenter (hvilke vises ikke)", "journal documents (which ones is not shown)"
	case DocumentSearch:
		secNo, secEn = "journaldokumenter", "journal documents"
	case LabSearch:
		secNo, secEn = "prøvesvar (hvilke vises ikke)", "lab results (which ones is not shown)"
	case PrivacyChange:
		secNo, secEn = "personverninnstillingene", "the privacy settings"
	}
	sb.WriteString(" " + vNo + " " + secNo + ".")
	se.WriteString(" " + vEn + " " + secEn + ".")
	if f.refused {
		sb.WriteString(" Tilgangen ble avvist.")
		se.WriteString(" Access was refused.")
	}
	if f.failed {
		sb.WriteString(" Forespørselen mislyktes.")
		se.WriteString(" The request failed.")
	}
	if f.emergency {
		sb.WriteString(" Det ble brukt akutt tilgang (nødsituasjon).")
		se.WriteString(" Emergency access was used.")
	}
	if f.opened {
		sb.WriteString(" Opplysninger du har sperret, ble åpnet.")
		se.WriteString(" Information you have restricted was opened.")
	}
	if f.nameHidden {
		sb.WriteString(" Navnet på helsepersonellet vises fra " + showFrom + ".")
		se.WriteString(" The health professional's name is shown from " + showFrom + ".")
	}
	return sb.String(), se.String()
}

func verb(interaction string, refused bool) (no, en string) {
	type pair struct{ no, en, tryNo, tryEn string }
	look := pair{"så på", "looked at", "forsøkte å se", "tried to look at"}
	p := look
	switch Interaction(interaction) {
	case Create:
		p = pair{"registrerte", "recorded", "forsøkte å registrere", "tried to record"}
	case Update, PrivacyChange:
		p = pair{"endret", "changed", "forsøkte å endre", "tried to change"}
	case Delete:
		p = pair{"slettet", "deleted", "forsøkte å slette", "tried to delete"}
	case DocumentSearch:
		p = pair{"søkte etter", "searched for", "forsøkte å søke etter", "tried to search for"}
	case DocumentRead:
		p = pair{"åpnet", "opened", "forsøkte å åpne", "tried to open"}
	}
	if refused {
		return p.tryNo, p.tryEn
	}
	return p.no, p.en
}

func sectionText(resourceType string) (no, en string) {
	switch resourceType {
	case "AllergyIntolerance", "Flag", "Condition", "Procedure":
		return "kritisk informasjon", "critical information"
	case "MedicationStatement":
		return "legemiddellisten", "the medication list"
	case "Encounter":
		return "besøkshistorikken", "the visit history"
	case "DocumentReference", "Binary":
		return "journaldokumenter", "journal documents"
	case "DiagnosticReport", "Observation":
		return "prøvesvar", "lab results"
	case "Patient":
		return "personopplysningene", "the personal details"
	case "Consent":
		return "personverninnstillingene", "the privacy settings"
	case "AuditEvent":
		return "loggen over bruk", "the usage log"
	}
	return "opplysninger i kjernejournalen", "information in the summary care record"
}

// orgText names the organisation of the requesting agent: the point of
// care with its legal entity, by name where known.
func orgText(agent obj) [2]string {
	var le, pc, leNo, pcNo string
	for _, x := range arr(agent["extension"]) {
		xm, _ := x.(obj)
		if str(xm["url"]) != ExtOrganisation {
			continue
		}
		for _, sub := range arr(xm["extension"]) {
			sm, _ := sub.(obj)
			ref, _ := sm["valueReference"].(obj)
			id, _ := ref["identifier"].(obj)
			switch str(sm["url"]) {
			case "legalEntity":
				le, leNo = str(ref["display"]), str(id["value"])
			case "pointOfCare":
				pc, pcNo = str(ref["display"]), str(id["value"])
			}
		}
	}
	switch {
	case pc != "" && le != "" && pc != le:
		return [2]string{pc + " (" + le + ")", pc + " (" + le + ")"}
	case pc != "":
		return [2]string{pc, pc}
	case le != "":
		return [2]string{le, le}
	case pcNo != "":
		return [2]string{"virksomhet med organisasjonsnummer " + pcNo, "the organisation with organisation number " + pcNo}
	case leNo != "":
		return [2]string{"virksomhet med organisasjonsnummer " + leNo, "the organisation with organisation number " + leNo}
	}
	return [2]string{"en ukjent virksomhet", "an unknown organisation"}
}

func upperFirst(s string) string {
	for i, r := range s {
		if i == 0 {
			return strings.ToUpper(string(r)) + s[len(string(r)):]
		}
	}
	return s
}

func interactionOf(m obj) string {
	for _, c := range arr(m["subtype"]) {
		cm, _ := c.(obj)
		if str(cm["system"]) == CodeSystemInteraction {
			return str(cm["code"])
		}
	}
	return ""
}

func hasRole(agent obj, role string) bool {
	for _, r := range arr(agent["role"]) {
		rm, _ := r.(obj)
		for _, c := range arr(rm["coding"]) {
			cm, _ := c.(obj)
			if str(cm["system"]) == CodeSystemUserRole && str(cm["code"]) == role {
				return true
			}
		}
	}
	return false
}

func typeCode(t any) string {
	tm, _ := t.(obj)
	for _, c := range arr(tm["coding"]) {
		cm, _ := c.(obj)
		return str(cm["code"])
	}
	return ""
}

func typeFromRef(what any) string {
	wm, _ := what.(obj)
	ref := str(wm["reference"])
	if ref == "" {
		ref = str(wm["display"])
	}
	t, _, _ := strings.Cut(ref, "/")
	return t
}

func setOrDelete(m obj, key string, v any) {
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			delete(m, key)
			return
		}
	case obj:
		if len(x) == 0 {
			delete(m, key)
			return
		}
	}
	m[key] = v
}

func arr(v any) []any {
	a, _ := v.([]any)
	return a
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
