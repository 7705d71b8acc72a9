package auth_test

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// Hashing a password with argon2id at 64 MiB takes 100 ms or more under
// -race. Only Create, SetPassword, HashPassword and signing in with an
// unknown email (checked against a dummy hash) pay for it: the other tests
// store their users directly with a cheap hash ([env.put]).

const (
	password = "correct horse battery staple"
	ttl      = time.Hour
	actor    = "user:root@example.com"
)

// clock is an injectable clock for auth.NewUsers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	st    *sqlite.Store
	users *auth.Users
	clock *clock
}

// newEnv opens a store on a temporary file with the org acme, and the user
// service on it with a session TTL of one hour.
func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "orgkms.db")})
	if err != nil {
		t.Fatalf("sqlite.Open = %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	c := &clock{t: time.Date(2026, 11, 29, 9, 0, 0, 123456789, time.UTC)}
	mk := masterkey.Ref{Provider: "local", ID: "platform-master"}
	now := c.now()
	err = st.CreateOrg(t.Context(), keys.Org{ID: "acme", Name: "Acme", CreatedAt: now, MasterKey: mk},
		keys.RootKeyWrapping{Wrapped: masterkey.Wrapped{Ciphertext: []byte{1, 2, 3}, Key: mk.WithVersion("1")}, CreatedAt: now},
		keys.DataKey{Name: "default", CreatedAt: now, LatestVersion: 1, MinDecryptionVersion: 1,
			Versions: []keys.DataKeyVersion{{Version: 1, CreatedAt: now, Wrapped: []byte{4, 5, 6}}}},
		audit.Event{Time: now, Actor: actor, Action: "org.create", Target: "org/acme"})
	if err != nil {
		t.Fatalf("CreateOrg(acme) = %v", err)
	}
	return &env{st: st, users: auth.NewUsers(st, c.now, ttl), clock: c}
}

func (e *env) create(t *testing.T, req auth.NewUserRequest) auth.User {
	t.Helper()
	u, err := e.users.Create(t.Context(), actor, req)
	if err != nil {
		t.Fatalf("Create(%s) = %v", req.Email, err)
	}
	return u
}

func (e *env) events(t *testing.T, chain string) []audit.Event {
	t.Helper()
	evs, err := e.st.AuditEvents(t.Context(), chain, 0, 0)
	if err != nil {
		t.Fatalf("AuditEvents(%s) = %v", chain, err)
	}
	if err := audit.Verify(evs); err != nil {
		t.Errorf("audit.Verify(%s) = %v", chain, err)
	}
	return evs
}

// put stores a user of org (or of the platform, for "") directly in the
// store, with an argon2id hash of [password] at minimal costs: CheckPassword
// reads the costs from the hash, so signing in is fast.
func (e *env) put(t *testing.T, org, email string, roles ...auth.Role) auth.User {
	t.Helper()
	u := auth.User{ID: auth.NewID("usr_"), OrgID: org, Email: email, Name: email, Roles: roles,
		PasswordHash: cheapHash(password, []byte("salt/"+email), 64, 1, 1, 32), CreatedAt: e.clock.now()}
	chain := org
	if org == "" {
		chain = audit.Platform
	}
	if err := e.st.CreateUser(t.Context(), u, audit.Event{OrgID: chain, Time: u.CreatedAt, Actor: actor, Action: "user.create", Target: "user/" + email}); err != nil {
		t.Fatalf("CreateUser(%s) = %v", email, err)
	}
	return u
}

// signIn signs in and fails the test unless it succeeds.
func (e *env) signIn(t *testing.T, email, pw, client string) (auth.Session, string) {
	t.Helper()
	s, secret, _, err := e.users.SignIn(t.Context(), email, pw, client)
	if err != nil {
		t.Fatalf("SignIn(%s) = %v", email, err)
	}
	return s, secret
}

func sameSession(a, b auth.Session) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.CSRF == b.CSRF && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// checkSignedOut checks that secret no longer resolves to a session.
func (e *env) checkSignedOut(t *testing.T, what, secret string) {
	t.Helper()
	if _, _, _, err := e.users.Session(t.Context(), secret); fault.KindOf(err) != fault.Unauthenticated {
		t.Errorf("Session(%s) kind = %v (%v), want %v", what, fault.KindOf(err), err, fault.Unauthenticated)
	}
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t)
	ok := auth.NewUserRequest{OrgID: "acme", Email: "alice@example.com", Roles: []auth.Role{auth.RoleAdmin}, Password: password}
	with := func(f func(r *auth.NewUserRequest)) auth.NewUserRequest {
		r := ok
		f(&r)
		return r
	}
	tests := []struct {
		name      string
		req       auth.NewUserRequest
		wantField string
	}{
		{"empty email", with(func(r *auth.NewUserRequest) { r.Email = "" }), "email"},
		{"not an email", with(func(r *auth.NewUserRequest) { r.Email = "alice" }), "email"},
		{"email with a display name", with(func(r *auth.NewUserRequest) { r.Email = "Alice <alice@example.com>" }), "email"},
		{"email too long", with(func(r *auth.NewUserRequest) {
			r.Email = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190) + ".com"
		}), "email"},
		{"operator in an org", with(func(r *auth.NewUserRequest) { r.Roles = []auth.Role{auth.RoleOperator} }), "roles"},
		{"org role on the platform", with(func(r *auth.NewUserRequest) { r.OrgID = "" }), "roles"},
		{"member on the platform", with(func(r *auth.NewUserRequest) { r.OrgID, r.Roles = "", []auth.Role{auth.RoleOperator, auth.RoleMember} }), "roles"},
		{"service is for tokens", with(func(r *auth.NewUserRequest) { r.Roles = []auth.Role{auth.RoleService} }), "roles"},
		{"unknown role", with(func(r *auth.NewUserRequest) { r.Roles = []auth.Role{auth.RoleAdmin, "god"} }), "roles"},
		{"empty password", with(func(r *auth.NewUserRequest) { r.Password = "" }), "password"},
		{"short password", with(func(r *auth.NewUserRequest) { r.Password = "elevenchars" }), "password"},
		// 11 runes in 22 bytes: the length counts characters, not bytes.
		{"short password in runes", with(func(r *auth.NewUserRequest) { r.Password = strings.Repeat("é", 11) }), "password"},
		{"password over 256 bytes", with(func(r *auth.NewUserRequest) { r.Password = strings.Repeat("p", 257) }), "password"},
		{"long name", with(func(r *auth.NewUserRequest) { r.Name = strings.Repeat("n", 201) }), "name"},
		// Checked by the store, in the transaction (this case hashes).
		{"missing org", with(func(r *auth.NewUserRequest) { r.OrgID = "ghost" }), "org_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.users.Create(t.Context(), actor, tt.req)
			fe := fault.As(err)
			if fe == nil || fe.Kind != fault.Invalid || fe.Field != tt.wantField {
				t.Errorf("Create(%s) = %v, want invalid %s", tt.name, err, tt.wantField)
			}
		})
	}
	for _, org := range []string{"acme", ""} {
		if us, err := e.users.List(t.Context(), org); err != nil || len(us) != 0 {
			t.Errorf("List(%q) after invalid creates = %d users, %v; want none", org, len(us), err)
		}
	}
	if evs := e.events(t, "acme"); len(evs) != 1 {
		t.Errorf("audit log of acme has %d events after invalid creates, want 1", len(evs))
	}
}

