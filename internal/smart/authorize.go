package smart

import (
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

// pkceValue is the RFC 7636 alphabet and length for verifiers; an S256
// challenge is 43 characters of the same alphabet.
var pkceValue = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

// authorize is the authorization endpoint (GET, or POST for SMART's
// authorize-post).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The authorisation request could not be read.")
		return
	}
	q := r.Form
	for k, v := range q {
		// RFC 6749 3.1: parameters must not repeat. Checked before
		// redirecting anywhere, since which redirect_uri counts would be
		// ambiguous.
		if len(v) > 1 {
			s.errorPage(w, http.StatusBadRequest, "Parameter "+k+" is repeated.")
			return
		}
	}
	client := s.clients[q.Get("client_id")]
	if client == nil {
		s.errorPage(w, http.StatusBadRequest, "Unknown client_id.")
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" || !client.hasRedirect(redirect) {
		// Never redirect to an unregistered URI (RFC 6749 4.1.2.1).
		s.errorPage(w, http.StatusBadRequest, "redirect_uri is missing or does not exactly match a URI registered for this client.")
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) { redirectError(w, r, redirect, state, code, desc) }

	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "":
		fail("invalid_request", "PKCE is required: code_challenge is missing")
		return
	case method != "S256":
		// A missing method means plain (RFC 7636 4.3); SMART forbids it.
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case len(challenge) != 43 || !pkceValue.MatchString(challenge):
		fail("invalid_request", "code_challenge is not a base64url SHA-256 value")
		return
	}
	if aud := strings.TrimRight(q.Get("aud"), "/"); aud != s.audience {
		fail("invalid_request", "aud must be the FHIR server's base URL "+s.audience)
		return
	}
	requested := splitScope(q.Get("scope"))
	scopes := client.grantable(requested)
	if len(scopes) == 0 {
		fail("invalid_scope", "none of the requested scopes is allowed for this client")
		return
	}
	now := s.now()

	if id := q.Get("launch"); id != "" {
		if !has(scopes, "launch") {
			fail("invalid_scope", "an EHR launch needs the launch scope")
			return
		}
		s.mu.Lock()
		l, ok := s.launches[id]
		if ok {
			delete(s.launches, id) // a launch is used once
		}
		s.mu.Unlock()
		switch {
		case !ok || now.After(l.expires):
			fail("invalid_request", "unknown or expired launch")
			return
		case l.clientID != "" && l.clientID != client.ID:
			fail("invalid_request", "the launch was created for another client")
			return
		case !client.allowsPersona(l.persona.ID):
			fail("access_denied", "this client may not act for the launch's user")
			return
		}
		g := &grant{client: client, persona: l.persona, patient: l.patient, patientPID: l.patientPID,
			encounter: l.encounter, basis: l.basis, scopes: scopes, nonce: q.Get("nonce"), authTime: now}
		s.issueCode(w, r, g, redirect, state, challenge)
		return
	}
	if has(scopes, "launch") {
		fail("invalid_request", "the launch scope needs a launch parameter (EHR launch)")
		return
	}
	req := &authRequest{client: client, redirectURI: redirect, state: state, challenge: challenge,
		nonce: q.Get("nonce"), scopes: scopes, expires: now.Add(s.cfg.LaunchLifetime)}
	id := randomID()
	s.mu.Lock()
	s.prune(now)
	s.sessions[id] = req
	s.mu.Unlock()
	s.loginPage(w, r, id, req, "", http.StatusOK)
}

// issueCode stores an authorisation code for g and redirects back.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, g *grant, redirect, state, challenge string) {
	code := randomID()
	now := s.now()
	s.mu.Lock()
	s.prune(now)
	s.codes[code] = &authCode{grant: *g, redirectURI: redirect, challenge: challenge,
		expires: now.Add(s.cfg.CodeLifetime), family: randomID()}
	s.mu.Unlock()
	v := url.Values{"code": {code}}
	if state != "" {
		v.Set("state", state)
	}
	v.Set("iss", s.issuer) // RFC 9207: lets the app detect mix-up
	http.Redirect(w, r, addQuery(redirect, v), http.StatusSeeOther)
}

