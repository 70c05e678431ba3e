package audit

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// URLs this server defines. They are documented in doc.go.
const (
	urlBase = domain.Base

	// ExtAccess is the root extension holding the access basis, the
	// policy's reason code, the HTTP status and the flags the citizen sees.
	ExtAccess = urlBase + "StructureDefinition/audit-access"
	// ExtOrganisation is the extension on the requesting agent naming the
	// legal entity and the point of care.
	ExtOrganisation = urlBase + "StructureDefinition/audit-organisation"
	// ExtChain is the root extension holding the hash chain link.
	ExtChain = urlBase + "StructureDefinition/audit-chain"

	CodeSystemInteraction  = urlBase + "CodeSystem/audit-interaction"
	CodeSystemAccessBasis  = urlBase + "CodeSystem/access-basis"
	CodeSystemAccessReason = domain.SystemAccessReason
	CodeSystemUserRole     = urlBase + "CodeSystem/user-role"
	CodeSystemMarker       = urlBase + "CodeSystem/usage-log-marker"
)

// External code systems and identifier systems.
const (
	sysEventType     = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	sysRestful       = "http://hl7.org/fhir/restful-interaction"
	sysIHEEvent      = "urn:ihe:event-type-code"
	sysDICOM         = "http://dicom.nema.org/resources/ontology/DCM"
	sysParticipation = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	sysRoleClass     = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
	sysSourceType    = "http://terminology.hl7.org/CodeSystem/security-source-type"
	sysEntityType    = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	sysObjectRole    = "http://terminology.hl7.org/CodeSystem/object-role"
	sysResourceTypes = "http://hl7.org/fhir/resource-types"
	sysBALPEntity    = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"

	balpProfile = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
)

// spec is how one interaction is coded.
type spec struct {
	rest        string // restful-interaction code, "" if none
	ihe, iheDsp string // IHE transaction, for the document interactions
	action      byte
	profile     string // BALP profile name without the Patient prefix, "" if none fits
}

func specOf(r *Record) spec {
	switch r.Interaction {
	case Read, VRead:
		return spec{rest: string(r.Interaction), action: 'R', profile: "Read"}
	case Search:
		return spec{rest: "search", action: 'E', profile: "Query"}
	case History:
		rest := "history-system"
		switch {
		case r.ResourceID != "":
			rest = "history-instance"
		case r.ResourceType != "":
			rest = "history-type"
		}
		return spec{rest: rest, action: 'E'}
	case Create:
		return spec{rest: "create", action: 'C', profile: "Create"}
	case Update:
		return spec{rest: "update", action: 'U', profile: "Update"}
	case Delete:
		return spec{rest: "delete", action: 'D', profile: "Delete"}
	case Batch, Transaction, Operation:
		return spec{rest: string(r.Interaction), action: 'E'}
	case DocumentSearch:
		return spec{rest: "search", ihe: "ITI-67", iheDsp: "Find Document References", action: 'E', profile: "Query"}
	case DocumentRead:
		return spec{ihe: "ITI-68", iheDsp: "Retrieve Document", action: 'R'}
	case LabSearch:
		return spec{rest: "search", action: 'E', profile: "Query"}
	case PrivacyChange:
		// The citizen's settings are changed whether the Consent is new or
		// not, so this is logged as an update of the privacy settings.
		return spec{rest: "update", action: 'U'}
	}
	return spec{action: 'E'}
}

var basisDisplay = map[access.Basis]string{
	access.Unntak:           "Unntak fra samtykke",
	access.Samtykke:         "Samtykke",
	access.Akutt:            "Akutt",
	access.ForhoyetSamtykke: "Forhøyet tilgang med samtykke",
	access.ForhoyetAkutt:    "Forhøyet tilgang i akuttsituasjon",
}

// Events builds the AuditEvents for a record: one per patient, as BALP
// asks, so that each patient's log and each patient's retention stand on
// their own. A record without patients gives one event without a patient
// entity.
func Events(r Record) [][]byte {
	ps := uniquePatients(r.Patients)
	if len(ps) <= 1 {
		return [][]byte{build(&r, ps, eventID(r.ID, 0))}
	}
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = build(&r, []string{p}, eventID(r.ID, i))
	}
	return out
}

// Event builds one AuditEvent for the record. A record about several
// patients gets all of them as entities (nothing is dropped), but such an
// event follows no BALP Patient* profile: the REST layer should store
// Events(r) instead.
func Event(r Record) []byte {
	return build(&r, uniquePatients(r.Patients), eventID(r.ID, 0))
}