func TestCreate(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	// The email is trimmed and lowercased; the name defaults to it.
	alice := e.create(t, auth.NewUserRequest{OrgID: "acme", Email: "  Alice@Example.COM ", Roles: []auth.Role{auth.RoleKeyAdmin, auth.RoleAdmin}, Password: password})
	if alice.Email != "alice@example.com" || alice.Name != "alice@example.com" || !strings.HasPrefix(alice.ID, "usr_") ||
		!slices.Equal(alice.Roles, []auth.Role{auth.RoleKeyAdmin, auth.RoleAdmin}) || alice.OrgID != "acme" || alice.Disabled ||
		!alice.CreatedAt.Equal(e.clock.now().Truncate(time.Microsecond)) {
		t.Errorf("Create(alice) = %+v", alice)
	}
	stored, err := e.users.Get(ctx, alice.ID)
	if err != nil {
		t.Fatalf("Get(alice) = %v", err)
	}
	if stored.Email != alice.Email || stored.Name != alice.Name || !slices.Equal(stored.Roles, alice.Roles) || !stored.CreatedAt.Equal(alice.CreatedAt) {
		t.Errorf("Get(alice) = %+v, want %+v", stored, alice)
	}
	// Only an argon2id hash of the password is stored.
	h := stored.PasswordHash
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") || h == password || strings.Contains(h, password) ||
		strings.Contains(h, base64.RawStdEncoding.EncodeToString([]byte(password))) {
		t.Errorf("stored password hash = %q, want an argon2id PHC string without the password", h)
	}

	ops := e.create(t, auth.NewUserRequest{Email: "ops@example.com", Name: " Platform Ops ", Roles: []auth.Role{auth.RoleOperator}, Password: password + "!"})
	if ops.Name != "Platform Ops" || ops.OrgID != "" {
		t.Errorf("Create(ops) = %+v, want name trimmed and no org", ops)
	}

	// The same email in another case is the same user: Conflict, in any org.
	_, err = e.users.Create(ctx, actor, auth.NewUserRequest{Email: "ALICE@example.com", Roles: []auth.Role{auth.RoleOperator}, Password: password})
	if fault.KindOf(err) != fault.Conflict {
		t.Errorf("Create(ALICE@example.com) kind = %v (%v), want %v", fault.KindOf(err), err, fault.Conflict)
	}

	if us, err := e.users.List(ctx, "acme"); err != nil || len(us) != 1 || us[0].ID != alice.ID {
		t.Errorf("List(acme) = %+v, %v; want alice", us, err)
	}
	if us, err := e.users.List(ctx, ""); err != nil || len(us) != 1 || us[0].ID != ops.ID {
		t.Errorf("List(platform) = %+v, %v; want ops", us, err)
	}

	// Audited in the org's chain, or the platform's; never with the password.
	acme, platform := e.events(t, "acme"), e.events(t, audit.Platform)
	if len(acme) != 2 || acme[1].Action != "user.create" || acme[1].Target != "user/alice@example.com" || acme[1].Actor != actor ||
		acme[1].Details["roles"] != "key_admin,admin" {
		t.Errorf("audit log of acme = %+v, want org.create and alice's user.create", acme)
	}
	if len(platform) != 1 || platform[0].Action != "user.create" || platform[0].Target != "user/ops@example.com" {
		t.Errorf("audit log of %s = %+v, want ops' user.create", audit.Platform, platform)
	}
	for _, ev := range append(acme, platform...) {
		if s := fmt.Sprintf("%+v", ev); strings.Contains(s, password) || strings.Contains(s, "$argon2id$") {
			t.Errorf("audit event %s#%d holds the password or its hash: %s", ev.OrgID, ev.Seq, s)
		}
	}
}