func addQuery(uri string, v url.Values) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func redirectError(w http.ResponseWriter, r *http.Request, redirect, state, code, desc string) {
	v := url.Values{"error": {code}, "error_description": {desc}}
	if state != "" {
		v.Set("state", state)
	}
	http.Redirect(w, r, addQuery(redirect, v), http.StatusSeeOther)
}

// login takes the development login form: the chosen persona and patient
// stand in for a real authentication.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	id := r.PostForm.Get("session")
	now := s.now()
	s.mu.Lock()
	req, ok := s.sessions[id]
	s.mu.Unlock()
	if !ok || now.After(req.expires) {
		s.errorPage(w, http.StatusBadRequest, "The login session is unknown or has expired; start again from the app.")
		return
	}
	if r.PostForm.Get("action") == "deny" {
		s.dropSession(id)
		redirectError(w, r, req.redirectURI, req.state, "access_denied", "the user declined")
		return
	}
	p := s.personas[r.PostForm.Get("persona")]
	if p == nil || !p.isUser() || !req.client.allowsPersona(p.ID) {
		s.loginPage(w, r, id, req, "Velg en av brukerne i listen.", http.StatusBadRequest)
		return
	}
	g := &grant{client: req.client, persona: p, scopes: req.scopes, nonce: req.nonce, authTime: now, banner: true}
	switch {
	case p.Kind == KindCitizen:
		// A citizen's patient context is always themselves.
		g.patient, g.patientPID = p.FHIRID, p.PID
	case has(req.scopes, "launch/patient"):
		g.patient = strings.TrimSpace(r.PostForm.Get("patient"))
		if g.patient == "" || !validFHIRID(g.patient) {
			s.loginPage(w, r, id, req, "Helsepersonell må velge en pasient (pasient-id: bokstaver, sifre, '-' og '.', høyst 64).", http.StatusBadRequest)
			return
		}
		if c, ok := s.findPatient(r.Context(), g.patient, false); ok {
			g.patientPID = c.PID
		}
	}
	if has(req.scopes, "launch/encounter") {
		if e := strings.TrimSpace(r.PostForm.Get("encounter")); e != "" {
			if !validFHIRID(e) {
				s.loginPage(w, r, id, req, "Kontakt-id-en er ikke en FHIR-id.", http.StatusBadRequest)
				return
			}
			g.encounter = e
		}
	}
	s.dropSession(id)
	s.issueCode(w, r, g, req.redirectURI, req.state, req.challenge)
}

func (s *Server) dropSession(id string) {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
}

var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

func validFHIRID(s string) bool { return fhirID.MatchString(s) }

