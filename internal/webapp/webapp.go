// Package webapp serves the browser side of kjernejournal: the landing
// page at / and the kjernejournal app, a SMART app for clinicians (EHR
// launch) and citizens (standalone launch) shipped inside the binary as
// static files (static/, no build step, no CDN). The app talks to the
// FHIR API with the user's token like any other SMART app, so it works
// from another origin too.
package webapp

import (
	"embed"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Static is the app's files, rooted at the app's directory.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the directory is embedded: cannot happen
	}
	return sub
}

// Config configures the pages.
type Config struct {
	// Base is the FHIR base URL (the iss the app launches against).
	Base string
	// AuthServer says that the built-in SMART authorisation server and its
	// development EHR page (/ehr) run here.
	AuthServer bool
	// DemoPatient and DemoPractitioner fill in the landing page's
	// one-click EHR launch (a patient id and a persona id).
	DemoPatient, DemoPractitioner string
	// FrameAncestors is the CSP frame-ancestors source list: the EHRs
	// that may embed the app.
	FrameAncestors string
}

// App serves the app's files under /app/.
func App(cfg Config) http.Handler {
	files := http.StripPrefix("/app", http.FileServerFS(Static()))
	ancestors := cfg.FrameAncestors
	if ancestors == "" {
		ancestors = "'self'"
	}
	csp := "default-src 'self'; connect-src 'self' " + origin(cfg.Base) + "; img-src 'self' data: blob:; " +
		"frame-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors " + ancestors
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The app may run inside an EHR's frame; frame-ancestors says
		// whose.
		h.Del("X-Frame-Options")
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-cache")
		h.Set("Referrer-Policy", "no-referrer")
		// index.html is the app's registered redirect URI: answer it as
		// is, not with the file server's redirect to "./", which would
		// cost the login a round trip.
		if name, ok := strings.CutPrefix(r.URL.Path, "/app/"); ok && path.Base(name) == "index.html" {
			if f, err := static.Open("static/" + name); err == nil {
				defer f.Close()
				if rs, ok := f.(io.ReadSeeker); ok {
					http.ServeContent(w, r, name, time.Time{}, rs)
					return
				}
			}
		}
		files.ServeHTTP(w, r)
	})
}

// Landing serves the landing page at /.
func Landing(cfg Config) http.Handler {
	base := strings.TrimRight(cfg.Base, "/")
	citizen := base + "/app/launch.html?" + url.Values{"iss": {base}}.Encode()
	ehr := base + "/ehr?" + url.Values{"persona": {cfg.DemoPractitioner}, "patient": {cfg.DemoPatient},
		"basis": {"SAMTYKKE"}, "client_id": {"kjernejournal-app"}, "go": {"1"}}.Encode()
	data := map[string]any{"Base": base, "AuthServer": cfg.AuthServer, "Citizen": citizen, "Clinician": ehr, "EHR": base + "/ehr"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
		_ = landing.Execute(w, data)
	})
}

// origin is the scheme://host of a URL, for CSP.
func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return ""
	}
	return p.Scheme + "://" + p.Host
}

var landing = template.Must(template.New("landing").Parse(`<!DOCTYPE html>
<html lang="nb"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kjernejournal – FHIR-server</title>
<style>body{font-family:system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em;color:#1a1a1a;line-height:1.5}
a{color:#0b5394}a:focus-visible{outline:3px solid #b35900;outline-offset:2px}
.start a{display:block;margin:.6em 0;padding:.8em 1em;border:2px solid #0b5394;border-radius:6px;text-decoration:none;font-weight:600}
.start span{display:block;font-weight:400;color:#333}.warn{background:#fff4e5;border:1px solid #8a4b00;padding:.5em}</style></head>
<body><header><h1>Kjernejournal</h1>
<p>FHIR R4-server for kjernejournal: kritisk informasjon, legemidler, besøkshistorikk og journaldokumenter, bak SMART on FHIR og de norske tilgangsreglene.</p></header>
<main>
{{if .AuthServer}}<p class="warn">Utviklingsoppsett: innlogging og journalsystem er simulert, og alle brukere og pasienter er syntetiske.</p>
<h2>Prøv appen</h2>
<div class="start">
<a id="start-clinician" href="{{.Clinician}}">Som helsepersonell<span>Åpner appen fra et journalsystem (EHR launch) for en demopasient, med tilgangsgrunnlag samtykke.</span></a>
<a id="start-citizen" href="{{.Citizen}}">Som innbygger<span>Logg inn og se din egen kjernejournal, logg over bruk og personverninnstillinger.</span></a>
<a id="start-ehr" href="{{.EHR}}">Velg selv i journalsystemet<span>Velg helsepersonell, pasient (fødselsnummer), tilgangsgrunnlag og app.</span></a>
</div>{{end}}
<h2>For utviklere</h2>
<ul>
<li><a href="{{.Base}}/metadata">CapabilityStatement (<code>/metadata</code>)</a></li>
{{if .AuthServer}}<li><a href="{{.Base}}/.well-known/smart-configuration">SMART-konfigurasjon (<code>/.well-known/smart-configuration</code>)</a></li>{{end}}
<li>FHIR-base: <code>{{.Base}}</code></li>
</ul></main></body></html>`))
