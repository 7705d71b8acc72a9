package console_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/console"
)

func TestSignIn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	b := h.client()

	// Without a session every page leads to sign-in, back to the page.
	p := b.get("/console/orgs/acme/keys").want(http.StatusSeeOther)
	if got := p.location(); got != "/console/signin?next=%2Fconsole%2Forgs%2Facme%2Fkeys" {
		t.Fatalf("redirect to %q", got)
	}
	b.get("/console/").want(http.StatusSeeOther)

	// A wrong password: 401, the message, the email kept.
	p = b.signIn(secAdmin, "wrong password!!").want(http.StatusUnauthorized)
	p.wantText("error", "the email or password is incorrect")
	if got := p.attrOf("email", "value"); got != secAdmin {
		t.Errorf("email field = %q after a failed sign-in, want it kept", got)
	}
	if strings.Contains(p.body, "wrong password") {
		t.Error("the password was sent back in the page")
	}

	// The right one: a session, and the user's org.
	p = b.signIn(secAdmin, testPassword).want(http.StatusSeeOther)
	if got := p.location(); got != "/console/orgs/acme/" {
		t.Fatalf("after sign-in: redirect to %q", got)
	}
	ov := b.follow(p).want(http.StatusOK)
	ov.wantText("whoami", secAdmin)
	ov.wantText("cmk-state", "platform")
	ov.wantText("protection", "Platform key")
	b.get("/console/").want(http.StatusSeeOther)

	// Sign-in brings the user back to the page they asked for; never to
	// another site.
	b2 := h.client()
	form := b2.get("/console/signin?next=%2Fconsole%2Forgs%2Facme%2Fkeys").want(http.StatusOK)
	p = b2.post("/console/signin", url.Values{"csrf_token": {form.csrf()}, "email": {member}, "password": {testPassword}, "next": {"/console/orgs/acme/keys"}})
	if got := p.want(http.StatusSeeOther).location(); got != "/console/orgs/acme/keys" {
		t.Errorf("next: redirect to %q", got)
	}
	b3 := h.client()
	form = b3.get("/console/signin").want(http.StatusOK)
	p = b3.post("/console/signin", url.Values{"csrf_token": {form.csrf()}, "email": {member}, "password": {testPassword}, "next": {"//evil.example/console/"}})
	if got := p.want(http.StatusSeeOther).location(); got != "/console/orgs/acme/" {
		t.Errorf("next=//evil.example: redirect to %q", got)
	}

	// A platform operator lands on the org list.
	op := h.client()
	p = op.signIn(operator, testPassword).want(http.StatusSeeOther)
	if got := p.location(); got != "/console/orgs" {
		t.Fatalf("operator: redirect to %q", got)
	}
	list := op.follow(p).want(http.StatusOK)
	if n := strings.Count(list.body, `class="org-link"`); n != 2 {
		t.Errorf("org list has %d a.org-link, want 2:\n%s", n, list.body)
	}
}

func TestSignInRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	b := h.client()
	for range 3 {
		b.signIn(orgAdmin, "not the password").want(http.StatusUnauthorized)
	}
	// However slow the password checks were, the next attempt comes
	// within the wait: move the clock back (a clock step never lengthens
	// a wait).
	h.advance(-time.Minute)
	p := b.signIn(orgAdmin, testPassword).want(http.StatusTooManyRequests)
	p.wantText("error", "too many failed sign-in attempts; try again in 1 second")
	if got := p.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1 (a progressive wait, not a 15-minute lock)", got)
	}
	// X-Forwarded-For from a peer that is not a trusted proxy (none is by
	// default) does not make a new client.
	form := b.get("/console/signin").want(http.StatusOK)
	req, err := http.NewRequest(http.MethodPost, b.url("/console/signin"), strings.NewReader(url.Values{"csrf_token": {form.csrf()},
		"email": {orgAdmin}, "password": {testPassword}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "192.0.2.77")
	b.do(req).want(http.StatusTooManyRequests)
	// Another client (browser and address) is not held back by this pair.
	h.signedIn(secAdmin)
}

func TestSignInCSRF(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	b := h.client()
	creds := url.Values{"email": {secAdmin}, "password": {testPassword}}
	// No pre-session cookie, no token.
	b.post("/console/signin", creds).want(http.StatusForbidden)
	// A cookie, but the wrong token.
	b.get("/console/signin").want(http.StatusOK)
	creds.Set("csrf_token", "forged-forged-forged-forged-forged-forged")
	p := b.post("/console/signin", creds).want(http.StatusForbidden)
	p.wantText("error", "anti-forgery")
}

func cookieNamed(t *testing.T, p *page, name string) *http.Cookie {
	t.Helper()
	for _, line := range p.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.Name == name && c.MaxAge >= 0 {
			return c
		}
	}
	t.Fatalf("no Set-Cookie %s in %v", name, p.header.Values("Set-Cookie"))
	return nil
}

func TestCookieFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		opts       options
		wantSecure bool
	}{
		{"http", options{}, false},
		{"tls", options{tls: true}, true},
		{"https public URL", options{secureCookies: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts)
			b := h.client()
			form := b.get("/console/signin").want(http.StatusOK)
			pre := cookieNamed(t, form, console.CSRFCookie)
			p := b.post("/console/signin", url.Values{"csrf_token": {form.csrf()}, "email": {member}, "password": {testPassword}}).want(http.StatusSeeOther)
			for _, c := range []*http.Cookie{pre, cookieNamed(t, p, console.SessionCookie)} {
				if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != tc.wantSecure {
					t.Errorf("cookie %s: HttpOnly=%v SameSite=%v Path=%q Secure=%v; want HttpOnly, Strict, /, Secure=%v",
						c.Name, c.HttpOnly, c.SameSite, c.Path, c.Secure, tc.wantSecure)
				}
			}
		})
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	anon := h.client()
	admin := h.signedIn(secAdmin)
	mem := h.signedIn(member)
	check := func(p *page) {
		t.Helper()
		want := map[string]string{
			"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
			"Cache-Control":           "no-store",
		}
		for k, v := range want {
			if got := p.header.Get(k); got != v {
				t.Errorf("%s %s (%d): %s = %q, want %q", p.method, p.path, p.status, k, got, v)
			}
		}
		if strings.Contains(p.body, "<script") || strings.Contains(p.body, " style=") || strings.Contains(p.body, "<style") {
			t.Errorf("%s: inline script or style", p.path)
		}
	}
	for _, p := range []*page{
		anon.get("/console/signin"), anon.get("/console/"), anon.get("/console/orgs/acme/"), anon.get("/console/nope"),
		anon.get("/console/static/console.css"), anon.post("/console/signin", nil),
		admin.get("/console/orgs/acme/"), admin.get("/console/orgs/acme/users"), admin.get("/console/orgs/acme/security"),
		admin.get("/console/orgs/acme/security?switch=1&enable=on"), admin.get("/console/orgs/acme/security/disable"),
		admin.get("/console/orgs/acme/keys"), admin.get("/console/orgs/acme/audit"), admin.get("/console/orgs/acme/audit?verify=1"),
		admin.get("/console/orgs/acme/audit/export"), admin.get("/console/orgs/globex/"), admin.post("/console/orgs/acme/users", nil),
		mem.get("/console/orgs/acme/security"),
	} {
		check(p)
	}
	css := anon.get("/console/static/console.css").want(http.StatusOK)
	if ct := css.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("console.css Content-Type %q", ct)
	}
}

// TestCSRF: every POST without the session's token, or with a wrong one,
// is refused with 403 and changes nothing.
func TestCSRF(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := t.Context()
	b := h.signedIn(secAdmin)
	memberID := h.ids[member]
	posts := []struct {
		path string
		form url.Values
	}{
		{"/console/signout", nil},
		{"/console/orgs/acme/users", url.Values{"email": {"new@acme.example"}, "password": {testPassword}, "role": {"member"}}},
		{"/console/orgs/acme/users/" + memberID + "/roles", url.Values{"role": {"admin", "key_admin"}}},
		{"/console/orgs/acme/keys", url.Values{"name": {"invoices"}}},
		{"/console/orgs/acme/keys/default/rotate", nil},
		{"/console/orgs/acme/keys/default/min-version", url.Values{"min_decryption_version": {"1"}}},
		{"/console/orgs/acme/security/authorize", url.Values{"tenant_id": {h.demo.TenantID}}},
		{"/console/orgs/acme/security/configure", url.Values{"vault_uri": {h.demo.VaultURI}, "key_name": {h.demo.KeyName}, "action": {"save"}}},
		{"/console/orgs/acme/security/disable", nil},
		{"/console/orgs/acme/keys/default/disable", nil},
		{"/console/orgs/acme/keys/default/delete", url.Values{"waiting_days": {"7"}}},
		{"/console/orgs/acme/delete", url.Values{"waiting_days": {"7"}, "confirm": {"yes"}}},
	}
	before, err := h.keys.AuditEvents(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"", "wrong-token-wrong-token-wrong-token"} {
		for _, pc := range posts {
			form := url.Values{}
			for k, v := range pc.form {
				form[k] = v
			}
			if tok != "" {
				form.Set("csrf_token", tok)
			}
			p := b.post(pc.path, form).want(http.StatusForbidden)
			p.wantText("error", "nothing was changed")
		}
	}
	// Nothing changed: no new audit event, no user, same roles, same key,
	// same CMK state, and the session is still alive.
	after, err := h.keys.AuditEvents(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("audit events %d → %d after refused posts: %+v", len(before), len(after), after[len(before):])
	}
	users, _ := h.users.List(ctx, "acme")
	if len(users) != 4 {
		t.Errorf("acme has %d users after refused posts, want 4", len(users))
	}
	if u, _ := h.users.Get(ctx, memberID); len(u.Roles) != 1 || u.Roles[0] != auth.RoleMember {
		t.Errorf("member roles = %v after a refused post", u.Roles)
	}
	if k, _ := h.keys.GetDataKey(ctx, "acme", "default"); k.LatestVersion != 1 {
		t.Errorf("default key version %d after a refused rotate", k.LatestVersion)
	}
	if st, _ := h.cmk.Status(ctx, "acme"); st.State != cmk.StatePlatform {
		t.Errorf("CMK state %s after refused posts", st.State)
	}
	b.get("/console/orgs/acme/").want(http.StatusOK)
}