func uniquePatients(ps []string) []string {
	if len(ps) < 2 {
		return ps
	}
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		dup := false
		for _, q := range out {
			if q == p {
				dup = true
				break
			}
		}
		if !dup && p != "" {
			out = append(out, p)
		}
	}
	return out
}

func eventID(id string, i int) string {
	if i > 0 && id != "" {
		id += "-" + strconv.Itoa(i+1)
	}
	if validID(id) {
		return id
	}
	return rand.Text()
}

// build writes the AuditEvent. Field order is fixed so that the same record
// always gives the same bytes (the hash chain covers them).
func build(r *Record, patients []string, id string) []byte {
	sp := specOf(r)
	server := r.Server
	if server == "" {
		server = "kjernejournal"
	}
	success := r.Outcome.Code() == "0"
	patientOK := len(patients) == 1 && validID(patients[0])
	resOK := validType(r.ResourceType) && validID(r.ResourceID)
	profile := ""
	if success && sp.profile != "" {
		switch sp.profile {
		case "Query":
			if r.Query != "" {
				profile = sp.profile
			}
		default:
			if resOK {
				profile = sp.profile
			}
		}
		if profile != "" && patientOK {
			profile = "Patient" + profile
		}
	}

	e := &w{b: make([]byte, 0, 4096+len(r.Query)*4/3+len(r.Documents)*300)}
	e.raw(`{"resourceType":"AuditEvent","id":`)
	e.str(id)
	if profile != "" {
		e.raw(`,"meta":{"profile":[`)
		e.str(balpProfile + profile)
		e.raw(`]}`)
	}
	accessExtension(e, r)

	e.raw(`,"type":{"system":"` + sysEventType + `","code":"rest","display":"Restful Operation"},"subtype":[`)
	if sp.rest != "" {
		e.coding(sysRestful, sp.rest, sp.rest)
		e.comma()
	}
	if sp.ihe != "" {
		e.coding(sysIHEEvent, sp.ihe, sp.iheDsp)
		e.comma()
	}
	if validCode(string(r.Interaction)) {
		e.coding(CodeSystemInteraction, string(r.Interaction), "")
	} else {
		e.coding(CodeSystemInteraction, "unknown", "")
	}
	e.raw(`],"action":"`)
	e.b = append(e.b, sp.action)
	e.raw(`","recorded":"`)
	e.b = r.Time.UTC().AppendFormat(e.b, "2006-01-02T15:04:05.000000Z07:00")
	e.raw(`","outcome":"`)
	e.raw(r.Outcome.Code())
	e.b = append(e.b, '"')
	if d := outcomeDesc(r.Outcome, success); d != "" {
		e.raw(`,"outcomeDesc":`)
		e.str(d)
	}

	e.raw(`,"agent":[`)
	hasUser := userAgent(e, r, sp)
	if hasUser {
		e.comma()
	}
	clientAgent(e, r, !hasUser)
	e.raw(`,{"type":{"coding":[{"system":"` + sysDICOM + `","code":"110152","display":"Destination Role ID"}]},"who":{"display":`)
	e.str(server)
	e.raw(`},"requestor":false}]`)

	e.raw(`,"source":{"site":`)
	e.str(server)
	e.raw(`,"observer":{"display":`)
	e.str(server)
	e.raw(`},"type":[{"system":"` + sysSourceType + `","code":"4","display":"Application Server"}]}`)

	entities(e, r, patients, resOK)
	e.b = append(e.b, '}')
	return e.b
}

func outcomeDesc(o Outcome, success bool) string {
	reason := string(o.Reason)
	if success && (reason == "" || o.Reason == access.OK) {
		return ""
	}
	switch {
	case reason != "" && o.Message != "":
		return reason + ": " + o.Message
	case reason != "":
		return reason
	case o.Message != "":
		return o.Message
	case o.HTTPStatus != 0:
		return "HTTP " + strconv.Itoa(o.HTTPStatus)
	}
	return ""
}

