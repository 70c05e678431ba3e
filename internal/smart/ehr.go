package smart

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

// The development EHR: a page that does what a clinical system does
// before it launches a SMART app — the clinician is signed in, has a
// patient open and has declared an access basis — so that the EHR launch
// can be tried in a browser without an EHR. Like the login page it knows
// synthetic users only.

// personNumber is the shape of a fødselsnummer or D-nummer.
var personNumber = regexp.MustCompile(`^[0-9]{11}$`)

// ehrChoice is one app offered on the page: a client and one of its
// launch URIs.
type ehrChoice struct{ ClientID, Name, LaunchURI string }

// ehrApps are the apps the page offers: the registered launch URIs that
// name one address (a port-less loopback URI stands for any port, so it
// is offered only when the query names the port, as want), this server's
// own app first.
func (s *Server) ehrApps(want ehrForm) []ehrChoice {
	var out []ehrChoice
	for _, c := range s.clientOrder() {
		name := c.Name
		if name == "" {
			name = c.ID
		}
		for _, u := range c.LaunchURIs {
			if p, err := url.Parse(u); err == nil && p.Port() == "" && loopback.Host(p.Hostname()) {
				if c.ID == want.ClientID && want.LaunchURI != "" && want.LaunchURI != u && c.hasLaunch(want.LaunchURI) {
					out = append(out, ehrChoice{c.ID, name, want.LaunchURI})
				}
				continue
			}
			out = append(out, ehrChoice{c.ID, name, u})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.HasPrefix(out[i].LaunchURI, s.issuer+"/") && !strings.HasPrefix(out[j].LaunchURI, s.issuer+"/")
	})
	return out
}

