package console_test

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/console"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// testPassword is every test user's password.
const testPassword = "correct horse battery staple"

// The test users: org users of acme and globex, and a platform operator.
const (
	secAdmin = "sec@acme.example"     // admin + key_admin
	orgAdmin = "admin@acme.example"   // admin only
	keyAdmin = "keys@acme.example"    // key_admin only
	member   = "member@acme.example"  // member
	globex   = "admin@globex.example" // admin + key_admin of globex
	operator = "ops@platform.example" // platform operator
)

// harness is a whole orgkms (internal/server, as orgkms serve builds it:
// SQLite, local platform key, the real azurekv driver) with the API and the
// console on one HTTP server, against the Azure emulator, all in-process.
type harness struct {
	t      *testing.T
	srv    *httptest.Server
	emu    *azureemu.Emulator
	demo   azureemu.Demo
	server *server.Server
	st     *sqlite.Store
	keys   *keys.Service
	cmk    *cmk.Service
	users  *auth.Users
	ids    map[string]string // email → user ID
	offset atomic.Int64      // added to the clock, in nanoseconds
}

type options struct {
	tls           bool
	secureCookies bool // an https public URL (behind a TLS-terminating proxy)
	demo          bool // show the emulator's demo values (orgkms dev)
	selfDelete    bool // orgs.self_delete: an org's admin+key_admin may delete it
}

func newHarness(t *testing.T, opts options) *harness {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	h := &harness{t: t, ids: map[string]string{}}
	now := func() time.Time { return time.Now().Add(time.Duration(h.offset.Load())) }

	var handler atomic.Pointer[http.Handler]
	serve := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) })
	if opts.tls {
		h.srv = httptest.NewTLSServer(serve)
	} else {
		h.srv = httptest.NewServer(serve)
	}
	t.Cleanup(h.srv.Close)
	callbackURL := h.srv.URL + "/v1/cmk/callback"

	emu, err := azureemu.Open(ctx, azureemu.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	h.emu = emu
	if h.demo, err = azureemu.SeedDemo(emu, []string{callbackURL}); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.SetKeyTags(azureemu.DemoVault, azureemu.DemoKey, "", map[string]string{"orgkms-org": "acme,globex,demo"}); err != nil {
		t.Fatal(err)
	}

	cfg := config.Config{DataDir: t.TempDir(), PublicURL: h.srv.URL}
	if opts.secureCookies {
		cfg.PublicURL = "https://" + strings.TrimPrefix(h.srv.URL, "http://")
	}
	cfg.CMK.Cloud, cfg.CMK.CallbackURL = "azure", callbackURL
	cfg.Orgs.SelfDelete = opts.selfDelete
	cfg.CMK.Azure = config.Azure{ClientID: h.demo.ClientID, ClientSecret: h.demo.Secret, AuthorityHost: emu.URL() + "/"}
	sopts := server.Options{Logger: log, Migrate: true, Now: now, SessionTTL: time.Hour,
		AzureHTTPClient: emu.HTTPClient(), AzureMaxRetries: 1, AzureRetryDelay: 10 * time.Millisecond}
	if opts.demo {
		sopts.Demo = &console.Demo{TenantID: h.demo.TenantID, VaultURI: h.demo.VaultURI, KeyName: h.demo.KeyName}
	}
	h.server, err = server.Open(ctx, cfg, sopts)
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := h.server.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
	})
	h.st, h.keys, h.cmk, h.users = h.server.Store.(*sqlite.Store), h.server.Keys, h.server.CMK, h.server.Users
	handler.Store(&h.server.Handler)

	for _, org := range []string{"acme", "globex"} {
		if _, err := h.keys.CreateOrg(ctx, "test", org, strings.ToUpper(org[:1])+org[1:]+" Inc."); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []struct {
		org, email string
		roles      []auth.Role
	}{
		{"acme", secAdmin, []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}},
		{"acme", orgAdmin, []auth.Role{auth.RoleAdmin}},
		{"acme", keyAdmin, []auth.Role{auth.RoleKeyAdmin}},
		{"acme", member, []auth.Role{auth.RoleMember}},
		{"globex", globex, []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}},
		{"", operator, []auth.Role{auth.RoleOperator}},
	} {
		user, err := h.users.Create(ctx, "test", auth.NewUserRequest{OrgID: u.org, Email: u.email, Roles: u.roles, Password: testPassword})
		if err != nil {
			t.Fatalf("create user %s: %v", u.email, err)
		}
		h.ids[u.email] = user.ID
	}
	return h
}

// advance moves the clock of the user sessions and the CMK service.
func (h *harness) advance(d time.Duration) { h.offset.Add(int64(d)) }