func TestSignIn(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice := e.put(t, "acme", "alice@example.com", auth.RoleAdmin, auth.RoleKeyAdmin)
	signedIn := e.clock.now()

	// The email is normalized as at creation.
	s, secret, u, err := e.users.SignIn(ctx, " Alice@Example.com", password, "192.0.2.1")
	if err != nil {
		t.Fatalf("SignIn(alice) = %v", err)
	}
	if u.ID != alice.ID || s.UserID != alice.ID || s.CSRF == "" || s.ID == secret || len(s.ID) != 64 || strings.Contains(s.ID, secret) ||
		!s.CreatedAt.Equal(signedIn.Truncate(time.Microsecond)) || !s.ExpiresAt.Equal(s.CreatedAt.Add(ttl)) {
		t.Errorf("SignIn(alice) = %+v, user %s; want a session of %s expiring after %v, stored by the hash of its secret", s, u.ID, alice.ID, ttl)
	}
	if stored, err := e.st.GetSession(ctx, s.ID); err != nil || !sameSession(stored, s) {
		t.Errorf("stored session = %+v, %v; want %+v", stored, err, s)
	}
	got, user, p, err := e.users.Session(ctx, secret)
	if err != nil {
		t.Fatalf("Session(secret) = %v", err)
	}
	if !sameSession(got, s) || user.ID != alice.ID {
		t.Errorf("Session(secret) = %+v, user %s; want %+v, %s", got, user.ID, s, alice.ID)
	}
	if p.Name != "user:alice@example.com" || p.OrgID != "acme" || !slices.Equal(p.Roles, []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}) || p.TokenID != "" {
		t.Errorf("Session(secret) principal = %+v, want user:alice@example.com in acme with admin, key_admin", p)
	}
	if !auth.Allowed(p, auth.ActCMKManage, "acme") || auth.Allowed(p, auth.ActKeyRead, "globex") {
		t.Errorf("the session's principal %+v is not authorized as alice", p)
	}
	for _, bad := range []string{"", "short", secret + "x", secret[1:], strings.Repeat("a", 101), s.ID} {
		e.checkSignedOut(t, fmt.Sprintf("%.12q", bad), bad)
	}

	// A wrong password and an unknown email fail alike.
	_, _, _, wrong := e.users.SignIn(ctx, "alice@example.com", password+"x", "192.0.2.1")
	_, _, _, unknown := e.users.SignIn(ctx, "nobody@example.com", password, "192.0.2.1")
	for name, err := range map[string]error{"wrong password": wrong, "unknown email": unknown} {
		if fault.KindOf(err) != fault.Unauthenticated {
			t.Errorf("SignIn(%s) kind = %v (%v), want %v", name, fault.KindOf(err), err, fault.Unauthenticated)
		}
	}
	if fault.Message(wrong) != fault.Message(unknown) {
		t.Errorf("SignIn messages differ: wrong password %q, unknown email %q", wrong, unknown)
	}

	// The session lives until ExpiresAt, exclusive.
	e.clock.add(ttl - time.Microsecond)
	if _, _, _, err := e.users.Session(ctx, secret); err != nil {
		t.Errorf("Session(secret) just before expiry = %v", err)
	}
	e.clock.add(time.Microsecond)
	e.checkSignedOut(t, "at expiry", secret)
	if _, err := e.st.GetSession(ctx, s.ID); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetSession(expired) kind = %v (%v), want %v: an expired session is deleted when seen", fault.KindOf(err), err, fault.NotFound)
	}

	// SignOut ends the session; signing out twice is fine.
	s2, secret2 := e.signIn(t, "alice@example.com", password, "192.0.2.1")
	if s2.ID == s.ID || s2.CSRF == s.CSRF {
		t.Errorf("two sign-ins share a session ID or CSRF token")
	}
	if err := e.users.SignOut(ctx, secret2); err != nil {
		t.Fatalf("SignOut = %v", err)
	}
	e.checkSignedOut(t, "after SignOut", secret2)
	if err := e.users.SignOut(ctx, secret2); err != nil {
		t.Errorf("SignOut twice = %v", err)
	}

	// A disabled user can neither sign in nor use a session.
	_, secret3 := e.signIn(t, "alice@example.com", password, "192.0.2.1")
	disabled := alice
	disabled.Disabled = true
	if err := e.st.UpdateUser(ctx, disabled, audit.Event{Time: e.clock.now(), Actor: actor, Action: "user.disable", Target: "user/alice@example.com"}); err != nil {
		t.Fatalf("UpdateUser(disable alice) = %v", err)
	}
	e.checkSignedOut(t, "of a disabled user", secret3)
	if _, _, _, err := e.users.SignIn(ctx, "alice@example.com", password, "192.0.2.1"); fault.Message(err) != fault.Message(unknown) {
		t.Errorf("SignIn(disabled alice) = %v, want %q", err, fault.Message(unknown))
	}
}

