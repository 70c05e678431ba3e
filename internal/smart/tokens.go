package smart

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// tokenResponse is the token endpoint's answer, with the SMART launch
// context.
type tokenResponse struct {
	AccessToken       string `json:"access_token"`
	TokenType         string `json:"token_type"`
	ExpiresIn         int64  `json:"expires_in"`
	Scope             string `json:"scope"`
	RefreshToken      string `json:"refresh_token,omitempty"`
	IDToken           string `json:"id_token,omitempty"`
	Patient           string `json:"patient,omitempty"`
	Encounter         string `json:"encounter,omitempty"`
	NeedPatientBanner *bool  `json:"need_patient_banner,omitempty"`
	SmartStyleURL     string `json:"smart_style_url,omitempty"`
	// AccessBasis is the nhn-access-basis the EHR chose at launch: a
	// launch context parameter of this server's own, so that an app
	// launched from an EHR sends what the clinician declared there.
	AccessBasis string `json:"nhn_access_basis,omitempty"`
}

func has(scopes []string, s string) bool { return slices.Contains(scopes, s) }

// accessClaims builds the access token's claims for g.
func (s *Server) accessClaims(g *grant, jti string, now, exp time.Time) map[string]any {
	c := map[string]any{
		"iss":       s.issuer,
		"aud":       s.audience,
		"client_id": g.client.ID,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       exp.Unix(),
		"jti":       jti,
		"scope":     strings.Join(g.scopes, " "),
	}
	if g.patient != "" {
		c["patient"] = g.patient
	}
	if g.encounter != "" {
		c["encounter"] = g.encounter
	}
	if g.jkt != "" {
		// RFC 9449 §6.1: the token is bound to the client's DPoP key.
		c["cnf"] = map[string]any{"jkt": g.jkt}
	}
	p := g.persona
	if p == nil || p.Kind == KindSystem {
		// A backend service acts as itself (RFC 9068: sub is the client).
		c["sub"] = g.client.ID
		if g.client.OrgNrParent != "" {
			c[ClaimOrgNrParent] = g.client.OrgNrParent
		}
		if g.client.OrgNrChild != "" {
			c[ClaimOrgNrChild] = g.client.OrgNrChild
		}
		return c
	}
	c["sub"] = p.subject()
	c[ClaimPID] = p.PID
	c[ClaimSecurityLevel] = "4"
	if p.Name != "" {
		c["name"] = p.Name
	}
	if fu := p.fhirUser(); fu != "" {
		c["fhirUser"] = fu
	}
	switch p.Kind {
	case KindPractitioner:
		c[ClaimHPRNumber] = p.HPR
		c[ClaimOrgNrParent] = p.LegalEntity.ID
		c[ClaimOrgNrChild] = p.PointOfCare.ID
		c["authorization_details"] = []any{s.attest(g)}
	case KindCitizenSupport, KindAuditor:
		c[ClaimRole] = p.Kind
	}
	return c
}

// subject is a stable, pairwise-free subject for the persona. HelseID's
// sub is opaque; a hash-free readable value is more useful in a dev log.
func (p *Persona) subject() string { return "persona:" + p.ID }