// runJobs runs the org's pending CMK jobs to completion.
func (h *harness) runJobs() {
	h.t.Helper()
	if err := h.cmk.RunPendingJobs(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
}

// client is a cookie-keeping HTTP client that does not follow redirects,
// so tests see each one.
type client struct {
	t *testing.T
	h *harness
	c *http.Client
}

func (h *harness) client() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	c := *h.srv.Client() // a copy: srv.Client() returns one shared client
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{t: h.t, h: h, c: &c}
}

// page is one response.
type page struct {
	t      *testing.T
	method string
	path   string
	status int
	header http.Header
	body   string
}

func (b *client) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return &page{t: b.t, method: req.Method, path: req.URL.RequestURI(), status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *client) url(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return b.h.srv.URL + path
}

func (b *client) get(path string) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url(path), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *client) post(path string, form url.Values) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url(path), strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// follow follows p's redirect.
func (b *client) follow(p *page) *page {
	b.t.Helper()
	p.want(http.StatusSeeOther)
	return b.get(p.location())
}

// signIn signs in through the sign-in form and returns the response to
// the form post.
func (b *client) signIn(email, password string) *page {
	b.t.Helper()
	form := b.get("/console/signin").want(http.StatusOK)
	return b.post("/console/signin", url.Values{"csrf_token": {form.csrf()}, "email": {email}, "password": {password}})
}

// signedIn returns a client signed in as email.
func (h *harness) signedIn(email string) *client {
	h.t.Helper()
	b := h.client()
	b.signIn(email, testPassword).want(http.StatusSeeOther)
	return b
}

// postForm posts form to path with the anti-forgery token of the page at
// from.
func (b *client) postForm(from, path string, form url.Values) *page {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", b.get(from).want(http.StatusOK).csrf())
	return b.post(path, form)
}

func (p *page) want(status int) *page {
	p.t.Helper()
	if p.status != status {
		p.t.Fatalf("%s %s: status %d, want %d; body:\n%s", p.method, p.path, p.status, status, p.body)
	}
	return p
}

func (p *page) location() string { return p.header.Get("Location") }

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (p *page) csrf() string {
	p.t.Helper()
	m := csrfRe.FindStringSubmatch(p.body)
	if m == nil {
		p.t.Fatalf("%s: no csrf_token in page:\n%s", p.path, p.body)
	}
	return html.UnescapeString(m[1])
}

// has reports whether the page contains an element with id.
func (p *page) has(id string) bool { return strings.Contains(p.body, `id="`+id+`"`) }

// text returns the text content of the first element with id (tags
// stripped, entities decoded, spaces collapsed).
func (p *page) text(id string) string {
	p.t.Helper()
	i := strings.Index(p.body, `id="`+id+`"`)
	if i < 0 {
		p.t.Fatalf("%s: no element #%s in page:\n%s", p.path, id, p.body)
	}
	start := strings.LastIndex(p.body[:i], "<")
	tag := p.body[start+1:]
	tag = tag[:strings.IndexAny(tag, " >")]
	rest := p.body[i:]
	rest = rest[strings.Index(rest, ">")+1:]
	// Find the matching close tag, counting nested tags of the same name.
	depth, j := 1, 0
	for depth > 0 {
		o := strings.Index(rest[j:], "<"+tag)
		c := strings.Index(rest[j:], "</"+tag+">")
		if c < 0 {
			p.t.Fatalf("%s: #%s is not closed", p.path, id)
		}
		if o >= 0 && o < c {
			depth++
			j += o + 1
			continue
		}
		depth--
		j += c + len(tag) + 3
	}
	inner := rest[:j-len(tag)-3]
	inner = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(inner, " ")
	return strings.Join(strings.Fields(html.UnescapeString(inner)), " ")
}

// wantText checks that #id's text contains want.
func (p *page) wantText(id, want string) {
	p.t.Helper()
	if got := p.text(id); !strings.Contains(got, want) {
		p.t.Fatalf("%s: #%s = %q, want it to contain %q", p.path, id, got, want)
	}
}

// attrOf returns the attribute attr of the first element that has id;
// for a boolean attribute that is present, its name.
func (p *page) attrOf(id, attr string) string {
	p.t.Helper()
	i := strings.Index(p.body, `id="`+id+`"`)
	if i < 0 {
		p.t.Fatalf("%s: no element #%s", p.path, id)
	}
	start := strings.LastIndex(p.body[:i], "<")
	end := strings.Index(p.body[i:], ">") + i
	m := regexp.MustCompile(`\s` + attr + `(="([^"]*)")?[\s/>]`).FindStringSubmatch(p.body[start : end+1])
	switch {
	case m == nil:
		return ""
	case m[1] == "":
		return attr // a boolean attribute
	}
	return html.UnescapeString(m[2])
}