// signInWait tries a sign-in and returns its RetryAfter when it is
// throttled, 0 when it was not (the attempt then ran).
func (e *env) signInWait(t *testing.T, email, pw, client string) time.Duration {
	t.Helper()
	_, _, _, err := e.users.SignIn(t.Context(), email, pw, client)
	switch fe := fault.As(err); {
	case fe != nil && fe.Kind == fault.RateLimited:
		if fe.RetryAfter <= 0 || !strings.Contains(fe.Reason, "try again in") {
			t.Errorf("SignIn(%s) from %s throttled with RetryAfter %v, reason %q; want a positive wait, said", email, client, fe.RetryAfter, fe.Reason)
		}
		return fe.RetryAfter
	case pw == password && err != nil:
		t.Fatalf("SignIn(%s, right password) from %s = %v", email, client, err)
	case pw != password && fault.KindOf(err) != fault.Unauthenticated:
		t.Fatalf("SignIn(%s, wrong password) from %s = %v, want unauthenticated", email, client, err)
	}
	return 0
}

// TestSignInThrottle: failures back off progressively per (client,
// account) instead of locking the account; the real user is never locked
// out, from the same client (after a bounded wait) or from another one;
// and guessing across many clients is slowed by a per-account ceiling.
func TestSignInThrottle(t *testing.T) {
	e := newEnv(t)
	e.put(t, "acme", "bob@example.com", auth.RoleMember)
	e.put(t, "acme", "eve@example.com", auth.RoleMember)
	const attacker = "198.51.100.66"

	// Three free failures, then waits of 1 s, 2 s, 4 s, ... up to a minute.
	for i := range 3 {
		if w := e.signInWait(t, "bob@example.com", "wrong", attacker); w != 0 {
			t.Fatalf("failure #%d throttled for %v, want free", i+1, w)
		}
	}
	var waits []time.Duration
	for range 10 {
		w := e.signInWait(t, "bob@example.com", "wrong", attacker)
		if w == 0 {
			t.Fatalf("attempt right after a failure was not throttled")
		}
		waits = append(waits, w)
		e.clock.add(w)
		if w2 := e.signInWait(t, "bob@example.com", "wrong", attacker); w2 != 0 {
			t.Fatalf("attempt after waiting the Retry-After (%v) throttled for %v", w, w2)
		}
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60, 60}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Fatalf("waits = %v, want %v seconds: progressive, at most a minute", waits, want)
		}
	}
	// The real user from their own client is not held back by the
	// attacker's pair, and the account ceiling is at most 30 s.
	if w := e.signInWait(t, "BOB@example.com", password, "203.0.113.5"); w > 30*time.Second {
		t.Fatalf("the real user from a fresh client waits %v, want at most 30s", w)
	} else if w > 0 {
		e.clock.add(w)
		if w := e.signInWait(t, "bob@example.com", password, "203.0.113.5"); w != 0 {
			t.Fatalf("the real user after the Retry-After still throttled for %v", w)
		}
	}
	// Another account from the attacker's address is not affected.
	if w := e.signInWait(t, "eve@example.com", password, attacker); w != 0 {
		t.Errorf("eve from the attacker's address throttled for %v", w)
	}
	// The attacker's own pair: a success there (the user on that client)
	// clears it.
	e.clock.add(time.Minute)
	if w := e.signInWait(t, "bob@example.com", password, attacker); w != 0 {
		t.Fatalf("right password on the throttled pair after its wait throttled for %v", w)
	}
	if w := e.signInWait(t, "bob@example.com", "wrong", attacker); w > 30*time.Second {
		t.Errorf("a failure after a successful sign-in throttled for %v, want the pair cleared (only the account's ceiling left)", w)
	}
	// A pair's failures are forgotten after an hour.
	e.clock.add(time.Hour + time.Second)
	for range 3 {
		if w := e.signInWait(t, "bob@example.com", "wrong", attacker); w != 0 {
			t.Fatalf("failure an hour later throttled for %v, want the counter forgotten", w)
		}
	}
}

