package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kjernejournal/kjernejournal/internal/clientkey"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/seed"
)

type remoteOptions struct {
	base, clientID, keyFile string
	seed                    int64
	patients, perBundle     int
	ids                     *bufio.Writer
	progress                func(patients, resources int)
}

type remoteResult struct {
	resources int
	// skipped counts the resources of types the token may not write;
	// secret the clinical resources of patients with a secret address.
	skipped, secret int
	skippedTypes    []string
}

// remoteInFlight is how many transactions are sent at once: enough for
// the server's group commit to put several in one fsync while this
// process builds the next, few enough not to crowd out other clients.
const remoteInFlight = 4

// remoteMaxBundle keeps a Bundle well under the server's default
// --max-body (1 MiB), whatever --bundle-patients says.
const remoteMaxBundle = 512 << 10

// seedServer loads the generated patients into a running server as the
// feeder would: PUT with the seed's ids inside transaction Bundles, so the
// server's own write path validates every resource, a patient's record
// is stored all or nothing, and a second run updates instead of
// duplicating.
func seedServer(ctx context.Context, o remoteOptions) (remoteResult, error) {
	var res remoteResult
	base := strings.TrimRight(o.base, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return res, fmt.Errorf("--server %q is not an http(s) URL", o.base)
	}
	hc := &http.Client{Timeout: 2 * time.Minute}
	auth, err := newFeederAuth(ctx, hc, base, o.clientID, o.keyFile)
	if err != nil {
		return res, err
	}

	type bundle struct {
		body      []byte
		patients  int
		resources int
		refs      []string
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bundles := make(chan bundle, remoteInFlight)
	var mu sync.Mutex
	var patientsDone int
	var wg sync.WaitGroup
	for range remoteInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range bundles {
				if ctx.Err() != nil {
					continue
				}
				if err := postTransaction(ctx, hc, auth, base, b.body); err != nil {
					cancel(err)
					continue
				}
				mu.Lock()
				patientsDone += b.patients
				res.resources += b.resources
				if o.ids != nil {
					for _, r := range b.refs {
						o.ids.WriteString(r + "\n")
					}
				}
				p, r := patientsDone, res.resources
				mu.Unlock()
				if o.progress != nil {
					o.progress(p, r)
				}
			}
		}()
	}

	skipped := map[string]bool{}
	var cur bundle
	var entries []json.RawMessage
	send := func() {
		if cur.patients == 0 {
			return
		}
		cur.body, _ = json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
		select {
		case bundles <- cur:
		case <-ctx.Done():
		}
		cur, entries = bundle{}, nil
	}
	size := 0
	for _, rec := range seed.Generate(o.seed, o.patients) {
		if ctx.Err() != nil {
			break
		}
		var recEntries []json.RawMessage
		var refs []string
		recSize := 0
		bodies := append([][]byte{rec.Patient}, rec.Resources...)
		// A patient with a secret address counts as reserved (rule 4): the
		// server takes the population register's Patient but no new
		// clinical information, not even the same again on a second run.
		// So the seed never sends it, and every run does the same.
		if hasSecretAddress(rec.Patient) {
			bodies = bodies[:1]
			res.secret += len(rec.Resources)
		}
		for _, body := range bodies {
			var head struct{ ResourceType, ID string }
			if err := json.Unmarshal(body, &head); err != nil {
				cancel(fmt.Errorf("generated resource: %w", err))
				break
			}
			if !auth.mayWrite(head.ResourceType) {
				skipped[head.ResourceType] = true
				res.skipped++
				continue
			}
			ref := head.ResourceType + "/" + head.ID
			e, _ := json.Marshal(map[string]any{
				"fullUrl":  base + "/" + ref,
				"resource": json.RawMessage(body),
				"request":  map[string]string{"method": http.MethodPut, "url": ref},
			})
			recEntries = append(recEntries, e)
			refs = append(refs, ref)
			recSize += len(e)
		}
		if cur.patients > 0 && (cur.patients >= o.perBundle || size+recSize > remoteMaxBundle) {
			send()
			size = 0
		}
		entries = append(entries, recEntries...)
		cur.refs = append(cur.refs, refs...)
		cur.patients++
		cur.resources += len(recEntries)
		size += recSize
	}
	if ctx.Err() == nil {
		send()
	}
	close(bundles)
	wg.Wait()
	for t := range skipped {
		res.skippedTypes = append(res.skippedTypes, t)
	}
	slices.Sort(res.skippedTypes)
	return res, context.Cause(ctx)
}

// hasSecretAddress reports whether a generated Patient carries the
// population register's secret-address flag.
func hasSecretAddress(patient []byte) bool {
	var p struct {
		Extension []struct {
			URL          string
			ValueBoolean bool
		}
	}
	_ = json.Unmarshal(patient, &p)
	for _, e := range p.Extension {
		if e.URL == domain.SecretAddressExtension && e.ValueBoolean {
			return true
		}
	}
	return false
}

