package gcpkms_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/gcpkmsemu"
	"github.com/orgkms/orgkms/internal/masterkey/gcpkms"
)

const platformSA = "orgkms@orgkms-platform.iam.gserviceaccount.com"

// tokenServer is Google's OAuth token endpoint for a service account's
// signed JWT assertion: it answers with access token tok while ok is set.
func tokenServer(t *testing.T, tok string, ok *atomic.Bool) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok.Load() {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(ts.Close)
	return ts
}

// serviceAccountFile writes a service-account key file whose token_uri is
// tokenURI.
func serviceAccountFile(t *testing.T, tokenURI string) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "orgkms-platform", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": platformSA, "client_id": "1", "token_uri": tokenURI,
	})
	p := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServiceAccountOverTLS: the production path, credentials file and
// TLS: the driver obtains a token as the platform's service account and
// the fake's IAM allows exactly the keys granted to that account.
func TestServiceAccountOverTLS(t *testing.T) {
	srv := gcpkmsemu.New()
	addr, pool, err := srv.StartTLS(t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	granted := "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/granted"
	other := "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/other-vendor"
	if err := srv.CreateKey(granted, gcpkmsemu.KeyOptions{Principals: []string{"serviceAccount:" + platformSA}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateKey(other, gcpkmsemu.KeyOptions{Principals: []string{"serviceAccount:someone@else.iam.gserviceaccount.com"}}); err != nil {
		t.Fatal(err)
	}
	srv.MapToken("tok-orgkms", "serviceAccount:"+platformSA)
	var tokenOK atomic.Bool
	tokenOK.Store(true)
	ts := tokenServer(t, "tok-orgkms", &tokenOK)
	p, err := gcpkms.Open(t.Context(), gcpkms.Config{Endpoint: addr, CredentialsFile: serviceAccountFile(t, ts.URL),
		ClientOptions: []option.ClientOption{option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ctx := t.Context()
	if err := p.CheckCredentials(ctx, ref(granted)); err != nil {
		t.Fatalf("CheckCredentials: %v", err)
	}
	w, err := p.Wrap(ctx, ref(granted), dek(), aad)
	if err != nil {
		t.Fatalf("Wrap with the granted key: %v", err)
	}
	if _, err := p.Unwrap(ctx, w.Key, w.Ciphertext, aad); err != nil {
		t.Fatalf("Unwrap with the granted key: %v", err)
	}
	_, err = p.Wrap(ctx, ref(other), dek(), aad)
	fe := wantKind(t, "Wrap with a key granted to another principal", err, fault.PermissionDenied)
	if fe.Permission != gcpkmsemu.PermEncrypt {
		t.Fatalf("Permission = %q, want %q", fe.Permission, gcpkmsemu.PermEncrypt)
	}

	// The token endpoint refuses the platform's key: the credential check
	// says so, as the operator's problem.
	tokenOK.Store(false)
	p2, err := gcpkms.Open(ctx, gcpkms.Config{Endpoint: addr, CredentialsFile: serviceAccountFile(t, ts.URL)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p2.Close() })
	err = p2.CheckCredentials(ctx, ref(granted))
	if fe := wantKind(t, "CheckCredentials with refused credentials", err, fault.CredentialsInvalid); !strings.Contains(fe.Reason, "cmk.gcp.credentials_file") {
		t.Fatalf("reason = %q", fe.Reason)
	}
}

// TestCredentialsFileRefused: Open refuses a missing, malformed or
// foreign credentials file without quoting its contents.
func TestCredentialsFileRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope.json"), "read credentials file"},
		{"not JSON", write("a.json", "SECRET-not-json"), "not JSON"},
		{"user credentials", write("b.json", `{"type":"authorized_user","client_secret":"SECRET"}`), "want service_account"},
		{"broken service account", write("c.json", `{"type":"service_account","private_key":"SECRET"}`), "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := gcpkms.Open(t.Context(), gcpkms.Config{Endpoint: "127.0.0.1:1", CredentialsFile: tt.path})
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("Open(%s) = %v, want an error naming %q and no file contents", tt.name, err, tt.want)
			}
		})
	}
	if _, err := gcpkms.Open(t.Context(), gcpkms.Config{Insecure: true, CredentialsFile: tests[0].path}); err == nil {
		t.Fatal("Open accepted a credentials file in insecure mode")
	}
}