// TestSignInThrottleAcrossClients: guesses at one account from many
// clients (one failure each) meet the per-account ceiling: a wait of at
// most 30 s between guesses, which the real user also waits at most,
// never a lock.
func TestSignInThrottleAcrossClients(t *testing.T) {
	e := newEnv(t)
	e.put(t, "acme", "bob@example.com", auth.RoleMember)
	throttled := 0
	for i := range 200 {
		client := fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		w := e.signInWait(t, "bob@example.com", "wrong", client)
		if w > 30*time.Second {
			t.Fatalf("guess #%d from a fresh client waits %v, want at most 30s", i, w)
		}
		if w > 0 {
			throttled++
			e.clock.add(w)
			if w := e.signInWait(t, "bob@example.com", "wrong", client); w != 0 {
				t.Fatalf("guess after the Retry-After throttled for %v", w)
			}
		}
	}
	if throttled < 150 {
		t.Errorf("%d of 200 guesses from distinct clients were throttled; want the account ceiling to slow them", throttled)
	}
	w := e.signInWait(t, "bob@example.com", password, "192.0.2.1")
	if w == 0 || w > 30*time.Second {
		t.Fatalf("the real user right after a guess waits %v, want a wait of at most 30s", w)
	}
	e.clock.add(w)
	if w := e.signInWait(t, "bob@example.com", password, "192.0.2.1"); w != 0 {
		t.Fatalf("the real user after the Retry-After throttled for %v", w)
	}
}