func TestRoles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	tests := []struct {
		email                                  string
		users, security, keys, manageKeys, aud bool
	}{
		{secAdmin, true, true, true, true, true},
		{orgAdmin, true, false, true, false, true},
		{keyAdmin, false, false, true, true, true},
		{member, false, false, true, false, false},
		{operator, true, false, true, true, true},
	}
	code := func(ok bool) int {
		if ok {
			return http.StatusOK
		}
		return http.StatusForbidden
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			b := h.signedIn(tt.email)
			ov := b.get("/console/orgs/acme/").want(http.StatusOK)
			for id, want := range map[string]bool{"nav-overview": true, "nav-users": tt.users, "nav-security": tt.security, "nav-keys": tt.keys, "nav-audit": tt.aud} {
				if ov.has(id) != want {
					t.Errorf("overview: a#%s present = %v, want %v", id, ov.has(id), want)
				}
			}
			b.get("/console/orgs/acme/users").want(code(tt.users))
			b.get("/console/orgs/acme/security").want(code(tt.security))
			b.get("/console/orgs/acme/security/disable").want(code(tt.security))
			b.get("/console/orgs/acme/audit").want(code(tt.aud))
			b.get("/console/orgs/acme/audit/export").want(code(tt.aud))
			keysPage := b.get("/console/orgs/acme/keys").want(code(tt.keys))
			if got := strings.Contains(keysPage.body, `class="rotate"`); got != tt.manageKeys {
				t.Errorf("keys page: form.rotate present = %v, want %v", got, tt.manageKeys)
			}

			// The actions: with a valid token, refused by role alone.
			tok := ov.csrf()
			post := func(path string, form url.Values, allowed bool) {
				t.Helper()
				form.Set("csrf_token", tok)
				p := b.post(path, form)
				if allowed {
					if p.status == http.StatusForbidden {
						t.Errorf("POST %s: 403, want allowed", path)
					}
					return
				}
				p.want(http.StatusForbidden)
				p.wantText("error", "your roles do not allow")
			}
			post("/console/orgs/acme/security/authorize", url.Values{"tenant_id": {""}}, tt.security)
			post("/console/orgs/acme/security/configure", url.Values{"vault_uri": {"x"}, "action": {"test"}}, tt.security)
			post("/console/orgs/acme/security/test", url.Values{}, tt.security)
			post("/console/orgs/acme/security/disable", url.Values{}, tt.security)
			post("/console/orgs/acme/users", url.Values{"email": {"bad"}}, tt.users)
			post("/console/orgs/acme/keys/default/min-version", url.Values{"min_decryption_version": {"x"}}, tt.manageKeys)
		})
	}
	if st, _ := h.cmk.Status(t.Context(), "acme"); st.State != cmk.StatePlatform {
		t.Errorf("CMK state %s", st.State)
	}
}

func TestMemberSeesNothingSecret(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	b := h.signedIn(member)
	keysPage := b.get("/console/orgs/acme/keys").want(http.StatusOK)
	if !strings.Contains(keysPage.body, `data-key="default"`) {
		t.Fatalf("member keys page lacks the default key:\n%s", keysPage.body)
	}
	for _, forbidden := range []string{`class="min-version"`, `id="new-key"`, `name="csrf_token" value="" `} {
		if strings.Contains(keysPage.body, forbidden) {
			t.Errorf("member keys page contains %s", forbidden)
		}
	}
	b.get("/console/orgs/acme/security?switch=1&enable=on").want(http.StatusForbidden)
}

func TestOrgIsolation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	b := h.signedIn(secAdmin)
	for _, path := range []string{"/console/orgs/globex/", "/console/orgs/globex/keys", "/console/orgs/globex/users",
		"/console/orgs/globex/security", "/console/orgs/globex/audit", "/console/orgs/globex/audit/export", "/console/orgs/nonexistent/"} {
		p := b.get(path).want(http.StatusForbidden)
		if strings.Contains(p.body, "Globex") || p.has("nav-overview") {
			t.Errorf("%s: the 403 page shows the other org", path)
		}
	}
	tok := b.get("/console/orgs/acme/").csrf()
	b.post("/console/orgs/globex/keys/default/rotate", url.Values{"csrf_token": {tok}}).want(http.StatusForbidden)
	// A user of another org, through this org's path: not found, unchanged.
	gid := h.ids[globex]
	b.post("/console/orgs/acme/users/"+gid+"/roles", url.Values{"csrf_token": {tok}, "role": {"member"}}).want(http.StatusNotFound)
	if u, _ := h.users.Get(t.Context(), gid); len(u.Roles) != 2 {
		t.Errorf("globex user roles changed through acme: %v", u.Roles)
	}
	if k, _ := h.keys.GetDataKey(t.Context(), "globex", "default"); k.LatestVersion != 1 {
		t.Errorf("globex key rotated by an acme user")
	}
	// The org list is for platform operators; org users go to their org.
	if got := b.get("/console/orgs").want(http.StatusSeeOther).location(); got != "/console/orgs/acme/" {
		t.Errorf("org user /console/orgs → %q", got)
	}
	// An operator sees every org, but not its Security tab.
	op := h.signedIn(operator)
	op.get("/console/orgs/globex/").want(http.StatusOK)
	op.get("/console/orgs/globex/security").want(http.StatusForbidden)
	op.get("/console/orgs/nonexistent/").want(http.StatusNotFound)
}

