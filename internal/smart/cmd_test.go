package smart

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// tokenClaims runs `kjernejournal token` with the repository's development
// files and returns the claims it prints with --claims.
func tokenClaims(t *testing.T, args ...string) (map[string]any, string, error) {
	t.Helper()
	args = append([]string{"--key-file", "../../testdata/smart/dev-signing-key.pem", "--personas", "../../testdata/smart/personas.json",
		"--clients", "../../testdata/smart/clients.json", "--claims"}, args...)
	var stdout, stderr strings.Builder
	err := TokenCommand(context.Background(), args, &stdout, &stderr)
	if err != nil {
		return nil, stderr.String(), err
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(stderr.String()))
	if err := dec.Decode(&claims); err != nil {
		t.Fatalf("token --claims: %v\n%s", err, stderr.String())
	}
	return claims, stderr.String(), nil
}

func TestTokenPatientForms(t *testing.T) {
	t.Setenv("KJ_ADDR", "")
	for _, arg := range []string{"pas-1d0b14e4db018fed", "Patient/pas-1d0b14e4db018fed"} {
		claims, _, err := tokenClaims(t, "--as", "hospital-doctor", "--patient", arg, "--addr", "127.0.0.1:18080")
		if err != nil {
			t.Fatalf("token --patient %s: %v", arg, err)
		}
		if claims["patient"] != "pas-1d0b14e4db018fed" {
			t.Errorf("token --patient %s: patient claim %v, want pas-1d0b14e4db018fed", arg, claims["patient"])
		}
		if claims["iss"] != "http://127.0.0.1:18080" {
			t.Errorf("token --addr 127.0.0.1:18080: issuer %v", claims["iss"])
		}
	}
	claims, stderr, err := tokenClaims(t, "--as", "hospital-doctor", "--patient", "02898321285")
	if err != nil {
		t.Fatalf("token --patient with a person number: %v", err)
	}
	if _, ok := claims["patient"]; ok {
		t.Errorf("token --patient 02898321285: a FHIR patient claim %v, want the person number in the attest only", claims["patient"])
	}
	if !strings.Contains(fmt.Sprint(claims), "02898321285") || !strings.Contains(stderr, "nhn-patient-nin: 02898321285") {
		t.Errorf("token --patient 02898321285: the token does not name the person number, or the hint is missing:\n%s", stderr)
	}
	for _, bad := range []string{"12345678901", "Patient/", "pas 1", "Patient/Patient/pas-1"} {
		if _, _, err := tokenClaims(t, "--as", "hospital-doctor", "--patient", bad); err == nil {
			t.Errorf("token --patient %q: a token, want a usage error", bad)
		}
	}
}

func TestTokenIssuerFromServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/smart-configuration" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"issuer":"https://kj.example.test/fhir"}`)
	}))
	defer srv.Close()
	claims, _, err := tokenClaims(t, "--as", "gp", "--server", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != "https://kj.example.test/fhir" {
		t.Errorf("token --server: issuer %v, want the one the discovery document names", claims["iss"])
	}
	if _, _, err := tokenClaims(t, "--as", "gp", "--server", srv.URL+"/nothing"); err == nil {
		t.Error("token --server without a discovery document: a token, want an error")
	}
}