// accessExtension writes the access basis, reason, status and flags. They
// are an extension rather than entity.detail because they describe the
// access itself, not one of the objects it touched, and a typed Coding
// lets the auditor search them.
func accessExtension(e *w, r *Record) {
	e.raw(`,"extension":[{"url":"` + ExtAccess + `","extension":[`)
	first := true
	sep := func() {
		if !first {
			e.comma()
		}
		first = false
	}
	if d, ok := basisDisplay[r.Basis]; ok {
		sep()
		e.raw(`{"url":"basis","valueCoding":`)
		e.coding(CodeSystemAccessBasis, string(r.Basis), d)
		e.b = append(e.b, '}')
	}
	if validCode(string(r.Outcome.Reason)) {
		sep()
		e.raw(`{"url":"reason","valueCoding":`)
		e.coding(CodeSystemAccessReason, string(r.Outcome.Reason), "")
		e.b = append(e.b, '}')
	}
	if r.Outcome.HTTPStatus != 0 {
		sep()
		e.raw(`{"url":"httpStatus","valueInteger":`)
		e.int(r.Outcome.HTTPStatus)
		e.b = append(e.b, '}')
	}
	if r.Outcome.Refused {
		sep()
		e.raw(`{"url":"refused","valueBoolean":true}`)
	}
	if r.OpenedRestricted {
		sep()
		e.raw(`{"url":"openedRestricted","valueBoolean":true}`)
	}
	if r.emergency() {
		sep()
		e.raw(`{"url":"emergency","valueBoolean":true}`)
	}
	if r.CorrelationID != "" {
		sep()
		e.raw(`{"url":"correlationId","valueString":`)
		e.str(r.CorrelationID)
		e.b = append(e.b, '}')
	}
	if r.Request != "" {
		sep()
		e.raw(`{"url":"request","valueString":`)
		e.str(r.Request)
		e.b = append(e.b, '}')
	}
	if c := r.Claimed; c != nil {
		// The token was refused: what it claimed is kept apart from the
		// agents, which name verified identities only.
		sep()
		e.raw(`{"url":"identityVerified","valueBoolean":false}`)
		for _, kv := range [...][2]string{{"claimedSubject", c.Subject}, {"claimedClient", c.ClientID}, {"claimedIssuer", c.Issuer}, {"claimedHPR", c.HPR}} {
			if kv[1] != "" {
				e.comma()
				e.raw(`{"url":"` + kv[0] + `","valueString":`)
				e.str(kv[1])
				e.b = append(e.b, '}')
			}
		}
	}
	if first {
		// An extension needs a value or sub-extensions; a bare record
		// still says that it was refused or not.
		e.raw(`{"url":"refused","valueBoolean":false}`)
	}
	e.raw(`]}]`)
}

// isPerson reports whether the record has a person (or person role) as
// user; feeder systems act without one.
func isPerson(u User) bool {
	return u.Role != access.System && (u.Role != "" || u.HPR != "" || u.PID != "" || u.Name != "")
}

func userAgent(e *w, r *Record, sp spec) bool {
	u := r.User
	if !isPerson(u) {
		return false
	}
	e.b = append(e.b, '{')
	orgExtension(e, r.Org)
	// BALP's user agent types: the patient as user, a recipient of data for
	// reads and queries, an agent pushing data for writes.
	switch {
	case u.Role == access.Citizen:
		e.raw(`"type":{"coding":[{"system":"` + sysRoleClass + `","code":"PAT","display":"patient"}]}`)
	case sp.action == 'C' || sp.action == 'U' || sp.action == 'D':
		e.raw(`"type":{"coding":[{"system":"` + sysRoleClass + `","code":"AGNT","display":"agent"}]}`)
	default:
		e.raw(`"type":{"coding":[{"system":"` + sysParticipation + `","code":"IRCP","display":"information recipient"}]}`)
	}
	roles := 0
	if u.HPCategory != "" {
		e.raw(`,"role":[`)
		e.concept(domain.SystemHPCategory, u.HPCategory, "")
		roles++
	}
	if validCode(string(u.Role)) {
		if roles == 0 {
			e.raw(`,"role":[`)
		} else {
			e.comma()
		}
		e.concept(CodeSystemUserRole, string(u.Role), "")
		roles++
	}
	if roles > 0 {
		e.b = append(e.b, ']')
	}
	sys, val := personIdentifier(u)
	if val != "" || u.Name != "" {
		e.raw(`,"who":{`)
		if val != "" {
			e.raw(`"identifier":{"system":"`)
			e.raw(sys)
			e.raw(`","value":`)
			e.str(val)
			e.b = append(e.b, '}')
			if u.Name != "" {
				e.comma()
			}
		}
		if u.Name != "" {
			e.raw(`"display":`)
			e.str(u.Name)
		}
		e.b = append(e.b, '}')
	}
	if u.Name != "" {
		e.raw(`,"name":`)
		e.str(u.Name)
	}
	e.raw(`,"requestor":true`)
	if r.PurposeOfUse != "" {
		e.raw(`,"purposeOfUse":[`)
		e.concept(domain.SystemPurposeOfUse, r.PurposeOfUse, "")
		e.b = append(e.b, ']')
	}
	e.b = append(e.b, '}')
	return true
}