// launchRequest is the body of POST /auth/launch.
type launchRequest struct {
	Patient      string `json:"patient"`
	PatientPID   string `json:"patient_pid,omitempty"`
	Practitioner string `json:"practitioner"` // persona id
	Encounter    string `json:"encounter,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	// Basis is the access basis the clinician declared in the EHR.
	Basis string `json:"basis,omitempty"`
}

// createLaunch is the development stand-in for an EHR: it binds a launch
// id to a patient, a practitioner and an encounter on the server side.
func (s *Server) createLaunch(w http.ResponseWriter, r *http.Request) {
	var req launchRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "body must be JSON {patient, practitioner, encounter}: "+err.Error())
		return
	}
	p := s.personas[req.Practitioner]
	switch {
	case p == nil || p.Kind != KindPractitioner:
		oauthError(w, http.StatusBadRequest, "invalid_request", "practitioner must name a practitioner persona")
		return
	case req.Patient == "" && req.PatientPID != "" && !personNumber.MatchString(req.PatientPID):
		oauthError(w, http.StatusBadRequest, "invalid_request", "patient_pid must be a person number (11 digits)")
		return
	case req.Patient == "" && req.PatientPID != "":
		// A launch by person number only, as an EHR on the national APIs
		// makes it: no FHIR patient in the token, the person number in the
		// attest's patients[], and the request names the patient in
		// nhn-patient-nin.
	case !validFHIRID(req.Patient):
		oauthError(w, http.StatusBadRequest, "invalid_request", "patient must be a FHIR id, or empty with patient_pid")
		return
	case req.Encounter != "" && !validFHIRID(req.Encounter):
		oauthError(w, http.StatusBadRequest, "invalid_request", "encounter must be a FHIR id")
		return
	case req.ClientID != "" && s.clients[req.ClientID] == nil:
		oauthError(w, http.StatusBadRequest, "invalid_request", "unknown client_id")
		return
	case req.Basis != "" && !validBasis(req.Basis):
		oauthError(w, http.StatusBadRequest, "invalid_request", "basis must be UNNTAK, SAMTYKKE, AKUTT, FORHOYET_SAMTYKKE or FORHOYET_AKUTT")
		return
	}
	id := s.newLaunch(&launch{clientID: req.ClientID, persona: p, patient: req.Patient,
		patientPID: req.PatientPID, encounter: req.Encounter, basis: req.Basis})
	writeJSON(w, http.StatusCreated, map[string]any{"launch": id, "expires_in": int64(s.cfg.LaunchLifetime.Seconds())})
}

// newLaunch stores l for the launch's lifetime and returns its id.
func (s *Server) newLaunch(l *launch) string {
	id := randomID()
	now := s.now()
	l.expires = now.Add(s.cfg.LaunchLifetime)
	s.mu.Lock()
	s.prune(now)
	s.launches[id] = l
	s.mu.Unlock()
	return id
}

func validBasis(b string) bool {
	_, ok := access.ParseBasis(b)
	return ok
}

var pages = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="nb"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Logg inn – kjernejournal (utvikling)</title>
<style>` + pageStyle + `</style></head>
<body><main>
<p class="warn">Utviklingsserver for innlogging: bare syntetiske brukere, ingen ekte autentisering.</p>
<h1>Logg inn i {{.Client}}</h1>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<p>Appen ber om tilgangen <code>{{.Scopes}}</code>.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="session" value="{{.Session}}">
{{if .AskPatient}}<p><label for="patient">Pasient (for helsepersonell)</label>
{{if .Patients}}<select id="patient" name="patient">{{range .Patients}}<option value="{{.ID}}">{{.Name}}{{if .PID}}, fødselsnummer {{.PID}}{{end}} ({{.ID}})</option>{{end}}</select>
{{else}}<input id="patient" name="patient" pattern="[A-Za-z0-9\-.]{1,64}">{{end}}</p>{{end}}
{{if .AskEncounter}}<p><label for="encounter">Kontakt-id (valgfritt)</label><input id="encounter" name="encounter" pattern="[A-Za-z0-9\-.]{1,64}"></p>{{end}}
<fieldset><legend>Logg inn som</legend>
{{range .Personas}}<button class="persona" type="submit" name="persona" value="{{.ID}}">{{.Name}}<span class="role">{{.Role}}</span></button>
{{end}}</fieldset>
<p><button class="secondary" type="submit" name="action" value="deny" formnovalidate>Avbryt</button></p>
</form></main></body></html>
{{define "error"}}<!DOCTYPE html>
<html lang="nb"><head><meta charset="utf-8"><title>Feil ved innlogging</title></head>
<body><main><h1>Feil ved innlogging</h1><p>{{.}}</p></main></body></html>
{{end}}`))

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, session string, req *authRequest, msg string, status int) {
	type persona struct{ ID, Name, Role string }
	var ps []persona
	for _, id := range s.order {
		p := s.personas[id]
		if p.isUser() && req.client.allowsPersona(id) {
			ps = append(ps, persona{p.ID, p.Name, p.role()})
		}
	}
	var patients []PatientChoice
	if has(req.scopes, "launch/patient") {
		patients = s.patients(r.Context())
	}
	name := req.client.Name
	if name == "" {
		name = req.client.ID
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The page must not be framed: a framing site could click "allow".
	w.Header().Set("X-Frame-Options", "DENY")
	// form-action also governs the redirect that answers the form, so the
	// app's own origin must be in it or the browser stops at the 303.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' "+
		strings.Join(cspSources(req.redirectURI), " ")+"; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = pages.Execute(w, map[string]any{
		"Client": name, "Error": msg, "Scopes": strings.Join(req.scopes, " "),
		"Action": s.issuer + "/auth/login", "Session": session, "Personas": ps,
		"AskPatient": has(req.scopes, "launch/patient"), "Patients": patients,
		"AskEncounter": has(req.scopes, "launch/encounter"),
	})
}

func (s *Server) errorPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, "error", msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError writes an RFC 6749 5.2 error response.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="kjernejournal"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