func TestSetPasswordSignsOutEverywhere(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	carol := e.put(t, "acme", "carol@example.com", auth.RoleMember)
	_, laptop := e.signIn(t, "carol@example.com", password, "192.0.2.1")
	_, phone := e.signIn(t, "carol@example.com", password, "192.0.2.2")

	if err := e.users.SetPassword(ctx, actor, carol.ID, "too short"); fault.As(err) == nil || fault.As(err).Field != "password" {
		t.Errorf("SetPassword(short) = %v, want invalid password", err)
	}
	if err := e.users.SetPassword(ctx, actor, "usr_nobody", "a new long passphrase"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("SetPassword(unknown user) kind = %v (%v), want %v", fault.KindOf(err), err, fault.NotFound)
	}
	if _, _, _, err := e.users.Session(ctx, laptop); err != nil {
		t.Fatalf("Session(laptop) after failed SetPassword calls = %v", err)
	}

	const newPassword = "a new long passphrase"
	if err := e.users.SetPassword(ctx, "user:carol@example.com", carol.ID, newPassword); err != nil {
		t.Fatalf("SetPassword = %v", err)
	}
	e.checkSignedOut(t, "laptop", laptop)
	e.checkSignedOut(t, "phone", phone)
	stored, err := e.users.Get(ctx, carol.ID)
	if err != nil {
		t.Fatalf("Get(carol) = %v", err)
	}
	if stored.PasswordHash == carol.PasswordHash || !strings.HasPrefix(stored.PasswordHash, "$argon2id$v=19$m=65536,t=3,p=2$") ||
		strings.Contains(stored.PasswordHash, newPassword) || !slices.Equal(stored.Roles, carol.Roles) {
		t.Errorf("Get(carol) after SetPassword = %+v, want a new argon2id hash and the roles unchanged", stored)
	}
	e.signIn(t, "carol@example.com", newPassword, "192.0.2.1")

	evs := e.events(t, "acme")
	if last := evs[len(evs)-1]; last.Action != "user.password" || last.Target != "user/carol@example.com" || last.Actor != "user:carol@example.com" {
		t.Errorf("last audit event of acme = %+v, want carol's user.password", last)
	}
}

func TestSetRolesAudited(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	dave := e.put(t, "acme", "dave@example.com", auth.RoleAdmin)
	ops := e.put(t, "", "ops@example.com", auth.RoleOperator)

	want := []auth.Role{auth.RoleMember, auth.RoleKeyAdmin}
	u, err := e.users.SetRoles(ctx, actor, dave.ID, want)
	if err != nil {
		t.Fatalf("SetRoles(dave) = %v", err)
	}
	if !slices.Equal(u.Roles, want) {
		t.Errorf("SetRoles(dave) = %+v, want roles %v", u, want)
	}
	if got, err := e.users.Get(ctx, dave.ID); err != nil || !slices.Equal(got.Roles, want) || got.PasswordHash != dave.PasswordHash {
		t.Errorf("Get(dave) = %+v, %v; want roles %v and the password unchanged", got, err, want)
	}
	evs := e.events(t, "acme")
	if len(evs) != 3 {
		t.Fatalf("audit log of acme has %d events, want 3", len(evs))
	}
	ev := evs[2]
	if ev.Action != "user.roles" || ev.Actor != actor || ev.Target != "user/dave@example.com" || ev.Details["from"] != "admin" || ev.Details["to"] != "member,key_admin" {
		t.Errorf("audit event of SetRoles = %+v, want user.roles from admin to member,key_admin", ev)
	}

	for _, tc := range []struct {
		name  string
		id    string
		roles []auth.Role
		want  fault.Kind
	}{
		{"operator in an org", dave.ID, []auth.Role{auth.RoleOperator}, fault.Invalid},
		{"unknown role", dave.ID, []auth.Role{"root"}, fault.Invalid},
		{"org role on the platform", ops.ID, []auth.Role{auth.RoleAdmin}, fault.Invalid},
		{"unknown user", "usr_nobody", want, fault.NotFound},
	} {
		if _, err := e.users.SetRoles(ctx, actor, tc.id, tc.roles); fault.KindOf(err) != tc.want {
			t.Errorf("SetRoles(%s) kind = %v (%v), want %v", tc.name, fault.KindOf(err), err, tc.want)
		}
	}
	if got, err := e.users.Get(ctx, dave.ID); err != nil || !slices.Equal(got.Roles, want) {
		t.Errorf("Get(dave) after refused changes = %+v, %v; want roles %v", got, err, want)
	}
	if evs := e.events(t, "acme"); len(evs) != 3 {
		t.Errorf("audit log of acme has %d events after refused changes, want 3", len(evs))
	}

	// A platform user's role change goes to the platform chain.
	if _, err := e.users.SetRoles(ctx, actor, ops.ID, nil); err != nil {
		t.Fatalf("SetRoles(ops, none) = %v", err)
	}
	platform := e.events(t, audit.Platform)
	if len(platform) != 2 || platform[1].Action != "user.roles" || platform[1].Details["from"] != "operator" || platform[1].Details["to"] != "" {
		t.Errorf("audit log of %s = %+v, want user.create and user.roles from operator to none", audit.Platform, platform)
	}
}