func TestUsers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := t.Context()
	b := h.signedIn(orgAdmin)
	page := b.get("/console/orgs/acme/users").want(http.StatusOK)
	for _, email := range []string{secAdmin, orgAdmin, keyAdmin, member} {
		if !strings.Contains(page.body, `data-email="`+email+`"`) {
			t.Errorf("users table lacks %s", email)
		}
	}
	if strings.Contains(page.body, globex) || strings.Contains(page.body, operator) {
		t.Error("users page lists users of other orgs")
	}

	// Create a user whose name is markup: it is escaped.
	evil := `<script>alert("x")</script>`
	p := b.postForm("/console/orgs/acme/users", "/console/orgs/acme/users", url.Values{"email": {"new@acme.example"}, "name": {evil},
		"password": {testPassword}, "role": {"member"}})
	page = b.follow(p).want(http.StatusOK)
	page.wantText("flash", "User created")
	if strings.Contains(page.body, "<script>") || !strings.Contains(page.body, "&lt;script&gt;") {
		t.Errorf("user name not escaped:\n%s", page.body)
	}

	// Validation errors keep what was typed (except the password) and
	// highlight the field.
	p = b.postForm("/console/orgs/acme/users", "/console/orgs/acme/users", url.Values{"email": {"not-an-email"}, "name": {"Ann O'Nym"},
		"password": {testPassword}, "role": {"admin", "member"}}).want(http.StatusBadRequest)
	if got := p.attrOf("new-email", "value"); got != "not-an-email" {
		t.Errorf("new-email = %q after a validation error", got)
	}
	if got := p.attrOf("new-name", "value"); got != "Ann O'Nym" {
		t.Errorf("new-name = %q after a validation error", got)
	}
	if p.attrOf("new-email", "aria-invalid") != "true" || p.attrOf("new-name", "aria-invalid") != "" {
		t.Error("the email field is not the one highlighted")
	}
	if p.attrOf("new-role-admin", "checked") == "" || p.attrOf("new-role-member", "checked") == "" || p.attrOf("new-role-key_admin", "checked") != "" {
		t.Error("role checkboxes not kept")
	}
	if strings.Contains(p.body, testPassword) {
		t.Error("the password was sent back")
	}
	p.wantText("error", "email")
	// A duplicate email.
	p = b.postForm("/console/orgs/acme/users", "/console/orgs/acme/users", url.Values{"email": {member}, "password": {testPassword}, "role": {"member"}}).want(http.StatusConflict)
	p.wantText("error", "exists already")
	// A short password.
	p = b.postForm("/console/orgs/acme/users", "/console/orgs/acme/users", url.Values{"email": {"x@acme.example"}, "password": {"short"}, "role": {"member"}}).want(http.StatusBadRequest)
	if p.attrOf("new-password", "aria-invalid") != "true" {
		t.Error("short password not highlighted")
	}
	// No role.
	b.postForm("/console/orgs/acme/users", "/console/orgs/acme/users", url.Values{"email": {"y@acme.example"}, "password": {testPassword}}).want(http.StatusBadRequest)

	// Role changes go through SetRoles and are audited.
	mid := h.ids[member]
	// Separation of duties: an Admin alone cannot grant Key Admin ...
	b.postForm("/console/orgs/acme/users", "/console/orgs/acme/users/"+mid+"/roles", url.Values{"role": {"member", "key_admin"}}).want(http.StatusForbidden)
	if u, _ := h.users.Get(ctx, mid); len(u.Roles) != 1 {
		t.Errorf("roles = %v after a refused grant, want member only", u.Roles)
	}
	// ... an Admin who is also Key Admin can.
	sec := h.signedIn(secAdmin)
	p = sec.postForm("/console/orgs/acme/users", "/console/orgs/acme/users/"+mid+"/roles", url.Values{"role": {"member", "key_admin"}})
	sec.follow(p).wantText("flash", "Roles saved")
	if u, _ := h.users.Get(ctx, mid); len(u.Roles) != 2 {
		t.Errorf("roles = %v, want member and key_admin", u.Roles)
	}
	evs, _ := h.keys.AuditEvents(ctx, "acme", 0, 0)
	last := evs[len(evs)-1]
	if last.Action != "user.roles" || last.Actor != "user:"+secAdmin || last.Target != "user/"+member {
		t.Errorf("last audit event %+v, want the role change", last)
	}
	// An admin cannot remove their own admin role.
	self := h.ids[orgAdmin]
	b.postForm("/console/orgs/acme/users", "/console/orgs/acme/users/"+self+"/roles", url.Values{"role": {"member"}}).want(http.StatusConflict)
	// Nor a Key Admin their own key_admin role.
	p = sec.postForm("/console/orgs/acme/users", "/console/orgs/acme/users/"+h.ids[secAdmin]+"/roles", url.Values{"role": {"admin"}}).want(http.StatusConflict)
	if !strings.Contains(p.body, "you cannot remove your own Key Admin role") {
		t.Errorf("removing one's own key_admin: page lacks the reason:\n%s", p.body)
	}
	if u, _ := h.users.Get(ctx, h.ids[secAdmin]); !slices.Contains(u.Roles, auth.RoleKeyAdmin) {
		t.Errorf("roles = %v, want key_admin kept", u.Roles)
	}
	// Roles that do not belong to an org are refused.
	sec.postForm("/console/orgs/acme/users", "/console/orgs/acme/users/"+mid+"/roles", url.Values{"role": {"operator"}}).want(http.StatusBadRequest)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	b := h.signedIn(keyAdmin)
	p := b.postForm("/console/orgs/acme/keys", "/console/orgs/acme/keys/default/rotate", nil)
	page := b.follow(p).want(http.StatusOK)
	page.wantText("flash", "Key rotated")
	if !regexp.MustCompile(`(?s)data-key="default">.*?class="latest-version">2<`).MatchString(page.body) {
		t.Errorf("latest version not 2 after rotate:\n%s", page.body)
	}
	// A bad min decryption version keeps the typed value and says why.
	p = b.postForm("/console/orgs/acme/keys", "/console/orgs/acme/keys/default/min-version", url.Values{"min_decryption_version": {"9"}}).want(http.StatusBadRequest)
	if got := p.attrOf("min-default", "value"); got != "9" {
		t.Errorf("min version field = %q, want the typed 9", got)
	}
	p.wantText("min-default-error", "between 1 and the latest version 2")
	p = b.postForm("/console/orgs/acme/keys", "/console/orgs/acme/keys/default/min-version", url.Values{"min_decryption_version": {"2"}})
	b.follow(p).wantText("flash", "Minimum decryption version saved")
	if k, _ := h.keys.GetDataKey(t.Context(), "acme", "default"); k.MinDecryptionVersion != 2 {
		t.Errorf("min decryption version %d", k.MinDecryptionVersion)
	}
	// New key, and a bad name kept.
	p = b.postForm("/console/orgs/acme/keys", "/console/orgs/acme/keys", url.Values{"name": {"Bad Name"}}).want(http.StatusBadRequest)
	if got := p.attrOf("new-key-name", "value"); got != "Bad Name" {
		t.Errorf("new key name = %q", got)
	}
	p = b.postForm("/console/orgs/acme/keys", "/console/orgs/acme/keys", url.Values{"name": {"invoices"}})
	if !strings.Contains(b.follow(p).body, `data-key="invoices"`) {
		t.Error("new key not listed")
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	b := h.signedIn(secAdmin)
	p := b.postForm("/console/orgs/acme/keys", "/console/orgs/acme/keys/default/rotate", nil)
	b.follow(p)

	page := b.get("/console/orgs/acme/audit").want(http.StatusOK)
	for _, id := range []string{"audit", "audit-filter", "filter-actor", "filter-action", "filter-since", "filter-until", "verify", "export"} {
		if !page.has(id) {
			t.Errorf("audit page lacks #%s", id)
		}
	}
	if !strings.Contains(page.body, "key.rotate") || !strings.Contains(page.body, "user.create") {
		t.Errorf("audit page lacks events:\n%s", page.body)
	}
	// Filter by actor and action.
	page = b.get("/console/orgs/acme/audit?actor=" + url.QueryEscape("user:"+secAdmin) + "&action=key.").want(http.StatusOK)
	if n := strings.Count(page.body, "<tr data-seq="); n != 1 || !strings.Contains(page.body, "key.rotate") {
		t.Errorf("filtered audit shows %d events, want the one rotation:\n%s", n, page.body)
	}
	if got := page.attrOf("filter-actor", "value"); got != "user:"+secAdmin {
		t.Errorf("filter-actor = %q", got)
	}
	// Time filters.
	tomorrow := time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02")
	page = b.get("/console/orgs/acme/audit?since=" + tomorrow).want(http.StatusOK)
	if strings.Contains(page.body, "<tr data-seq=") {
		t.Error("since=tomorrow shows events")
	}
	page = b.get("/console/orgs/acme/audit?until=" + tomorrow + "&since=2000-01-01T00:00").want(http.StatusOK)
	if !strings.Contains(page.body, "<tr data-seq=") {
		t.Error("since 2000 until tomorrow shows no events")
	}
	page = b.get("/console/orgs/acme/audit?since=yesterday-ish").want(http.StatusBadRequest)
	if page.attrOf("filter-since", "value") != "yesterday-ish" || page.attrOf("filter-since", "aria-invalid") != "true" {
		t.Error("a bad since is not kept and highlighted")
	}

	// Verify: the whole chain, keeping the filter.
	page = b.get("/console/orgs/acme/audit?action=key.").want(http.StatusOK)
	vp := b.get(page.attrOf("verify", "href"))
	vp.want(http.StatusOK)
	evs, _ := h.keys.AuditEvents(t.Context(), "acme", 0, 0)
	vp.wantText("verify-result", "chain intact ("+strconv.Itoa(len(evs))+" events)")

	// Export: JSON lines, as an attachment, the chain verifies.
	resp := b.get("/console/orgs/acme/audit/export").want(http.StatusOK)
	if cd := resp.header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="orgkms-audit-acme-`) || !strings.HasSuffix(cd, `.jsonl"`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	var got []audit.Event
	sc := bufio.NewScanner(strings.NewReader(resp.body))
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	if len(got) != len(evs) {
		t.Fatalf("export has %d events, want %d", len(got), len(evs))
	}
	if err := audit.Verify(got); err != nil {
		t.Errorf("exported chain does not verify: %v", err)
	}
	// A filtered export.
	resp = b.get("/console/orgs/acme/audit/export?action=key.rotate").want(http.StatusOK)
	if n := strings.Count(resp.body, "\n"); n != 1 {
		t.Errorf("filtered export has %d lines, want 1", n)
	}
}

func TestSessionExpiryAndSignOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	b := h.signedIn(member)
	b.get("/console/orgs/acme/").want(http.StatusOK)
	h.advance(2 * time.Hour) // the harness' sessions last 1 h
	p := b.get("/console/orgs/acme/keys").want(http.StatusSeeOther)
	if got := p.location(); got != "/console/signin?next=%2Fconsole%2Forgs%2Facme%2Fkeys&why=expired" {
		t.Fatalf("expired session: redirect to %q", got)
	}
	b.follow(p).wantText("flash", "Your session expired")

	b = h.signedIn(member)
	ov := b.get("/console/orgs/acme/").want(http.StatusOK)
	p = b.post("/console/signout", url.Values{"csrf_token": {ov.csrf()}}).want(http.StatusSeeOther)
	b.follow(p).wantText("flash", "You are signed out")
	b.get("/console/orgs/acme/").want(http.StatusSeeOther)
}

// consent drives the emulator's consent page like a browser: open the
// consent URL, click button ("accept" or "cancel"), and return where the
// page sends the browser back to (the callback URL).
func (h *harness) consent(consentURL, button string) string {
	h.t.Helper()
	hc := h.emu.HTTPClient()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(consentURL)
	if err != nil {
		h.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(body)
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindSubmatch(body)
	if csrf == nil || action == nil {
		h.t.Fatalf("consent page has no form:\n%s", body)
	}
	resp, err = hc.PostForm(h.emu.URL()+string(action[1]), url.Values{"csrf_token": {string(csrf[1])}, "action": {button}})
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, h.srv.URL+"/v1/cmk/callback?") {
		h.t.Fatalf("consent page redirects to %q, want the callback", loc)
	}
	return loc
}

// TestSecurityFlow drives Settings → Security with the console's own
// forms, against a real cmk.Service and the Azure emulator: switch on,
// authorize (consent page, callback, continue link), test, save,
// activation, active; then a revoked key, restored; then disable.
func TestSecurityFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := t.Context()
	b := h.signedIn(secAdmin)
	const sec = "/console/orgs/acme/security"

	// Off: the switch, no steps.
	p := b.get(sec).want(http.StatusOK)
	p.wantText("cmk-state", "platform")
	if !p.has("cmk-enable") || p.attrOf("cmk-enable", "checked") != "" || p.has("authorize") || p.has("configure") || p.has("disable") {
		t.Fatalf("platform state: want the switch off and no steps:\n%s", p.body)
	}
	// Turning the switch on shows the steps.
	p = b.get(sec + "?switch=1&enable=on").want(http.StatusOK)
	if !p.has("authorize") || !p.has("tenant-id") {
		t.Fatalf("switch on: no Step 1:\n%s", p.body)
	}

	// Step 1 without a tenant: the field is highlighted.
	p = b.post(sec+"/authorize", url.Values{"csrf_token": {p.csrf()}, "tenant_id": {"  "}}).want(http.StatusBadRequest)
	if p.attrOf("tenant-id", "aria-invalid") != "true" {
		t.Error("empty tenant not highlighted")
	}
	p.wantText("tenant-id-error", "Tenant ID")
	p = b.post(sec+"/authorize", url.Values{"csrf_token": {p.csrf()}, "tenant_id": {"not-a-guid"}}).want(http.StatusBadRequest)
	if got := p.attrOf("tenant-id", "value"); got != "not-a-guid" {
		t.Errorf("tenant-id = %q after a validation error, want it kept", got)
	}

	// A cancelled consent: the callback page links back with the outcome.
	p = b.post(sec+"/authorize", url.Values{"csrf_token": {p.csrf()}, "tenant_id": {h.demo.TenantID}}).want(http.StatusSeeOther)
	if !strings.HasPrefix(p.location(), h.emu.URL()+"/") {
		t.Fatalf("authorize redirects to %q, want the consent page", p.location())
	}
	cb := b.get(h.consent(p.location(), "cancel"))
	if got := cb.attrOf("continue", "href"); got != sec+"?consent=failed" {
		t.Fatalf("a#continue href = %q after a cancelled consent:\n%s", got, cb.body)
	}
	b.get(cb.attrOf("continue", "href")).want(http.StatusOK).wantText("flash", "not completed")

	// Consent granted.
	p = b.postForm(sec, sec+"/authorize", url.Values{"tenant_id": {h.demo.TenantID}}).want(http.StatusSeeOther)
	cb = b.get(h.consent(p.location(), "accept")).want(http.StatusOK)
	cb.wantText("continue", "Continue to Settings → Security")
	p = b.get(cb.attrOf("continue", "href")).want(http.StatusOK)
	p.wantText("flash", "Authorization complete")
	p.wantText("cmk-state", "authorized")
	p.wantText("consent", "Authorized for tenant "+h.demo.TenantID)
	p.wantText("consent", "by "+secAdmin)
	if p.attrOf("cmk-enable", "checked") == "" || !p.has("configure") {
		t.Fatalf("authorized: want the switch on and Step 2:\n%s", p.body)
	}

	// Step 2 with a bad vault URI: highlighted, values kept.
	p = b.post(sec+"/configure", url.Values{"csrf_token": {p.csrf()}, "vault_uri": {"https://example.com/"}, "key_name": {h.demo.KeyName}, "action": {"test"}}).want(http.StatusBadRequest)
	if p.attrOf("vault-uri", "aria-invalid") != "true" || p.attrOf("vault-uri", "value") != "https://example.com/" || p.attrOf("key-name", "value") != h.demo.KeyName {
		t.Errorf("bad vault URI: field not highlighted or values lost:\n%s", p.body)
	}
	p.wantText("vault-uri-error", "Key Vault URI")

	// Test Managed Key with a key that does not exist: each check with
	// its status, detail and remedy.
	p = b.post(sec+"/configure", url.Values{"csrf_token": {p.csrf()}, "vault_uri": {h.demo.VaultURI}, "key_name": {"no-such-key"}, "action": {"test"}}).want(http.StatusOK)
	if !p.has("test-results") {
		t.Fatalf("no test results:\n%s", p.body)
	}
	if st := checkStatus(t, p, "key"); st != "fail" {
		t.Errorf("check key = %s, want fail", st)
	}
	if st := checkStatus(t, p, "consent"); st != "pass" {
		t.Errorf("check consent = %s, want pass", st)
	}
	// Save refuses while a check fails.
	p = b.post(sec+"/configure", url.Values{"csrf_token": {p.csrf()}, "vault_uri": {h.demo.VaultURI}, "key_name": {"no-such-key"}, "action": {"save"}}).want(http.StatusConflict)
	p.wantText("error", "Not saved")
	if st, _ := h.cmk.Status(ctx, "acme"); st.State != cmk.StateAuthorized {
		t.Fatalf("state %s after a refused save", st.State)
	}

	// The right key: every check passes (or warns).
	p = b.post(sec+"/configure", url.Values{"csrf_token": {p.csrf()}, "vault_uri": {h.demo.VaultURI}, "key_name": {h.demo.KeyName}, "key_version": {""}, "action": {"test"}}).want(http.StatusOK)
	for _, id := range []string{"consent", "configured", "token", "vault", "key", "version", "enabled", "type", "operations", "roundtrip", "deletion", "latency"} {
		if st := checkStatus(t, p, id); st != "pass" && st != "warn" {
			t.Errorf("check %s = %s", id, st)
		}
	}
	wantSummary(t, p)
	if p.has("job-progress") {
		t.Error("job progress shown before Save")
	}

	// Save: activation starts; the page shows its progress and reloads.
	p = b.post(sec+"/configure", url.Values{"csrf_token": {p.csrf()}, "vault_uri": {h.demo.VaultURI}, "key_name": {h.demo.KeyName}, "action": {"save"}})
	p = b.follow(p).want(http.StatusOK)
	if !strings.Contains(p.text("flash"), "All checks passed") && !strings.Contains(p.text("flash"), "passed with warnings") {
		t.Errorf("flash after Save = %q, want it to say the test passed", p.text("flash"))
	}
	p.wantText("cmk-state", "activating")
	p.wantText("job-progress", "Activating your key")
	if !strings.Contains(p.body, `<meta http-equiv="refresh" content="2">`) {
		t.Error("activating: the page does not reload itself")
	}
	ov := b.get("/console/orgs/acme/").want(http.StatusOK)
	ov.wantText("job", "Activating your key")

	h.runJobs()
	p = b.get(sec).want(http.StatusOK)
	p.wantText("cmk-state", "active")
	p.wantText("cmk-version", h.demo.KeyVersion)
	if p.has("job-progress") || strings.Contains(p.body, `http-equiv="refresh"`) {
		t.Error("active: still shows a running job")
	}
	ov = b.get("/console/orgs/acme/").want(http.StatusOK)
	ov.wantText("protection", "Customer managed key: key "+h.demo.KeyName+" in vault "+azureemu.DemoVault)
	ov.wantText("cmk-state", "active")
	ov.wantText("cmk-version", h.demo.KeyVersion)
	if ov.has("banner") {
		t.Error("active: a banner")
	}

	// The customer disables the key: revoked, with the reason and remedy
	// on every org page, for every user of the org.
	disabled := false
	if _, err := h.emu.UpdateKey(azureemu.DemoVault, h.demo.KeyName, "", &disabled, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.cmk.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	mem := h.signedIn(member)
	for _, pg := range []*page{b.get("/console/orgs/acme/"), b.get(sec), b.get("/console/orgs/acme/keys"), mem.get("/console/orgs/acme/")} {
		pg.want(http.StatusOK)
		if got := pg.attrOf("banner", "class"); got != "banner banner-revoked" {
			t.Fatalf("%s: banner class %q, want banner-revoked:\n%s", pg.path, got, pg.body)
		}
		pg.wantText("banner", "disabled")
		pg.wantText("banner", "enable the key")
	}
	// Disabling needs the key: the confirmation page says so.
	p = b.get(sec + "/disable").want(http.StatusOK)
	if p.has("confirm-disable") {
		t.Error("revoked: the disable confirmation offers to disable")
	}
	enabled := true
	if _, err := h.emu.UpdateKey(azureemu.DemoVault, h.demo.KeyName, "", &enabled, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.cmk.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if b.get("/console/orgs/acme/").has("banner") {
		t.Error("restored: still a banner")
	}

	// Disable: a confirmation that says what happens, then back to the
	// platform key.
	p = b.get(sec).want(http.StatusOK)
	p = b.get(p.attrOf("disable", "href")).want(http.StatusOK)
	p.wantText("disable-explanation", "back to the platform")
	p.wantText("disable-explanation", "must still be usable")
	p.wantText("disable-explanation", "no longer uses your key")
	p = b.post(sec+"/disable", url.Values{"csrf_token": {p.csrf()}})
	p = b.follow(p).want(http.StatusOK)
	p.wantText("cmk-state", "deactivating")
	p.wantText("job-progress", "Moving back to the platform key")
	h.runJobs()
	p = b.get(sec).want(http.StatusOK)
	p.wantText("cmk-state", "authorized")
	b.get("/console/orgs/acme/").wantText("protection", "Platform key")

	// Turning the switch off from authorized: confirmation, then off.
	p = b.get(sec + "?switch=1").want(http.StatusSeeOther)
	p = b.follow(p).want(http.StatusOK)
	p = b.post(sec+"/disable", url.Values{"csrf_token": {p.csrf()}})
	p = b.follow(p).want(http.StatusOK)
	p.wantText("cmk-state", "platform")
	p.wantText("flash", "Customer managed keys are off")
}

// checkStatus returns the td.status text of row tr[data-check=id].
func checkStatus(t *testing.T, p *page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`<tr data-check="` + id + `"[^>]*>.*?<td class="status[^"]*">([a-z]+)</td><td class="detail">([^<]*)</td><td class="remedy">`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no row tr[data-check=%s] with td.status, detail and remedy:\n%s", id, p.body)
	}
	return m[1]
}

