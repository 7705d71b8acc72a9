package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/server"
)

// startCMKServer starts a server offering the azure cloud against the
// emulator, with org acme and a token of its administrators.
func startCMKServer(t *testing.T) (srv *httptest.Server, emu *azureemu.Emulator, demo azureemu.Demo, token string) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	var handler atomic.Pointer[http.Handler]
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	callbackURL := srv.URL + "/v1/cmk/callback"
	emu, err := azureemu.Open(ctx, azureemu.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	if demo, err = azureemu.SeedDemo(emu, []string{callbackURL}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{DataDir: t.TempDir(), PublicURL: srv.URL}
	cfg.CMK.Clouds, cfg.CMK.CallbackURL = []string{"azure"}, callbackURL
	cfg.CMK.Azure = config.Azure{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/"}
	s, err := server.Open(ctx, cfg, server.Options{Logger: log, Migrate: true, AzureHTTPClient: emu.HTTPClient(), AzureMaxRetries: 1})
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	handler.Store(&s.Handler)
	if _, err := s.Keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	_, token, err = s.Tokens.Create(ctx, "test", auth.CreateTokenRequest{Principal: "sec", OrgID: "acme", Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	return srv, emu, demo, token
}

func call(t *testing.T, srv *httptest.Server, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, srv.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

var (
	consentCSRF   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	consentAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// consentViaAPI authorizes orgkms for acme in the demo tenant through the
// API and the emulator's consent page.
func consentViaAPI(t *testing.T, srv *httptest.Server, emu *azureemu.Emulator, demo azureemu.Demo, token string) {
	t.Helper()
	code, body := call(t, srv, "POST", "/v1/orgs/acme/cmk/authorize", token, client.CMKAuthorizeRequest{TenantID: demo.TenantID})
	var ar client.CMKAuthorizeResponse
	if code != 200 || json.Unmarshal(body, &ar) != nil {
		t.Fatalf("authorize: %d %s", code, body)
	}
	hc := emu.HTTPClient()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(ar.ConsentURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf, action := consentCSRF.FindSubmatch(page), consentAction.FindSubmatch(page)
	if csrf == nil || action == nil {
		t.Fatalf("consent page has no form: %s", page)
	}
	resp, err = hc.PostForm(emu.URL()+string(action[1]), url.Values{"csrf_token": {string(csrf[1])}, "action": {"accept"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := http.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	cb.Body.Close()
	if cb.StatusCode != 200 {
		t.Fatalf("consent callback: %d", cb.StatusCode)
	}
}

// TestCMKCloudsRoute: GET /v1/orgs/{org}/cmk/clouds lists the offered
// clouds with the fields a customer enters, how to authorize orgkms and
// the checks of Test Managed Key; it needs a token for the org.
func TestCMKCloudsRoute(t *testing.T) {
	srv, _, _, token := startCMKServer(t)
	code, body := call(t, srv, "GET", "/v1/orgs/acme/cmk/clouds", token, nil)
	var got client.CMKClouds
	if code != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("GET clouds: %d %s", code, body)
	}
	if len(got.Clouds) != 1 {
		t.Fatalf("clouds = %+v, want azure alone", got.Clouds)
	}
	az := got.Clouds[0]
	if az.Name != "azure" || !az.Default || az.DisplayName == "" || az.Authorization.Method != "consent" || az.Authorization.Instructions == "" || az.Authorization.TenantLabel == "" {
		t.Errorf("azure = %+v", az)
	}
	var names []string
	for _, f := range az.Fields {
		names = append(names, f.Name)
		if f.Label == "" || f.Example == "" {
			t.Errorf("field %+v has no label or example", f)
		}
	}
	if strings.Join(names, ",") != "vault_uri,key_name,key_version" || !az.Fields[0].Required || !az.Fields[1].Required || az.Fields[2].Required || !az.Fields[2].Version {
		t.Errorf("azure fields = %+v", az.Fields)
	}
	var ids []string
	for _, c := range az.Checks {
		ids = append(ids, c.ID)
	}
	if want := "consent,configured,token,vault,key,version,enabled,type,operations,ownership,roundtrip,deletion,latency"; strings.Join(ids, ",") != want {
		t.Errorf("azure checks = %s, want %s", strings.Join(ids, ","), want)
	}
	if code, body := call(t, srv, "GET", "/v1/orgs/nobody/cmk/clouds", token, nil); code != 403 && code != 404 {
		t.Errorf("GET clouds of another org: %d %s, want 403 or 404", code, body)
	}
	if code, _ := call(t, srv, "GET", "/v1/orgs/acme/cmk/clouds", "", nil); code != 401 {
		t.Errorf("GET clouds without a token: %d, want 401", code)
	}
}

// TestCMKConfigureByFields: Configure takes a cloud and its fields, keeps
// taking the original Azure shape, and refuses a mix of both, a cloud not
// offered and a malformed field, naming the field.
func TestCMKConfigureByFields(t *testing.T) {
	srv, emu, demo, token := startCMKServer(t)
	consentViaAPI(t, srv, emu, demo, token)
	upper := strings.ToUpper(strings.TrimSuffix(demo.VaultURI, "/"))
	code, body := call(t, srv, "POST", "/v1/orgs/acme/cmk/configure", token, client.CMKConfigureRequest{Cloud: "azure", Fields: map[string]string{"vault_uri": upper, "key_name": demo.KeyName}})
	var st client.CMKStatus
	if code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("configure by fields: %d %s", code, body)
	}
	if st.Cloud != "azure" || st.State != "authorized" || st.Fields["vault_uri"] != demo.VaultURI || st.Fields["key_name"] != demo.KeyName || st.Fields["key_version"] != "" {
		t.Errorf("status after configure by fields = cloud %q state %q fields %v, want the normalized %s", st.Cloud, st.State, st.Fields, demo.VaultURI)
	}
	code, body = call(t, srv, "POST", "/v1/orgs/acme/cmk/configure", token, client.CMKConfigureRequest{VaultURI: demo.VaultURI, KeyName: "other-key"})
	if code != 200 || json.Unmarshal(body, &st) != nil || st.Fields["key_name"] != "other-key" {
		t.Fatalf("configure in the original shape: %d %s", code, body)
	}
	for _, tt := range []struct {
		name  string
		req   any
		field string
	}{
		{"both shapes", client.CMKConfigureRequest{VaultURI: demo.VaultURI, Fields: map[string]string{"key_name": "k"}}, "fields"},
		{"a cloud not offered", client.CMKConfigureRequest{Cloud: "aws", Fields: map[string]string{"key_arn": "arn:aws:kms:eu-west-1:111122223333:key/x"}}, "cloud"},
		{"a cloud not offered, original shape", client.CMKConfigureRequest{Cloud: "gcp", VaultURI: demo.VaultURI, KeyName: "k"}, "cloud"},
		{"a field missing", client.CMKConfigureRequest{Cloud: "azure", Fields: map[string]string{"vault_uri": demo.VaultURI}}, "key_name"},
		{"a field of another cloud", client.CMKConfigureRequest{Fields: map[string]string{"vault_uri": demo.VaultURI, "key_name": "k", "role_arn": "x"}}, "role_arn"},
		{"a malformed vault", client.CMKConfigureRequest{Fields: map[string]string{"vault_uri": "contoso", "key_name": "k"}}, "vault_uri"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, srv, "POST", "/v1/orgs/acme/cmk/configure", token, tt.req)
			var e client.ErrorBody
			json.Unmarshal(body, &e)
			if code != 400 || e.Error.Code != "invalid_argument" || e.Error.Field != tt.field {
				t.Errorf("configure: %d %s, want 400 invalid_argument on field %s", code, body, tt.field)
			}
		})
	}
}
