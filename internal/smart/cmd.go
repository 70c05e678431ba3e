package smart

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/envflag"
)

// Defaults of the token subcommand: the files in testdata/smart, relative
// to the repository root, and the address of `make run`.
const (
	DefaultPersonasFile = "testdata/smart/personas.json"
	DefaultClientsFile  = "testdata/smart/clients.json"
	DefaultKeyFile      = "testdata/smart/dev-signing-key.pem"
	DefaultIssuer       = "http://" + DefaultAddr
	DefaultAddr         = "127.0.0.1:8080"
)

// TokenCommand is the core of `kjernejournal token`: it prints a
// development access token for a persona, for use with curl:
//
//	curl -H "Authorization: Bearer $(kjernejournal token --as gp --patient pas-0123)" ...
//
// The token is signed with --key-file, which must be the key the running
// server signs with for the server to accept it.
func TokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	envflag.SetOutput(fs, stderr)
	as := fs.String("as", "", "persona: gp, hospital-doctor, nurse, emergency, contract-specialist, citizen, citizen-support, auditor, feeder")
	patient := fs.String("patient", "", "the patient in context: a FHIR id (ID or Patient/ID), or an 11-digit person number, which the token names the national way (send it as nhn-patient-nin); a citizen defaults to their own")
	patientPID := fs.String("patient-pid", "", "the patient's national identity number, for the trust-framework attest")
	encounter := fs.String("encounter", "", "FHIR Encounter id in context")
	scope := fs.String("scope", "", "space-separated scopes (default: the persona's)")
	lifetime := fs.Duration("lifetime", time.Hour, "token lifetime")
	keyFile := fs.String("key-file", envOr("KJ_SMART_KEY_FILE", DefaultKeyFile), "PEM signing key; must be the running server's [KJ_SMART_KEY_FILE]")
	personas := fs.String("personas", envOr("KJ_SMART_PERSONAS", DefaultPersonasFile), "persona file [KJ_SMART_PERSONAS]")
	clients := fs.String("clients", envOr("KJ_SMART_CLIENTS", DefaultClientsFile), "client registry; empty for none [KJ_SMART_CLIENTS]")
	issuer := fs.String("issuer", os.Getenv("KJ_SMART_ISSUER"), "token issuer: the server's base URL (default: http:// and --addr) [KJ_SMART_ISSUER]")
	addr := fs.String("addr", envOr("KJ_ADDR", DefaultAddr), "address the server listens on, as serve's --addr: the issuer is http://ADDR [KJ_ADDR]")
	server := fs.String("server", os.Getenv("KJ_SERVER"), "base URL of the running server: the issuer is read from its /.well-known/smart-configuration [KJ_SERVER]")
	audience := fs.String("audience", os.Getenv("KJ_SMART_AUDIENCE"), "token audience: the FHIR base URL (default: issuer) [KJ_SMART_AUDIENCE]")
	claims := fs.Bool("claims", false, "also print the decoded claims to stderr")
	dpopJKT := fs.String("dpop-jkt", "", "bind the token to the DPoP key with this RFC 7638 SHA-256 thumbprint (cnf.jkt), for a server run with --require-dpop")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kjernejournal token --as PERSONA [--patient ID] [flags]")
		fmt.Fprintln(stderr, "\nPrints a development access token from the built-in SMART server's key.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments %v", fs.Args())
	}
	if *as == "" {
		fs.Usage()
		return errors.New("token: --as is required")
	}
	pat, pid, err := patientArg(*patient, *patientPID)
	if err != nil {
		return err
	}
	iss := strings.TrimRight(*issuer, "/")
	switch {
	case iss != "" && *server != "":
		return errors.New("token: --issuer and --server both name the issuer; give one")
	case *server != "":
		if iss, err = discoverIssuer(ctx, *server); err != nil {
			return err
		}
	case iss == "":
		iss = "http://" + strings.TrimPrefix(*addr, "http://")
	}
	ps, err := LoadPersonas(*personas)
	if err != nil {
		return err
	}
	var cs []Client
	if *clients != "" {
		if cs, err = LoadClients(*clients); err != nil {
			return err
		}
	}
	srv, err := New(Config{Issuer: iss, Audience: *audience, KeyFile: *keyFile, Personas: ps, Clients: cs})
	if err != nil {
		return err
	}
	tok, err := srv.IssueToken(ctx, TokenRequest{
		Persona: *as, Patient: pat, PatientPID: pid, Encounter: *encounter,
		Scopes: splitScope(*scope), Lifetime: *lifetime, DPoPJKT: *dpopJKT,
	})
	if err != nil {
		return err
	}
	if *claims {
		enc := json.NewEncoder(stderr)
		enc.SetIndent("", "  ")
		if err := enc.Encode(tok.Claims); err != nil {
			return err
		}
	}
	if pat == "" && pid != "" && *patient != "" {
		fmt.Fprintf(stderr, "token: the token names the patient by person number %s, as the national APIs do: send \"nhn-patient-nin: %s\" with every request, and no patient parameter is needed\n", pid, pid)
	}
	_, err = fmt.Fprintln(stdout, tok.AccessToken)
	return err
}

// patientArg reads --patient: a FHIR id, Patient/ID, or a person number.
// A person number becomes the attest's patient, not a FHIR id: that is
// how the national conventions name the patient (the server looks the
// number up per request from nhn-patient-nin), so the token works without
// a call to the server and without knowing our ids. Anything else is a
// usage error: a token for a patient that cannot exist would only give
// 403s later.
func patientArg(patient, pid string) (string, string, error) {
	p := strings.TrimPrefix(patient, "Patient/")
	switch {
	case patient == "":
		return "", pid, nil
	case personNumber.MatchString(p):
		if !domain.ValidPersonNumber(p) {
			return "", "", fmt.Errorf("token: --patient %q: 11 digits, but not a valid person number (check digits or date)", patient)
		}
		if pid != "" && pid != p {
			return "", "", fmt.Errorf("token: --patient %s and --patient-pid %s name different people", p, pid)
		}
		return "", p, nil
	case !validFHIRID(p):
		return "", "", fmt.Errorf("token: --patient %q: want a FHIR id (ID or Patient/ID, letters, digits, '-' and '.', at most 64) or an 11-digit person number", patient)
	}
	return p, pid, nil
}

// discoverIssuer reads the issuer the server's SMART configuration names,
// so that a token for a server on any address or behind any base URL is
// signed for the issuer it trusts.
func discoverIssuer(ctx context.Context, server string) (string, error) {
	u := strings.TrimRight(server, "/") + "/.well-known/smart-configuration"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("token: --server %q: %w", server, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token: --server: %w", err)
	}
	defer res.Body.Close()
	var conf struct {
		Issuer string `json:"issuer"`
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token: --server: %s answered %s", u, res.Status)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&conf); err != nil || conf.Issuer == "" {
		return "", fmt.Errorf("token: --server: %s names no issuer", u)
	}
	return strings.TrimRight(conf.Issuer, "/"), nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return strings.TrimSpace(v)
	}
	return def
}
