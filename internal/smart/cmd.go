package smart

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Defaults of the token subcommand: the files in testdata/smart, relative
// to the repository root, and the address of `make run`.
const (
	DefaultPersonasFile = "testdata/smart/personas.json"
	DefaultClientsFile  = "testdata/smart/clients.json"
	DefaultKeyFile      = "testdata/smart/dev-signing-key.pem"
	DefaultIssuer       = "http://127.0.0.1:8080"
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
	fs.SetOutput(stderr)
	as := fs.String("as", "", "persona: gp, hospital-doctor, nurse, emergency, contract-specialist, citizen, citizen-support, auditor, feeder")
	patient := fs.String("patient", "", "FHIR Patient id in context (a citizen defaults to their own)")
	patientPID := fs.String("patient-pid", "", "the patient's national identity number, for the trust-framework attest")
	encounter := fs.String("encounter", "", "FHIR Encounter id in context")
	scope := fs.String("scope", "", "space-separated scopes (default: the persona's)")
	lifetime := fs.Duration("lifetime", time.Hour, "token lifetime")
	keyFile := fs.String("key-file", envOr("KJ_SMART_KEY_FILE", DefaultKeyFile), "PEM signing key; must be the running server's [KJ_SMART_KEY_FILE]")
	personas := fs.String("personas", envOr("KJ_SMART_PERSONAS", DefaultPersonasFile), "persona file [KJ_SMART_PERSONAS]")
	clients := fs.String("clients", envOr("KJ_SMART_CLIENTS", DefaultClientsFile), "client registry; empty for none [KJ_SMART_CLIENTS]")
	issuer := fs.String("issuer", envOr("KJ_SMART_ISSUER", DefaultIssuer), "token issuer: the server's base URL [KJ_SMART_ISSUER]")
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
	srv, err := New(Config{Issuer: *issuer, Audience: *audience, KeyFile: *keyFile, Personas: ps, Clients: cs})
	if err != nil {
		return err
	}
	tok, err := srv.IssueToken(ctx, TokenRequest{
		Persona: *as, Patient: *patient, PatientPID: *patientPID, Encounter: *encounter,
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
	_, err = fmt.Fprintln(stdout, tok.AccessToken)
	return err
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return strings.TrimSpace(v)
	}
	return def
}