// postTransaction sends one transaction Bundle and turns a refusal into an
// error carrying the server's OperationOutcome text.
func postTransaction(ctx context.Context, hc *http.Client, auth *feederAuth, base string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	if tok, err := auth.token(ctx); err != nil {
		return err
	} else if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return fmt.Errorf("--server %s refused a transaction: %s: %s", base, resp.Status, outcomeText(raw))
}

// outcomeText is what an OperationOutcome says (its issues' details and
// diagnostics), or the body itself if it is not one.
func outcomeText(raw []byte) string {
	var oo struct {
		ResourceType string
		Issue        []struct {
			Severity, Code, Diagnostics string
			Details                     struct{ Text string }
			Expression                  []string
		}
	}
	if json.Unmarshal(raw, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		s := strings.TrimSpace(string(raw))
		if len(s) > 500 {
			s = s[:500] + "…"
		}
		return s
	}
	var parts []string
	for _, is := range oo.Issue {
		text := strings.TrimSpace(strings.Join(slices.DeleteFunc([]string{is.Details.Text, is.Diagnostics}, func(s string) bool { return s == "" }), ": "))
		if text == "" {
			text = is.Code
		}
		if len(is.Expression) > 0 {
			text += " (at " + strings.Join(is.Expression, ", ") + ")"
		}
		parts = append(parts, is.Severity+": "+text)
	}
	return strings.Join(parts, "; ")
}

// feederAuth holds the feeder's access token from the server's own
// authorisation server (SMART backend services: client_credentials with a
// private_key_jwt assertion), renewed before it runs out. A server without
// an authorisation server (serve --insecure-no-auth) gets no token.
type feederAuth struct {
	hc                 *http.Client
	tokenURL, clientID string
	key                jwk.Key
	alg                jwa.SignatureAlgorithm

	mu      sync.Mutex
	access  string
	expires time.Time
	// types are the resource types the granted scope lets the feeder
	// create and update; nil means any (no token).
	types map[string]bool
}

func newFeederAuth(ctx context.Context, hc *http.Client, base, clientID, keyFile string) (*feederAuth, error) {
	a := &feederAuth{hc: hc, clientID: clientID}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/.well-known/smart-configuration", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	defer resp.Body.Close()
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&conf) != nil || conf.TokenEndpoint == "" {
		return a, nil
	}
	a.tokenURL = conf.TokenEndpoint
	if a.key, a.alg, err = clientkey.Load(keyFile); err != nil {
		return nil, fmt.Errorf("--client-key: %w", err)
	}
	if _, err := a.token(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// token returns a valid access token ("" for a server without
// authorisation), fetching a new one a minute before the last runs out.
func (a *feederAuth) token(ctx context.Context) (string, error) {
	if a.tokenURL == "" {
		return "", nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.access != "" && time.Until(a.expires) > time.Minute {
		return a.access, nil
	}
	now := time.Now()
	assertion, err := clientkey.Sign(a.key, a.alg, "", clientkey.Claims(a.clientID, a.tokenURL, now))
	if err != nil {
		return "", fmt.Errorf("--client-key: sign the client assertion: %w", err)
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {feederScope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("token endpoint %s: %w", a.tokenURL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Scope       string `json:"scope"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(raw, &tr); err != nil || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		return "", fmt.Errorf("token endpoint %s refused client %s: %s %s %s", a.tokenURL, a.clientID, resp.Status, tr.Error, tr.Description)
	}
	a.access = tr.AccessToken
	a.expires = now.Add(time.Duration(tr.ExpiresIn) * time.Second)
	a.types = writableTypes(tr.Scope)
	return a.access, nil
}

// feederScope asks for writing every type the seed generates; the
// authorisation server grants what the client is registered for, and the
// rest is left out (critical information is recorded by health
// personnel, not by a feeder system).
const feederScope = "system/Patient.cu system/AllergyIntolerance.cu system/Flag.cu system/Condition.cu system/Procedure.cu system/Consent.cu system/MedicationStatement.cu system/Encounter.cu"

// writableTypes are the types a SMART v2 (cruds) or v1 (write, *) system
// scope lets its holder both create and update, "*" for every type.
func writableTypes(scope string) map[string]bool {
	types := map[string]bool{}
	for _, s := range strings.Fields(scope) {
		rest, ok := strings.CutPrefix(s, "system/")
		if !ok {
			continue
		}
		typ, perm, ok := strings.Cut(rest, ".")
		if !ok {
			continue
		}
		if perm == "*" || perm == "write" || (strings.Contains(perm, "c") && strings.Contains(perm, "u")) {
			types[typ] = true
		}
	}
	return types
}

func (a *feederAuth) mayWrite(typ string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.types == nil || a.types["*"] || a.types[typ]
}