// ehr shows the page (GET) and launches (POST, or GET with go=1 so that a
// link can launch in one step). The query fills the form in: persona,
// patient (FHIR id or person number), basis, client_id, launch_uri.
func (s *Server) ehr(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "Skjemaet kunne ikke leses.")
		return
	}
	f := r.Form
	form := ehrForm{Persona: f.Get("persona"), Patient: strings.TrimSpace(f.Get("patient")), Basis: f.Get("basis"),
		ClientID: f.Get("client_id"), LaunchURI: f.Get("launch_uri")}
	if choice := f.Get("app_choice"); choice != "" {
		// The page's app list: "<client_id> <launch URI>".
		form.ClientID, form.LaunchURI, _ = strings.Cut(choice, " ")
	}
	if r.Method == http.MethodGet && f.Get("go") != "1" {
		s.ehrPage(w, r, form, "", http.StatusOK)
		return
	}
	target, msg := s.ehrLaunch(r.Context(), form)
	if msg != "" {
		s.ehrPage(w, r, form, msg, http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

type ehrForm struct{ Persona, Patient, Basis, ClientID, LaunchURI string }

// ehrLaunch creates the launch the form describes and returns where to
// send the browser, or a message saying what is wrong.
func (s *Server) ehrLaunch(ctx context.Context, f ehrForm) (string, string) {
	p := s.personas[f.Persona]
	if p == nil || p.Kind != KindPractitioner {
		return "", "Velg helsepersonell."
	}
	byPID := personNumber.MatchString(f.Patient)
	known, found := s.findPatient(ctx, f.Patient, byPID)
	patient, pid := f.Patient, known.PID
	switch {
	case byPID && !found:
		return "", "Ingen pasient med fødselsnummer " + f.Patient + " er kjent her."
	case byPID:
		patient = known.ID
	case !validFHIRID(patient):
		return "", "Velg en pasient, eller skriv fødselsnummer (11 sifre) eller pasient-id."
	}
	if !validBasis(f.Basis) {
		return "", "Velg tilgangsgrunnlag."
	}
	c := s.clients[f.ClientID]
	if c == nil || !c.allowsPersona(p.ID) {
		return "", "Velg en app."
	}
	launchURI := f.LaunchURI
	if launchURI == "" && len(c.LaunchURIs) > 0 {
		launchURI = c.LaunchURIs[0]
	}
	if !c.hasLaunch(launchURI) {
		// Only a registered address: the page must not send the browser,
		// with a launch, anywhere a link says.
		return "", "Appens startadresse er ikke registrert for " + c.ID + "."
	}
	id := s.newLaunch(&launch{clientID: c.ID, persona: p, patient: patient, patientPID: pid, basis: f.Basis})
	return addQuery(launchURI, url.Values{"iss": {s.audience}, "launch": {id}}), ""
}

// findPatient finds an offered patient by FHIR id, or, when byPID, by
// person number.
func (s *Server) findPatient(ctx context.Context, key string, byPID bool) (PatientChoice, bool) {
	for _, c := range s.patients(ctx) {
		if key != "" && (!byPID && c.ID == key || byPID && c.PID == key) {
			return c, true
		}
	}
	return PatientChoice{}, false
}

// patients are the patients the pages offer, or none.
func (s *Server) patients(ctx context.Context) []PatientChoice {
	if s.cfg.Patients == nil {
		return nil
	}
	return s.cfg.Patients(ctx)
}

var ehrTemplate = template.Must(template.New("ehr").Parse(`<!DOCTYPE html>
<html lang="nb"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Start app fra journalsystemet (utvikling)</title>
<style>` + pageStyle + `</style></head>
<body><main>
<p class="warn">Utviklingsserver: et journalsystem (EPJ) i miniatyr, bare syntetiske brukere og pasienter.</p>
<h1>Start app fra journalsystemet</h1>
<p>Som i et journalsystem: du er logget inn som helsepersonell, har en pasient åpen og har oppgitt tilgangsgrunnlag. Appen startes med SMART EHR launch.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<p><label for="persona">Helsepersonell</label>
<select id="persona" name="persona">{{range .Personas}}<option value="{{.ID}}"{{if .Selected}} selected{{end}}>{{.Name}} – {{.Place}}</option>{{end}}</select></p>
<p><label for="patient">Pasient (fødselsnummer eller pasient-id)</label>
<input id="patient" name="patient" list="patients" value="{{.Patient}}" required autocomplete="off">
<datalist id="patients">{{range .Patients}}<option value="{{.PID}}">{{.Name}} ({{.ID}})</option>{{end}}</datalist></p>
<p><label for="basis">Tilgangsgrunnlag</label>
<select id="basis" name="basis">{{range .Bases}}<option value="{{.Code}}"{{if .Selected}} selected{{end}}>{{.Text}}</option>{{end}}</select></p>
<p><label for="app">App</label>
<select id="app" name="app_choice">{{range .Apps}}<option value="{{.ClientID}} {{.LaunchURI}}"{{if .Selected}} selected{{end}}>{{.Name}} ({{.LaunchURI}})</option>{{end}}</select></p>
<p><button type="submit">Start app</button></p>
</form></main></body></html>`))

// bases are the access bases a clinician declares, in bokmål.
var bases = []struct{ Code, Text string }{
	{"SAMTYKKE", "Samtykke fra pasienten (SAMTYKKE)"},
	{"AKUTT", "Akutt / øyeblikkelig hjelp (AKUTT)"},
	{"FORHOYET_SAMTYKKE", "Samtykke, også til sperrede deler (FORHOYET_SAMTYKKE)"},
	{"FORHOYET_AKUTT", "Nødsituasjon, også sperrede deler (FORHOYET_AKUTT)"},
	{"UNNTAK", "Unntak fra samtykke (UNNTAK, bare der loven gir det)"},
}

func (s *Server) ehrPage(w http.ResponseWriter, r *http.Request, f ehrForm, msg string, status int) {
	type persona struct {
		ID, Name, Place string
		Selected        bool
	}
	type option struct {
		Code, Text string
		Selected   bool
	}
	type app struct {
		ClientID, Name, LaunchURI string
		Selected                  bool
	}
	var ps []persona
	for _, id := range s.order {
		if p := s.personas[id]; p.Kind == KindPractitioner {
			ps = append(ps, persona{p.ID, p.Name, p.place(), p.ID == f.Persona})
		}
	}
	if f.Basis == "" {
		f.Basis = "SAMTYKKE"
	}
	var bs []option
	for _, b := range bases {
		bs = append(bs, option{b.Code, b.Text, b.Code == f.Basis})
	}
	var apps []app
	for _, a := range s.ehrApps(f) {
		apps = append(apps, app{a.ClientID, a.Name, a.LaunchURI, a.ClientID == f.ClientID && (f.LaunchURI == "" || a.LaunchURI == f.LaunchURI)})
	}
	patients := s.patients(r.Context())
	if f.Patient == "" && len(patients) > 0 {
		f.Patient = patients[0].PID
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	// The form posts here and is redirected to a registered app.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' "+s.launchOrigins()+"; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = ehrTemplate.Execute(w, map[string]any{"Error": msg, "Action": s.issuer + "/ehr", "Personas": ps,
		"Patient": f.Patient, "Patients": patients, "Bases": bs, "Apps": apps})
}

// launchOrigins is the CSP source list of where an EHR launch may send
// the browser.
func (s *Server) launchOrigins() string {
	seen := map[string]bool{}
	var out []string
	for _, c := range s.clientOrder() {
		for _, u := range c.LaunchURIs {
			for _, src := range cspSources(u) {
				if !seen[src] {
					seen[src] = true
					out = append(out, src)
				}
			}
		}
	}
	return strings.Join(out, " ")
}

// cspSources are the CSP sources that cover redirects to uri: its origin,
// or, for a port-less loopback URI, the host on any port.
func cspSources(uri string) []string {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return nil
	}
	if u.Port() == "" && u.Scheme == "http" && loopback.Host(u.Hostname()) {
		return []string{"http://" + u.Host + ":*"}
	}
	return []string{u.Scheme + "://" + u.Host}
}