// attest is the trust-framework attest (authorization_details entry of
// type nhn:tillitsrammeverk:parameters) for a practitioner, shaped as
// HelseID's schema for it: identifiers as {id, system, name}, codes as
// {code, system, text}.
func (s *Server) attest(g *grant) map[string]any {
	p := g.persona
	ref := func(r *Ref, system string) map[string]any {
		m := map[string]any{"id": r.ID, "system": system}
		if r.System != "" {
			m["system"] = r.System
		}
		if r.Name != "" {
			m["name"] = r.Name
		}
		return m
	}
	code := func(c *Code) map[string]any {
		m := map[string]any{"code": c.Code, "system": c.System}
		if c.Text != "" {
			m["text"] = c.Text
		}
		return m
	}
	practitioner := map[string]any{
		"authorization": map[string]any{"code": p.Authorization, "system": domain.SystemHPCategory},
		"legal_entity":  ref(p.LegalEntity, domain.SystemOrgNr),
		"point_of_care": ref(p.PointOfCare, domain.SystemOrgNr),
	}
	if p.Department != nil {
		practitioner["department"] = ref(p.Department, domain.SystemRESH)
	}
	care := map[string]any{
		"purpose_of_use": map[string]any{"code": p.PurposeOfUse, "system": domain.SystemPurposeOfUse},
		// Each token stands for one local access decision; its id lets the
		// source and the audit log point back at it.
		"decision_ref": map[string]any{"id": randomID()[:22], "user_selected": true},
	}
	if p.HealthcareService != nil {
		care["healthcare_service"] = code(p.HealthcareService)
	}
	if p.PurposeOfUseDetails != nil {
		care["purpose_of_use_details"] = code(p.PurposeOfUseDetails)
	}
	patient := map[string]any{}
	if g.patientPID != "" {
		sys := domain.SystemFNR
		if g.patientPID[0] >= '4' && g.patientPID[0] <= '7' {
			sys = domain.SystemDNR // D-numbers add 4 to the first digit of the day
		}
		patient["identifier"] = map[string]any{"id": g.patientPID, "system": sys}
	}
	patient["point_of_care"] = ref(p.PointOfCare, domain.SystemOrgNr)
	if p.Department != nil {
		patient["department"] = ref(p.Department, domain.SystemRESH)
	}
	patients := []any{}
	if g.patient != "" || g.patientPID != "" {
		// A launch by person number only (the national APIs' way: the EHR
		// never learns our FHIR ids) names the patient in the attest alone.
		patients = append(patients, patient)
	}
	if g.attestPIDs != nil {
		patients = []any{}
		for _, pid := range g.attestPIDs {
			pt := maps.Clone(patient)
			pt["identifier"] = map[string]any{"id": pid, "system": domain.SystemFNR}
			patients = append(patients, pt)
		}
	}
	// toa: when the attest was made. It lives at most 60 minutes, and the
	// resource server refuses an older one.
	toa := g.attestTime
	if toa.IsZero() {
		toa = s.now()
	}
	return map[string]any{
		"type":              AuthorizationDetailsType,
		"practitioner":      practitioner,
		"care_relationship": care,
		"patients":          patients,
		"toa":               toa.Unix(),
	}
}

// idClaims builds the OpenID Connect id_token for g.
func (s *Server) idClaims(g *grant, now, exp time.Time) map[string]any {
	c := map[string]any{
		"iss":       s.issuer,
		"sub":       g.persona.subject(),
		"aud":       g.client.ID,
		"iat":       now.Unix(),
		"exp":       exp.Unix(),
		"auth_time": g.authTime.Unix(),
	}
	if g.nonce != "" {
		c["nonce"] = g.nonce
	}
	if fu := g.persona.fhirUser(); fu != "" && (has(g.scopes, "fhirUser") || has(g.scopes, "profile")) {
		c["fhirUser"] = fu
	}
	if has(g.scopes, "profile") && g.persona.Name != "" {
		c["name"] = g.persona.Name
	}
	return c
}

// issue mints the token response for g. A refresh token is added when the
// grant holds offline_access or online_access and family is not empty.
// Called with s.mu held.
func (s *Server) issue(g *grant, familyID string) (*tokenResponse, string, error) {
	now := s.now()
	exp := now.Add(s.cfg.AccessTokenLifetime)
	jti := randomID()
	at, err := s.signer.sign(TypeAccessToken, s.accessClaims(g, jti, now, exp))
	if err != nil {
		return nil, "", err
	}
	tokenType := "Bearer"
	if g.jkt != "" {
		tokenType = "DPoP" // RFC 9449 §5
	}
	resp := &tokenResponse{
		AccessToken: at,
		TokenType:   tokenType,
		ExpiresIn:   int64(s.cfg.AccessTokenLifetime / time.Second),
		Scope:       strings.Join(g.scopes, " "),
		Patient:     g.patient,
		Encounter:   g.encounter,
		AccessBasis: g.basis,
	}
	if g.patient != "" {
		b := g.banner
		resp.NeedPatientBanner = &b
		resp.SmartStyleURL = s.cfg.StyleURL
	}
	if g.persona != nil && g.persona.isUser() && has(g.scopes, "openid") {
		resp.IDToken, err = s.signer.sign("JWT", s.idClaims(g, now, exp))
		if err != nil {
			return nil, "", err
		}
	}
	if familyID != "" {
		f := s.families[familyID]
		if f == nil {
			f = &family{client: g.client.ID, scopes: g.scopes, created: now, accesses: map[string]time.Time{}}
			if g.persona != nil {
				f.persona = g.persona.ID
			}
			f.patient = g.patient
			s.families[familyID] = f
		}
		f.accesses[jti] = exp
		var life time.Duration
		switch {
		case has(g.scopes, "offline_access"):
			life = s.cfg.OfflineRefreshLifetime
		case has(g.scopes, "online_access"):
			life = s.cfg.OnlineRefreshLifetime
		}
		if life > 0 {
			rt := randomID()
			s.refresh[hashToken(rt)] = &refreshGrant{grant: *g, family: familyID, expires: now.Add(life)}
			resp.RefreshToken = rt
		}
	}
	return resp, jti, nil
}

