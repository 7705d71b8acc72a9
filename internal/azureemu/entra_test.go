package azureemu

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestTokenErrors(t *testing.T) {
	e := startEmu(t, Config{})
	w := newWorld(t, e)
	stranger := must[Tenant](t)(e.CreateTenant("stranger"))
	scope := "https://vault.azure.net/.default"
	for _, tc := range []struct {
		name, tenant, client, secret, scope string
		status                              int
		code                                string
		aadsts                              string
	}{
		{"wrong secret", w.customer.ID, w.app.ClientID, "nope", scope, 401, "invalid_client", "AADSTS7000215"},
		{"no consent", stranger.ID, w.app.ClientID, w.app.Secret, scope, 400, "unauthorized_client", "AADSTS700016: Application with identifier '" + w.app.ClientID + "' was not found in the directory 'stranger'"},
		{"unknown tenant", "11111111-2222-3333-4444-555555555555", w.app.ClientID, w.app.Secret, scope, 400, "invalid_request", "AADSTS90002"},
		{"unknown app", w.customer.ID, "11111111-2222-3333-4444-555555555555", "x", scope, 400, "unauthorized_client", "AADSTS700016"},
		{"bad scope", w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net", 400, "invalid_scope", "AADSTS70011"},
		{"domain tenant", "contoso.onmicrosoft.com", w.app.ClientID, w.app.Secret, scope + " openid offline_access profile", 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tokenResp(t, e, tc.tenant, tc.client, tc.secret, tc.scope)
			m := r.json(t)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 200 {
				if m["token_type"] != "Bearer" || m["expires_in"] != float64(3599) || m["access_token"] == "" {
					t.Errorf("success body %v", m)
				}
				return
			}
			desc, _ := m["error_description"].(string)
			if m["error"] != tc.code || !strings.HasPrefix(desc, tc.aadsts) {
				t.Errorf("error %v %q", m["error"], desc)
			}
		})
	}
	r := send(t, e.HTTPClient(), http.MethodGet, e.URL()+"/"+w.customer.ID+"/v2.0/.well-known/openid-configuration", "", nil)
	m := r.json(t)
	if m["issuer"] != e.URL()+"/"+w.customer.ID+"/v2.0" || m["token_endpoint"] != e.URL()+"/"+w.customer.ID+"/oauth2/v2.0/token" {
		t.Errorf("openid configuration %v", m)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func TestConsentPage(t *testing.T) {
	e := startEmu(t, Config{})
	home := must[Tenant](t)(e.CreateTenant("platform"))
	cust := must[Tenant](t)(e.CreateTenant("contoso"))
	app := must[App](t)(e.RegisterApp(home.ID, AppRegistration{Name: `orgkms <script>alert(1)</script>`, RedirectURIs: []string{"http://127.0.0.1:*/cmk/callback"}}))
	hc := e.HTTPClient()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	redirect := "http://127.0.0.1:8080/cmk/callback"
	consentURL := func(tenant, client, redirect string) string {
		return e.URL() + "/" + tenant + "/adminconsent?" + url.Values{"client_id": {client}, "redirect_uri": {redirect}, "state": {"st&ate=1"}}.Encode()
	}
	page := func(u string) (int, string) {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(tenant, tok, action string) *http.Response {
		t.Helper()
		resp, err := hc.PostForm(e.URL()+"/"+tenant+"/adminconsent", url.Values{"csrf_token": {tok}, "action": {action}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	st, body := page(consentURL(cust.ID, app.ClientID, redirect))
	if st != 200 || !strings.Contains(body, "orgkms &lt;script&gt;") || strings.Contains(body, "<script>") || !strings.Contains(body, cust.ID) {
		t.Fatalf("consent page: %d\n%s", st, body)
	}
	tok := csrfRE.FindStringSubmatch(body)[1]
	resp := post(cust.ID, tok, "accept")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if resp.StatusCode != http.StatusFound || loc.Host != "127.0.0.1:8080" || loc.Path != "/cmk/callback" ||
		q.Get("admin_consent") != "True" || q.Get("tenant") != cust.ID || q.Get("state") != "st&ate=1" {
		t.Fatalf("accept: %d %s", resp.StatusCode, loc)
	}
	if _, err := e.ServicePrincipal(cust.ID, app.ClientID); err != nil {
		t.Errorf("no service principal after consent: %v", err)
	}
	// The anti-forgery token is single use.
	if resp := post(cust.ID, tok, "accept"); resp.StatusCode != 400 {
		t.Errorf("replayed token: %d", resp.StatusCode)
	}
	if resp := post(cust.ID, "forged", "accept"); resp.StatusCode != 400 {
		t.Errorf("forged token: %d", resp.StatusCode)
	}

	// Cancel.
	_, body = page(consentURL(cust.ID, app.ClientID, redirect))
	resp = post(cust.ID, csrfRE.FindStringSubmatch(body)[1], "cancel")
	loc, _ = url.Parse(resp.Header.Get("Location"))
	if q := loc.Query(); q.Get("error") != "permission_denied" || q.Get("error_description") != "The admin canceled the request" || q.Get("state") != "st&ate=1" {
		t.Errorf("cancel: %s", loc)
	}

	for _, tc := range []struct{ name, url, want string }{
		{"unknown app", consentURL(cust.ID, "11111111-2222-3333-4444-555555555555", redirect), "AADSTS700016"},
		{"unknown tenant", consentURL("nowhere.onmicrosoft.com", app.ClientID, redirect), "AADSTS90002"},
		{"redirect mismatch", consentURL(cust.ID, app.ClientID, "https://evil.example.com/cb"), "AADSTS50011"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, body := page(tc.url); st != 400 || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s", st, body)
			}
		})
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	e1 := startEmu(t, Config{Dir: dir})
	w := newWorld(t, e1)
	ca1, err := os.ReadFile(e1.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	dek := []byte("0123456789abcdef0123456789abcdef")
	c1 := sdkClient(t, e1, w.customer.ID, w.app.ClientID, w.app.Secret, "https://demo.vault.azure.net")
	wr, err := c1.WrapKey(t.Context(), "k1", "", azkeysParams(dek), nil)
	if err != nil {
		t.Fatal(err)
	}
	admin := e1.AdminToken()
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{stateFile, caKeyFile, leafKeyFile, adminTokenFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}

	e2 := startEmu(t, Config{Dir: dir})
	ca2, _ := os.ReadFile(e2.CAFile())
	if string(ca1) != string(ca2) || e2.AdminToken() != admin {
		t.Error("CA or admin token not reused")
	}
	c2 := sdkClient(t, e2, w.customer.ID, w.app.ClientID, w.app.Secret, "https://demo.vault.azure.net")
	uw, err := c2.UnwrapKey(t.Context(), "k1", wr.KID.Version(), azkeysParams(wr.Result), nil)
	if err != nil || string(uw.Result) != string(dek) {
		t.Fatalf("unwrap after restart: %v", err)
	}
}

func TestControlAPI(t *testing.T) {
	dir := t.TempDir()
	e := startEmu(t, Config{Dir: dir})
	ctx := t.Context()
	cc, err := OpenControlClient(e.URL(), dir)
	if err != nil {
		t.Fatal(err)
	}
	bad := NewControlClient(e.URL(), "wrong", e.CAPool())
	if _, err := bad.Tenants(ctx); err == nil {
		t.Error("wrong admin token accepted")
	}
	d1, err := cc.SeedDemo(ctx, []string{"http://127.0.0.1:*/cb"})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := SeedDemo(e, []string{"http://localhost:*/cb"})
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || d1.VaultURI != "https://contoso-kv.vault.azure.net/" || d1.KeyName != "orgkms-cmk" || len(d1.KeyVersion) != 32 {
		t.Errorf("SeedDemo not idempotent: %+v %+v", d1, d2)
	}
	if app := must[App](t)(e.App(d1.ClientID)); len(app.RedirectURIs) != 2 {
		t.Errorf("redirect URIs %v", app.RedirectURIs)
	}
	v := must[Vault](t)(e.Vault("contoso-kv"))
	if !v.PurgeProtection || v.SoftDeleteDays != 90 || v.TenantID != d1.TenantID {
		t.Errorf("demo vault %+v", v)
	}
	// The demo policy applies once consent exists.
	must[ServicePrincipal](t)(cc.GrantConsent(ctx, d1.TenantID, d1.ClientID))
	c := sdkClient(t, e, d1.TenantID, d1.ClientID, d1.Secret, d1.VaultURI)
	if _, err := c.WrapKey(ctx, d1.KeyName, d1.KeyVersion, azkeysParams([]byte("0123456789abcdef0123456789abcdef")), nil); err != nil {
		t.Fatalf("wrap with demo credentials: %v", err)
	}
	counters := must[map[string]map[string]int](t)(cc.Counters(ctx))
	if counters["contoso-kv"][OpWrapKey] != 1 {
		t.Errorf("counters %v", counters)
	}
	if _, err := cc.CreateVault(ctx, d1.TenantID, "contoso-kv", VaultOptions{}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate vault: %v", err)
	}
	if _, err := cc.DeleteKey(ctx, "contoso-kv", "orgkms-cmk"); err != nil {
		t.Fatal(err)
	}
	if err := cc.PurgeKey(ctx, "contoso-kv", "orgkms-cmk"); !errors.Is(err, ErrPurgeProtected) {
		t.Errorf("purge under protection: %v", err)
	}
	if _, err := cc.RecoverKey(ctx, "contoso-kv", "orgkms-cmk"); err != nil {
		t.Fatal(err)
	}
	if err := cc.SetFault(ctx, "contoso-kv", Fault{Status: 418}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad fault: %v", err)
	}
	if err := cc.SetPolicy(ctx, "contoso-kv", d1.ClientID, []string{"explode"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad permission: %v", err)
	}
}