// clientOrder is the registered clients sorted by id, for stable pages.
func (s *Server) clientOrder() []*Client {
	out := make([]*Client, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// place is where a practitioner works, as the pages show it.
func (p *Persona) place() string {
	switch {
	case p.PointOfCare != nil && p.PointOfCare.Name != "":
		return p.PointOfCare.Name
	case p.LegalEntity != nil:
		return p.LegalEntity.Name
	}
	return ""
}

// role is the persona's kind in bokmål.
func (p *Persona) role() string {
	switch p.Kind {
	case KindPractitioner:
		return "helsepersonell, " + p.place()
	case KindCitizen:
		return "innbygger"
	case KindCitizenSupport:
		return "kundesenter"
	case KindAuditor:
		return "revisor"
	}
	return p.Kind
}

// pageStyle is the pages' CSS: legible, with visible focus and AA
// contrast.
const pageStyle = `body{font-family:system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em;color:#1a1a1a;line-height:1.5}
label{display:block;font-weight:600;margin-top:.8em}select,input,button{font:inherit;padding:.4em;margin-top:.2em}
select,input{min-width:20em;max-width:100%}button{cursor:pointer;background:#0b5394;color:#fff;border:0;border-radius:4px;padding:.5em 1em}
button.persona{display:block;width:100%;text-align:left;margin:.4em 0;background:#f3f6fa;color:#0b3d6e;border:1px solid #0b5394}
button.secondary{background:#fff;color:#0b5394;border:1px solid #0b5394}
:focus-visible{outline:3px solid #b35900;outline-offset:2px}
.warn{background:#fff4e5;border:1px solid #8a4b00;padding:.5em}.err{color:#a00000;font-weight:600}.role{display:block;font-size:.9em;color:#333}`