// TokenRequest asks IssueToken for a development token.
type TokenRequest struct {
	Persona    string   // persona id: gp, hospital-doctor, nurse, emergency, citizen, feeder, ...
	Patient    string   // FHIR Patient id in context; a citizen defaults to their own
	PatientPID string   // the patient's national identity number, for the attest
	Encounter  string   // FHIR Encounter id in context
	Scopes     []string // empty: the persona's default scopes
	// ClientID is the client the token is issued to; default the persona's
	// client (system personas) or "kjernejournal-dev".
	ClientID string
	// Lifetime of the token; default the server's access token lifetime.
	Lifetime time.Duration
	// DPoPJKT binds the token to a DPoP key (its RFC 7638 thumbprint,
	// the token's cnf.jkt); empty: a Bearer token.
	DPoPJKT string
	// AttestTime is the attest's toa; zero: now. Tests use it for an
	// attest older than the 60 minutes it may live.
	AttestTime time.Time
	// AttestPatientPIDs, if not nil, are the person numbers the attest's
	// patients[] names instead of PatientPID: tests use it for an attest
	// that disagrees with the patient in context.
	AttestPatientPIDs []string
}

// IssuedToken is a minted access token and its decoded claims.
type IssuedToken struct {
	AccessToken string
	ExpiresAt   time.Time
	Claims      map[string]any
}

// IssueToken mints an access token for a persona directly, bypassing the
// OAuth flows: for the token subcommand, tests and demos. The scopes are
// taken as given: the caller is the operator of a development server.
func (s *Server) IssueToken(_ context.Context, req TokenRequest) (IssuedToken, error) {
	p, ok := s.personas[req.Persona]
	if !ok {
		return IssuedToken{}, fmt.Errorf("smart: unknown persona %q (have %s)", req.Persona, strings.Join(s.order, ", "))
	}
	scopes := req.Scopes
	if len(scopes) == 0 {
		scopes = p.Scopes
	}
	if len(scopes) == 0 {
		return IssuedToken{}, errors.New("smart: no scopes given and the persona has no default scopes")
	}
	clientID := req.ClientID
	if clientID == "" {
		clientID = "kjernejournal-dev"
		if p.Kind == KindSystem {
			clientID = p.ClientID
		}
	}
	client, ok := s.clients[clientID]
	if !ok {
		client = &Client{ID: clientID}
	}
	g := &grant{client: client, persona: p, patient: req.Patient, patientPID: req.PatientPID,
		encounter: req.Encounter, scopes: scopes, authTime: s.now(),
		jkt: req.DPoPJKT, attestTime: req.AttestTime, attestPIDs: req.AttestPatientPIDs}
	if p.Kind == KindCitizen && g.patient == "" {
		g.patient = p.FHIRID
		g.patientPID = p.PID
	}
	if p.Kind == KindSystem {
		g.patient, g.patientPID, g.encounter = "", "", ""
	}
	life := req.Lifetime
	if life <= 0 {
		life = s.cfg.AccessTokenLifetime
	}
	now := s.now()
	exp := now.Add(life)
	claims := s.accessClaims(g, randomID(), now, exp)
	at, err := s.signer.sign(TypeAccessToken, claims)
	if err != nil {
		return IssuedToken{}, err
	}
	return IssuedToken{AccessToken: at, ExpiresAt: exp, Claims: claims}, nil
}
