package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/envflag"
)

// Command is `kjernejournal conformance`: run the suite against a base URL
// and write report.md and junit.xml.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	envflag.SetOutput(fs, stderr)
	base := fs.String("base-url", os.Getenv("KJ_CONFORMANCE_BASE_URL"), "FHIR base URL of the server under test [KJ_CONFORMANCE_BASE_URL]")
	dir := fs.String("report-dir", "conformance-report", "directory for report.md and junit.xml")
	tokens := fs.String("tokens", "", `JSON file of bearer tokens by persona ({"gp": "...", "citizen": "..."}) for a server whose authorisation server the suite cannot drive`)
	feederKey := fs.String("feeder-key", "testdata/smart/feeder-dev-key.pem", "private key of the backend-services client that feeds fixture patients")
	feederID := fs.String("feeder-client", "kj-feeder", "client id of the backend-services client")
	rsKey := fs.String("resource-server-key", "testdata/smart/resource-server-dev-key.pem", "private key of the confidential client that may introspect every token")
	rsID := fs.String("resource-server-client", "kj-resource-server", "client id of the introspecting client")
	issuerKey := fs.String("issuer-key", "testdata/smart/dev-signing-key.pem", "signing key of a development authorisation server, for well-signed attack tokens; ignored unless its public key is in the server's JWKS")
	clientID := fs.String("client-id", "kj-demo-app", "public SMART client the suite launches as")
	redirect := fs.String("redirect-uri", "http://localhost:3000/callback", "redirect URI registered for --client-id (never contacted)")
	groups := fs.String("group", "", "comma-separated groups to run (rest, smart, rules, documents, lab, validity); default all")
	run := fs.String("run", "", "run only checks whose id matches this regular expression")
	timeout := fs.Duration("check-timeout", time.Minute, "time limit of one check")
	failing := fs.String("failing-source", os.Getenv("KJ_CONFORMANCE_FAILING_SOURCE"), "name of a source hospital in the server's sources registry that is down on purpose, for documents/partial-failure (skipped without it) [KJ_CONFORMANCE_FAILING_SOURCE]")
	failingLab := fs.String("failing-lab-source", os.Getenv("KJ_CONFORMANCE_FAILING_LAB_SOURCE"), "name of a lab source in the server's sources registry that is down on purpose, for lab/partial-failure (skipped without it) [KJ_CONFORMANCE_FAILING_LAB_SOURCE]")
	schema := fs.String("fhir-schema", "testdata/fhir/fhir.schema.json", "the HL7 FHIR R4 JSON Schema that served resources are validated against")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: kjernejournal conformance --base-url URL [flags]\n\nRuns the black-box conformance suite against a running server.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" {
		fs.Usage()
		return errors.New("conformance: --base-url is required")
	}
	cfg := Config{BaseURL: *base, FeederKeyFile: *feederKey, FeederClientID: *feederID, ClientID: *clientID,
		ResourceServerKeyFile: *rsKey, ResourceServerClientID: *rsID, IssuerKeyFile: *issuerKey,
		RedirectURI: *redirect, Run: *run, CheckTimeout: *timeout, Progress: stdout, SchemaFile: *schema}
	cfg.FailingSource, cfg.FailingLabSource = *failing, *failingLab
	if *groups != "" {
		cfg.Groups = strings.Split(*groups, ",")
	}
	if *tokens != "" {
		raw, err := os.ReadFile(*tokens)
		if err != nil {
			return fmt.Errorf("conformance: %w", err)
		}
		if err := json.Unmarshal(raw, &cfg.Tokens); err != nil {
			return fmt.Errorf("conformance: %s: %w", *tokens, err)
		}
	}
	fmt.Fprintf(stdout, "kjernejournal conformance suite against %s\n", *base)
	rep, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := rep.WriteFiles(*dir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d checks: %d passed, %d failed, %d skipped in %s; report in %s\n",
		len(rep.Results), rep.Count("", Pass), rep.Count("", Fail), rep.Count("", Skip),
		rep.Elapsed.Round(time.Millisecond), filepath.Join(*dir, "report.md"))
	if n := rep.Count("", Fail); n > 0 {
		return fmt.Errorf("conformance: %d checks failed", n)
	}
	return nil
}

// WriteFiles writes report.md and junit.xml into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("conformance: report: %w", err)
	}
	for name, write := range map[string]func(io.Writer) error{"report.md": r.WriteMarkdown, "junit.xml": r.WriteJUnit} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("conformance: report: %w", err)
		}
		if err := write(f); err != nil {
			f.Close()
			return fmt.Errorf("conformance: report %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("conformance: report %s: %w", name, err)
		}
	}
	return nil
}