// TestBannersAndStates: rotation in the vault, an outage and a deleted key,
// as every org page shows them.
func TestBannersAndStates(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := t.Context()
	b := h.signedIn(secAdmin)
	// Activate through the service (the console flow is tested above).
	u, err := h.cmk.Authorize(ctx, "user:"+secAdmin, "acme", h.demo.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	b.get(h.consent(u, "accept")).want(http.StatusOK)
	if _, err := h.cmk.Configure(ctx, "user:"+secAdmin, "acme", h.demo.VaultURI, h.demo.KeyName, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cmk.Enable(ctx, "user:"+secAdmin, "acme"); err != nil {
		t.Fatal(err)
	}
	h.runJobs()

	// Rotation in the vault: rotating with progress, then the new version.
	k, err := h.emu.RotateKey(azureemu.DemoVault, h.demo.KeyName)
	if err != nil {
		t.Fatal(err)
	}
	// orgkms follows only versions tagged for the org.
	if _, err := h.emu.SetKeyTags(azureemu.DemoVault, h.demo.KeyName, k.Version, map[string]string{"orgkms-org": "acme,globex,demo"}); err != nil {
		t.Fatal(err)
	}
	if err := h.cmk.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	p := b.get("/console/orgs/acme/security").want(http.StatusOK)
	p.wantText("cmk-state", "rotating")
	p.wantText("job-progress", "new version")
	h.runJobs()
	b.get("/console/orgs/acme/").wantText("cmk-version", k.Version)

	// Outage: degraded.
	if err := h.emu.SetFault(azureemu.DemoVault, azureemu.Fault{Outage: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.cmk.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	p = b.get("/console/orgs/acme/").want(http.StatusOK)
	if got := p.attrOf("banner", "class"); got != "banner banner-degraded" {
		t.Errorf("outage: banner class %q:\n%s", got, p.body)
	}
	if err := h.emu.ClearFault(azureemu.DemoVault); err != nil {
		t.Fatal(err)
	}

	// Deleted: revoked, recoverable until the purge date.
	if _, err := h.emu.DeleteKey(azureemu.DemoVault, h.demo.KeyName); err != nil {
		t.Fatal(err)
	}
	if err := h.cmk.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	p = b.get("/console/orgs/acme/").want(http.StatusOK)
	if got := p.attrOf("banner", "class"); got != "banner banner-revoked" {
		t.Errorf("deleted: banner class %q", got)
	}
	p.wantText("banner", "recover the key")
	p.wantText("cmk-state", "revoked")

	// Test Managed Key stays available while revoked.
	wantTestWhileRevoked(t, h, b)
}

// TestDemoHints: in development the Security page names the emulator's
// demo tenant, vault and key, so a newcomer needs nothing but the screen.
func TestDemoHints(t *testing.T) {
	t.Parallel()
	for _, demo := range []bool{false, true} {
		h := newHarness(t, options{demo: demo})
		b := h.signedIn(secAdmin)
		p := b.get("/console/orgs/acme/security?switch=1&enable=on").want(http.StatusOK)
		if p.has("demo-tenant") != demo {
			t.Fatalf("demo=%v: #demo-tenant present = %v", demo, p.has("demo-tenant"))
		}
		if demo {
			p.wantText("demo-tenant", h.demo.TenantID)
			u, err := h.cmk.Authorize(t.Context(), "user:"+secAdmin, "acme", h.demo.TenantID)
			if err != nil {
				t.Fatal(err)
			}
			b.get(h.consent(u, "accept")).want(http.StatusOK)
			p = b.get("/console/orgs/acme/security").want(http.StatusOK)
			p.wantText("demo-key", h.demo.VaultURI)
			p.wantText("demo-key", h.demo.KeyName)
		}
	}
}

// TestLostOrgFallBack: a lost org's Security page offers the way out; the
// fallback needs the explicit confirmation, records the loss and makes the
// org usable for new data.
func TestLostOrgFallBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := t.Context()
	b := h.signedIn(secAdmin)
	v, err := h.emu.CreateVault(h.demo.TenantID, "scratch-kv", azureemu.VaultOptions{SoftDeleteDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	h.emu.CreateKey("scratch-kv", "k1", azureemu.KeyOptions{})
	h.emu.SetKeyTags("scratch-kv", "k1", "", map[string]string{"orgkms-org": "acme"})
	h.emu.SetPolicy("scratch-kv", h.demo.ClientID, azureemu.DemoPermissions)
	u, err := h.cmk.Authorize(ctx, "user:"+secAdmin, "acme", h.demo.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	b.get(h.consent(u, "accept")).want(http.StatusOK)
	if _, err := h.cmk.Configure(ctx, "user:"+secAdmin, "acme", v.URI, "k1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cmk.Enable(ctx, "user:"+secAdmin, "acme"); err != nil {
		t.Fatal(err)
	}
	h.runJobs()
	h.emu.DeleteKey("scratch-kv", "k1")
	if err := h.emu.PurgeKey("scratch-kv", "k1"); err != nil {
		t.Fatal(err)
	}
	for range 3 { // the proof of a purge
		if err := h.cmk.Probe(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		h.advance(6 * time.Minute)
	}
	p := b.get("/console/orgs/acme/security").want(http.StatusOK)
	p.wantText("cmk-state", "lost")
	p.wantText("disable", "Fall back to a new platform root key")
	b.get("/console/orgs/acme/security/disable").want(http.StatusOK).wantText("fallback-explanation", "cmk_key_destroyed")
	// Without the confirmation nothing happens.
	b.postForm("/console/orgs/acme/security/disable", "/console/orgs/acme/security/fallback", url.Values{}).want(http.StatusBadRequest)
	if st, _ := h.cmk.Status(ctx, "acme"); st.State != cmk.StateLost {
		t.Fatalf("state %s after an unconfirmed fallback, want lost", st.State)
	}
	b.postForm("/console/orgs/acme/security/disable", "/console/orgs/acme/security/fallback", url.Values{"confirm_data_loss": {"yes"}}).want(http.StatusSeeOther)
	st, err := h.cmk.Status(ctx, "acme")
	if err != nil || st.State != cmk.StatePlatform || st.DataLostAt.IsZero() {
		t.Fatalf("after the fallback: %+v, %v; want platform with the loss date", st.Record, err)
	}
	b.get("/console/orgs/acme/security").want(http.StatusOK).wantText("banner", "Data lost on")
	if _, err := h.keys.Encrypt(ctx, "svc", "acme", "default", []byte("new"), nil); err != nil {
		t.Fatalf("encrypt after the fallback: %v", err)
	}
}
