//go:build !no_gcpkms

package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/gcpkmsemu"
	"github.com/orgkms/orgkms/internal/server"
)

// TestGCPCloudThroughTheAPI: a server offering gcp (against the Cloud KMS
// fake, through the official client) lists it in the clouds route with
// its grant instructions, the service account to copy and the key field;
// a key configured by fields is authorized by the grant and passes Test
// Managed Key.
func TestGCPCloudThroughTheAPI(t *testing.T) {
	const (
		key = "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/orgkms-cmk"
		sa  = "orgkms@orgkms-platform.iam.gserviceaccount.com"
	)
	ctx := context.Background()
	fake := gcpkmsemu.New()
	addr, err := fake.Start(t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.CreateKey(key, gcpkmsemu.KeyOptions{Labels: map[string]string{"orgkms-org": "acme"}}); err != nil {
		t.Fatal(err)
	}
	var handler atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	cfg := config.Config{DataDir: t.TempDir(), PublicURL: srv.URL}
	cfg.CMK.Clouds, cfg.CMK.CallbackURL = []string{"gcp"}, srv.URL+"/v1/cmk/callback"
	cfg.CMK.GCP = config.GCP{Enabled: true, Endpoint: addr, ServiceAccount: sa}
	s, err := server.Open(ctx, cfg, server.Options{Logger: slog.New(slog.DiscardHandler), Migrate: true, GCPInsecure: true})
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	handler.Store(&s.Handler)
	if _, err := s.Keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	_, token, err := s.Tokens.Create(ctx, "test", auth.CreateTokenRequest{Principal: "sec", OrgID: "acme", Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}})
	if err != nil {
		t.Fatal(err)
	}

	code, body := call(t, srv, "GET", "/v1/orgs/acme/cmk/clouds", token, nil)
	var got client.CMKClouds
	if code != 200 || json.Unmarshal(body, &got) != nil || len(got.Clouds) != 1 {
		t.Fatalf("GET clouds: %d %s", code, body)
	}
	g := got.Clouds[0]
	if g.Name != "gcp" || !g.Default || g.DisplayName != "Google Cloud KMS" || g.Authorization.Method != "grant" ||
		!strings.Contains(g.Authorization.Instructions, "roles/cloudkms.cryptoKeyEncrypterDecrypter") ||
		!strings.Contains(g.Authorization.Access, "`orgkms-org = acme`") ||
		len(g.Authorization.Values) != 1 || g.Authorization.Values[0].Value != sa {
		t.Errorf("gcp = %+v", g)
	}
	if len(g.Fields) != 2 || g.Fields[0].Name != "key_name" || !g.Fields[0].Required || g.Fields[1].Name != "key_version" || !g.Fields[1].Version {
		t.Errorf("gcp fields = %+v", g.Fields)
	}
	// Authorize in a grant cloud: its instructions and the values to copy,
	// no consent URL, nothing changed; a cloud not offered names the field.
	code, body = call(t, srv, "POST", "/v1/orgs/acme/cmk/authorize", token, client.CMKAuthorizeRequest{Cloud: "gcp"})
	var auth client.CMKAuthorizeResponse
	if code != 200 || json.Unmarshal(body, &auth) != nil || auth.Cloud != "gcp" || auth.Method != "grant" || auth.ConsentURL != "" ||
		auth.Authorization == nil || len(auth.Authorization.Values) != 1 || auth.Authorization.Values[0].Value != sa ||
		strings.Contains(string(body), "expires_at") {
		t.Errorf("authorize gcp: %d %s, want the grant instructions", code, body)
	}
	if code, body := call(t, srv, "GET", "/v1/orgs/acme/cmk", token, nil); code != 200 || !strings.Contains(string(body), `"state":"platform"`) {
		t.Errorf("after authorize gcp: %d %s, want still platform", code, body)
	}
	code, body = call(t, srv, "POST", "/v1/orgs/acme/cmk/authorize", token, client.CMKAuthorizeRequest{Cloud: "oracle"})
	if code != 400 || !strings.Contains(string(body), `"field":"cloud"`) || !strings.Contains(string(body), "offered: gcp") {
		t.Errorf("authorize oracle: %d %s, want 400 naming the field cloud", code, body)
	}
	code, body = call(t, srv, "POST", "/v1/orgs/acme/cmk/configure", token, client.CMKConfigureRequest{Cloud: "gcp", Fields: map[string]string{"key_name": key}})
	if code != 200 {
		t.Fatalf("configure: %d %s", code, body)
	}
	code, body = call(t, srv, "POST", "/v1/orgs/acme/cmk/test", token, nil)
	var rep struct {
		OK     bool              `json:"ok"`
		Checks []client.CMKCheck `json:"checks"`
	}
	if code != 200 || json.Unmarshal(body, &rep) != nil || !rep.OK {
		t.Fatalf("test: %d %s", code, body)
	}
	// A key field of another cloud is refused, naming the field.
	code, body = call(t, srv, "POST", "/v1/orgs/acme/cmk/configure", token, client.CMKConfigureRequest{Cloud: "gcp", Fields: map[string]string{"key_name": key, "vault_uri": "https://contoso-kv.vault.azure.net/"}})
	if code != 400 || !strings.Contains(string(body), "vault_uri") {
		t.Errorf("configure with an Azure field: %d %s, want 400 naming vault_uri", code, body)
	}
}