func TestCheckCSRF(t *testing.T) {
	s := auth.Session{CSRF: "Zm9vYmFyYmF6cXV4"}
	for _, tc := range []struct {
		s     auth.Session
		token string
		want  bool
	}{
		{s, s.CSRF, true},
		{s, "", false},
		{s, s.CSRF + "x", false},
		{s, s.CSRF[:len(s.CSRF)-1], false},
		{s, strings.ToLower(s.CSRF), false},
		{auth.Session{}, "", false}, // a session without a token accepts none
	} {
		if got := auth.CheckCSRF(tc.s, tc.token); got != tc.want {
			t.Errorf("CheckCSRF(%q, %q) = %v, want %v", tc.s.CSRF, tc.token, got, tc.want)
		}
	}
}

// cheapHash returns an argon2id PHC string with small costs, so malformed
// variants can be checked quickly.
func cheapHash(pw string, salt []byte, m, t uint32, p uint8, keyLen uint32) string {
	key := argon2.IDKey([]byte(pw), salt, t, m, p, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, m, t, p,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func TestHashPassword(t *testing.T) {
	h1, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=65536,t=3,p=2$") || strings.Contains(h1, password) {
		t.Errorf("HashPassword = %q, want an argon2id PHC string with m=65536,t=3,p=2", h1)
	}
	if h1 == h2 {
		t.Errorf("two hashes of one password are equal: the salt is not random")
	}
	if !auth.CheckPassword(h1, password) {
		t.Errorf("CheckPassword(HashPassword(pw), pw) = false")
	}

	// The costs are read from the string: the cases below use small ones.
	salt := []byte("0123456789abcdef")
	cheap := cheapHash(password, salt, 64, 1, 1, 32)
	if !auth.CheckPassword(cheap, password) {
		t.Fatalf("CheckPassword(%q, pw) = false", cheap)
	}
	if auth.CheckPassword(cheap, password+" ") {
		t.Errorf("CheckPassword(hash, another password) = true")
	}
	parts := strings.Split(cheap, "$")
	replace := func(i int, v string) string {
		p := slices.Clone(parts)
		p[i] = v
		return strings.Join(p, "$")
	}
	// Flip the first character of the key: the last one also carries
	// padding bits, which the lenient decoder ignores.
	key := []byte(parts[5])
	key[0] ^= 'A' ^ 'B'
	for _, tc := range []struct {
		name, hash string
	}{
		{"empty", ""},
		{"the password itself", password},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", replace(1, "argon2i")},
		{"too few fields", strings.Join(parts[:5], "$")},
		{"too many fields", cheap + "$x"},
		{"no leading $", strings.TrimPrefix(cheap, "$")},
		{"zero memory", replace(3, "m=0,t=1,p=1")},
		{"zero time", replace(3, "m=64,t=0,p=1")},
		{"zero threads", replace(3, "m=64,t=1,p=0")},
		{"memory over 2 GiB", replace(3, "m=4194304,t=1,p=1")},
		{"time over 20", replace(3, "m=64,t=21,p=1")},
		{"garbage parameters", replace(3, "m=x,t=1,p=1")},
		{"bad salt", replace(4, "!!!")},
		{"bad key", replace(5, "!!!")},
		{"empty key", replace(5, "")},
		{"key over 64 bytes", replace(5, base64.RawStdEncoding.EncodeToString(make([]byte, 65)))},
		{"other salt", replace(4, base64.RawStdEncoding.EncodeToString([]byte("fedcba9876543210")))},
		{"other parameters", replace(3, "m=64,t=2,p=1")},
		{"tampered key", replace(5, string(key))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if auth.CheckPassword(tc.hash, password) {
				t.Errorf("CheckPassword(%q, pw) = true, want false", tc.hash)
			}
		})
	}
}