// personIdentifier picks the HPR number for health personnel: an HP's
// national identity number must not reach the citizen's log. Others are
// identified by their person number, a D-number (first digit 4-7) in its
// own system.
func personIdentifier(u User) (system, value string) {
	switch {
	case u.HPR != "":
		return domain.SystemHPR, u.HPR
	case u.PID != "":
		if c := u.PID[0]; c >= '4' && c <= '7' {
			return domain.SystemDNR, u.PID
		}
		return domain.SystemFNR, u.PID
	}
	return "", ""
}

// orgExtension writes the organisation as an extension on the requesting
// agent, followed by a comma when written. It belongs to the agent (it is
// where that person or system acts from), and R4's agent has no element
// for an organisation other than who.
func orgExtension(e *w, o Organisation) {
	if o.LegalEntity == "" && o.PointOfCare == "" && o.LegalEntityName == "" && o.PointOfCareName == "" {
		return
	}
	e.raw(`"extension":[{"url":"` + ExtOrganisation + `","extension":[`)
	first := true
	for _, part := range [2][3]string{{"legalEntity", o.LegalEntity, o.LegalEntityName}, {"pointOfCare", o.PointOfCare, o.PointOfCareName}} {
		if part[1] == "" && part[2] == "" {
			continue
		}
		if !first {
			e.comma()
		}
		first = false
		e.raw(`{"url":"`)
		e.raw(part[0])
		e.raw(`","valueReference":{`)
		if part[1] != "" {
			e.raw(`"identifier":{"system":"` + domain.SystemOrgNr + `","value":`)
			e.str(part[1])
			e.b = append(e.b, '}')
			if part[2] != "" {
				e.comma()
			}
		}
		if part[2] != "" {
			e.raw(`"display":`)
			e.str(part[2])
		}
		e.raw(`}}`)
	}
	e.raw(`]}],`)
}

func clientAgent(e *w, r *Record, requestor bool) {
	e.b = append(e.b, '{')
	if requestor {
		orgExtension(e, r.Org)
	}
	e.raw(`"type":{"coding":[{"system":"` + sysDICOM + `","code":"110153","display":"Source Role ID"}]}`)
	if requestor && validCode(string(r.User.Role)) {
		e.raw(`,"role":[`)
		e.concept(CodeSystemUserRole, string(r.User.Role), "")
		e.b = append(e.b, ']')
	}
	// The client is the requesting system (BALP's client agent, Source
	// Role ID): its OAuth client id, and the name the system gives itself
	// in nhn-source-system (the national API convention) as who.display.
	// A record without one renders as before.
	if r.ClientID != "" || r.SourceSystem != "" {
		e.raw(`,"who":{`)
		if r.ClientID != "" {
			e.raw(`"identifier":{`)
			if r.Issuer != "" && validURI(r.Issuer) {
				e.raw(`"system":`)
				e.str(r.Issuer)
				e.comma()
			}
			e.raw(`"value":`)
			e.str(r.ClientID)
			e.b = append(e.b, '}')
			if r.SourceSystem != "" {
				e.comma()
			}
		}
		if r.SourceSystem != "" {
			e.raw(`"display":`)
			e.str(r.SourceSystem)
		}
		e.b = append(e.b, '}')
	}
	// Without a person the client is the highest actor responsible for
	// the access, so it is the requestor.
	if requestor {
		e.raw(`,"requestor":true`)
		if r.PurposeOfUse != "" {
			e.raw(`,"purposeOfUse":[`)
			e.concept(domain.SystemPurposeOfUse, r.PurposeOfUse, "")
			e.b = append(e.b, ']')
		}
	} else {
		e.raw(`,"requestor":false`)
	}
	e.b = append(e.b, '}')
}

func validURI(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
}

func entities(e *w, r *Record, patients []string, resOK bool) {
	n := 0
	open := func() {
		if n == 0 {
			e.raw(`,"entity":[`)
		} else {
			e.comma()
		}
		n++
	}
	for _, p := range patients {
		open()
		e.raw(`{"what":`)
		reference(e, "Patient", p, "")
		e.raw(`,"type":{"system":"` + sysEntityType + `","code":"1","display":"Person"},"role":{"system":"` + sysObjectRole + `","code":"1","display":"Patient"}}`)
	}
	if r.ResourceID != "" && r.Interaction != DocumentRead {
		open()
		e.raw(`{"what":`)
		if resOK {
			reference(e, r.ResourceType, r.ResourceID, r.VersionID)
		} else {
			e.raw(`{"display":`)
			e.str(r.ResourceType + "/" + r.ResourceID)
			e.b = append(e.b, '}')
		}
		e.raw(`,"type":{"system":"` + sysEntityType + `","code":"2","display":"System Object"},"role":{"system":"` + sysObjectRole + `","code":"4","display":"Domain Resource"}}`)
	}
	desc := r.ResourceType
	if r.Interaction == Operation && r.Operation != "" {
		desc = r.Operation
		switch {
		case r.ResourceID != "":
			desc = r.ResourceType + "/" + r.ResourceID + "/" + r.Operation
		case r.ResourceType != "":
			desc = r.ResourceType + "/" + r.Operation
		}
	}
	needQuery := r.Query != "" || r.Interaction == Search || r.Interaction == DocumentSearch || r.Interaction == LabSearch ||
		r.Interaction == Operation && r.Operation != ""
	if needQuery && (r.Query != "" || desc != "") {
		open()
		// BALP keeps the raw query base64 in query and a readable form in
		// description; entity.name would clash with query (sev-1).
		e.raw(`{"type":{"system":"` + sysEntityType + `","code":"2","display":"System Object"},"role":{"system":"` + sysObjectRole + `","code":"24","display":"Query"}`)
		if desc != "" {
			e.raw(`,"description":`)
			e.str(desc)
		}
		if r.Query != "" {
			e.raw(`,"query":"`)
			e.b = base64.StdEncoding.AppendEncode(e.b, []byte(r.Query))
			e.b = append(e.b, '"')
		}
		e.b = append(e.b, '}')
	}
	listed := "DocumentReference"
	if r.Interaction == LabSearch && validType(r.ResourceType) {
		listed = r.ResourceType
	}
	for _, d := range r.Documents {
		if d.ID == "" && d.Source == "" && d.SourceName == "" {
			continue
		}
		open()
		e.raw(`{"what":{`)
		if d.ID != "" || d.Source != "" {
			e.raw(`"identifier":{`)
			if d.ID != "" {
				e.raw(`"value":`)
				e.str(d.ID)
			}
			if d.Source != "" || d.SourceName != "" {
				if d.ID != "" {
					e.comma()
				}
				e.raw(`"assigner":{`)
				if d.Source != "" {
					e.raw(`"identifier":{"system":"` + domain.SystemOrgNr + `","value":`)
					e.str(d.Source)
					e.b = append(e.b, '}')
					if d.SourceName != "" {
						e.comma()
					}
				}
				if d.SourceName != "" {
					e.raw(`"display":`)
					e.str(d.SourceName)
				}
				e.b = append(e.b, '}')
			}
			e.b = append(e.b, '}')
		} else {
			e.raw(`"display":`)
			e.str(d.SourceName)
		}
		e.raw(`},"type":{"system":"` + sysResourceTypes + `","code":"` + listed + `","display":"` + listed + `"},"role":{"system":"` + sysObjectRole + `","code":"3","display":"Report"}}`)
	}
	if r.RequestID != "" {
		open()
		e.raw(`{"what":{"identifier":{"value":`)
		e.str(r.RequestID)
		e.raw(`}},"type":{"system":"` + sysBALPEntity + `","code":"XrequestId","display":"transport specific unique identifier where http X-Request-Id is used"}}`)
	}
	if n > 0 {
		e.b = append(e.b, ']')
	}
}

// reference writes a Reference to typ/id (and version), or a display-only
// Reference when id is not a valid FHIR id: a refused request may name
// anything, and it must still be logged as received.
func reference(e *w, typ, id, version string) {
	if !validID(id) || !validType(typ) {
		e.raw(`{"display":`)
		e.str(typ + "/" + id)
		e.b = append(e.b, '}')
		return
	}
	e.raw(`{"reference":"`)
	e.raw(typ)
	e.b = append(e.b, '/')
	e.raw(id)
	if version != "" && validID(version) {
		e.raw("/_history/")
		e.raw(version)
	}
	e.raw(`"}`)
}
